import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CheckinRequest } from "../../shared/protocol/checkin";
import { clusterName, nodeName } from "../../shared/protocol/names";

describe("names that reach storage keys", () => {
  it("accept Kubernetes node names such as AKS's", () => {
    assert.ok(nodeName.safeParse("aks-nodepool1-12345678-vmss000000").success);
    assert.ok(nodeName.safeParse("ip-10-0-0-1.eu-west-1.compute.internal").success);
  });

  it("refuse names that could inject into an OData filter or a row key", () => {
    for (const bad of ["a' or PartitionKey ne '", "a/b", "A", "-a", "a#b", "", "a".repeat(254)]) {
      assert.equal(nodeName.safeParse(bad).success, false, bad);
    }
    assert.equal(clusterName.safeParse("prod.eu").success, false, "cluster names are DNS labels, without dots");
  });
});

describe("the check-in request", () => {
  const valid = { bootId: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", rebootRequired: true, agentVersion: "0.1.0", reasons: ["linux-image-azure"] };

  it("accepts what the agent sends", () => {
    assert.ok(CheckinRequest.safeParse(valid).success);
    assert.deepEqual(CheckinRequest.parse({ ...valid, reasons: undefined }).reasons, []);
  });

  it("refuses unknown fields, wrong types and a malformed lease", () => {
    assert.equal(CheckinRequest.safeParse({ ...valid, extra: 1 }).success, false);
    assert.equal(CheckinRequest.safeParse({ ...valid, rebootRequired: "yes" }).success, false);
    assert.equal(CheckinRequest.safeParse({ ...valid, leaseId: "not-a-uuid" }).success, false);
    assert.equal(CheckinRequest.safeParse({ ...valid, bootId: "x; rm -rf /" }).success, false);
  });
});
