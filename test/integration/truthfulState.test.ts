import { describe, it } from "node:test";
import { HttpRequest } from "@azure/functions";
import assert from "node:assert/strict";
import { history } from "../../functions/history";
import { metrics } from "../../functions/metrics";
import { nodeStatus } from "../../functions/nodeStatus";
import { cancelReboot, requestReboot } from "../../functions/rebootRequest";
import { releaseNode } from "../../functions/releaseNode";
import { retryNode } from "../../functions/retryNode";
import type { HistoryEntry } from "../../shared/history/history";
import { getRollcall } from "../../shared/orchestrator/fromConfig";
import { openGate } from "../../shared/policy/policy";
import { LAST_CHECKIN_GRANULARITY_MS } from "../../shared/orchestrator/orchestrator";
import { asEntra, EASY_AUTH_ON, entraLabel } from "../support/entra";
import { type Answer, call, leaksInternals } from "../support/operatorCalls";
import { CLUSTER, clocked, invocation, ManualClock, runAgents, TestAgent, useWorld } from "../support/world";

/** Issue 13 item 5: what the API says about a node is what happened to it. */

const world = useWorld({ simOptions: { terminationDelayMs: 20, podStartDelayMs: 40 } });
const log = invocation("test");
const READER = asEntra("reader@example.com", ["Rollcall.Read"]);
const ONCALL = asEntra("oncall@example.com");

const nodeParams = (node: string) => ({ path: `clusters/${CLUSTER}/nodes/${node}`, params: { cluster: CLUSTER, node } });

function getHistory(node: string): Promise<Answer> {
  return call(history, { method: "GET", path: `clusters/${CLUSTER}/history?node=${node}`, params: { cluster: CLUSTER }, headers: READER });
}

async function historyOf(node: string): Promise<HistoryEntry[]> {
  const page = await getHistory(node);
  assert.equal(page.status, 200, page.text);
  return (page.body.entries as HistoryEntry[]).filter((e) => e.node === node);
}

function getNode(node: string): Promise<Answer> {
  return call(nodeStatus, { method: "GET", ...nodeParams(node), headers: READER });
}

function postReboot(node: string, body: unknown): Promise<Answer> {
  const { path, params } = nodeParams(node);
  return call(requestReboot, { method: "POST", path: `${path}/reboot`, params, body, headers: ONCALL });
}

function postRetry(node: string, headers: Record<string, string> = ONCALL): Promise<Answer> {
  const { path, params } = nodeParams(node);
  return call(retryNode, { method: "POST", path: `${path}/retry`, params, headers });
}

async function record(node: string) {
  return (await (await getRollcall()).store.get(CLUSTER, node))?.value;
}

