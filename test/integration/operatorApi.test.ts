import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { clusterStatus } from "../../functions/clusterStatus";
import { health } from "../../functions/health";
import { history } from "../../functions/history";
import { nodeStatus } from "../../functions/nodeStatus";
import { openapi } from "../../functions/openapi";
import { cancelReboot, requestReboot } from "../../functions/rebootRequest";
import { releaseNode } from "../../functions/releaseNode";
import { resetAgentAuthForTests } from "../../shared/auth/tokenReview";
import { historyAction, type HistoryEntry } from "../../shared/history/history";
import { nodeAnnotations } from "../../shared/kube/clusterApi";
import { getRollcall } from "../../shared/orchestrator/fromConfig";
import { asEntra, clientPrincipal, EASY_AUTH_ON, entraLabel } from "../support/entra";
import { type Answer, call, leaksInternals } from "../support/operatorCalls";
import { CLUSTER, invocation, runAgents, sleep, TestAgent, useWorld } from "../support/world";

const world = useWorld({ simOptions: { terminationDelayMs: 20, podStartDelayMs: 40 } });

/** Settings a test set beyond the world's own, removed before the next test configures. */
const extraSettings = new Set<string>();

function configure(settings: Record<string, string> = {}): void {
  for (const key of extraSettings) delete process.env[key];
  extraSettings.clear();
  for (const key of Object.keys(settings)) if (process.env[key] === undefined) extraSettings.add(key);
  world.configure(settings);
  resetAgentAuthForTests();
}

const nodePath = (node: string, cluster = CLUSTER) => ({ path: `clusters/${cluster}/nodes/${node}`, params: { cluster, node } });

function postReboot(node: string, body: unknown, headers: Record<string, string> = {}, cluster = CLUSTER): Promise<Answer> {
  const { path, params } = nodePath(node, cluster);
  return call(requestReboot, { method: "POST", path: `${path}/reboot`, params, body, headers });
}

/** Read calls carry a reader's principal: ignored without App Service authentication, enough with it. */
const READER = asEntra("reader@example.com", ["Rollcall.Read"]);

function deleteReboot(node: string, cluster = CLUSTER): Promise<Answer> {
  const { path, params } = nodePath(node, cluster);
  return call(cancelReboot, { method: "DELETE", path: `${path}/reboot`, params, headers: asEntra("oncall@example.com") });
}

function postRelease(node: string, cluster = CLUSTER): Promise<Answer> {
  const { path, params } = nodePath(node, cluster);
  return call(releaseNode, { method: "POST", path: `${path}/release`, params, headers: asEntra("oncall@example.com") });
}

function getNode(node: string, cluster = CLUSTER): Promise<Answer> {
  return call(nodeStatus, { method: "GET", ...nodePath(node, cluster), headers: READER });
}

function getStatus(cluster = CLUSTER): Promise<Answer> {
  return call(clusterStatus, { method: "GET", path: `clusters/${cluster}/status`, params: { cluster }, headers: READER });
}

function getHistory(query: Record<string, string> = {}, cluster = CLUSTER): Promise<Answer> {
  const search = new URLSearchParams(query).toString();
  return call(history, { method: "GET", path: `clusters/${cluster}/history${search ? `?${search}` : ""}`, params: { cluster }, headers: READER });
}

async function record(node: string) {
  return (await (await getRollcall()).store.get(CLUSTER, node))?.value;
}

/** A node in the simulated cluster whose agent has checked in once (so Rollcall knows its boot id). */
async function nodeWithAgent(name: string, rebootRequired = false): Promise<TestAgent> {
  world.sim.addNode(name);
  const agent = await TestAgent.on(world.sim, name, rebootRequired);
  await agent.tick();
  return agent;
}

