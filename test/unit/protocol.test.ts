import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { build } from "esbuild";
import { CheckinRequest, CheckinResponse } from "../../shared/protocol/checkin";
import { clusterName, nodeName } from "../../shared/protocol/names";
import { isClusterName, isNodeName, parseCheckinAnswer, preferredWaitSeconds, preferWait } from "../../shared/protocol/wire";

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

describe("the agent's side of the protocol, without a schema library", () => {
  const lease = "33333333-3333-4333-8333-333333333333";
  const answers: unknown[] = [
    { action: "none", state: "idle", reason: "nothing", nextCheckinSeconds: 60 },
    { action: "reboot", leaseId: lease, state: "reboot-ordered", reason: "drained", nextCheckinSeconds: 2, extra: "ignored" },
    { action: "reboot", leaseId: "not-a-uuid", state: "reboot-ordered", reason: "drained", nextCheckinSeconds: 2 },
    { action: "dance", state: "idle", reason: "", nextCheckinSeconds: 1 },
    { action: "wait", state: "pending", reason: "queued", nextCheckinSeconds: 0 },
    { action: "wait", state: "pending", reason: "queued", nextCheckinSeconds: 1.5 },
    { action: "wait", state: 3, reason: "queued", nextCheckinSeconds: 1 },
    { action: "wait", state: "pending", nextCheckinSeconds: 1 },
    null,
    [],
    "reboot",
  ];

  it("accepts exactly the answers the orchestrator's schema accepts, with the same fields", () => {
    for (const value of answers) {
      const schema = CheckinResponse.safeParse(value);
      const agent = parseCheckinAnswer(value);
      assert.equal("answer" in agent, schema.success, JSON.stringify(value));
      if (schema.success && "answer" in agent) assert.deepEqual(agent.answer, schema.data);
    }
  });

  it("checks node and cluster names as the orchestrator does", () => {
    for (const name of ["aks-nodepool1-12345678-vmss000000", "ip-10-0-0-1.eu-west-1.compute.internal", "Node", "-a", "a".repeat(254), "a'b", "", "prod", "a".repeat(64)]) {
      assert.equal(isNodeName(name), nodeName.safeParse(name).success, name);
      assert.equal(isClusterName(name), clusterName.safeParse(name).success, name);
    }
  });

  it("keeps zod out of the agent's bundle", async () => {
    const result = await build({ entryPoints: [resolve(__dirname, "../../node-agent/agent.ts")], bundle: true, platform: "node", format: "cjs", target: "node22", write: false, metafile: true, logLevel: "error" });
    const inputs = Object.keys(result.metafile.inputs);
    assert.ok(inputs.some((i) => i.includes("node-agent/")), "the bundle was built");
    assert.deepEqual(inputs.filter((i) => i.includes("node_modules/")), [], "the agent bundles no package");
  });
});


describe("the check-in's Prefer: wait (RFC 7240)", () => {
  it("reads the seconds the agent offers to wait, among other preferences", () => {
    assert.equal(preferredWaitSeconds("wait=25"), 25);
    assert.equal(preferredWaitSeconds('respond-async, WAIT = "10"'), 10);
    assert.equal(preferredWaitSeconds("return=minimal, wait=7; x=y"), 7);
  });

  it("takes anything else as no offer, so the check-in is answered at once", () => {
    for (const header of [null, undefined, "", "wait", "wait=-3", "wait=1.5", "wait=abc", "wait=99999999", "respond-async"]) {
      assert.equal(preferredWaitSeconds(header), 0, String(header));
    }
  });

  it("writes the agent's offer as a whole, non-negative count", () => {
    assert.equal(preferWait(25.9), "wait=25");
    assert.equal(preferWait(-4), "wait=0");
  });
});
