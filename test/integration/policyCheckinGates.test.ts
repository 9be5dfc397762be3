import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { requestReboot } from "../../functions/rebootRequest";
import { call } from "../support/operatorCalls";
import { startCaptureServer } from "../support/webhookServer";
import {
  assertSettled,
  finish,
  deletePod,
  getClusterPolicy,
  getStatus,
  isCordoned,
  lockHolders,
  putClusterPolicy,
  record,
  setPolicy,
  until,
} from "../support/policyWorld";
import { clocked, ManualClock, sleep, TestAgent, useWorld } from "../support/world";

/**
 * The reboot policy's gates end to end through the check-in path: the policy set with the real
 * PUT handler, Azurite, the simulated API server, and agents that reboot once per lease. Where time
 * must pass (windows, delays), an orchestrator with a hand-moved clock drives the same services.
 */

const world = useWorld({ simOptions: { terminationDelayMs: 20, podStartDelayMs: 40 } });

/** The Prometheus servers here listen on the loopback interface, which only a local run may call. */
const LOCAL_OUTBOUND = { ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK: "true" };

/** An instant-query answer holding these `ALERTS` series. */
const alertsAnswer = (alerts: Record<string, string>[]) => ({
  status: "success",
  data: { resultType: "vector", result: alerts.map((labels) => ({ metric: { __name__: "ALERTS", ...labels }, value: [1764547200, "1"] })) },
});

describe("reboot windows through the check-in path", () => {
  it("keeps a node pending outside the reboot window, with the window as the reason, and starts it when the window opens", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("win-a");
    await setPolicy({ windows: [{ days: ["sat", "sun"], start: "02:00", end: "05:00", timeZone: "Europe/Berlin" }] });
    const clock = new ManualClock(new Date("2026-03-04T12:00:00Z")); // a Wednesday
    const { send } = await clocked(clock);
    const agent = await TestAgent.on(sim, "win-a", true);

    const closed = await agent.tick(send);
    assert.equal(closed.action, "wait");
    assert.equal(closed.state, "pending");
    assert.match(closed.reason, /^outside the reboot window; it next opens Sat 2026-03-07 02:00/);
    assert.ok(!isCordoned(world, "win-a"), "not cordoned outside the window");
    assert.deepEqual(await lockHolders(), [], "no lock slot taken outside the window");
    const status = await getStatus();
    assert.equal(status.status, 200);
    assert.deepEqual(
      status.body.queue.map((q: { node: string; holdReason: string }) => [q.node, q.holdReason]),
      [["win-a", closed.reason]],
      "the status names the window as what holds the node",
    );

    clock.now = new Date("2026-03-07T00:59:00Z"); // 01:59 CET, a minute before the window
    assert.match((await agent.tick(send)).reason, /outside the reboot window; it next opens Sat 2026-03-07 02:00/);
    clock.now = new Date("2026-03-07T01:00:00Z"); // 02:00 CET: the window's first minute
    const open = await agent.tick(send);
    assert.equal(open.action, "reboot", open.reason);
    assert.equal(agent.reboots, 1);
    await finish([agent], send);
    await assertSettled(world, ["win-a"]);
  });

  it("does not start a node while the window is open but closes sooner than the drain timeout", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("short-a");
    await setPolicy({ lockTtlMinutes: 120, drain: { timeoutMinutes: 60 }, windows: [{ start: "02:00", end: "05:00", timeZone: "UTC" }] });
    const clock = new ManualClock(new Date("2026-03-04T04:01:00Z"));
    const { send } = await clocked(clock);
    const agent = await TestAgent.on(sim, "short-a", true);

    const late = await agent.tick(send);
    assert.equal(late.state, "pending");
    assert.match(late.reason, /the reboot window closes Wed 2026-03-04 05:00 .*, in 59 min, sooner than the drain timeout \(60 min\): a drain that could not finish is not started/);
    assert.ok(!isCordoned(world, "short-a"));
    assert.deepEqual(await lockHolders(), []);

    clock.now = new Date("2026-03-05T04:00:00Z"); // exactly the drain timeout left: it may start
    assert.equal((await agent.tick(send)).action, "reboot");
    await finish([agent], send);
    await assertSettled(world, ["short-a"]);
  });

  it("starts nodes after midnight in an overnight window and follows the window's time zone across the DST change", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("night-a");
    sim.addNode("night-b");
    // Saturday 22:00 to Sunday 04:00 Berlin time; 2026-03-29 02:00 CET is when Berlin moves to CEST.
    await setPolicy({ windows: [{ days: ["sat"], start: "22:00", end: "04:00", timeZone: "Europe/Berlin" }] });
    const clock = new ManualClock(new Date("2026-03-28T20:30:00Z")); // Sat 21:30 CET
    const { send } = await clocked(clock);
    const a = await TestAgent.on(sim, "night-a", true);
    const b = await TestAgent.on(sim, "night-b", true);

    assert.match((await a.tick(send)).reason, /^outside the reboot window; it next opens Sat 2026-03-28 22:00/);
    clock.now = new Date("2026-03-29T00:30:00Z"); // Sun 01:30 CET: after midnight, still the Saturday window
    assert.equal((await a.tick(send)).action, "reboot");
    await finish([a], send, () => clock.advance(1_000));

    clock.now = new Date("2026-03-29T01:50:00Z"); // Sun 03:50 CEST: 10 min left (an hour more under a fixed CET offset)
    const closing = await b.tick(send);
    assert.equal(closing.state, "pending");
    assert.match(closing.reason, /closes Sun 2026-03-29 04:00 .*, in 10 min, sooner than the drain timeout \(15 min\)/);
    clock.now = new Date("2026-03-29T02:10:00Z"); // Sun 04:10 CEST: closed (03:10 under a fixed CET offset)
    const after = await b.tick(send);
    assert.equal(after.state, "pending");
    assert.match(after.reason, /^outside the reboot window; it next opens Sat 2026-04-04 22:00/);
    assert.ok(!isCordoned(world, "night-b"));
    clock.now = new Date("2026-04-04T20:00:00Z"); // Sat 22:00 CEST
    assert.equal((await b.tick(send)).action, "reboot");
    await finish([b], send, () => clock.advance(1_000));
    await assertSettled(world, ["night-a", "night-b"]);
  });
});