/** Drives the agents and the reconcile timer until `done`. */
async function settle(agents: TestAgent[], done: () => Promise<boolean>): Promise<void> {
  const { orchestrator } = await getRollcall();
  await runAgents(agents, async () => {
    await orchestrator.reconcile(CLUSTER, invocation("reconcile"));
    return done();
  });
}

function assertError(answer: Answer, status: number, code: string): void {
  assert.equal(answer.status, status, `expected ${status} ${code}, got ${answer.status} ${answer.text}`);
  assert.equal(answer.body?.error?.code, code, answer.text);
  assert.equal(typeof answer.body.error.message, "string");
  assert.ok(!leaksInternals(answer.text), `no stack trace in ${answer.text}`);
}

describe("requesting a reboot", () => {
  it("answers 202 with a request id and a status URL, and asking twice returns the same request and reboots the node once", async () => {
    configure(EASY_AUTH_ON);
    const agent = await nodeWithAgent("req-a");
    const first = await postReboot("req-a", { reason: "kernel CVE-2026-1234" }, asEntra("alice@example.com"));
    assert.equal(first.status, 202, first.text);
    assert.match(first.body.requestId, /^[0-9a-f-]{36}$/);
    assert.equal(first.body.statusUrl, `/api/clusters/${CLUSTER}/nodes/req-a`);
    assert.equal(first.body.created, true);
    assert.equal(first.headers.location, first.body.statusUrl);
    assert.equal(first.body.request.requestedBy, entraLabel("alice@example.com"));

    const second = await postReboot("req-a", { reason: "kernel CVE-2026-1234" }, asEntra("bob@example.com", ["Rollcall.Operate"], "0b0b0b0b-0000-4000-8000-000000000002"));
    assert.equal(second.status, 202, second.text);
    assert.equal(second.body.requestId, first.body.requestId, "the same request stands");
    assert.equal(second.body.created, false);

    await settle([agent], async () => agent.reboots >= 1 && (await record("req-a"))?.state === "idle");
    for (let i = 0; i < 5; i++) await agent.tick();
    assert.equal(agent.reboots, 1, "the node rebooted exactly once");
    assert.equal((await record("req-a"))?.request, undefined, "the request is fulfilled");

    const page = await getHistory({ node: "req-a" });
    assert.equal(page.status, 200);
    const completed = page.body.entries.filter((e: HistoryEntry) => e.outcome === "completed");
    assert.equal(completed.length, 1);
    assert.equal(completed[0].requestedBy, entraLabel("alice@example.com"));
    assert.equal(completed[0].requestId, first.body.requestId);
    assert.deepEqual(completed[0].reasons, ["kernel CVE-2026-1234"]);
  });

  it("leaves an idle node uncordoned until its agent checks in, and the answer to that check-in starts the turn and carries the reboot order", async () => {
    configure({ ROLLCALL_CHECKIN_BUSY_SECONDS: "1" });
    const agent = await nodeWithAgent("req-idle");
    world.sim.addDeployment("shop", "idle-web", { replicas: 1, nodes: ["req-idle"] });
    // The agent's last check-in is older than twice the busy interval: it is not known to be there now.
    await sleep(2_100);
    const requested = await postReboot("req-idle", { reason: "kernel CVE-2026-1234" }, asEntra("alice@example.com"));
    assert.equal(requested.status, 202, requested.text);
    assert.equal((await record("req-idle"))?.state, "pending");
    assert.match((await record("req-idle"))?.holdReason ?? "", /waiting for the node's agent to check in/);
    assert.ok(!world.sim.getNode("req-idle")!.spec?.unschedulable, "not cordoned while its agent is not engaged");
    const answer = await agent.tick();
    assert.equal(answer.action, "reboot", `the check-in's answer carries the order once the drain finished in it: ${JSON.stringify(answer)}`);
    assert.ok(world.sim.getNode("req-idle")!.spec?.unschedulable, "cordoned in that check-in");
  });

  it("starts a drain-only request at once, without waiting for the agent", async () => {
    configure({ ROLLCALL_CHECKIN_BUSY_SECONDS: "1" });
    await nodeWithAgent("req-maint");
    await sleep(2_100);
    const requested = await postReboot("req-maint", { reason: "disk swap", mode: "drain-only" }, asEntra("alice@example.com"));
    assert.equal(requested.status, 202, requested.text);
    assert.equal((await record("req-maint"))?.state, "maintenance");
    assert.ok(world.sim.getNode("req-maint")!.spec?.unschedulable);
  });

  it("records the Entra principal's name and object id under App Service authentication, and function-key without it whatever principal headers a client sends", async () => {
    configure(EASY_AUTH_ON);
    await nodeWithAgent("who-a");
    await nodeWithAgent("who-b");
    const future = new Date(Date.now() + 3600_000).toISOString();
    const claimed = await postReboot("who-a", { reason: "patch", notBefore: future }, { "x-ms-client-principal": clientPrincipal("Carol Operator") });
    assert.equal(claimed.body.request.requestedBy, entraLabel("Carol Operator"));
    assert.equal((await record("who-a"))?.request?.requestedBy, entraLabel("Carol Operator"));
    configure();
    await nodeWithAgent("who-c");
    const keyed = await postReboot("who-c", { reason: "patch", notBefore: future }, asEntra("Mallory Forger"));
    assert.equal(keyed.body.request.requestedBy, "function-key");
    assert.equal((await record("who-c"))?.request?.requestedBy, "function-key");
  });

  it("waits until notBefore, and reports it as what holds the node back", async () => {
    configure();
    await nodeWithAgent("later-a");
    const notBefore = new Date(Date.now() + 3600_000).toISOString();
    const answer = await postReboot("later-a", { reason: "tonight", notBefore });
    assert.equal(answer.status, 202);
    assert.equal(answer.body.state, "pending");
    const node = await getNode("later-a");
    assert.match(node.body.holdReason, /no earlier than/);
  });

  it("refuses invalid bodies with 400 naming the field, and writes nothing", async () => {
    configure();
    await nodeWithAgent("bad-a");
    const cases: [unknown, string][] = [
      [{}, "reason"],
      [{ reason: "" }, "reason"],
      [{ reason: "   " }, "reason"],
      [{ reason: "x".repeat(501) }, "reason"],
      [{ reason: "line\nbreak" }, "reason"],
      [{ reason: "ok", notBefore: "tomorrow" }, "notBefore"],
      [{ reason: "ok", notBefore: "2026-11-24T22:00:00" }, "notBefore"],
      [{ reason: "ok", notBefore: "2099-01-01T00:00:00Z" }, "notBefore"],
      [{ reason: "ok", mode: "reimage" }, "mode"],
      [{ reason: "ok", priority: 101 }, "priority"],
      [{ reason: "ok", priority: -1 }, "priority"],
      [{ reason: "ok", priority: 1.5 }, "priority"],
      [{ reason: "ok", surprise: true }, ""],
      [[], ""],
    ];
    for (const [body, field] of cases) {
      const answer = await postReboot("bad-a", body);
      assertError(answer, 400, "invalid_request");
      if (field) assert.ok(answer.body.error.problems.some((p: { field: string }) => p.field === field), `${JSON.stringify(body)} → ${answer.text}`);
    }
    assertError(await postReboot("bad-a", "{not json"), 400, "invalid_json");
    assertError(await postReboot("bad-a", ""), 400, "invalid_json");
    assertError(await postReboot("bad-a", { reason: "x".repeat(9000) }), 413, "body_too_large");
    assertError(await postReboot("Not_A_Node", { reason: "ok" }), 400, "invalid_request");
    assert.equal((await record("bad-a"))?.request, undefined, "nothing was written");
  });

  it("answers 404 for an unknown node or cluster and 409 when no agent runs on the node", async () => {
    configure();
    assertError(await postReboot("ghost", { reason: "ok" }), 404, "unknown_node");
    assert.equal(await record("ghost"), undefined);
    assertError(await postReboot("ghost", { reason: "ok" }, {}, "nowhere"), 404, "unknown_cluster");
    world.sim.addNode("agentless");
    assertError(await postReboot("agentless", { reason: "ok" }), 409, "no_agent");
    const drainOnly = await postReboot("agentless", { reason: "disk swap", mode: "drain-only", notBefore: new Date(Date.now() + 3600_000).toISOString() });
    assert.equal(drainOnly.status, 202, "a drain-only request needs no agent");
  });

  it("refuses a request of another mode while one stands, with 409", async () => {
    configure();
    await nodeWithAgent("mode-a");
    const notBefore = new Date(Date.now() + 3600_000).toISOString();
    const first = await postReboot("mode-a", { reason: "r", notBefore });
    const other = await postReboot("mode-a", { reason: "r", mode: "drain-only" });
    assertError(other, 409, "conflicting_request");
    assert.equal(other.body.error.requestId, first.body.requestId);
  });
});

describe("cancelling a request", () => {
  it("answers 200 while the request waits, and 404 when there is nothing (left) to cancel", async () => {
    configure();
    await nodeWithAgent("cancel-a");
    const requested = await postReboot("cancel-a", { reason: "r", notBefore: new Date(Date.now() + 3600_000).toISOString() });
    const cancelled = await deleteReboot("cancel-a");
    assert.equal(cancelled.status, 200, cancelled.text);
    assert.equal(cancelled.body.cancelled, true);
    assert.equal(cancelled.body.requestId, requested.body.requestId);
    assert.equal(cancelled.body.state, "idle");
    assertError(await deleteReboot("cancel-a"), 404, "nothing_to_cancel");
    assertError(await deleteReboot("never-seen"), 404, "nothing_to_cancel");
    assertError(await deleteReboot("cancel-a", "nowhere"), 404, "unknown_cluster");
  });

  it("answers 409 too_late with the node's state and since when once the drain has begun", async () => {
    configure();
    const agent = await nodeWithAgent("late-a");
    await postReboot("late-a", { reason: "maintenance", mode: "drain-only" });
    await settle([agent], async () => (await record("late-a"))?.state === "maintenance");
    const answer = await deleteReboot("late-a");
    assertError(answer, 409, "too_late");
    assert.equal(answer.body.error.state, "maintenance");
    assert.equal(answer.body.error.since, (await record("late-a"))?.since);
    assert.ok((await record("late-a"))?.request, "the request still stands");
  });

  it("racing the request being taken ends either cancelled or too late, never both and never neither", async () => {
    configure();
    const { lock, orchestrator } = await getRollcall();
    // From "before the slot is taken" to "well into the drain": both outcomes must be clean.
    const delays = [0, 2, 5, 10, 20, 30, 45, 250];
    const trials = delays.length;
    const agents = await Promise.all(Array.from({ length: trials }, (_, i) => nodeWithAgent(`race-${i}`)));
    const outcomes: string[] = [];
    for (const [i, agent] of agents.entries()) {
      // Another holder keeps the single slot, so the request waits in pending...
      const blocker = { node: "blocker", leaseId: `blocker-${i}`, acquiredAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 3600_000).toISOString() };
      assert.equal((await lock.acquire(CLUSTER, blocker, 1)).kind, "acquired");
      const requested = await postReboot(agent.node, { reason: `race ${i}` });
      assert.equal(requested.body.state, "pending");
      // The agent checks in while its node waits: a node is cordoned only while its agent is heard from (agentEngaged).
      await agent.tick();
      // ...until the slot frees and the node is taken, while the operator cancels.
      await lock.release(CLUSTER, "blocker", blocker.leaseId);
      const [cancel] = await Promise.all([
        sleep(delays[i]!).then(() => deleteReboot(agent.node)),
        orchestrator.advance(CLUSTER, agent.node, invocation("race")),
      ]);
      assert.ok(cancel.status === 200 || cancel.status === 409, `cancel answered ${cancel.status} ${cancel.text}`);
      await settle([agent], async () => (await record(agent.node))?.state === "idle" && (await lock.view(CLUSTER)).holders.length === 0);
      const after = (await record(agent.node))!;
      if (cancel.status === 200) {
        assert.equal(agent.reboots, 0, `${agent.node}: cancelled, yet rebooted`);
        assert.ok(!world.sim.getNode(agent.node)!.spec?.unschedulable, `${agent.node}: cancelled and uncordoned`);
        outcomes.push("cancelled");
      } else {
        assert.equal(cancel.body.error.code, "too_late");
        assert.equal(agent.reboots, 1, `${agent.node}: too late to cancel, so it rebooted once`);
        outcomes.push("too-late");
      }
      assert.equal(after.request, undefined, "the request is gone either way: cancelled or fulfilled");
    }
    assert.equal(outcomes.length, trials);
    assert.ok(outcomes.includes("cancelled") && outcomes.includes("too-late"), `both sides of the race were exercised: ${outcomes.join(", ")}`);
    if (process.env.ROLLCALL_TEST_LOGS) console.log(`cancel race outcomes: ${outcomes.join(", ")}`);
  });
});

