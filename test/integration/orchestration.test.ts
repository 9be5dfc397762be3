import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readHistory } from "../../shared/history/history";
import { nodeAnnotations } from "../../shared/kube/clusterApi";
import { LOCK_HOLDING_STATES } from "../../shared/node/stateMachine";
import { getRollcall } from "../../shared/orchestrator/fromConfig";
import { Orchestrator } from "../../shared/orchestrator/orchestrator";
import { CheckinRequest } from "../../shared/protocol/checkin";
import { MemoryTelemetry } from "../../shared/telemetry/telemetry";
import { CLUSTER, invocation, postCheckin, runAgents, TestAgent, useWorld } from "../support/world";

const world = useWorld({ simOptions: { terminationDelayMs: 30, podStartDelayMs: 60 } });

/** Checks in (without acting on the answer) until the orchestrator orders the reboot. */
async function checkInUntilRebootOrdered(agent: TestAgent) {
  for (let i = 0; i < 20; i++) {
    const answer = (await postCheckin(agent.node, agent.body())).body;
    if (answer.action === "reboot") return answer;
  }
  throw new Error(`${agent.node} was never told to reboot`);
}

async function records() {
  return (await (await getRollcall()).store.list(CLUSTER)).map((r) => r.value);
}

describe("a rolling reboot through the check-in function", () => {
  it("reboots three nodes strictly one at a time, each cordoned, drained, rebooted and uncordoned", async () => {
    world.configure();
    const { sim } = world;
    for (const name of ["e2e-a", "e2e-b", "e2e-c", "e2e-spare"]) sim.addNode(name);
    sim.addDaemonSet("kube-system", "e2e-ds");
    sim.addDeployment("shop", "e2e-web", { replicas: 6, pdb: { minAvailable: 5 }, nodes: ["e2e-a", "e2e-b", "e2e-c", "e2e-spare"] });
    const agents = await Promise.all(["e2e-a", "e2e-b", "e2e-c"].map((n) => TestAgent.on(sim, n, true)));
    const spare = await TestAgent.on(sim, "e2e-spare", false);

    let maxHolders = 0;
    let lastSeen = "";
    const holdReasons = new Set<string>();
    await runAgents([...agents, spare], async () => {
      const all = await records();
      maxHolders = Math.max(maxHolders, all.filter((r) => LOCK_HOLDING_STATES.has(r.state)).length);
      for (const r of all) if (r.holdReason) holdReasons.add(r.holdReason);
      lastSeen = JSON.stringify(all.filter((r) => r.state !== "idle"));
      return agents.every((a) => a.reboots === 1) && all.every((r) => r.state === "idle");
    });

    assert.equal(maxHolders, 1, `never more than one node held the lock (${lastSeen})`);
    assert.deepEqual(
      agents.map((a) => a.reboots),
      [1, 1, 1],
    );
    assert.equal(spare.reboots, 0);
    for (const name of ["e2e-a", "e2e-b", "e2e-c"]) {
      const node = sim.getNode(name)!;
      assert.ok(!node.spec?.unschedulable, `${name} is uncordoned`);
      assert.equal(node.metadata.annotations?.[nodeAnnotations.cordonedBy], undefined);
    }
    assert.deepEqual((await (await getRollcall()).lock.view(CLUSTER)).holders, [], "the lock is free at the end");
    assert.equal(sim.pdbViolations, 0);
    // A budget's refusal is usually waited out within the invocation (the budget is re-read), so it may never show as a hold reason.
    const refused = sim.requestLog.filter((r) => r.path.endsWith("/eviction") && r.status === 429).length;
    assert.ok(refused > 0 || [...holdReasons].some((r) => /PodDisruptionBudget shop\//.test(r)), `a PDB refused an eviction: ${[...holdReasons].join(" | ")}`);
    assert.ok(sim.requestLog.some((r) => r.method === "GET" && /\/namespaces\/shop\/poddisruptionbudgets\//.test(r.path)), "the refusing budget was read again");
    const history = await readHistory(world.table(), CLUSTER, { limit: 10 });
    assert.deepEqual(history.entries.map((e) => e.outcome).sort(), ["completed", "completed", "completed"]);
    assert.ok(history.entries.every((e) => e.phases.drain !== undefined && e.phases.reboot !== undefined));
  });

  it("lets exactly one of twenty nodes checking in at once take the lock", async () => {
    world.configure();
    const names = Array.from({ length: 20 }, (_, i) => `race-${i}`);
    for (const name of names) world.sim.addNode(name);
    const agents = await Promise.all(names.map((n) => TestAgent.on(world.sim, n, true)));
    const answers = await Promise.all(agents.map((a) => postCheckin(a.node, a.body())));
    assert.ok(answers.every((a) => a.status === 200));
    const { holders } = await (await getRollcall()).lock.view(CLUSTER);
    assert.equal(holders.length, 1);
    const holding = (await records()).filter((r) => LOCK_HOLDING_STATES.has(r.state));
    assert.deepEqual(
      holding.map((r) => r.node),
      [holders[0]!.node],
    );
  });
});

describe("a check-in", () => {
  it("from an idle node costs one storage read and no Kubernetes call", async () => {
    world.configure();
    world.sim.addNode("quiet-1");
    const agent = await TestAgent.on(world.sim, "quiet-1", false);
    await agent.tick(); // the first check-in registers the node
    const { table } = await getRollcall();
    let storageCalls = 0;
    table.pipeline.addPolicy({ name: "count", sendRequest: (request, next) => (storageCalls++, next(request)) });
    const kubeCallsBefore = world.sim.requestLog.length;
    const answer = await agent.tick();
    assert.equal(answer.action, "none");
    assert.equal(storageCalls, 1);
    assert.equal(world.sim.requestLog.length, kubeCallsBefore);
  });

  it("takes and frees its lock slot without reading the node's record again after either transaction", async () => {
    world.configure();
    world.sim.addNode("etag-1");
    const agent = await TestAgent.on(world.sim, "etag-1", true);
    const { table } = await getRollcall();
    // Each storage request that touches the node's row: the transactions (lock and record together) and point reads.
    const touches: string[] = [];
    table.pipeline.addPolicy({
      name: "trace-row",
      sendRequest: (request, next) => {
        const url = decodeURIComponent(request.url);
        const body = typeof request.body === "string" ? request.body : "";
        if (url.includes("$batch") && body.includes("node:etag-1")) touches.push("transaction");
        else if (url.includes("RowKey='node:etag-1'")) touches.push(request.method);
        return next(request);
      },
    });
    await runAgents([agent], async () => agent.reboots === 1 && (await records()).every((r) => r.state === "idle"));
    const transactions = touches.flatMap((t, i) => (t === "transaction" ? [i] : []));
    assert.equal(transactions.length, 2, `one transaction takes the slot and one frees it: ${touches.join(" ")}`);
    // Taken: the cordon is written next with the ETag the transaction answered.
    assert.equal(touches[transactions[0]! + 1], "PUT", `after taking the slot: ${touches.join(" ")}`);
    // Freed: the turn is over and nothing reads the record back before the next check-in.
    assert.notEqual(touches[transactions[1]! + 1], "GET", `after freeing the slot: ${touches.join(" ")}`);
  });

  it("cordons the node as the step that took its slot read it, and drains it as the cordon left it, reading it no more in between", async () => {
    world.configure();
    world.sim.addNode("carry-1");
    world.sim.addDeployment("shop", "carry-web", { replicas: 1, nodes: ["carry-1"] });
    const agent = await TestAgent.on(world.sim, "carry-1", false);
    await agent.tick(); // registered: the turn's check-in is the first to read the node
    agent.rebootRequired = true;
    const before = world.sim.requestLog.length;
    await checkInUntilRebootOrdered(agent);
    const calls = world.sim.requestLog
      .slice(before)
      .filter((r) => r.path === "/api/v1/nodes/carry-1" || r.path.endsWith("/eviction"))
      .map((r) => (r.path.endsWith("/eviction") ? "evict" : r.method));
    const cordon = calls.indexOf("PATCH");
    // Before the cordon: the pending step's read, and the read for the Event of the node's entering the queue.
    assert.deepEqual(calls.slice(0, cordon), ["GET", "GET"], `reads of the node before its cordon: ${calls.join(" ")}`);
    assert.equal(calls[cordon + 1], "evict", `no read between the cordon and the eviction: ${calls.join(" ")}`);
  });

  it("does not repeat a reboot order it could not re-check against the node", async () => {
    world.configure();
    world.sim.addNode("recheck-1");
    const rollcall = await getRollcall();
    let failing = false;
    // The API server stops answering node reads (a timeout) while the node waits for its reboot.
    const kube = async (cluster: string) => {
      const api = await rollcall.kube(cluster);
      return new Proxy(api, {
        get: (target, prop, receiver) =>
          prop === "getNode" && failing ? async () => Promise.reject(new Error("the API server did not answer in time")) : Reflect.get(target, prop, receiver),
      });
    };
    const orchestrator = new Orchestrator({ store: rollcall.store, lock: rollcall.lock, kube, policy: rollcall.policy, gate: rollcall.gate, telemetry: new MemoryTelemetry(), stepBudgetMs: 5_000 });
    const agent = await TestAgent.on(world.sim, "recheck-1", true);
    const send = () => orchestrator.checkin(CLUSTER, "recheck-1", CheckinRequest.parse(agent.body()), invocation("recheck"));
    let answer = await send();
    for (let i = 0; i < 20 && answer.action !== "reboot"; i++) answer = await send();
    assert.equal(answer.action, "reboot");
    failing = true;
    const blind = await send();
    assert.equal(blind.action, "wait");
    assert.match(blind.reason ?? "", /could not re-check the node/);
    failing = false;
    assert.equal((await send()).action, "reboot", "the order stands once the node could be checked again");
  });

  it("does not release a node that reports the old boot id after a reboot order", async () => {
    world.configure();
    world.sim.addNode("liar-1");
    const agent = await TestAgent.on(world.sim, "liar-1", true);
    const answer = await checkInUntilRebootOrdered(agent);
    // The agent "rebooted" but its boot id did not change: the order stands and the node stays cordoned.
    const again = (await postCheckin(agent.node, { ...agent.body(), leaseId: answer.leaseId })).body;
    assert.equal(again.action, "reboot");
    assert.equal(again.leaseId, answer.leaseId);
    assert.equal(world.sim.getNode("liar-1")!.spec?.unschedulable, true);
  });

  it("waits for the node object to agree before uncordoning a node whose agent reports a new boot id", async () => {
    world.configure();
    world.sim.addNode("half-1");
    const agent = await TestAgent.on(world.sim, "half-1", true);
    const answer = await checkInUntilRebootOrdered(agent);
    const claimed = { ...agent.body(), bootId: "aaaaaaaa-0000-4000-8000-000000000000", rebootRequired: false, leaseId: answer.leaseId };
    const after = (await postCheckin(agent.node, claimed)).body;
    assert.equal(after.state, "rebooted");
    assert.equal(world.sim.getNode("half-1")!.spec?.unschedulable, true, "still cordoned: the node object still has the old boot id");
  });
});

describe("bad check-in input", () => {
  const valid = { bootId: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", rebootRequired: true, agentVersion: "1.0.0" };

  for (const [title, node, body, status, field] of [
    ["malformed JSON", "bad-1", "{not json", 400, undefined],
    ["an empty body", "bad-1", "", 400, undefined],
    ["a boolean sent as a string", "bad-1", { ...valid, rebootRequired: "yes" }, 400, "rebootRequired"],
    ["a missing boot id", "bad-1", { rebootRequired: true, agentVersion: "1" }, 400, "bootId"],
    ["an unknown field", "bad-1", { ...valid, force: true }, 400, undefined],
    ["an invalid node name", "Bad_Node'", valid, 400, "node"],
    ["an oversized body", "bad-1", { ...valid, reasons: Array.from({ length: 400 }, () => "x".repeat(199)) }, 413, undefined],
  ] as const) {
    it(`is refused with a JSON error for ${title}, and writes nothing`, async () => {
      world.configure();
      const response = await postCheckin(node, body);
      assert.equal(response.status, status);
      assert.equal(typeof response.body.error.message, "string");
      if (field) assert.ok(JSON.stringify(response.body.error).includes(field), JSON.stringify(response.body));
      assert.deepEqual(await records(), []);
    });
  }

  it("is refused with 404 for a cluster that is not configured", async () => {
    world.configure();
    const response = await postCheckin("n1", valid, "elsewhere");
    assert.equal(response.status, 404);
    assert.match(response.body.error.message, /elsewhere/);
  });
});
