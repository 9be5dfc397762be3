import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { TableClient, TransactionAction } from "@azure/data-tables";
import { NodeChangedError, nodeAnnotations } from "../../shared/kube/clusterApi";
import type { AcquireResult, ClusterLock, LockHolder, ReleaseResult } from "../../shared/lock/tableLock";
import { NodeStore, type NodeRecord } from "../../shared/node/nodeRecord";
import { canTransition, leftoverRepair, NODE_STATES, nextRecord, onLeaseExpired, STEPS, type StepPorts, TRANSITIONS } from "../../shared/node/stateMachine";
import { answerFor } from "../../shared/orchestrator/answer";
import { openGate, type Policy } from "../../shared/policy/policy";
import { healthGate } from "../../shared/policy/gates/health";
import { FakeClusterApi } from "../support/fakeClusterApi";
import { policyBase } from "../support/fixtures";

const now = new Date("2026-11-24T03:00:00Z");
const policy: Policy = {
  concurrency: 1,
  ...policyBase,
};

class ScriptedLock implements ClusterLock {
  holders: LockHolder[] = [];
  written: TransactionAction[][] = [];
  /** Acquires to refuse as lost races on the row (someone else wrote first). */
  conflicts = 0;
  acquires = 0;
  lastRelease?: { node: string; at: string };
  async view() {
    return { holders: this.holders, ...(this.lastRelease && { lastRelease: this.lastRelease }) };
  }
  async acquire(_cluster: string, holder: LockHolder, slots: number, alongWith: TransactionAction[] = []): Promise<AcquireResult> {
    this.acquires++;
    if (this.conflicts > 0 && this.conflicts--) return { kind: "conflict" };
    if (this.holders.length >= slots) return { kind: "full", holders: this.holders };
    this.holders.push(holder);
    this.written.push(alongWith);
    return { kind: "acquired" };
  }
  async release(_cluster: string, _node: string, leaseId: string, alongWith: TransactionAction[] = []): Promise<ReleaseResult> {
    const before = this.holders.length;
    this.holders = this.holders.filter((h) => h.leaseId !== leaseId);
    this.written.push(alongWith);
    return before === this.holders.length ? { kind: "not-held" } : { kind: "released" };
  }
}

function setup() {
  const kube = new FakeClusterApi();
  kube.addNode("n1");
  const lock = new ScriptedLock();
  const ports: StepPorts = {
    now,
    policy,
    kube: async () => kube,
    lock,
    // Only the queue listing reaches the table in these steps; there is nobody else in it.
    store: new NodeStore({ listEntities: async function* () {} } as unknown as TableClient),
    gate: openGate,
    newLeaseId: () => "11111111-1111-4111-8111-111111111111",
    waitMs: 0,
    sleep: async () => {},
    clock: () => now,
    // These steps answer n1's own check-in, so its agent is there to take an order.
    checkinOf: "n1",
    agentProblem: async () => undefined,
  };
  return { kube, lock, ports };
}

/** The ports' store, listing `records` as the cluster's queue (writes still go through the real store's actions). */
function queueOf(ports: StepPorts, records: NodeRecord[]): StepPorts["store"] {
  const store = ports.store;
  return Object.assign(Object.create(store) as typeof store, { list: async () => records.map((value) => ({ value, etag: "e" })) });
}

/** The ports' store, reading n1's record back with `etag` (as another invocation's write would change it). */
function recordAs(ports: StepPorts, etag: string): StepPorts["store"] {
  const store = ports.store;
  return Object.assign(Object.create(store) as typeof store, { get: async () => ({ value: record({ state: "pending" }), etag }) });
}

/** The fake node as a lease's cordon leaves it. */
function cordon(kube: FakeClusterApi, lease: string) {
  const node = kube.nodes.get("n1")!;
  node.unschedulable = true;
  node.annotations[nodeAnnotations.cordonedBy] = lease;
}

const record = (overrides: Partial<NodeRecord> = {}): NodeRecord => ({
  cluster: "prod",
  node: "n1",
  state: "idle",
  since: now.toISOString(),
  why: "test",
  bootId: "boot-a",
  rebootRequired: true,
  reasons: ["linux-image"],
  ...overrides,
});