describe("releasing a node", () => {
  it("ends a drain-only maintenance: uncordons, frees the slot and records who released it", async () => {
    configure(EASY_AUTH_ON);
    const agent = await nodeWithAgent("maint-a");
    world.sim.addDeployment("shop", "maint-web", { replicas: 2, nodes: ["maint-a"] });
    const requested = await postReboot("maint-a", { reason: "swap a disk", mode: "drain-only" }, asEntra("dave@example.com"));
    assert.equal(requested.status, 202);
    await settle([agent], async () => (await record("maint-a"))?.state === "maintenance");
    assert.ok(world.sim.getNode("maint-a")!.spec?.unschedulable, "cordoned during maintenance");
    assert.equal((await getStatus()).body.lock.holders[0].node, "maint-a", "maintenance holds a slot");

    const released = await postRelease("maint-a");
    assert.equal(released.status, 200, released.text);
    assert.equal(released.body.releasedBy, entraLabel("oncall@example.com"));
    await settle([agent], async () => (await record("maint-a"))?.state === "idle");
    const node = world.sim.getNode("maint-a")!;
    assert.ok(!node.spec?.unschedulable, "uncordoned");
    assert.equal(node.metadata.annotations?.[nodeAnnotations.cordonedBy], undefined);
    assert.deepEqual((await (await getRollcall()).lock.view(CLUSTER)).holders, []);
    assert.equal(agent.reboots, 0, "drain-only never reboots");
    const entries = (await getHistory({ node: "maint-a" })).body.entries as HistoryEntry[];
    assert.equal(entries[0]?.outcome, "operator-released");
    assert.equal(entries[0]?.requestedBy, entraLabel("dave@example.com"));
    assert.ok(entries[0]!.why.includes(`released by ${entraLabel("oncall@example.com")}`), entries[0]!.why);
  });

  it("answers 409 not_releasable for a node in no releasable state, and 404 for an unknown node", async () => {
    configure();
    await nodeWithAgent("idle-a");
    const answer = await postRelease("idle-a");
    assertError(answer, 409, "not_releasable");
    assert.equal(answer.body.error.state, "idle");
    assertError(await postRelease("ghost"), 404, "unknown_node");
    assertError(await postRelease("ghost", "nowhere"), 404, "unknown_cluster");
  });
});

