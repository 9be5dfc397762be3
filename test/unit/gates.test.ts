import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { NodeRecord } from "../../shared/node/nodeRecord";
import type { NodeState } from "../../shared/node/stateMachine";
import { compositeGate, policyGates } from "../../shared/policy/gates/composite";
import { concurrencyGate, unavailableLimit } from "../../shared/policy/gates/concurrency";
import { healthGate } from "../../shared/policy/gates/health";
import { pdbPrecheckGate } from "../../shared/policy/gates/pdbPrecheck";
import { podBlockerGate } from "../../shared/policy/gates/podBlockers";
import { blockerQuery, blockingAlerts } from "../../shared/policy/gates/prometheus";
import { parsePolicyDocument, resolvePolicy } from "../../shared/policy/policySchema";
import { windowGate } from "../../shared/policy/gates/window";
import { withPolicyDefaults, type GateContext, type Policy } from "../../shared/policy/policy";
import { FakeClusterApi } from "../support/fakeClusterApi";
import { lastReleaseIn, policyBase } from "../support/fixtures";

const now = new Date("2026-11-24T03:00:00Z");
const MIN = 60_000;

function basePolicy(overrides: Partial<Policy> = {}): Policy {
  return withPolicyDefaults({
    concurrency: 5,
    ...policyBase,
    ...overrides,
  });
}

const rec = (node: string, state: NodeState = "pending", overrides: Partial<NodeRecord> = {}): NodeRecord => ({
  cluster: "prod",
  node,
  state,
  since: now.toISOString(),
  why: "test",
  rebootRequired: true,
  reasons: [],
  ...overrides,
});

function context(kube: FakeClusterApi, policy: Policy, node: string, records: NodeRecord[] = [], phase: GateContext["phase"] = "before-lock"): GateContext {
  return {
    record: records.find((r) => r.node === node) ?? rec(node),
    policy,
    now,
    phase,
    kube: async () => kube,
    records: async () => records,
    lastRelease: async () => lastReleaseIn(records),
  };
}

/** Three zones, two pools, two nodes in each zone. */
function zonedCluster(): FakeClusterApi {
  const kube = new FakeClusterApi();
  for (const zone of ["1", "2", "3"]) {
    for (const i of [1, 2]) {
      kube.addNode(`z${zone}-n${i}`, { labels: { "topology.kubernetes.io/zone": `westeurope-${zone}`, "kubernetes.azure.com/agentpool": i === 1 ? "system" : "user" } });
    }
  }
  return kube;
}

describe("the window gate", () => {
  it("holds a node outside the window and lets it through inside", async () => {
    const kube = new FakeClusterApi();
    const gate = windowGate();
    const closed = basePolicy({ windows: [{ days: ["sat"], start: "01:00", end: "05:00", timeZone: "UTC" }] });
    assert.match((await gate.holdReason(context(kube, closed, "n1"))) ?? "", /outside the reboot window/);
    const open = basePolicy({ windows: [{ days: ["tue"], start: "01:00", end: "05:00", timeZone: "UTC" }] });
    assert.equal(await gate.holdReason(context(kube, open, "n1")), undefined);
  });

  it("uses the cluster's AKS maintenance configuration when the policy says so", async () => {
    const gate = windowGate({
      aksSchedule: async (_cluster, name) => ({
        kind: "window",
        name,
        window: { schedule: { daily: { intervalDays: 1 } }, durationHours: 4, utcOffset: "+00:00", startTime: "02:00", notAllowedDates: [] },
      }),
    });
    const policy = basePolicy({ useAksMaintenanceConfiguration: "aksManagedNodeOSUpgradeSchedule" });
    assert.equal(await gate.holdReason(context(new FakeClusterApi(), policy, "n1")), undefined);
    const late = { ...context(new FakeClusterApi(), policy, "n1"), now: new Date("2026-11-24T05:50:00Z") };
    assert.match((await gate.holdReason(late)) ?? "", /AKS maintenance window aksManagedNodeOSUpgradeSchedule closes/);
  });

  it("holds every node when the named AKS maintenance configuration does not exist", async () => {
    const gate = windowGate({ aksSchedule: async () => undefined });
    const policy = basePolicy({ useAksMaintenanceConfiguration: "default" });
    assert.match((await gate.holdReason(context(new FakeClusterApi(), policy, "n1"))) ?? "", /no AKS maintenance configuration default/);
  });
});