describe("concurrency caps through the check-in path", () => {
  it("never has two nodes of one zone or one node pool out at once with concurrency 3, and the status says which cap holds each", async () => {
    world.configure();
    const { sim } = world;
    const layout: [string, string, string][] = [
      ["cap-a", "cz-1", "cpa"],
      ["cap-b", "cz-2", "cpa"],
      ["cap-c", "cz-1", "cpb"],
      ["cap-d", "cz-2", "cpb"],
      ["cap-e", "cz-1", "cpa"],
      ["cap-f", "cz-2", "cpb"],
    ];
    for (const [name, zone, pool] of layout) sim.addNode(name, { zone, pool });
    await setPolicy({ concurrency: 3, maxPerZone: 1, maxPerPool: 1 });
    const names = layout.map(([name]) => name);
    const violations: string[] = [];
    let mostOut = 0;
    const stop = sim.onNodeChange(() => {
      const out = layout.filter(([name]) => {
        const node = sim.getNode(name);
        const ready = ((node?.status?.conditions ?? []) as { type: string; status: string }[]).some((c) => c.type === "Ready" && c.status === "True");
        return node?.spec?.unschedulable === true || !ready;
      });
      mostOut = Math.max(mostOut, out.length);
      for (const index of [1, 2]) {
        const groups = new Map<string, string[]>();
        for (const entry of out) groups.set(entry[index]!, [...(groups.get(entry[index]!) ?? []), entry[0]]);
        for (const [group, members] of groups) if (members.length > 1) violations.push(`${group}: ${members.join(", ")}`);
      }
    });
    try {
      const agents = await Promise.all(names.map((name) => TestAgent.on(sim, name, true)));
      // One round in order: cap-a takes the first slot, cap-d (the other zone and pool) the second.
      for (const agent of agents) await agent.tick();
      assert.deepEqual(await lockHolders(), ["cap-a", "cap-d"]);
      const status = await getStatus();
      const held = Object.fromEntries(status.body.queue.map((q: { node: string; holdReason: string }) => [q.node, q.holdReason]));
      assert.deepEqual(Object.keys(held).sort(), ["cap-b", "cap-c", "cap-e", "cap-f"]);
      assert.match(held["cap-b"], /^node pool cpa already has 1 node out \(cap-a\); maxPerPool is 1$/);
      assert.match(held["cap-c"], /^zone cz-1 already has 1 node out \(cap-a\); maxPerZone is 1$/);
      assert.match(held["cap-e"], /^zone cz-1 already has 1 node out \(cap-a\); maxPerZone is 1$/);
      assert.match(held["cap-f"], /^zone cz-2 already has 1 node out \(cap-d\); maxPerZone is 1$/);
      assert.equal(status.body.lock.free, 1, "a free slot stays free while the caps hold everyone else");

      // Then every agent checks in at the same time, round after round, as real agents would.
      for (let round = 0; round < 300 && !agents.every((a) => a.reboots === 1 && a.last?.state === "idle"); round++) {
        await Promise.all(agents.map((agent) => agent.tick()));
        await sleep(15);
      }
      assert.deepEqual(
        agents.map((a) => [a.node, a.reboots, a.last?.state]),
        names.map((name) => [name, 1, "idle"]),
      );
    } finally {
      stop();
    }
    assert.deepEqual(violations, [], "never two nodes of one zone or pool out at once");
    assert.ok(mostOut <= 2);
    await assertSettled(world, names);
  });

  it("lets only one node of a zone take a slot when several of them check in at the same moment", async () => {
    world.configure();
    const { sim } = world;
    await setPolicy({ concurrency: 3, maxPerZone: 1 });
    for (let trial = 0; trial < 4; trial++) {
      const names = [0, 1, 2, 3].map((i) => `race${trial}-${i}`);
      for (const name of names) sim.addNode(name, { zone: `rz-${trial}` });
      const agents = await Promise.all(names.map((name) => TestAgent.on(sim, name, true)));
      await Promise.all(agents.map((agent) => agent.tick()));
      const holders = (await lockHolders()).filter((node) => names.includes(node));
      assert.equal(holders.length, 1, `trial ${trial}: one node of zone rz-${trial} out, not ${holders.join(", ")}`);
      for (const agent of agents) agent.rebootRequired = false; // the others are let off
      await finish(agents);
      await assertSettled(world, names);
    }
  });

  it("hands a freed slot to the node that has waited longest, not to the next one to check in, with pendingOrder oldest-first", async () => {
    world.configure();
    const { sim } = world;
    for (const name of ["po-a", "po-b", "po-c"]) sim.addNode(name);
    await setPolicy({ pendingOrder: "oldest-first" });
    const [a, b, c] = await Promise.all(["po-a", "po-b", "po-c"].map((name) => TestAgent.on(sim, name, true)));
    assert.equal((await a!.tick()).action, "reboot");
    assert.equal((await c!.tick()).state, "pending"); // po-c queues first
    await sleep(5);
    assert.equal((await b!.tick()).state, "pending");
    assert.equal((await a!.tick()).state, "idle");
    assert.deepEqual(await lockHolders(), ["po-c"], "the release handed the slot to po-c at once");
    assert.equal((await b!.tick()).state, "pending");
    await finish([a!, b!, c!]);
    await assertSettled(world, ["po-a", "po-b", "po-c"]);
  });

  it("serves the queue in order when a hold lifts: the node that checks in first yields to a higher-priority request ahead of it", async () => {
    world.configure();
    const { sim } = world;
    for (const name of ["pq-a", "pq-b", "pq-c"]) sim.addNode(name);
    await setPolicy({ health: { waitForHealthy: true, lockReleaseDelaySeconds: 120 } });
    const clock = new ManualClock();
    const { send } = await clocked(clock);
    const [a, b] = await Promise.all(["pq-a", "pq-b"].map((name) => TestAgent.on(sim, name, true)));
    const c = await TestAgent.on(sim, "pq-c", false);
    assert.equal((await a!.tick(send)).action, "reboot");
    assert.equal((await b!.tick(send)).state, "pending", "pq-b queues first, for its sentinel");
    assert.equal((await c.tick(send)).state, "idle");
    const asked = await call(requestReboot, {
      method: "POST",
      path: "clusters/prod/nodes/pq-c/reboot",
      params: { cluster: "prod", node: "pq-c" },
      body: { reason: "kernel CVE", priority: 50 },
    });
    assert.equal(asked.status, 202);
    // pq-a comes back; its release is followed by lockReleaseDelay, so nobody takes the slot yet.
    await until(() => a!.last?.state === "idle", () => a!.tick(send));
    assert.deepEqual(await lockHolders(), []);
    clock.advance(119_500);
    // pq-c's agent checks in while it waits, so it is there to take the slot (a node is cordoned only then).
    assert.equal((await c.tick(send)).state, "pending");
    clock.advance(1_500);
    // pq-b happens to check in first once the delay is over, but pq-c's priority puts it ahead.
    const b2 = await b!.tick(send);
    assert.equal(b2.state, "pending");
    assert.deepEqual(await lockHolders(), ["pq-c"]);
    assert.match(b2.reason, /pq-c/);
    await finish([a!, b!, c], send, () => clock.advance(121_000));
    assert.deepEqual([a!.reboots, b!.reboots, c.reboots], [1, 1, 1]);
    await assertSettled(world, ["pq-a", "pq-b", "pq-c"]);
  });

  it("counts a node that is already NotReady against maxUnavailable", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("mu-a");
    sim.addNode("mu-b");
    sim.addNode("mu-c", { ready: false });
    await setPolicy({ concurrency: 3, maxUnavailable: 1 });
    const a = await TestAgent.on(sim, "mu-a", true);
    const b = await TestAgent.on(sim, "mu-b", true);

    const held = await a.tick();
    assert.equal(held.state, "pending");
    assert.match(held.reason, /^1 of \d+ nodes are unavailable \(mu-c\); maxUnavailable is 1$/);
    assert.deepEqual(await lockHolders(), []);

    sim.setNodeReady("mu-c", true);
    assert.equal((await a.tick()).action, "reboot");
    const second = await b.tick();
    assert.equal(second.state, "pending");
    assert.match(second.reason, /^1 of \d+ nodes are unavailable \(mu-a\); maxUnavailable is 1$/, "a node out for its reboot counts too");
    await finish([a, b]);
    assert.equal(a.reboots + b.reboots, 2);
    await assertSettled(world, ["mu-a", "mu-b", "mu-c"]);
  });
});