describe("the node state machine", () => {
  it("has a step for every state and only transitions between known states", () => {
    for (const state of NODE_STATES) {
      assert.ok(STEPS[state], `no step for ${state}`);
      for (const to of TRANSITIONS[state]) assert.ok(NODE_STATES.includes(to));
    }
  });

  it("refuses an illegal transition instead of writing it", () => {
    assert.equal(canTransition("pending", "reboot-ordered"), false);
    assert.throws(() => nextRecord(record({ state: "pending" }), "reboot-ordered", "skip the drain", now), /Illegal transition/);
  });

  it("moves an idle node that needs a reboot to pending, and leaves one that does not", async () => {
    const { ports } = setup();
    assert.equal((await STEPS.idle(record(), "e", ports)).kind, "move");
    assert.equal((await STEPS.idle(record({ rebootRequired: false }), "e", ports)).kind, "wait");
  });

  it("takes a lock slot and moves to cordoning in the same transaction as the lock", async () => {
    const { ports, lock } = setup();
    const result = await STEPS.pending(record({ state: "pending" }), "etag-1", ports);
    assert.equal(result.kind, "committed");
    assert.equal(result.kind === "committed" && result.record.state, "cordoning");
    assert.equal(lock.holders[0]?.node, "n1");
    const companion = lock.written[0]?.[0];
    assert.equal(companion?.[0], "update");
    assert.deepEqual(companion?.[3], { etag: "etag-1" });
  });

  it("asks the health gate about the last release the lock row records, without listing the cluster's records", async () => {
    const { ports, lock, kube } = setup();
    kube.addNode("n7");
    kube.nodes.get("n7")!.ready = false;
    lock.lastRelease = { node: "n7", at: new Date(now.getTime() - 1_000).toISOString() };
    let listings = 0;
    const store = Object.assign(Object.create(ports.store) as typeof ports.store, { list: async () => (listings++, []) });
    const result = await STEPS.pending(record({ state: "pending" }), "e", { ...ports, store, gate: healthGate(), recentRecords: async () => [] });
    assert.equal(result.kind, "wait");
    assert.match(result.kind === "wait" ? result.why : "", /waiting for node n7, the last one released, to be Ready/);
    assert.equal(listings, 0, "the queue came from the shared listing, the last release from the lock row");
  });

  it("takes a freed slot handed over by a release that listed the node first in the queue, without listing the queue again", async () => {
    const { ports } = setup();
    let listings = 0;
    const store = Object.assign(Object.create(ports.store) as typeof ports.store, { list: async () => (listings++, []) });
    const recentRecords = async () => (listings++, []);
    const handedOver = await STEPS.pending(record({ state: "pending", lastCheckinAt: now.toISOString() }), "e", { ...ports, store, recentRecords, queuedAhead: 0, checkinOf: undefined, policy: { ...policy, health: { waitForHealthy: false, lockReleaseDelayMs: 0 } } });
    assert.equal(handedOver.kind, "committed");
    assert.equal(listings, 0);
  });

  it("waits, naming the holder, when every slot is taken", async () => {
    const { ports, lock } = setup();
    lock.holders.push({ node: "n9", leaseId: "x", acquiredAt: now.toISOString(), expiresAt: now.toISOString() });
    const result = await STEPS.pending(record({ state: "pending" }), "e", ports);
    assert.equal(result.kind, "wait");
    assert.match(result.kind === "wait" ? result.why : "", /held by n9/);
  });

  it("does not take a slot for a node whose agent pod no longer speaks for it, and leaves the node uncordoned", async () => {
    const { ports, lock, kube } = setup();
    const asked: string[] = [];
    const agentProblem = async (r: NodeRecord) => (asked.push(r.node), "its agent pod rollcall/agent-x (uid u) no longer exists");
    const result = await STEPS.pending(record({ state: "pending", lastCheckinAt: now.toISOString() }), "e", { ...ports, checkinOf: undefined, agentProblem });
    assert.equal(result.kind, "wait");
    assert.match(result.kind === "wait" ? result.why : "", /agent-x .* no longer exists; the node stays uncordoned/);
    assert.deepEqual(asked, ["n1"]);
    assert.equal(lock.holders.length, 0);
    assert.equal(kube.nodes.get("n1")!.unschedulable, false);
  });

  it("checks the node's agent while it reads the node, and a refusal of the agent is the step's outcome even when that read fails", async () => {
    const { ports, lock } = setup();
    let reviewing: (() => void) | undefined;
    const started: string[] = [];
    const refusal = new Error("the agent's pod no longer exists");
    // The review answers only once the node read began: the two run at once.
    const agentProblem = (r: NodeRecord) => (started.push(`review ${r.node}`), new Promise<undefined>((_, reject) => (reviewing = () => reject(refusal))));
    const failing = new FakeClusterApi();
    failing.getNode = async (name) => {
      started.push(`read ${name}`);
      reviewing?.();
      throw new Error("the API server did not answer in time");
    };
    const step = STEPS.pending(record({ state: "pending", lastCheckinAt: now.toISOString() }), "e", { ...ports, kube: async () => failing, agentProblem });
    await assert.rejects(step, refusal);
    assert.deepEqual(started, ["review n1", "read n1"]);
    assert.equal(lock.holders.length, 0);
  });

  it("takes one of several free slots while fewer engaged nodes than free slots are ahead of it in the queue", async () => {
    const { ports, lock } = setup();
    const ahead = record({ node: "n0", state: "pending", pendingSince: "2026-11-24T02:00:00Z", lastCheckinAt: now.toISOString() });
    const me = record({ state: "pending", pendingSince: "2026-11-24T02:30:00Z" });
    const withQueue = { ...ports, policy: { ...policy, concurrency: 3 }, store: queueOf(ports, [ahead, me]) };
    const result = await STEPS.pending(me, "e", withQueue);
    assert.equal(result.kind, "committed", result.kind === "wait" ? result.why : "");
    assert.equal(lock.holders[0]?.node, "n1");
  });

  it("does not wait behind a node that a moment-old listing still shows pending but the lock row shows holding a slot", async () => {
    const { ports, lock } = setup();
    // n0 and n2 took slots since the shared listing was made; it still shows them queued ahead.
    const queue = ["n0", "n2"].map((node, i) => record({ node, state: "pending", pendingSince: `2026-11-24T02:0${i}:00Z`, lastCheckinAt: now.toISOString() }));
    lock.holders = queue.map((r, i) => ({ node: r.node, leaseId: `lease-${i}`, acquiredAt: now.toISOString(), expiresAt: new Date(now.getTime() + 60_000).toISOString() }));
    const me = record({ state: "pending", pendingSince: "2026-11-24T02:30:00Z" });
    const result = await STEPS.pending(me, "e", { ...ports, policy: { ...policy, concurrency: 3 }, recentRecords: async () => [...queue, me] });
    assert.equal(result.kind, "committed", result.kind === "wait" ? result.why : "");
    assert.deepEqual(lock.holders.map((h) => h.node), ["n0", "n2", "n1"]);
  });

  it("asks no gate for the nodes ahead when fewer of them are engaged than there are free slots", async () => {
    const { ports } = setup();
    const asked: string[] = [];
    const gate = { holdReason: async ({ record: r }: { record: NodeRecord }) => (asked.push(r.node), undefined) };
    const queue = ["n0", "n2"].map((node, i) => record({ node, state: "pending", pendingSince: `2026-11-24T02:0${i}:00Z`, lastCheckinAt: now.toISOString() }));
    const me = record({ state: "pending", pendingSince: "2026-11-24T02:30:00Z" });
    const result = await STEPS.pending(me, "e", { ...ports, gate, policy: { ...policy, concurrency: 3 }, store: queueOf(ports, [...queue, me]) });
    assert.equal(result.kind, "committed");
    assert.deepEqual(asked, ["n1"], "only its own gates");
  });

  it("asks again the gates of at most ten nodes ahead that a gate held, counting the rest of a long queue as ready to go", async () => {
    const { ports } = setup();
    const asked: string[] = [];
    // Every node ahead is held: without the bound the check-in would ask the gates of all 30.
    const gate = { holdReason: async ({ record: r }: { record: NodeRecord }) => (asked.push(r.node), r.node === "n1" ? undefined : "held") };
    const queue = Array.from({ length: 30 }, (_, i) =>
      record({ node: `q${String(i).padStart(2, "0")}`, state: "pending", pendingSince: `2026-11-24T01:${String(i).padStart(2, "0")}:00Z`, lastCheckinAt: now.toISOString(), heldByGate: true }),
    );
    const me = record({ state: "pending", pendingSince: "2026-11-24T02:30:00Z" });
    const result = await STEPS.pending(me, "e", { ...ports, gate, policy: { ...policy, concurrency: 1 }, store: queueOf(ports, [...queue, me]) });
    assert.equal(result.kind, "wait");
    assert.match(result.kind === "wait" ? result.why : "", /waiting behind q10/);
    assert.equal(result.kind === "wait" && result.yieldTo, undefined, "thirty nodes ahead: not the one right behind");
    assert.equal(asked.filter((n) => n !== "n1").length, 10);
  });

  it("counts a node ahead that no gate held at its last step as ready to go, without asking its gates or its own", async () => {
    const { ports } = setup();
    const asked: string[] = [];
    const gate = { holdReason: async ({ record: r }: { record: NodeRecord }) => (asked.push(r.node), undefined) };
    const ahead = record({ node: "n0", state: "pending", pendingSince: "2026-11-24T02:00:00Z", lastCheckinAt: now.toISOString(), holdReason: "waiting for a free lock slot (held by n9)" });
    const me = record({ state: "pending", pendingSince: "2026-11-24T02:30:00Z" });
    const result = await STEPS.pending(me, "e", { ...ports, gate, store: queueOf(ports, [ahead, me]) });
    assert.equal(result.kind === "wait" && result.yieldTo, "n0");
    assert.deepEqual(asked, []);
  });

  it("records that a gate held the node, for the nodes behind it", async () => {
    const { ports } = setup();
    const result = await STEPS.pending(record({ state: "pending" }), "e", { ...ports, gate: { holdReason: async () => "outside the maintenance window" } });
    assert.deepEqual(result.kind === "wait" && [result.why, result.set?.heldByGate], ["outside the maintenance window", true]);
  });

  it("retries a lost race on the lock row without asking the gates again, unless a cap depends on who holds the slots", async () => {
    const { ports, lock } = setup();
    let asks = 0;
    const gate = { holdReason: async () => (asks++, undefined) };
    lock.conflicts = 2;
    const result = await STEPS.pending(record({ state: "pending" }), "e", { ...ports, gate, store: recordAs(ports, "e") });
    assert.equal(result.kind, "committed");
    assert.deepEqual([asks, lock.acquires], [1, 3]);

    const capped = setup();
    capped.lock.conflicts = 1;
    const again = await STEPS.pending(record({ state: "pending" }), "e", { ...capped.ports, policy: { ...policy, maxPerZone: 1 } });
    assert.equal(again.kind, "conflict", "the caps are decided again on the new holders");
    assert.equal(capped.lock.acquires, 1);
  });

  it("stops retrying a lost race at once when the node's record changed meanwhile, since another invocation stepped the node on", async () => {
    const { ports, lock } = setup();
    lock.conflicts = 5;
    const result = await STEPS.pending(record({ state: "pending" }), "e", { ...ports, store: recordAs(ports, "e-after-another-step") });
    assert.equal(result.kind, "conflict");
    assert.equal(lock.acquires, 1, "a transaction against the stale record can only fail again");
  });

  it("waits behind the engaged nodes ahead of it in the queue when they fill the free slots, and names the first", async () => {
    const { ports, lock } = setup();
    lock.holders.push({ node: "n9", leaseId: "x", acquiredAt: now.toISOString(), expiresAt: now.toISOString() });
    const ahead = record({ node: "n0", state: "pending", pendingSince: "2026-11-24T02:00:00Z", lastCheckinAt: now.toISOString() });
    const me = record({ state: "pending", pendingSince: "2026-11-24T02:30:00Z" });
    const result = await STEPS.pending(me, "e", { ...ports, policy: { ...policy, concurrency: 2 }, store: queueOf(ports, [ahead, me]) });
    assert.equal(result.kind, "wait");
    assert.equal(result.kind === "wait" && result.yieldTo, "n0");
    assert.equal(lock.holders.length, 1);
  });

  it("remembers that a node was already cordoned by someone else and never uncordons it", async () => {
    const { ports, kube } = setup();
    kube.nodes.get("n1")!.unschedulable = true;
    const taken = await STEPS.pending(record({ state: "pending" }), "e", ports);
    assert.equal(taken.kind === "committed" && taken.record.wasUnschedulable, true);
    const lease = taken.kind === "committed" ? taken.record.leaseId : undefined;
    await STEPS.cordoning(record({ state: "cordoning", leaseId: lease, wasUnschedulable: true }), "e", ports);
    assert.equal(kube.nodes.get("n1")!.annotations[nodeAnnotations.cordonedBy], undefined);
    await STEPS.releasing(record({ state: "releasing", leaseId: lease, wasUnschedulable: true, outcome: "completed" }), "e", ports);
    assert.equal(kube.nodes.get("n1")!.unschedulable, true);
  });

  it("cordons with its lease annotation and uncordons only that cordon", async () => {
    const { ports, kube } = setup();
    const lease = "22222222-2222-4222-8222-222222222222";
    await STEPS.cordoning(record({ state: "cordoning", leaseId: lease, wasUnschedulable: false }), "e", ports);
    assert.equal(kube.nodes.get("n1")!.unschedulable, true);
    assert.equal(kube.nodes.get("n1")!.annotations[nodeAnnotations.cordonedBy], lease);
    const released = await STEPS.releasing(record({ state: "releasing", leaseId: lease, outcome: "completed" }), "e", ports);
    assert.equal(kube.nodes.get("n1")!.unschedulable, false);
    assert.equal(released.kind === "committed" && released.record.state, "idle");
  });

  it("cordons, drains and releases the node as the step before left it, without reading it again, and answers the node it wrote", async () => {
    const { ports, kube } = setup();
    const lease = "33333333-3333-4333-8333-333333333333";
    const taken = await STEPS.pending(record({ state: "pending" }), "e", ports);
    assert.equal(taken.kind === "committed" && taken.node?.name, "n1", "the slot's step answers the node it read");
    kube.failures.set("getNode", new Error("read the node again"));
    const cordoned = await STEPS.cordoning(record({ state: "cordoning", leaseId: lease }), "e", { ...ports, knownNode: taken.kind === "committed" ? taken.node : undefined });
    assert.equal(cordoned.kind === "move" && cordoned.to, "draining");
    assert.equal(cordoned.kind === "move" && cordoned.node?.unschedulable, true, "the cordon answers the node as written");
    const known = cordoned.kind === "move" ? cordoned.node : undefined;
    const drained = await STEPS.draining(record({ state: "draining", leaseId: lease, drainStartedAt: now.toISOString(), leaseNodeBootId: "boot-n1-1" }), "e", { ...ports, knownNode: known });
    assert.equal(drained.kind === "move" && drained.to, "reboot-ordered");
    const released = await STEPS.releasing(record({ state: "releasing", leaseId: lease, outcome: "completed" }), "e", { ...ports, knownNode: structuredClone(kube.nodes.get("n1")) });
    assert.equal(released.kind === "committed" && released.record.state, "idle");
    assert.equal(kube.nodes.get("n1")!.unschedulable, false);
  });

  it("fails a cordon on a known node that changed since, as on a node it read itself", async () => {
    const { ports, kube } = setup();
    const known = structuredClone(kube.nodes.get("n1")!);
    kube.nodes.get("n1")!.resourceVersion = "2";
    await assert.rejects(STEPS.cordoning(record({ state: "cordoning", leaseId: "l" }), "e", { ...ports, knownNode: known }), NodeChangedError);
    assert.equal(kube.nodes.get("n1")!.unschedulable, false);
  });

  it("orders the reboot only after the drain finished", async () => {
    const { ports, kube } = setup();
    kube.addPod("n1", "web-1");
    cordon(kube, "l");
    const draining = record({ state: "draining", leaseId: "l", drainStartedAt: now.toISOString() });
    const first = await STEPS.draining(draining, "e", ports);
    assert.equal(first.kind, "wait", "pods are still terminating");
    kube.reapTerminated();
    const second = await STEPS.draining(draining, "e", ports);
    assert.equal(second.kind === "move" && second.to, "reboot-ordered");
    assert.equal(second.kind === "move" && second.set?.orderNodeBootId, "boot-n1-1");
  });

  it("finishes a drain within one invocation when the evicted pods terminate during its bounded wait", async () => {
    const { ports, kube } = setup();
    kube.addPod("n1", "web-1");
    cordon(kube, "l");
    let sleeps = 0;
    const waiting = { ...ports, waitMs: 3_000, sleep: async () => void (++sleeps === 2 && kube.reapTerminated()) };
    const result = await STEPS.draining(record({ state: "draining", leaseId: "l", drainStartedAt: now.toISOString() }), "e", waiting);
    assert.equal(result.kind === "move" && result.to, "reboot-ordered");
    assert.equal(sleeps, 2, "it answered as soon as the pod was gone");
  });

  it("retries a budget's refusal before kubectl's blind 5 s once a re-read of the budget allows a disruption", async () => {
    const { ports, kube } = setup();
    kube.addPod("n1", "db-0");
    const pdb = kube.addPdb("default", "db", {}, { disruptionsAllowed: 0, generation: 2, observedGeneration: 2 });
    kube.evictionScript.set("default/db-0", [{ kind: "blocked", pdb: "db", message: "The disruption budget db needs 1 healthy pods and has 1 currently" }, { kind: "evicted" }]);
    cordon(kube, "l");
    const draining = record({ state: "draining", leaseId: "l", drainStartedAt: now.toISOString() });
    const refused = await STEPS.draining(draining, "e", ports);
    assert.equal(refused.kind, "wait");
    const set = refused.kind === "wait" ? refused.set : undefined;
    assert.equal(set?.drainRetryAt, new Date(now.getTime() + 5_000).toISOString(), "the slowest blind retry is kubectl's 5 s");
    assert.deepEqual(set?.drainBlockedBy, ["default/db"]);
    const blocked = { ...draining, ...set };
    assert.equal((await STEPS.draining(blocked, "e", ports)).kind, "wait", "the budget still allows nothing");
    assert.equal(kube.evictions.length, 1, "no eviction while the budget allows none");
    // A status computed for an older spec does not count.
    Object.assign(pdb, { disruptionsAllowed: 1, observedGeneration: 1 });
    assert.equal((await STEPS.draining(blocked, "e", ports)).kind, "wait");
    assert.equal(kube.evictions.length, 1);
    pdb.observedGeneration = 2;
    const evicting = await STEPS.draining(blocked, "e", ports);
    assert.equal(kube.evictions.length, 2, "evicted again as soon as the budget allowed it");
    assert.match(evicting.kind === "wait" ? evicting.why : "", /to terminate/);
  });

  it("honours a Retry-After the server sent even when the budget allows a disruption", async () => {
    const { ports, kube } = setup();
    kube.addPod("n1", "db-0");
    kube.addPdb("default", "db", {}, { disruptionsAllowed: 1 });
    kube.evictionScript.set("default/db-0", [{ kind: "blocked", pdb: "db", message: "still being processed", retryAfterSeconds: 10 }]);
    cordon(kube, "l");
    const draining = record({ state: "draining", leaseId: "l", drainStartedAt: now.toISOString() });
    const refused = await STEPS.draining(draining, "e", { ...ports, waitMs: 3_000 });
    const set = refused.kind === "wait" ? refused.set : undefined;
    assert.equal(set?.drainRetryAt, new Date(now.getTime() + 10_000).toISOString());
    assert.equal(set?.drainRetryHinted, true);
    assert.equal(kube.evictions.length, 1, "no second eviction inside the wait");
    assert.equal((await STEPS.draining({ ...draining, ...set }, "e", ports)).kind, "wait");
    assert.equal(kube.evictions.length, 1);
  });

  it("does not cordon a node whose agent has not checked in within the busy interval; a drain-only request needs none", async () => {
    const { ports } = setup();
    const away = { ...ports, checkinOf: undefined };
    const stale = new Date(now.getTime() - 3 * policy.checkinBusySeconds * 1000).toISOString();
    const waiting = await STEPS.pending(record({ state: "pending", lastCheckinAt: stale }), "e", away);
    assert.equal(waiting.kind, "wait");
    assert.match(waiting.kind === "wait" ? waiting.why : "", /waiting for the node's agent to check in.*uncordoned/);
    const recent = new Date(now.getTime() - 1000).toISOString();
    assert.equal((await STEPS.pending(record({ state: "pending", lastCheckinAt: recent }), "e", away)).kind, "committed");
    const { ports: other } = setup();
    const drainOnly = record({ state: "pending", rebootRequired: false, lastCheckinAt: stale, request: { id: "r", reason: "disk", requestedBy: "ops", requestedAt: stale, mode: "drain-only", priority: 0 } });
    assert.equal((await STEPS.pending(drainOnly, "e", { ...other, checkinOf: undefined })).kind, "committed");
  });

  it("gives up a drain past its timeout and releases with the blocker as the reason", async () => {
    const { ports, kube } = setup();
    cordon(kube, "l");
    const started = new Date(now.getTime() - policy.drain.timeoutMs - 1).toISOString();
    const result = await STEPS.draining(record({ state: "draining", leaseId: "l", drainStartedAt: started, drainBlocker: "pod default/db-0 is protected" }), "e", ports);
    assert.equal(result.kind === "move" && result.to, "releasing");
    assert.equal(result.kind === "move" && result.set?.outcome, "drain-failed");
    assert.match(result.kind === "move" ? result.why : "", /timed out.*db-0/);
  });

  it("does not take a check-in with the old boot id as a reboot", async () => {
    const { ports, kube } = setup();
    cordon(kube, "l");
    const ordered = record({ state: "reboot-ordered", leaseId: "l", orderBootId: "boot-a", bootId: "boot-a" });
    assert.equal((await STEPS["reboot-ordered"](ordered, "e", ports)).kind, "wait");
    const back = await STEPS["reboot-ordered"]({ ...ordered, bootId: "boot-b" }, "e", ports);
    assert.equal(back.kind === "move" && back.to, "rebooted");
  });

  it("confirms a reboot only when the node object reports a new boot id and Ready", async () => {
    const { ports, kube } = setup();
    const rebooted = record({ state: "rebooted", orderNodeBootId: "boot-n1-1", rebootRequired: false });
    assert.equal((await STEPS.rebooted(rebooted, "e", ports)).kind, "wait");
    kube.nodes.get("n1")!.bootId = "boot-n1-2";
    kube.nodes.get("n1")!.ready = false;
    assert.equal((await STEPS.rebooted(rebooted, "e", ports)).kind, "wait");
    kube.nodes.get("n1")!.ready = true;
    const confirmed = await STEPS.rebooted(rebooted, "e", ports);
    assert.equal(confirmed.kind === "move" && confirmed.set?.outcome, "completed");
  });

  it("waits within the invocation for a node that posted its new boot id while NotReady to become Ready", async () => {
    const { ports, kube } = setup();
    const node = kube.nodes.get("n1")!;
    Object.assign(node, { bootId: "boot-n1-2", ready: false });
    const waiting = { ...ports, waitMs: 3_000, sleep: async () => void (node.ready = true) };
    const confirmed = await STEPS.rebooted(record({ state: "rebooted", orderNodeBootId: "boot-n1-1", rebootRequired: false }), "e", waiting);
    assert.equal(confirmed.kind === "move" && confirmed.set?.outcome, "completed");
  });

  it("quarantines instead of completing when the sentinel survived the confirmed reboot", async () => {
    const { ports, kube } = setup();
    kube.nodes.get("n1")!.bootId = "boot-n1-2";
    const result = await STEPS.rebooted(record({ state: "rebooted", orderNodeBootId: "boot-n1-1", rebootRequired: true }), "e", ports);
    assert.equal(result.kind === "move" && result.set?.outcome, "quarantined");
  });

  it("backs off after a failed drain and tries again once the back-off has passed", async () => {
    const { ports } = setup();
    const released = await STEPS.releasing(record({ state: "releasing", leaseId: "l", outcome: "drain-failed", why: "drain timed out" }), "e", ports);
    assert.equal(released.kind === "committed" && released.record.state, "drain-failed");
    const failed = released.kind === "committed" ? released.record : record();
    assert.equal(failed.leaseId, undefined);
    assert.equal((await STEPS["drain-failed"](failed, "e", ports)).kind, "wait");
    const later = { ...ports, now: new Date(now.getTime() + policy.drainFailureBackoffMs + 1) };
    const retried = await STEPS["drain-failed"](failed, "e", later);
    assert.equal(retried.kind === "move" && retried.to, "pending");
  });

  it("stops a drain without evicting when an administrator uncordoned the node, and hands the turn back", async () => {
    const { ports, kube } = setup();
    kube.addPod("n1", "web-1");
    const draining = record({ state: "draining", leaseId: "l", nodeUid: "uid-n1", drainStartedAt: now.toISOString(), failures: 1 });
    const result = await STEPS.draining(draining, "e", ports);
    assert.equal(result.kind === "move" && result.set?.outcome, "interrupted");
    assert.match(result.kind === "move" ? result.why : "", /uncordoned by someone else/);
    assert.deepEqual(kube.evictions, []);
    const released = await STEPS.releasing({ ...draining, state: "releasing", outcome: "interrupted", why: "uncordoned" }, "e", ports);
    const after = released.kind === "committed" ? released.record : record();
    assert.equal(after.state, "drain-failed");
    assert.equal(after.failures, 1, "an interruption is not a failed drain");
    assert.equal(after.retryAt, new Date(now.getTime() + policy.drainFailureBackoffMs).toISOString());
    assert.equal(kube.nodes.get("n1")!.unschedulable, false, "the administrator's uncordon stands");
  });

  it("stops a drain whose cordon now carries another lease", async () => {
    const { ports, kube } = setup();
    cordon(kube, "later-lease");
    const result = await STEPS.draining(record({ state: "draining", leaseId: "l", nodeUid: "uid-n1", drainStartedAt: now.toISOString() }), "e", ports);
    assert.equal(result.kind === "move" && result.set?.outcome, "interrupted");
    assert.match(result.kind === "move" ? result.why : "", /lease later-lease/);
  });

  it("never evicts from, orders a reboot of, or uncordons a node re-created under the same name", async () => {
    const { ports, kube } = setup();
    kube.addPod("n1", "web-1");
    kube.addNode("n1", { uid: "uid-new", unschedulable: true, annotations: { [nodeAnnotations.cordonedBy]: "l" } });
    const lease = { leaseId: "l", nodeUid: "uid-n1", drainStartedAt: now.toISOString() };
    const drained = await STEPS.draining(record({ state: "draining", ...lease }), "e", ports);
    assert.equal(drained.kind === "move" && drained.set?.outcome, "node-deleted");
    assert.match(drained.kind === "move" ? drained.why : "", /replaced \(uid uid-n1 → uid-new\)/);
    assert.deepEqual(kube.evictions, []);
    const ordered = await STEPS["reboot-ordered"](record({ state: "reboot-ordered", ...lease, orderBootId: "boot-a", bootId: "boot-new" }), "e", ports);
    assert.equal(ordered.kind === "move" && ordered.set?.outcome, "node-deleted", "a new machine's boot id is not this reboot");
    await STEPS.releasing(record({ state: "releasing", ...lease, outcome: "node-deleted" }), "e", ports);
    assert.equal(kube.nodes.get("n1")!.unschedulable, true, "the new node object is left as it is");
  });

  it("confirms a reboot the node made by itself during its drain instead of ordering another", async () => {
    const { ports, kube } = setup();
    cordon(kube, "l");
    kube.addPod("n1", "web-1");
    const lease = { state: "draining" as const, leaseId: "l", nodeUid: "uid-n1", leaseBootId: "boot-a", leaseNodeBootId: "boot-n1-1", drainStartedAt: now.toISOString() };
    // The node object reports the new boot id first, while the agent has not checked in since.
    kube.nodes.get("n1")!.bootId = "boot-n1-2";
    const result = await STEPS.draining(record({ ...lease, rebootRequired: false }), "e", ports);
    assert.equal(result.kind === "move" && result.to, "rebooted");
    assert.deepEqual(kube.evictions, []);
    const rebooted = nextRecord(record(lease), "rebooted", "self", now, result.kind === "move" ? result.set : {});
    assert.equal((await STEPS.rebooted(rebooted, "e", ports)).kind, "wait", "the agent's facts are current only after its next check-in");
    const confirmed = await STEPS.rebooted({ ...rebooted, bootId: "boot-b", rebootRequired: false }, "e", ports);
    assert.equal(confirmed.kind === "move" && confirmed.set?.outcome, "completed");
  });

  it("leaves a cordon an administrator set after the slot was taken", async () => {
    const { ports, kube } = setup();
    kube.nodes.get("n1")!.unschedulable = true;
    const result = await STEPS.cordoning(record({ state: "cordoning", leaseId: "l", wasUnschedulable: false }), "e", ports);
    assert.equal(result.kind === "move" && result.set?.wasUnschedulable, true);
    assert.equal(kube.nodes.get("n1")!.annotations[nodeAnnotations.cordonedBy], undefined);
  });

  it("undoes on the timer only a lease's cordon that no record accounts for", async () => {
    const { kube } = setup();
    const leftover = (await kube.getNode("n1"))!;
    Object.assign(leftover, { unschedulable: true, annotations: { [nodeAnnotations.cordonedBy]: "l", [nodeAnnotations.state]: "draining" } });
    const gone = { [nodeAnnotations.cordonedBy]: null, [nodeAnnotations.state]: null };
    assert.deepEqual(leftoverRepair(leftover, record({ state: "idle" })), { unschedulable: false, annotations: gone });
    assert.deepEqual(leftoverRepair(leftover, undefined), { unschedulable: false, annotations: gone });
    assert.deepEqual(leftoverRepair(leftover, record({ state: "cordoning", leaseId: "later" })), { unschedulable: false, annotations: gone });
    for (const state of ["draining", "reboot-ordered", "stuck", "quarantined", "maintenance"] as const) {
      assert.equal(leftoverRepair(leftover, record({ state, leaseId: "l" })), undefined, `${state} keeps its cordon`);
    }
    const adminCordoned = { ...leftover, annotations: { [nodeAnnotations.state]: "draining" } };
    assert.deepEqual(leftoverRepair(adminCordoned, record({ state: "idle" })), { annotations: gone }, "an administrator's cordon stays");
    assert.equal(leftoverRepair({ ...leftover, annotations: {} }, record({ state: "idle" })), undefined);
  });

  it("abandons a drain whose lease expired but marks a node that never came back as stuck", () => {
    assert.equal(onLeaseExpired(record({ state: "draining" }))?.to, "releasing");
    assert.equal(onLeaseExpired(record({ state: "reboot-ordered" }))?.to, "stuck");
    assert.equal(onLeaseExpired(record({ state: "idle" })), undefined);
  });

  it("releases the slot of a node deleted from the cluster", async () => {
    const { ports, kube } = setup();
    kube.nodes.delete("n1");
    const result = await STEPS.draining(record({ state: "draining", drainStartedAt: now.toISOString() }), "e", ports);
    assert.equal(result.kind === "move" && result.set?.outcome, "node-deleted");
  });
});

describe("the answer to a check-in", () => {
  it("tells the agent to reboot with the lease only while it is still on the ordered boot", () => {
    const ordered = record({ state: "reboot-ordered", leaseId: "33333333-3333-4333-8333-333333333333", orderBootId: "boot-a" });
    assert.deepEqual(
      { action: answerFor(ordered, policy, now).action, lease: answerFor(ordered, policy, now).leaseId },
      { action: "reboot", lease: ordered.leaseId },
    );
    assert.equal(answerFor({ ...ordered, bootId: "boot-b" }, policy, now).action, "wait");
  });

  it("answers none with the idle interval to an idle node and wait with the busy interval otherwise", () => {
    assert.deepEqual(
      [answerFor(record({ rebootRequired: false }), policy, now).action, answerFor(record({ rebootRequired: false }), policy, now).nextCheckinSeconds],
      ["none", 60],
    );
    const pending = answerFor(record({ state: "pending", holdReason: "waiting for a free lock slot (held by n2)" }), policy, now);
    assert.deepEqual([pending.action, pending.nextCheckinSeconds, pending.reason], ["wait", 2, "waiting for a free lock slot (held by n2)"]);
  });

  it("asks the agent of a node that holds a slot to check in every 2 s, and after its reboot again within 1 s while the node is not Ready", () => {
    for (const state of ["cordoning", "draining"] as const) assert.equal(answerFor(record({ state }), policy, now).nextCheckinSeconds, 2);
    assert.equal(answerFor(record({ state: "rebooted", holdReason: "waiting for the node to be Ready" }), policy, now).nextCheckinSeconds, 1);
  });
});