describe("the concurrency gate", () => {
  it("lets only one node per zone out when maxPerZone is 1, however many are pending", async () => {
    const kube = zonedCluster();
    const policy = basePolicy({ maxPerZone: 1 });
    const records = [rec("z1-n1", "draining"), rec("z1-n2"), rec("z2-n1"), rec("z2-n2"), rec("z3-n1", "rebooted")];
    const gate = concurrencyGate();
    assert.match((await gate.holdReason(context(kube, policy, "z1-n2", records))) ?? "", /zone westeurope-1 already has 1 node out \(z1-n1\); maxPerZone is 1/);
    assert.equal(await gate.holdReason(context(kube, policy, "z2-n1", records)), undefined);
    assert.equal(await gate.holdReason(context(kube, policy, "z2-n2", records)), undefined);
    records[2]!.state = "cordoning";
    assert.match((await gate.holdReason(context(kube, policy, "z2-n2", records))) ?? "", /zone westeurope-2/);
    assert.match((await gate.holdReason(context(kube, policy, "z3-n2", records))) ?? "", /zone westeurope-3.*z3-n1/);
  });

  it("caps nodes out per node pool", async () => {
    const kube = zonedCluster();
    const policy = basePolicy({ maxPerPool: 2 });
    const records = [rec("z1-n2", "draining"), rec("z2-n2", "reboot-ordered"), rec("z3-n2"), rec("z3-n1")];
    const gate = concurrencyGate();
    assert.match((await gate.holdReason(context(kube, policy, "z3-n2", records))) ?? "", /node pool user already has 2 nodes out \(z1-n2, z2-n2\); maxPerPool is 2/);
    assert.equal(await gate.holdReason(context(kube, policy, "z3-n1", records)), undefined, "the system pool has nobody out");
  });

  it("reads the pool from the plain agentpool label too", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("a", { labels: { agentpool: "np1" } });
    kube.addNode("b", { labels: { agentpool: "np1" } });
    const held = await concurrencyGate().holdReason(context(kube, basePolicy({ maxPerPool: 1 }), "b", [rec("a", "draining"), rec("b")]));
    assert.match(held ?? "", /node pool np1/);
  });

  it("counts NotReady and unschedulable nodes and lock holders against maxUnavailable", async () => {
    const kube = zonedCluster();
    kube.nodes.get("z1-n1")!.ready = false;
    kube.nodes.get("z2-n1")!.unschedulable = true;
    const records = [rec("z3-n1", "draining"), rec("z3-n2")];
    const gate = concurrencyGate();
    assert.match((await gate.holdReason(context(kube, basePolicy({ maxUnavailable: 3 }), "z3-n2", records))) ?? "", /3 of 6 nodes are unavailable \(z1-n1, z2-n1, z3-n1\); maxUnavailable is 3/);
    assert.equal(await gate.holdReason(context(kube, basePolicy({ maxUnavailable: 4 }), "z3-n2", records)), undefined);
    assert.match((await gate.holdReason(context(kube, basePolicy({ maxUnavailable: "50%" }), "z3-n2", records))) ?? "", /maxUnavailable is 50% \(3 of 6 nodes\)/);
  });

  it("rounds a percentage down but never below one node", () => {
    assert.equal(unavailableLimit("25%", 10), 2);
    assert.equal(unavailableLimit("10%", 3), 1);
    assert.equal(unavailableLimit(4, 100), 4);
  });

  it("does not ask again before the reboot, when the node already holds its slot", async () => {
    const kube = zonedCluster();
    const held = await concurrencyGate().holdReason(context(kube, basePolicy({ maxPerZone: 1 }), "z1-n2", [rec("z1-n1", "draining"), rec("z1-n2", "draining")], "before-reboot"));
    assert.equal(held, undefined);
  });
});