describe("blockers through the check-in path", () => {
  it("holds a node while a pod matching a blocking selector runs on it, and every node while one matching a cluster-wide selector runs anywhere", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("pb-a");
    sim.addNode("pb-b");
    sim.addNode("pb-c");
    sim.addPod("default", "pb-backup", { node: "pb-a", labels: { app: "pb-backup" }, ownerKind: "Job" });
    await setPolicy({ concurrency: 2, blockers: { podSelectors: ["app=pb-backup", { selector: "job in (pb-etl)", scope: "cluster" }] } });
    const a = await TestAgent.on(sim, "pb-a", true);
    const b = await TestAgent.on(sim, "pb-b", true);

    const onNode = await a.tick();
    assert.equal(onNode.state, "pending");
    assert.equal(onNode.reason, 'blocking pod default/pb-backup on node pb-a matches "app=pb-backup"');
    assert.ok(!isCordoned(world, "pb-a"));
    assert.equal((await b.tick()).action, "reboot", "the node-scoped selector does not hold other nodes");
    await finish([b]);

    sim.addPod("default", "pb-etl", { node: "pb-c", labels: { job: "pb-etl" }, ownerKind: "Job" });
    await deletePod(world, "default", "pb-backup");
    const inCluster = await a.tick();
    assert.equal(inCluster.state, "pending");
    assert.equal(inCluster.reason, 'blocking pod default/pb-etl on pb-c in the cluster matches "job in (pb-etl)"');
    assert.deepEqual(await lockHolders(), []);

    await deletePod(world, "default", "pb-etl");
    assert.equal((await a.tick()).action, "reboot");
    await finish([a]);
    await assertSettled(world, ["pb-a", "pb-b", "pb-c"]);
  });

  it("holds nodes while a Prometheus alert matching the filter fires, and lets them go when it only is pending", async () => {
    world.configure(LOCAL_OUTBOUND);
    const { sim } = world;
    sim.addNode("pm-a");
    let alerts: Record<string, string>[] = [
      { alertname: "KubeNodeNotReady", severity: "warning", alertstate: "firing" },
      { alertname: "Watchdog", alertstate: "firing" },
    ];
    const prometheus = await startCaptureServer((request) =>
      request.path === `/api/v1/query?query=${encodeURIComponent('ALERTS{alertstate="firing"}')}`
        ? { status: 200, body: alertsAnswer(alerts.filter((a) => a.alertstate === "firing")) }
        : { status: 404, body: "not found" },
    );
    try {
      await setPolicy({ blockers: { prometheus: { url: prometheus.url, alertFilterRegex: "^KubeNode", alertFilterMatchOnly: true, firingOnly: true } } });
      const agent = await TestAgent.on(sim, "pm-a", true);
      const firing = await agent.tick();
      assert.equal(firing.state, "pending");
      assert.equal(firing.reason, "1 active Prometheus alert: KubeNodeNotReady (firing)");
      assert.ok(prometheus.requests.some((r) => r.method === "GET" && r.path.startsWith("/api/v1/query?")));
      const held = await getStatus();
      assert.equal(held.body.queue[0].gateError, undefined, "an alert that fires is an ordinary hold, not a gate error");
      assert.deepEqual(held.body.gateErrors, []);
      assert.ok(!isCordoned(world, "pm-a"));

      alerts = [
        { alertname: "KubeNodeNotReady", alertstate: "pending" },
        { alertname: "Watchdog", alertstate: "firing" },
      ];
      assert.equal((await agent.tick()).action, "reboot", "a pending alert and an alert outside the filter do not block");
      await finish([agent]);
      await assertSettled(world, ["pm-a"]);
    } finally {
      await prometheus.close();
    }
  });

  it("checks the Prometheus alerts again before the reboot order: a drained node waits cordoned while an alert fires", async () => {
    world.configure(LOCAL_OUTBOUND);
    const { sim } = world;
    sim.addNode("pr-a");
    sim.addNode("pr-b");
    sim.addDeployment("default", "pr-web", { replicas: 2, nodes: ["pr-a"] });
    let alerts: Record<string, string>[] = [];
    const prometheus = await startCaptureServer(() => ({ status: 200, body: alertsAnswer(alerts) }));
    try {
      await setPolicy({ blockers: { prometheus: { url: prometheus.url } } });
      const clock = new ManualClock();
      // No wait within the check-in: the alert starts firing between the drain's start and its end.
      const { send } = await clocked(clock, { stepWaitMs: 0 });
      const agent = await TestAgent.on(sim, "pr-a", true);
      const started = await agent.tick(send);
      assert.equal(started.state, "draining", started.reason);
      alerts = [{ alertname: "EtcdHighLatency", alertstate: "firing" }];
      await until(
        () => agent.last?.reason?.startsWith("drained; reboot held") === true,
        async () => {
          clock.advance(2_000);
          await agent.tick(send);
        },
      );
      assert.equal(agent.last?.reason, "drained; reboot held: 1 active Prometheus alert: EtcdHighLatency (firing)");
      assert.equal(agent.last?.state, "draining");
      assert.equal(agent.reboots, 0);
      assert.ok(isCordoned(world, "pr-a"), "it waits cordoned");
      alerts = [];
      clock.advance(2_000);
      assert.equal((await agent.tick(send)).action, "reboot");
      await finish([agent], send, () => clock.advance(1_000));
      await assertSettled(world, ["pr-a", "pr-b"]);
    } finally {
      await prometheus.close();
    }
  });

  it("counts an unreachable Prometheus as blocking and reports it as a gate error in the answer and the status", async () => {
    world.configure(LOCAL_OUTBOUND);
    const { sim } = world;
    sim.addNode("pu-a");
    const gone = await startCaptureServer();
    await gone.close(); // its port now refuses connections
    await setPolicy({ blockers: { prometheus: { url: gone.url, timeoutSeconds: 2 } } });
    const agent = await TestAgent.on(sim, "pu-a", true);
    const answer = await agent.tick();
    assert.equal(answer.state, "pending");
    assert.match(answer.reason, new RegExp(`^blocked: prometheus failed: GET ${gone.url}/api/v1/query: .*ECONNREFUSED`));
    assert.ok(!isCordoned(world, "pu-a"));
    assert.deepEqual(await lockHolders(), []);
    const status = await getStatus();
    assert.equal(status.body.queue[0].holdReason, answer.reason);
    const error = answer.reason.replace("blocked: prometheus failed: ", "");
    assert.deepEqual(status.body.queue[0].gateError, { gate: "prometheus", error });
    assert.deepEqual(status.body.gateErrors, [{ gate: "prometheus", error, nodes: ["pu-a"] }]);
    assert.equal(status.body.nodes.find((n: { node: string }) => n.node === "pu-a").gateError.gate, "prometheus");

    await setPolicy({});
    assert.equal((await agent.tick()).action, "reboot", "without the Prometheus blocker the node goes");
    await finish([agent]);
    await assertSettled(world, ["pu-a"]);
  });

  it("does not cordon a node whose pods' PodDisruptionBudget allows no disruption", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("pdb-a");
    sim.addDeployment("db", "pdb-db", { replicas: 2, pdb: { minAvailable: 2 }, nodes: ["pdb-a"] });
    const agent = await TestAgent.on(sim, "pdb-a", true);

    const held = await agent.tick();
    assert.equal(held.state, "pending");
    assert.match(held.reason, /^not cordoning: PodDisruptionBudget db\/pdb-db allows no disruption now \(2 healthy, 2 required\) and covers db\/pdb-db-/);
    assert.ok(!isCordoned(world, "pdb-a"));
    assert.deepEqual(await lockHolders(), []);

    // Without the pre-check the node is cordoned and its drain stalls on the same budget.
    await setPolicy({ blockers: { pdbPrecheck: false } });
    const draining = await agent.tick();
    assert.equal(draining.state, "draining");
    assert.match(draining.reason, /protected by PodDisruptionBudget db\/pdb-db/);
    assert.ok(isCordoned(world, "pdb-a"));

    agent.rebootRequired = false;
    assert.equal((await agent.tick()).state, "idle");
    assert.equal(agent.reboots, 0);
    await assertSettled(world, ["pdb-a"]);
  });
});