describe("the cluster status", () => {
  it("shows the lock holders with expiry, every node's state and since, the queue in order with what holds it back, and unknown Kubernetes nodes", async () => {
    configure({ ROLLCALL_CONCURRENCY: "1" });
    const holder = await nodeWithAgent("st-hold");
    await nodeWithAgent("st-low");
    await nodeWithAgent("st-high");
    world.sim.addNode("st-noagent");
    await postReboot("st-hold", { reason: "maintenance", mode: "drain-only" });
    await settle([holder], async () => (await record("st-hold"))?.state === "maintenance");
    await postReboot("st-low", { reason: "low", priority: 10 });
    await postReboot("st-high", { reason: "high", priority: 90 });

    const status = await getStatus();
    assert.equal(status.status, 200, status.text);
    assert.equal(status.body.lock.slots, 1);
    assert.equal(status.body.lock.free, 0);
    assert.equal(status.body.lock.holders.length, 1);
    assert.equal(status.body.lock.holders[0].node, "st-hold");
    assert.ok(Date.parse(status.body.lock.holders[0].expiresAt) > Date.now());
    assert.equal(status.body.lock.holders[0].expired, false);
    const byName = Object.fromEntries(status.body.nodes.map((n: { node: string }) => [n.node, n]));
    assert.equal(byName["st-hold"].state, "maintenance");
    assert.ok(Date.parse(byName["st-hold"].since) <= Date.now());
    assert.deepEqual(
      status.body.queue.map((q: { node: string }) => q.node),
      ["st-high", "st-low"],
      "higher priority first",
    );
    assert.deepEqual(
      status.body.queue.map((q: { position: number }) => q.position),
      [1, 2],
    );
    for (const entry of status.body.queue) assert.match(entry.holdReason, /lock slot.*st-hold/);
    assert.equal(status.body.counts.pending, 2);
    assert.equal(status.body.kubernetes.reachable, true);
    assert.ok(status.body.kubernetes.unknownNodes.includes("st-noagent"));
    assert.ok(!status.body.kubernetes.unknownNodes.includes("st-hold"));
  });

  it("still answers when the cluster API does not, saying so; and 404 for an unknown cluster", async () => {
    configure({
      ROLLCALL_CLUSTERS: JSON.stringify([
        { name: CLUSTER, kubeconfig: world.sim.kubeconfig },
        { name: "dark", kubeconfig: deadKubeconfig() },
      ]),
    });
    const status = await getStatus("dark");
    assert.equal(status.status, 200, status.text);
    assert.equal(status.body.kubernetes.reachable, false);
    assert.match(status.body.kubernetes.error, /did not answer/);
    assertError(await getStatus("nowhere"), 404, "unknown_cluster");
    assertError(await getStatus("Bad_Name"), 400, "invalid_request");
  });
});