describe("the pod blocker gate", () => {
  it("holds a node while a pod matching the selector runs on it, and not for pods on other nodes", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("n1");
    kube.addNode("n2");
    kube.addPod("n2", "backup-1", { labels: { app: "backup" } });
    const policy = basePolicy({ blockers: { podSelectors: [{ selector: "app=backup", scope: "node" }], pdbPrecheck: false } });
    assert.equal(await podBlockerGate().holdReason(context(kube, policy, "n1")), undefined);
    kube.addPod("n1", "backup-2", { labels: { app: "backup" } });
    assert.equal(await podBlockerGate().holdReason(context(kube, policy, "n1")), 'blocking pod default/backup-2 on node n1 matches "app=backup"');
  });

  it("holds every node while a cluster-wide blocker pod runs anywhere", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("n1");
    kube.addPod("n7", "etl-1", { labels: { job: "etl" } });
    const policy = basePolicy({ blockers: { podSelectors: [{ selector: "job in (etl,report)", scope: "cluster" }], pdbPrecheck: false } });
    assert.match((await podBlockerGate().holdReason(context(kube, policy, "n1", [], "before-reboot"))) ?? "", /default\/etl-1 on n7 in the cluster/);
  });

  it("ignores finished pods", async () => {
    const kube = new FakeClusterApi();
    kube.addPod("n1", "backup-1", { labels: { app: "backup" }, phase: "Succeeded" });
    const policy = basePolicy({ blockers: { podSelectors: [{ selector: "app=backup", scope: "node" }], pdbPrecheck: false } });
    assert.equal(await podBlockerGate().holdReason(context(kube, policy, "n1")), undefined);
  });
});

describe("the PDB pre-check", () => {
  it("does not cordon a node whose pod is covered by a PodDisruptionBudget allowing no disruption", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("n1");
    kube.addPod("n1", "db-0", { labels: { app: "db" } });
    kube.addPdb("default", "db", { app: "db" }, { disruptionsAllowed: 0, currentHealthy: 2, desiredHealthy: 2 });
    const held = await pdbPrecheckGate().holdReason(context(kube, basePolicy(), "n1"));
    assert.match(held ?? "", /PodDisruptionBudget default\/db allows no disruption now \(2 healthy, 2 required\) and covers default\/db-0/);
  });

  it("lets the node go when the budget allows a disruption, or covers another namespace, or only DaemonSet pods are there", async () => {
    const kube = new FakeClusterApi();
    kube.addPod("n1", "db-0", { labels: { app: "db" } });
    kube.addPod("n1", "agent", { labels: { app: "agent" }, controllerKinds: ["DaemonSet"] });
    kube.addPdb("other", "db", { app: "db" }, { disruptionsAllowed: 0 });
    kube.addPdb("default", "agent", { app: "agent" }, { disruptionsAllowed: 0 });
    const pdb = kube.addPdb("default", "db", { app: "db" }, { disruptionsAllowed: 1 });
    assert.equal(await pdbPrecheckGate().holdReason(context(kube, basePolicy(), "n1")), undefined);
    pdb.disruptionsAllowed = 0;
    assert.ok(await pdbPrecheckGate().holdReason(context(kube, basePolicy(), "n1")));
  });

  it("is skipped when blockers.pdbPrecheck is false", async () => {
    const kube = new FakeClusterApi();
    kube.addPod("n1", "db-0", { labels: { app: "db" } });
    kube.addPdb("default", "db", { app: "db" }, { disruptionsAllowed: 0 });
    const policy = basePolicy({ blockers: { podSelectors: [], pdbPrecheck: false } });
    assert.equal(await pdbPrecheckGate().holdReason(context(kube, policy, "n1")), undefined);
  });
});

describe("the health gate", () => {
  const released = (node: string, at: string) => rec(node, "idle", { recent: [{ at, from: "releasing", to: "idle", why: "rebooted and back in service" }] });

  it("waits the lock release delay after the last release", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("n1");
    const policy = basePolicy({ health: { waitForHealthy: false, lockReleaseDelayMs: 10 * MIN } });
    const records = [released("n1", new Date(now.getTime() - 4 * MIN).toISOString()), rec("n2")];
    assert.match((await healthGate().holdReason(context(kube, policy, "n2", records))) ?? "", /waiting 360 s more after node n1 was released/);
    records[0] = released("n1", new Date(now.getTime() - 11 * MIN).toISOString());
    assert.equal(await healthGate().holdReason(context(kube, policy, "n2", records)), undefined);
  });

  it("waits until the last node released is Ready", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("n1", { ready: false });
    const records = [released("n1", "2026-11-24T02:00:00Z"), rec("n2")];
    assert.match((await healthGate().holdReason(context(kube, basePolicy(), "n2", records))) ?? "", /n1, the last one released, to be Ready/);
    kube.nodes.get("n1")!.ready = true;
    assert.equal(await healthGate().holdReason(context(kube, basePolicy(), "n2", records)), undefined);
  });

  it("waits until evicted workloads are back: no PodDisruptionBudget short of pods", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("n1");
    const pdb = kube.addPdb("shop", "web", { app: "web" }, { disruptionsAllowed: 0, currentHealthy: 2, expectedPods: 3, desiredHealthy: 2 });
    const records = [released("n1", "2026-11-24T02:00:00Z"), rec("n2")];
    assert.match((await healthGate().holdReason(context(kube, basePolicy(), "n2", records))) ?? "", /PodDisruptionBudget shop\/web \(2 of 3 healthy\)/);
    pdb.currentHealthy = 3;
    assert.equal(await healthGate().holdReason(context(kube, basePolicy(), "n2", records)), undefined, "a budget that never allows a disruption but has every pod is healthy");
  });

  it("only looks at the budgets the last drain touched when they are known", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("n1");
    kube.addPdb("shop", "web", { app: "web" }, { disruptionsAllowed: 0, currentHealthy: 2, expectedPods: 3 });
    const records = [released("n1", "2026-11-24T02:00:00Z"), rec("n2")];
    const gate = healthGate({ touchedPdbs: () => ["shop/cart"] });
    assert.equal(await gate.holdReason(context(kube, basePolicy(), "n2", records)), undefined);
  });
});

