import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { PipelineRequest, SendRequest } from "@azure/core-rest-pipeline";
import { KubeConfig, PolicyV1Api } from "@kubernetes/client-node";
import { getRollcall } from "../../shared/orchestrator/fromConfig";
import { Orchestrator } from "../../shared/orchestrator/orchestrator";
import { CheckinRequest } from "../../shared/protocol/checkin";
import { MemoryTelemetry } from "../../shared/telemetry/telemetry";
import { CLUSTER, invocation, postCheckin, sleep, TestAgent, useWorld } from "../support/world";

const world = useWorld({ simOptions: { terminationDelayMs: 30, podStartDelayMs: 60 } });

async function record(node: string) {
  return (await (await getRollcall()).store.get(CLUSTER, node))?.value;
}

/** Two nodes that need a reboot, at concurrency 1: the first holds the slot, the second is queued. */
async function queuedBehindFirst(settings: Record<string, string> = {}) {
  world.configure({ ROLLCALL_CONCURRENCY: "1", ROLLCALL_CHECKIN_HOLD_SECONDS: "20", ...settings });
  const { sim } = world;
  const [first, second] = [`held-a-${Math.random().toString(36).slice(2, 7)}`, `held-b-${Math.random().toString(36).slice(2, 7)}`];
  for (const name of [first, second]) sim.addNode(name);
  sim.addDeployment("shop", `web-${first}`, { replicas: 2, pdb: { maxUnavailable: 1 }, nodes: [first, second] });
  const a = await TestAgent.on(sim, first, true);
  const b = await TestAgent.on(sim, second, true);
  await a.tick();
  assert.equal((await b.tick()).state, "pending", "the second node queues behind the first");
  return { a, b };
}

/** The budget's owner lets one pod go, through the API, as `kubectl edit pdb` does. */
async function relaxBudget(namespace: string, name: string) {
  const config = new KubeConfig();
  config.loadFromString(world.sim.kubeconfig);
  const policy = config.makeApiClient(PolicyV1Api);
  const pdb = await policy.readNamespacedPodDisruptionBudget({ namespace, name });
  await policy.replaceNamespacedPodDisruptionBudget({ namespace, name, body: { ...pdb, spec: { selector: pdb.spec!.selector, maxUnavailable: 1 } } });
}

/** Drives the first node's agent through its turn until its node is back in service. */
async function finishTurn(a: TestAgent) {
  for (let i = 0; i < 60 && (await record(a.node))?.state !== "idle"; i++) await a.tick();
  assert.equal((await record(a.node))?.state, "idle", `${a.node} finished its turn`);
}