describe("a node's status", () => {
  it("shows its state, record, recent transitions newest first and its recent history", async () => {
    configure();
    const agent = await nodeWithAgent("ns-a");
    await postReboot("ns-a", { reason: "r" });
    await settle([agent], async () => agent.reboots === 1 && (await record("ns-a"))?.state === "idle");
    const answer = await getNode("ns-a");
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.body.node, "ns-a");
    assert.equal(answer.body.state, "idle");
    assert.equal(answer.body.record.node, "ns-a");
    assert.ok(answer.body.recent.length >= 5);
    const times = answer.body.recent.map((t: { at: string }) => Date.parse(t.at));
    assert.deepEqual(times, [...times].sort((a, b) => b - a), "newest first");
    assert.equal(answer.body.recent[0].to, "idle");
    assert.equal(answer.body.history.length, 1);
    assert.equal(answer.body.history[0].outcome, "completed");
    assertError(await getNode("ghost"), 404, "unknown_node");
    assertError(await getNode("ns-a", "nowhere"), 404, "unknown_cluster");
  });
});

describe("the history", () => {
  async function seed(count: number): Promise<void> {
    const { table } = await getRollcall();
    const base = Date.parse("2026-11-01T00:00:00Z");
    for (let i = 0; i < count; i++) {
      const finishedAt = new Date(base + i * 60_000).toISOString();
      const entry: HistoryEntry = {
        cluster: CLUSTER,
        node: `h-${i % 3}`,
        outcome: "completed",
        why: "reboot confirmed",
        requestedBy: i % 2 ? "sentinel" : "erin@example.com",
        reasons: ["linux-image"],
        finishedAt,
        phases: { wait: 1, cordon: 1, drain: 5, reboot: 60, return: 10 },
      };
      await table.submitTransaction([historyAction(entry)]);
    }
  }

  it("pages newest first with continuation tokens, each entry once, and filters by node", async () => {
    configure();
    await seed(25);
    const seen: string[] = [];
    let query: Record<string, string> = { limit: "10" };
    let pages = 0;
    for (;;) {
      const page = await getHistory(query);
      assert.equal(page.status, 200, page.text);
      assert.ok(page.body.entries.length <= 10);
      seen.push(...page.body.entries.map((e: HistoryEntry) => e.finishedAt));
      pages++;
      if (!page.body.continuationToken) break;
      assert.match(page.body.next, /continuationToken=/);
      query = { limit: "10", continuationToken: page.body.continuationToken };
    }
    assert.equal(pages, 3);
    assert.equal(seen.length, 25);
    assert.equal(new Set(seen).size, 25, "no entry twice");
    assert.deepEqual(seen, [...seen].sort().reverse(), "newest first");

    const first = (await getHistory()).body.entries;
    assert.equal(first.length, 20, "20 by default");
    assert.ok(first[0].phases.reboot === 60 && first[0].requestedBy);

    const one = await getHistory({ node: "h-1", limit: "100" });
    assert.ok(one.body.entries.length > 0 && one.body.entries.every((e: HistoryEntry) => e.node === "h-1"));
  });

  it("bounds limit to 1..100 and refuses foreign continuation tokens with 400", async () => {
    configure();
    for (const limit of ["0", "101", "-5", "abc", "2.5"]) assertError(await getHistory({ limit }), 400, "invalid_request");
    assert.equal((await getHistory({ limit: "1" })).status, 200);
    assert.equal((await getHistory({ limit: "100" })).status, 200);
    assertError(await getHistory({ continuationToken: "not a token" }), 400, "invalid_request");
    assertError(await getHistory({ continuationToken: Buffer.from("[1,2]").toString("base64") }), 400, "invalid_continuation_token");
    assertError(await getHistory({ continuationToken: "bm9wZQ" }), 400, "invalid_continuation_token");
    assertError(await getHistory({ node: "Bad Node" }), 400, "invalid_request");
    assertError(await getHistory({}, "nowhere"), 404, "unknown_cluster");
    assert.equal((await getHistory({ code: "the-function-key" })).status, 200, "a function key in the query string is no error");
  });
});