describe("the Prometheus alert filter", () => {
  const alerts = [
    { name: "Watchdog", state: "firing" },
    { name: "NodeDown", state: "pending" },
    { name: "KubeCPUOvercommit", state: "firing" },
  ];

  it("ignores alerts whose name matches the filter, as kured does", () => {
    assert.deepEqual(blockingAlerts(alerts, { alertFilterRegex: "^(Watchdog|Kube.*)$", alertFilterMatchOnly: false, firingOnly: false }).map((a) => a.name), ["NodeDown"]);
  });

  it("blocks only on matching alerts in match-only mode", () => {
    assert.deepEqual(blockingAlerts(alerts, { alertFilterRegex: "^Node", alertFilterMatchOnly: true, firingOnly: false }).map((a) => a.name), ["NodeDown"]);
  });

  it("asks only for firing alerts unless the policy says otherwise, as issue 14 specifies", () => {
    const parsed = parsePolicyDocument({ blockers: { prometheus: { url: "https://ws.westeurope.prometheus.monitor.azure.com" } } });
    assert.equal(resolvePolicy(basePolicy(), parsed).blockers?.prometheus?.firingOnly, true);
    const ownQuery = parsePolicyDocument({ blockers: { prometheus: { url: "https://ws.westeurope.prometheus.monitor.azure.com", query: "up == 0" } } });
    assert.equal(resolvePolicy(basePolicy(), ownQuery).blockers?.prometheus?.query, "up == 0", "the operator's own query needs no firingOnly");
    assert.equal(blockerQuery({ firingOnly: true }), 'ALERTS{alertstate="firing"}');
    assert.equal(blockerQuery({ firingOnly: false }), "ALERTS");
  });

  it("ignores pending alerts when firing-only", () => {
    assert.deepEqual(blockingAlerts(alerts, { alertFilterRegex: "Watchdog", alertFilterMatchOnly: false, firingOnly: true }).map((a) => a.name), ["KubeCPUOvercommit"]);
  });
});

describe("the composite gate", () => {
  it("answers with the first gate's reason, in order", async () => {
    const gate = compositeGate([
      { name: "a", holdReason: async () => undefined },
      { name: "b", holdReason: async () => "b holds" },
      { name: "c", holdReason: async () => "c holds" },
    ]);
    assert.equal(await gate.holdReason(context(new FakeClusterApi(), basePolicy(), "n1")), "b holds");
  });

  it("counts a gate's error as blocked and says which gate failed", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("n1");
    kube.failures.set("listPods", Object.assign(new Error("connect ECONNREFUSED 10.0.0.1:443"), { code: 503 }));
    const gate = compositeGate(policyGates());
    assert.equal(await gate.holdReason(context(kube, basePolicy(), "n1")), "blocked: pdb pre-check failed: connect ECONNREFUSED 10.0.0.1:443");
  });

  it("lets a node through a default policy on a healthy cluster", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("n1");
    kube.addPod("n1", "web-1", { labels: { app: "web" } });
    kube.addPdb("default", "web", { app: "web" });
    assert.equal(await compositeGate(policyGates()).holdReason(context(kube, basePolicy(), "n1")), undefined);
  });
});