describe("held check-ins: a queued node's turn starts the moment a slot frees", () => {
  it("answers the earlier of two held check-ins of one node at once, and the two do not wake each other in turn", async () => {
    const { b } = await queuedBehindFirst();
    // An agent whose request timed out on its side asks again while the app still holds the first one.
    const earlier = postCheckin(b.node, b.body(), CLUSTER, { prefer: "wait=20" }).then((r) => ({ ...r, at: Date.now() }));
    await sleep(300);
    const { table } = await getRollcall();
    let reads = 0;
    const count = { name: "count-reads", sendRequest: (request: PipelineRequest, next: SendRequest) => (request.method === "GET" && decodeURIComponent(request.url).includes(`node:${b.node}`) && reads++, next(request)) };
    table.pipeline.addPolicy(count);
    try {
      const askedAt = Date.now();
      const later = postCheckin(b.node, b.body(), CLUSTER, { prefer: "wait=2" });
      const first = await earlier;
      assert.equal(first.body.action, "wait");
      assert.ok(first.at - askedAt < 1_000, `the earlier check-in was answered ${first.at - askedAt} ms after the later one came`);
      assert.equal((await later).body.action, "wait");
      // The later one was held its 2 s: its own read of the record, and one when its hold ended.
      assert.ok(reads <= 4, `${reads} reads of the node's record while the later check-in was held`);
    } finally {
      table.pipeline.removePolicy({ name: count.name });
    }
  });

  it("answers a queued node's held check-in with the reboot order when the node ahead is released", async () => {
    const { a, b } = await queuedBehindFirst();
    const held = postCheckin(b.node, b.body(), CLUSTER, { prefer: "wait=20" });
    const answeredAt = held.then(() => Date.now());
    // Longer than twice the busy interval since the second agent's check-in: only its hold keeps it engaged.
    await sleep(2_500);
    await finishTurn(a);
    const releasedAt = Date.now();
    const answer = (await held).body;

    assert.equal(answer.action, "reboot", `the held check-in carries the order: ${JSON.stringify(answer)}`);
    assert.ok((await answeredAt) - releasedAt < 10_000, "answered on the release, not when the 20 s hold ran out");
    assert.equal(world.sim.pdbViolations, 0);
  });

  it("wakes a check-in held on one instance when another instance hands its node the slot", async () => {
    const { a, b } = await queuedBehindFirst();
    const rollcall = await getRollcall();
    // A second instance of the app: its own orchestrator on the same table, nothing shared in memory.
    const other = new Orchestrator({ store: rollcall.store, lock: rollcall.lock, kube: rollcall.kube, policy: rollcall.policy, gate: rollcall.gate, telemetry: new MemoryTelemetry(), stepBudgetMs: 5_000, holdMs: 20_000 });
    const held = other.checkin(CLUSTER, b.node, CheckinRequest.parse(b.body()), invocation("other instance"), undefined, 20);
    await finishTurn(a);
    const releasedAt = Date.now();
    const answer = await held;

    assert.equal(answer.action, "reboot", `the other instance saw the slot in the lock row: ${JSON.stringify(answer)}`);
    assert.ok(Date.now() - releasedAt < 10_000, "answered within a poll of the lock row, not when the hold ran out");
  });

  it("steps a held node that a gate holds again every busy interval, so it takes its turn once the gate lifts", async () => {
    world.configure({ ROLLCALL_CONCURRENCY: "1" });
    const name = `held-gate-${Math.random().toString(36).slice(2, 7)}`;
    world.sim.addNode(name);
    const agent = await TestAgent.on(world.sim, name, true);
    const rollcall = await getRollcall();
    let open = false;
    // A gate no Rollcall event lifts (a window opening, the last node released turning Ready).
    const gate = { holdReason: async () => (open ? undefined : "closed by the test") };
    const orchestrator = new Orchestrator({ store: rollcall.store, lock: rollcall.lock, kube: rollcall.kube, policy: rollcall.policy, gate, telemetry: new MemoryTelemetry(), stepBudgetMs: 5_000, holdMs: 20_000 });
    const held = orchestrator.checkin(CLUSTER, name, CheckinRequest.parse(agent.body()), invocation("gated"), undefined, 20);
    await sleep(1_500);
    open = true;
    const openedAt = Date.now();
    const answer = await held;

    assert.equal(answer.action, "reboot", `the held check-in carries the turn: ${JSON.stringify(answer)}`);
    assert.ok(Date.now() - openedAt < 5_000, "within a busy interval or so of the gate lifting, not at the end of the 20 s hold");
  });

  it("wakes a held check-in that a PodDisruptionBudget holds the moment the budget allows a disruption", async () => {
    // A 30 s busy interval: the gate is not asked again within the 20 s hold unless something wakes it.
    world.configure({ ROLLCALL_CONCURRENCY: "1", ROLLCALL_CHECKIN_HOLD_SECONDS: "20", ROLLCALL_CHECKIN_BUSY_SECONDS: "30" });
    const name = `held-pdb-${Math.random().toString(36).slice(2, 7)}`;
    // The pod starts on the node; the spare, added after, takes its replacement once it is evicted: a
    // budget left short of pods would hold the next tests' nodes.
    const spare = `${name}-spare`;
    world.sim.addNode(name);
    world.sim.addDeployment("shop", `web-${name}`, { replicas: 1, pdb: { minAvailable: 1 }, nodes: [name, spare] });
    world.sim.addNode(spare);
    const agent = await TestAgent.on(world.sim, name, true);
    const held = postCheckin(name, agent.body(), CLUSTER, { prefer: "wait=20" });
    for (let i = 0; i < 100 && (await record(name))?.heldByGate !== true; i++) await sleep(20);
    assert.match((await record(name))?.holdReason ?? "", /PodDisruptionBudget shop\/web-/, "the PDB pre-check holds the node");
    await sleep(500);

    await relaxBudget("shop", `web-${name}`);
    const relaxedAt = Date.now();
    const answer = (await held).body;

    assert.equal(answer.action, "reboot", `the held check-in carries the turn: ${JSON.stringify(answer)}`);
    assert.ok(Date.now() - relaxedAt < 5_000, `answered on the budget's change, not when the 20 s hold ran out (${Date.now() - relaxedAt} ms)`);
    assert.equal(world.sim.pdbViolations, 0);
  });

  it("wakes a check-in held behind the slot's holder once the release finds a budget holding its node, and again when the budget allows", async () => {
    const { a, b } = await queuedBehindFirst({ ROLLCALL_CHECKIN_BUSY_SECONDS: "30" });
    const guard = `guard-${b.node}`;
    world.sim.addDeployment("shop", guard, { replicas: 1, pdb: { minAvailable: 1 }, nodes: [b.node, `${b.node}-spare`] });
    world.sim.addNode(`${b.node}-spare`);
    const held = postCheckin(b.node, b.body(), CLUSTER, { prefer: "wait=20" });
    await sleep(300);
    await finishTurn(a);
    for (let i = 0; i < 100 && !/PodDisruptionBudget shop\/guard-/.test((await record(b.node))?.holdReason ?? ""); i++) await sleep(20);
    assert.match((await record(b.node))?.holdReason ?? "", /PodDisruptionBudget shop\/guard-/, "the release stepped the queued node and the PDB pre-check held it");
    await sleep(500);

    await relaxBudget("shop", guard);
    const relaxedAt = Date.now();
    const answer = (await held).body;
    assert.equal(answer.action, "reboot", `the check-in held since before the release carries the turn: ${JSON.stringify(answer)}`);
    assert.ok(Date.now() - relaxedAt < 5_000, `answered on the budget's change, not when the 20 s hold ran out (${Date.now() - relaxedAt} ms)`);
  });

  it("answers a held check-in whose time runs out with the queue's reason and asks the agent back at once", async () => {
    const { b } = await queuedBehindFirst({ ROLLCALL_CHECKIN_HOLD_SECONDS: "1" });
    const started = Date.now();
    const answer = (await postCheckin(b.node, b.body(), CLUSTER, { prefer: "wait=20" })).body;

    assert.ok(Date.now() - started >= 900, "held for the app's 1 s, the shorter of the two");
    assert.equal(answer.action, "wait");
    assert.equal(answer.state, "pending");
    assert.match(answer.reason, /waiting for a free lock slot/);
    assert.equal(answer.nextCheckinSeconds, 1);
    assert.ok((await record(b.node))?.checkinHeldUntil, "the record says the agent is held (and so engaged)");
  });

  it("answers at once when the agent offers no wait, or the app holds none", async () => {
    const { b } = await queuedBehindFirst({ ROLLCALL_CHECKIN_HOLD_SECONDS: "0" });
    const started = Date.now();
    const offered = (await postCheckin(b.node, b.body(), CLUSTER, { prefer: "wait=20" })).body;
    const notOffered = (await postCheckin(b.node, b.body())).body;

    assert.ok(Date.now() - started < 5_000, "neither check-in was held");
    assert.equal(offered.state, "pending");
    assert.equal(notOffered.state, "pending");
    assert.equal(notOffered.nextCheckinSeconds, 1, "the busy interval");
    assert.equal((await record(b.node))?.checkinHeldUntil, undefined);
  });

  it("hands a freed slot to a node queued after the shared listing the release joined was made", async () => {
    world.configure({ ROLLCALL_CONCURRENCY: "1" });
    const { sim } = world;
    const [first, second] = [`listed-a-${Math.random().toString(36).slice(2, 7)}`, `listed-b-${Math.random().toString(36).slice(2, 7)}`];
    for (const name of [first, second]) sim.addNode(name);
    const rollcall = await getRollcall();
    // The next listing is read at once but answered only when the test opens `gate`: still in flight when the release joins it.
    let gate: Promise<void> | undefined;
    const store = Object.assign(Object.create(rollcall.store) as typeof rollcall.store, {
      list: async (...args: Parameters<typeof rollcall.store.list>) => {
        const listed = await rollcall.store.list(...args);
        const held = gate;
        gate = undefined;
        await held;
        return listed;
      },
    });
    const orchestrator = new Orchestrator({ store, lock: rollcall.lock, kube: rollcall.kube, policy: rollcall.policy, gate: rollcall.gate, telemetry: new MemoryTelemetry(), stepBudgetMs: 5_000 });
    const send = async (node: string, body: unknown) => ({ status: 200, body: await orchestrator.checkin(CLUSTER, node, CheckinRequest.parse(body), invocation("listing")) });
    const a = await TestAgent.on(sim, first, true);
    const b = await TestAgent.on(sim, second, false);
    await b.tick(send);
    for (let i = 0; i < 30 && a.reboots === 0; i++) await a.tick(send);
    assert.equal(a.reboots, 1, "the first node rebooted; its next check-in releases it");

    let open!: () => void;
    gate = new Promise((resolve) => (open = resolve));
    // The listing queued check-ins share, made while the second node is still idle.
    const listing = (orchestrator as unknown as { recentRecords(cluster: string): { records: Promise<unknown> } }).recentRecords(CLUSTER).records;
    b.rebootRequired = true;
    assert.equal((await b.tick(send)).state, "pending", "queued behind the first node's slot");
    const released = a.tick(send);
    for (let i = 0; i < 100 && (await record(first))?.state !== "idle"; i++) await sleep(20);
    await sleep(100);
    open();
    await Promise.all([released, listing]);

    const after = await record(second);
    assert.ok(after?.state === "cordoning" || after?.state === "draining" || after?.state === "reboot-ordered", `the release handed the slot over: ${after?.state} (${after?.holdReason})`);
  });
});