describe("health", () => {
  it("answers 200 with storage and each cluster's latency when everything answers", async () => {
    configure();
    const answer = await call(health, { method: "GET", path: "health", params: {} });
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.body.status, "healthy");
    assert.equal(answer.body.storage.ok, true);
    assert.equal(typeof answer.body.storage.latencyMs, "number");
    assert.deepEqual(
      answer.body.clusters.map((c: { name: string; ok: boolean }) => [c.name, c.ok]),
      [[CLUSTER, true]],
    );
  });

  it("answers 503 naming the cluster API that does not answer", async () => {
    configure({
      ROLLCALL_CLUSTERS: JSON.stringify([
        { name: CLUSTER, kubeconfig: world.sim.kubeconfig },
        { name: "dark", kubeconfig: deadKubeconfig() },
      ]),
    });
    const answer = await call(health, { method: "GET", path: "health", params: {} });
    assert.equal(answer.status, 503, answer.text);
    assert.equal(answer.body.storage.ok, true);
    const dark = answer.body.clusters.find((c: { name: string }) => c.name === "dark");
    assert.equal(dark.ok, false);
    assert.ok(dark.error);
    assert.ok(!leaksInternals(answer.text));
  });

  it("answers 503 when storage does not answer, and 503 with the setting's name when the settings are invalid", async () => {
    configure({ ROLLCALL_STORAGE_CONNECTION: deadStorage() });
    const down = await call(health, { method: "GET", path: "health", params: {} });
    assert.equal(down.status, 503, down.text);
    assert.equal(down.body.storage.ok, false);
    assert.ok(!leaksInternals(down.text), down.text);
    configure({ ROLLCALL_CONCURRENCY: "many" });
    const misconfigured = await call(health, { method: "GET", path: "health", params: {} });
    assert.equal(misconfigured.status, 503);
    assert.match(misconfigured.body.config.error, /ROLLCALL_CONCURRENCY/);
  });

  it("answers 503 saying why on Flex Consumption with check-in authentication off, where the check-in function refuses to load", async () => {
    configure({ ROLLCALL_AGENT_AUTH: "off", WEBSITE_SKU: "FlexConsumption" });
    try {
      const answer = await call(health, { method: "GET", path: "health", params: {} });
      assert.equal(answer.status, 503, answer.text);
      assert.match(answer.body.config.error, /ROLLCALL_AGENT_AUTH=off .* refused on Azure \(detected by WEBSITE_SKU=FlexConsumption\)/);
      // The check-in module throws at load on Azure: the worker logs it and the app does not start.
      const load = spawnSync(process.execPath, ["--import", "tsx", "-e", 'require("./functions/checkin")'], {
        env: { ...process.env, ROLLCALL_AGENT_AUTH: "off", WEBSITE_SKU: "FlexConsumption" },
        encoding: "utf8",
      });
      assert.notEqual(load.status, 0);
      assert.match(load.stderr, /ROLLCALL_AGENT_AUTH=off is for the local simulation only and is refused on Azure/);
    } finally {
      delete process.env.WEBSITE_SKU;
    }
  });
});

