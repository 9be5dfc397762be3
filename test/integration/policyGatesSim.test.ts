import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { ClusterApi } from "../../shared/kube/clusterApi";
import { KubeClusterApi } from "../../shared/kube/kubeClusterApi";
import type { NodeRecord } from "../../shared/node/nodeRecord";
import { applyPendingTaint, postRebootLabels, preRebootLabels } from "../../shared/policy/lifecycle";
import { rebootPolicyGate } from "../../shared/policy/gates/composite";
import { withPolicyDefaults, type GateContext, type Policy } from "../../shared/policy/policy";
import { SimCluster } from "../../local/kubeSim/simCluster";
import { lastReleaseIn, policyBase } from "../support/fixtures";

const MIN = 60_000;
const policy = (overrides: Partial<Policy> = {}): Policy =>
  withPolicyDefaults({
    concurrency: 5,
    ...policyBase,
    ...overrides,
  });

const rec = (node: string, state: NodeRecord["state"] = "pending"): NodeRecord => ({ cluster: "sim", node, state, since: "", why: "", rebootRequired: true, reasons: [] });

describe("the reboot-policy gates against the simulated API server", () => {
  let sim: SimCluster;
  let api: ClusterApi;
  before(async () => {
    sim = await SimCluster.start({ podStartDelayMs: 10, terminationDelayMs: 10 });
    const lib = await import("@kubernetes/client-node");
    const config = new lib.KubeConfig();
    config.loadFromString(sim.kubeconfig);
    api = new KubeClusterApi(lib, config, 5_000);
    for (const zone of ["1", "2"]) for (const i of ["a", "b"]) sim.addNode(`z${zone}${i}`, { zone: `westeurope-${zone}`, pool: "user" });
  });
  after(() => sim.stop());

  const ask = (p: Policy, node: string, records: NodeRecord[], phase: GateContext["phase"] = "before-lock") =>
    rebootPolicyGate().holdReason({ record: rec(node), policy: p, now: new Date(), phase, kube: async () => api, records: async () => records, lastRelease: async () => lastReleaseIn(records) });

  it("lets one node per zone out with maxPerZone 1 while several are pending", async () => {
    const records = [rec("z1a", "draining"), rec("z1b"), rec("z2a"), rec("z2b")];
    const p = policy({ maxPerZone: 1, health: { waitForHealthy: false, lockReleaseDelayMs: 0 } });
    assert.match((await ask(p, "z1b", records)) ?? "", /zone westeurope-1 already has 1 node out \(z1a\)/);
    assert.equal(await ask(p, "z2a", records), undefined);
  });

  it("holds a node while a blocking pod runs on it, found by label selector on the server", async () => {
    sim.addPod("default", "backup-1", { node: "z2b", labels: { app: "backup" } });
    const p = policy({ blockers: { podSelectors: [{ selector: "app in (backup)", scope: "node" }], pdbPrecheck: false }, health: { waitForHealthy: false, lockReleaseDelayMs: 0 } });
    assert.match((await ask(p, "z2b", [])) ?? "", /blocking pod default\/backup-1 on node z2b/);
    assert.equal(await ask(p, "z2a", []), undefined);
  });

  it("does not cordon a node whose pod's PodDisruptionBudget allows no disruption", async () => {
    sim.addPod("shop", "db-0", { node: "z1a", labels: { app: "db" }, ownerKind: "StatefulSet" });
    sim.addPdb("shop", "db", { selector: { app: "db" }, minAvailable: 1 });
    const p = policy({ health: { waitForHealthy: false, lockReleaseDelayMs: 0 } });
    let reason: string | undefined;
    for (let i = 0; i < 50 && !reason; i++) {
      reason = await ask(p, "z1a", []);
      if (!reason) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.match(reason ?? "", /PodDisruptionBudget shop\/db allows no disruption now .* covers shop\/db-0/);
  });

  it("sets and removes the PreferNoSchedule taint and swaps the reboot labels on the node object", async () => {
    const p = policy({ preferNoScheduleTaint: { enabled: true, key: "rollcall.io/reboot-pending" }, nodeLabels: { preReboot: { "rollcall.io/rebooting": "true" }, postReboot: { "rollcall.io/rebooted": "yes" } } });
    await applyPendingTaint(api, p, "z2a", true);
    assert.deepEqual((await api.getNode("z2a"))?.taints?.filter((t) => t.key.startsWith("rollcall")), [{ key: "rollcall.io/reboot-pending", effect: "PreferNoSchedule" }]);
    await applyPendingTaint(api, p, "z2a", false);
    assert.deepEqual((await api.getNode("z2a"))?.taints?.filter((t) => t.key.startsWith("rollcall")), []);
    await api.updateNode((await api.getNode("z2a"))!, { labels: preRebootLabels(p) });
    assert.equal((await api.getNode("z2a"))?.labels["rollcall.io/rebooting"], "true");
    await api.updateNode((await api.getNode("z2a"))!, { labels: postRebootLabels(p) });
    const labels = (await api.getNode("z2a"))?.labels ?? {};
    assert.equal(labels["rollcall.io/rebooted"], "yes");
    assert.equal(labels["rollcall.io/rebooting"], undefined);
  });
});
