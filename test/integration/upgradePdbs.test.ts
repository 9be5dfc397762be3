import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { SimCluster } from "../../local/kubeSim/simCluster";
import { parseConfig } from "../../shared/config/config";
import { clusterApiFactory } from "../../shared/kube/connect";
import { blockingPdbs } from "../../shared/upgrade/clusterPdbs";

let sim: SimCluster;
before(async () => {
  sim = await SimCluster.start({ podStartDelayMs: 10 });
});
after(() => sim.stop());

describe("the upgrade planner's PodDisruptionBudget check", () => {
  it("names the budgets that allow no disruption and ignores those that do or select nothing", async () => {
    sim.addNode("up-1");
    sim.addNode("up-2");
    sim.addDeployment("pay", "ledger", { replicas: 2, pdb: { minAvailable: 2 } });
    sim.addDeployment("web", "front", { replicas: 3, pdb: { maxUnavailable: 1 } });
    sim.addPdb("empty", "orphan", { selector: { app: "nothing" }, minAvailable: 1 });
    const config = parseConfig({ ROLLCALL_STORAGE_CONNECTION: "UseDevelopmentStorage=true", ROLLCALL_CLUSTERS: JSON.stringify([{ name: "up", kubeconfig: sim.kubeconfig }]) });
    const facts = await blockingPdbs(await clusterApiFactory(config)("up"));
    assert.deepEqual(facts, { checked: true, blocking: [{ namespace: "pay", name: "ledger" }] });
  });
});