describe("every route", () => {
  it("answers failures as JSON without a stack trace, even when storage is down", async () => {
    configure({ ROLLCALL_STORAGE_CONNECTION: deadStorage() });
    const answers = await Promise.all([
      getStatus(),
      getNode("x"),
      getHistory(),
      postReboot("x", { reason: "r" }),
      deleteReboot("x"),
      postRelease("x"),
    ]);
    for (const answer of answers) {
      assert.equal(answer.status, 500, answer.text);
      assert.equal(answer.body.error.code, "internal");
      assert.ok(answer.body.error.invocationId);
      assert.ok(!leaksInternals(answer.text), answer.text);
    }
  });

  it("answers a configuration error as 500 misconfigured naming the setting", async () => {
    configure({ ROLLCALL_CLUSTERS: "not json" });
    const answer = await getStatus();
    assertError(answer, 500, "misconfigured");
    assert.match(answer.body.error.message, /ROLLCALL_CLUSTERS/);
  });

  it("serves the OpenAPI document as JSON", async () => {
    configure();
    const answer = await call(openapi, { method: "GET", path: "openapi.json", params: {} });
    assert.equal(answer.status, 200);
    assert.match(answer.headers["content-type"]!, /application\/json/);
    assert.match(answer.body.openapi, /^3\./);
  });
});

/** A kubeconfig whose API server is a closed port on this machine. */
function deadKubeconfig(): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "dark", cluster: { server: "http://127.0.0.1:9" } }],
    users: [{ name: "dark", user: { token: "nothing" } }],
    contexts: [{ name: "dark", context: { cluster: "dark", user: "dark" } }],
    "current-context": "dark",
  });
}

/** A Table Storage connection string whose endpoint is a closed port on this machine. */
function deadStorage(): string {
  return "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;TableEndpoint=http://127.0.0.1:9/devstoreaccount1;";
}