describe("the health gate between nodes through the check-in path", () => {
  it("waits lockReleaseDelay after a release, then until the last node is Ready and no PodDisruptionBudget is short of pods", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("hg-a");
    sim.addNode("hg-b");
    sim.addNode("hg-c");
    sim.addDeployment("default", "hg-web", { replicas: 2, pdb: { minAvailable: 1 }, nodes: ["hg-c"] });
    await setPolicy({ health: { waitForHealthy: true, lockReleaseDelaySeconds: 120 } });
    const clock = new ManualClock();
    const { send } = await clocked(clock);
    const a = await TestAgent.on(sim, "hg-a", true);
    const b = await TestAgent.on(sim, "hg-b", true);

    assert.equal((await a.tick(send)).action, "reboot");
    assert.equal((await b.tick(send)).state, "pending");
    clock.advance(1_000);
    assert.equal((await a.tick(send)).state, "idle", "hg-a is back and released");
    const delayed = await b.tick(send);
    assert.equal(delayed.state, "pending");
    assert.match(delayed.reason, /^waiting 120 s more after node hg-a was released at .* \(lockReleaseDelaySeconds is 120\)$/);

    sim.setNodeReady("hg-a", false);
    clock.advance(120_000);
    const notReady = await b.tick(send);
    assert.equal(notReady.reason, "waiting for node hg-a, the last one released, to be Ready");

    sim.setNodeReady("hg-a", true);
    sim.setNodeReady("hg-c", false); // hg-web's pods are not Ready: its budget allows no disruption
    const short = await b.tick(send);
    assert.equal(short.state, "pending");
    assert.match(short.reason, /^waiting for workloads to come back after node hg-a: PodDisruptionBudget default\/hg-web \(0 of 2 healthy\) allows no disruption yet$/);
    assert.ok(!isCordoned(world, "hg-b"));

    sim.setNodeReady("hg-c", true);
    await until(
      () => b.reboots === 1,
      async () => {
        clock.advance(1_000);
        await b.tick(send);
      },
    );
    await finish([b], send, () => clock.advance(1_000));
    await assertSettled(world, ["hg-a", "hg-b", "hg-c"]);
  });
});