describe("history", () => {
  it("keeps the reasons that caused a completed reboot, though the post-boot check-in reports none", async () => {
    world.configure();
    world.sim.addNode("why-a");
    const agent = await TestAgent.on(world.sim, "why-a", true);
    await runAgents([agent], async () => agent.reboots >= 1 && (await record("why-a"))?.state === "idle");
    const [entry] = await historyOf("why-a");
    assert.ok(entry, "a history entry for the reboot");
    assert.equal(entry.outcome, "completed");
    assert.deepEqual(entry.reasons, ["linux-image-azure"]);
    assert.equal((await record("why-a"))?.reasons.length, 0, "the record itself holds what the agent reports now");
  });

  it("records cancelling a pending request: who asked, who cancelled, and why", async () => {
    world.configure(EASY_AUTH_ON);
    world.sim.addNode("cancel-a");
    const agent = await TestAgent.on(world.sim, "cancel-a", false);
    await agent.tick();
    const later = new Date(Date.now() + 3600_000).toISOString();
    const asked = await postReboot("cancel-a", { reason: "kernel CVE", notBefore: later });
    assert.equal(asked.status, 202, asked.text);
    assert.equal(asked.body.state, "pending");
    const { path, params } = nodeParams("cancel-a");
    const cancelled = await call(cancelReboot, { method: "DELETE", path: `${path}/reboot`, params, headers: asEntra("bob@example.com") });
    assert.equal(cancelled.status, 200, cancelled.text);
    assert.equal((await record("cancel-a"))?.state, "idle");
    const [entry] = await historyOf("cancel-a");
    assert.ok(entry, "a history entry for the withdrawn request");
    assert.equal(entry.outcome, "cancelled");
    assert.equal(entry.requestId, asked.body.requestId);
    assert.equal(entry.requestedBy, entraLabel("oncall@example.com"));
    assert.equal(entry.cancelledBy, entraLabel("bob@example.com"));
    assert.deepEqual(entry.reasons, ["kernel CVE"]);
    assert.match(entry.why, /cancelled by .*bob@example.com.* before it took a lock slot/);
  });

  it("records a stuck episode when it happens, and the reboot that ends it afterwards", async () => {
    world.configure({ ROLLCALL_LOCK_TTL_MINUTES: "30" });
    world.sim.addNode("stuck-a");
    const clock = new ManualClock();
    const { orchestrator, send } = await clocked(clock, { gate: openGate });
    const agent = await TestAgent.on(world.sim, "stuck-a", true);
    assert.equal((await agent.tick(send)).action, "reboot");
    clock.advance(31 * 60_000);
    await orchestrator.reconcile(CLUSTER, log);
    assert.equal((await record("stuck-a"))?.state, "stuck");
    const [stuck] = await historyOf("stuck-a");
    assert.ok(stuck, "the stuck episode is in history when it starts");
    assert.equal(stuck.outcome, "stuck");
    assert.match(stuck.why, /lock TTL expired in state reboot-ordered/);
    assert.deepEqual(stuck.reasons, ["linux-image-azure"]);
    assert.equal(typeof stuck.phases.drain, "number");

    clock.advance(60_000);
    assert.equal((await agent.tick(send)).state, "idle");
    const entries = await historyOf("stuck-a");
    assert.deepEqual(
      entries.map((e) => e.outcome),
      ["completed", "stuck"],
      "newest first: the late reboot completed after the stuck episode",
    );
    const scraped = await metrics(new HttpRequest({ method: "GET", url: "http://localhost/api/metrics", headers: READER }), invocation("metrics"));
    const text = typeof scraped.body === "string" ? scraped.body : "";
    assert.equal(scraped.status ?? 200, 200, text);
    assert.match(text, new RegExp(`rollcall_phase_window_entries\\{cluster="${CLUSTER}"\\} 1\\b`), "the phase histograms count the lease once, not its stuck episode too");
  });
});