describe("the status route through the check-in path", () => {
  it("explains for each pending node which rule holds it back right now", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("st-a", { zone: "sz-1" });
    sim.addNode("st-b", { zone: "sz-1" });
    sim.addNode("st-c", { zone: "sz-2" });
    sim.addNode("st-d", { zone: "sz-2" });
    sim.addPod("default", "st-backup", { node: "st-c", labels: { app: "st-backup" }, ownerKind: "Job" });
    sim.addDeployment("default", "st-db", { replicas: 1, pdb: { minAvailable: 1 }, nodes: ["st-d"] });
    await setPolicy({ concurrency: 2, maxPerZone: 1, blockers: { podSelectors: ["app=st-backup"] } });
    const agents = await Promise.all(["st-a", "st-b", "st-c", "st-d"].map((name) => TestAgent.on(sim, name, true)));
    for (const agent of agents) await agent.tick();
    for (const agent of agents.slice(1)) await agent.tick(); // a second round: the reasons are current

    const status = await getStatus();
    assert.equal(status.status, 200);
    assert.deepEqual(status.body.lock.holders.map((h: { node: string }) => h.node), ["st-a"]);
    const queue = status.body.queue as { node: string; position: number; holdReason: string }[];
    assert.deepEqual(queue.map((q) => q.node).sort(), ["st-b", "st-c", "st-d"]);
    const why = Object.fromEntries(queue.map((q) => [q.node, q.holdReason]));
    assert.equal(why["st-b"], "zone sz-1 already has 1 node out (st-a); maxPerZone is 1");
    assert.equal(why["st-c"], 'blocking pod default/st-backup on node st-c matches "app=st-backup"');
    assert.match(why["st-d"]!, /^not cordoning: PodDisruptionBudget default\/st-db allows no disruption now \(1 healthy, 1 required\)/);
    const summary = Object.fromEntries((status.body.nodes as { node: string; state: string; holdReason?: string }[]).map((n) => [n.node, n]));
    assert.equal(summary["st-b"]!.holdReason, why["st-b"]);
    assert.equal(summary["st-a"]!.state, "reboot-ordered");

    // The others no longer need a reboot; they say so before st-a's release frees the zone.
    for (const agent of agents.slice(1)) {
      agent.rebootRequired = false;
      assert.equal((await agent.tick()).state, "idle");
    }
    await finish(agents);
    await assertSettled(world, ["st-a", "st-b", "st-c", "st-d"]);
    assert.equal((await getStatus()).body.queue.length, 0);
  });
});