describe("status", () => {
  it("no longer says a node is gone once a node of that name checks in again", async () => {
    world.configure();
    world.sim.addNode("again-a");
    world.sim.addDeployment("db", "again-db", { replicas: 2, pdb: { minAvailable: 1 }, nodes: ["again-a"] });
    const agent = await TestAgent.on(world.sim, "again-a", true);
    assert.equal((await agent.tick()).state, "draining");
    world.sim.deleteNode("again-a");
    const { orchestrator } = await getRollcall();
    await orchestrator.reconcile(CLUSTER, log);
    assert.match((await record("again-a"))!.why, /no longer exists/);

    world.sim.addNode("again-a");
    const reborn = await TestAgent.on(world.sim, "again-a", false);
    await reborn.tick();
    const answer = await getNode("again-a");
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.body.state, "idle");
    assert.doesNotMatch(answer.body.why, /no longer exists/);
    assert.match(answer.body.why, new RegExp(`boot id ${reborn.bootId}`));
  });

  it("no longer says a node is gone once another machine of that name checks in, when it was found gone while queued", async () => {
    world.configure();
    world.sim.addNode("again-b");
    const agent = await TestAgent.on(world.sim, "again-b", true);
    world.sim.deleteNode("again-b");
    assert.equal((await agent.tick()).state, "idle");
    assert.match((await record("again-b"))!.why, /no longer exists/);
    await agent.tick();
    assert.match((await record("again-b"))!.why, /no longer exists/, "the same machine's agent changes nothing");

    world.sim.addNode("again-b");
    const reborn = await TestAgent.on(world.sim, "again-b", false);
    await reborn.tick();
    const answer = await getNode("again-b");
    assert.equal(answer.status, 200, answer.text);
    assert.match(answer.body.why, new RegExp(`checked in \\(boot id ${reborn.bootId}\\)`));
  });

  it("at concurrency 2 names no node as a holder once it released its slot", async () => {
    world.configure({ ROLLCALL_CONCURRENCY: "2" });
    const names = ["hold-a", "hold-b", "hold-c", "hold-d"];
    for (const name of names) world.sim.addNode(name);
    const agents = await Promise.all(names.map((name) => TestAgent.on(world.sim, name, true)));
    for (const agent of agents) await agent.tick();
    assert.deepEqual(
      agents.slice(2).map((agent) => agent.last?.state),
      ["pending", "pending"],
    );
    const a = agents[0]!;
    // Only hold-a's agent speaks: its release hands its slot to hold-c; hold-d still waits.
    await runAgents([a], async () => (await record("hold-a"))?.state === "idle");
    const holders = (await (await getRollcall()).lock.view(CLUSTER)).holders.map((h) => h.node).sort();
    assert.deepEqual(holders, ["hold-b", "hold-c"]);
    const d = await record("hold-d");
    assert.equal(d?.state, "pending");
    assert.doesNotMatch(d?.holdReason ?? "", /hold-a/, `hold reason ${d?.holdReason}`);
    assert.match(d?.holdReason ?? "", /hold-b/);
  });

  it("steps only the next few nodes of a long queue after a release, leaving the rest to refresh their hold reasons at their own check-ins", async () => {
    world.configure({ ROLLCALL_CONCURRENCY: "1" });
    const names = Array.from({ length: 16 }, (_, i) => `long-${String(i).padStart(2, "0")}`);
    for (const name of names) world.sim.addNode(name);
    const agents = [];
    for (const name of names) {
      const agent = await TestAgent.on(world.sim, name, true);
      await agent.tick();
      agents.push(agent);
    }
    const store = (await getRollcall()).store;
    const before = new Map((await store.list(CLUSTER)).map((r) => [r.value.node, r.etag]));
    await runAgents([agents[0]!], async () => (await record("long-00"))?.state === "idle");
    const after = new Map((await store.list(CLUSTER)).map((r) => [r.value.node, r.etag]));
    const touched = names.slice(1).filter((name) => before.get(name) !== after.get(name));
    // The freed slot's node and the ten behind it: the 1 + 10 oldest of the 15 waiting.
    assert.deepEqual(touched, names.slice(1, 12));
    assert.equal((await record("long-01"))?.state, "reboot-ordered");
    assert.match((await record("long-15"))?.holdReason ?? "", /held by long-00/, "not refreshed by the release");
    await agents[15]!.tick();
    assert.match((await record("long-15"))?.holdReason ?? "", /held by long-01/, "refreshed by its own check-in");
  });

  it("moves lastCheckinAt on an idle check-in at most once per granularity period, and the idle check-in stays one read otherwise", async () => {
    world.configure();
    world.sim.addNode("seen-a");
    const clock = new ManualClock();
    const { rollcall, send } = await clocked(clock);
    const agent = await TestAgent.on(world.sim, "seen-a", false);
    await agent.tick(send);
    const first = (await record("seen-a"))!.lastCheckinAt!;
    assert.equal(first, clock.now.toISOString());

    let storageCalls = 0;
    rollcall.table.pipeline.addPolicy({ name: "count-seen", sendRequest: (request, next) => (storageCalls++, next(request)) });
    clock.advance(LAST_CHECKIN_GRANULARITY_MS - 1_000);
    await agent.tick(send);
    assert.equal(storageCalls, 1, "within the period: one read, no write");
    assert.equal((await record("seen-a"))!.lastCheckinAt, first);

    clock.advance(2_000);
    storageCalls = 0;
    await agent.tick(send);
    assert.equal(storageCalls, 2, "past the period: the read and one write");
    assert.equal((await record("seen-a"))!.lastCheckinAt, clock.now.toISOString());
    rollcall.table.pipeline.removePolicy({ name: "count-seen" });
  });
});