describe("policy validation through the API", () => {
  it("rejects an invalid PUT with 400 naming each option, and leaves the stored policy in force", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("val-a");
    const good = { windows: [{ days: ["sat"], start: "02:00", end: "05:00", timeZone: "Europe/Berlin" }], maxPerZone: 1 };
    const stored = await setPolicy(good);

    const bad = await putClusterPolicy({
      concurrency: 0,
      maxPerZone: "one",
      windows: [{ days: ["someday"], start: "25:00", end: "05:00", timeZone: "Mars/Olympus" }],
      drain: { podSelector: "app in (", gracePeriod: 30 },
      drainFailurePolicy: { mode: "panic" },
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, "invalid_policy");
    const fields = (bad.body.error.problems as { field: string; message: string }[]).map((p) => p.field);
    for (const field of ["concurrency", "maxPerZone", "windows.0.days.0", "windows.0.start", "windows.0.timeZone", "drain.podSelector", "drain", "drainFailurePolicy.mode"]) {
      assert.ok(fields.includes(field), `a problem names ${field}: ${JSON.stringify(bad.body.error.problems)}`);
    }
    const byField = Object.fromEntries((bad.body.error.problems as { field: string; message: string }[]).map((p) => [p.field, p.message]));
    assert.match(byField.concurrency!, /whole number from 1 to 1000/);
    assert.match(byField["windows.0.timeZone"]!, /"Mars\/Olympus" is not an IANA time zone/);
    assert.match(byField.drain!, /unknown option "gracePeriod"; accepted options here: .*gracePeriodSeconds/);

    // Valid on its own but unworkable with the defaults: a window shorter than the drain timeout.
    const tooShort = await putClusterPolicy({ windows: [{ start: "02:00", end: "02:10" }] });
    assert.equal(tooShort.status, 400);
    assert.equal(tooShort.body.error.problems[0].field, "windows.0");
    assert.match(tooShort.body.error.problems[0].message, /10 min long, shorter than the drain timeout \(15 min\)/);

    const after = await getClusterPolicy();
    assert.equal(after.status, 200);
    assert.deepEqual(after.body.policy, good, "the stored document is unchanged");
    assert.equal(after.body.updatedAt, stored.body.updatedAt);
    assert.equal(after.body.effective.concurrency, 1);

    // And the check-in path still follows the stored policy.
    const { send } = await clocked(new ManualClock(new Date("2026-03-04T12:00:00Z")));
    const agent = await TestAgent.on(sim, "val-a", true);
    assert.match((await agent.tick(send)).reason, /^outside the reboot window; it next opens Sat 2026-03-07 02:00/);
    assert.equal((await record("val-a")).state, "pending");
  });
});