describe("POST …/retry", () => {
  async function drainFailedNode(name: string) {
    world.configure({ ...EASY_AUTH_ON, ROLLCALL_DRAIN_TIMEOUT_MINUTES: "10" });
    world.sim.addNode(name);
    world.sim.addDeployment("db", `${name}-db`, { replicas: 2, pdb: { minAvailable: 2 }, nodes: [name] });
    const agent = await TestAgent.on(world.sim, name, true);
    const clock = new ManualClock();
    const { orchestrator, send } = await clocked(clock, { gate: openGate });
    assert.equal((await agent.tick(send)).state, "draining");
    clock.advance(11 * 60_000);
    await orchestrator.reconcile(CLUSTER, log);
    assert.equal((await record(name))?.state, "drain-failed");
    return { agent, clock, orchestrator, send };
  }

  it("moves a drain-failed node back to pending now, recorded with who asked", async () => {
    const { agent, clock, orchestrator, send } = await drainFailedNode("retry-a");
    const { path, params } = nodeParams("retry-a");
    const release = await call(releaseNode, { method: "POST", path: `${path}/release`, params, headers: ONCALL });
    assert.equal(release.status, 409, release.text);
    assert.match(release.body.error.message, /drain-failed, which is not released but retried: POST \/api\/clusters\/prod\/nodes\/retry-a\/retry/);
    const asked = await postReboot("retry-a", { reason: "now please" });
    assert.equal(asked.status, 202, asked.text);
    assert.match(asked.body.message, /drain-failed: the request waits until its drain-failure back-off ends; POST .*\/retry starts it now/);
    const answer = await postRetry("retry-a");
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.body.retriedBy, entraLabel("oncall@example.com"));
    assert.notEqual(answer.body.state, "drain-failed");
    const after = (await record("retry-a"))!;
    assert.notEqual(after.state, "drain-failed");
    assert.equal(after.retryAt, undefined);
    const retried = after.recent!.find((t) => t.from === "drain-failed" && t.to === "pending");
    assert.ok(retried, JSON.stringify(after.recent));
    assert.match(retried.why, /retry requested by .*oncall@example.com/);

    // The budget still refuses: the retried turn fails again, and its history entry names who retried it.
    assert.equal((await agent.tick(send)).state, "draining");
    clock.advance(11 * 60_000);
    await orchestrator.reconcile(CLUSTER, log);
    assert.equal((await record("retry-a"))?.state, "drain-failed");
    const [again, first] = await historyOf("retry-a");
    assert.equal(again?.outcome, "drain-failed");
    assert.equal(again?.retriedBy, entraLabel("oncall@example.com"));
    assert.equal(first?.retriedBy, undefined, "the first failure was nobody's retry");
    assert.equal((await record("retry-a"))?.retriedBy, undefined, "cleared with the lease");
  });

  it("answers 409 naming the state for a node that is not drain-failed, 404 for an unknown node, 403 without Rollcall.Operate", async () => {
    world.configure(EASY_AUTH_ON);
    world.sim.addNode("retry-idle");
    await (await TestAgent.on(world.sim, "retry-idle", false)).tick();
    const idle = await postRetry("retry-idle");
    assert.equal(idle.status, 409, idle.text);
    assert.equal(idle.body.error.code, "not_drain_failed");
    assert.equal(idle.body.error.state, "idle");
    assert.match(idle.body.error.message, /is idle/);
    assert.ok(!leaksInternals(idle.text));
    const unknown = await postRetry("retry-nobody");
    assert.equal(unknown.status, 404, unknown.text);
    const reader = await postRetry("retry-idle", READER);
    assert.equal(reader.status, 403, reader.text);
  });
});

describe("notBefore", () => {
  it("is refused with 400 when it is in the past, and 'now' is taken for now", async () => {
    world.configure(EASY_AUTH_ON);
    world.sim.addNode("nb-a");
    await (await TestAgent.on(world.sim, "nb-a", false)).tick();
    const past = await postReboot("nb-a", { reason: "patch", notBefore: new Date(Date.now() - 3600_000).toISOString() });
    assert.equal(past.status, 400, past.text);
    assert.match(past.body.error.message, /notBefore.*in the past.*"now"/);
    assert.equal((await record("nb-a"))?.request, undefined, "nothing stored");
    const now = await postReboot("nb-a", { reason: "patch", notBefore: "now", mode: "drain-only" });
    assert.equal(now.status, 202, now.text);
    assert.equal(now.body.request.notBefore, undefined, "now means no delay");
  });
});
