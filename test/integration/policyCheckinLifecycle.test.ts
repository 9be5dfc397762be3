import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { nodeAnnotations } from "../../shared/kube/clusterApi";
import { startCaptureServer, type CapturedRequest } from "../support/webhookServer";
import {
  assertSettled,
  finish,
  deletePod,
  isCordoned,
  labelsOf,
  lockHolders,
  postRelease,
  record,
  setPolicy,
  taintsOf,
  until,
} from "../support/policyWorld";
import { clocked, ManualClock, postCheckin, TestAgent, useWorld } from "../support/world";

/**
 * The reboot policy's lifecycle options end to end through the check-in path: what happens to the
 * node object (taint, labels, cordon), to its pods (drain selector), when the reboot is ordered
 * (delay, forced), what a failed drain leads to (quarantine, force-after), the reboot-loop breaker,
 * and the notifications a local webhook server receives.
 */

const world = useWorld({ simOptions: { terminationDelayMs: 20, podStartDelayMs: 40 } });

type Send = Parameters<TestAgent["tick"]>[0];

const PENDING_TAINT = "rollcall.io/reboot-pending";

describe("node changes through the check-in path", () => {
  it("puts a PreferNoSchedule taint on nodes waiting for their turn and removes it when they are done or no longer need a reboot", async () => {
    world.configure();
    const { sim } = world;
    for (const name of ["tn-a", "tn-b", "tn-c"]) sim.addNode(name);
    await setPolicy({ preferNoScheduleTaint: { enabled: true } });
    const [a, b, c] = await Promise.all(["tn-a", "tn-b", "tn-c"].map((name) => TestAgent.on(sim, name, true)));

    assert.equal((await a!.tick()).action, "reboot");
    assert.equal((await b!.tick()).state, "pending");
    assert.equal((await c!.tick()).state, "pending");
    assert.deepEqual(taintsOf(world, "tn-a"), [], "the node that went at once never waited");
    for (const name of ["tn-b", "tn-c"]) {
      assert.deepEqual(
        taintsOf(world, name).filter((t) => t.key === PENDING_TAINT).map((t) => t.effect),
        ["PreferNoSchedule"],
        `${name} carries the taint while queued`,
      );
    }

    c!.rebootRequired = false;
    assert.equal((await c!.tick()).state, "idle");
    assert.deepEqual(taintsOf(world, "tn-c"), [], "removed when the node no longer needs a reboot");
    assert.ok(taintsOf(world, "tn-b").some((t) => t.key === PENDING_TAINT), "still queued, still tainted");

    await finish([a!, b!, c!]);
    assert.equal(b!.reboots, 1);
    assert.deepEqual(taintsOf(world, "tn-b"), [], "removed when its turn is done");
    await assertSettled(world, ["tn-a", "tn-b", "tn-c"]);
  });

  it("removes a PreferNoSchedule taint left from when the option was on once the node no longer needs a reboot", async () => {
    world.configure();
    const { sim } = world;
    for (const name of ["tl-a", "tl-b"]) sim.addNode(name);
    await setPolicy({ preferNoScheduleTaint: { enabled: true } });
    const [a, b] = await Promise.all(["tl-a", "tl-b"].map((name) => TestAgent.on(sim, name, true)));
    assert.equal((await a!.tick()).action, "reboot");
    assert.equal((await b!.tick()).state, "pending");
    assert.ok(taintsOf(world, "tl-b").some((t) => t.key === PENDING_TAINT));

    await setPolicy({}); // the option is turned off while tl-b is queued
    b!.rebootRequired = false;
    assert.equal((await b!.tick()).state, "idle");
    assert.deepEqual(taintsOf(world, "tl-b"), [], "no taint is left behind");
    await finish([a!, b!]);
    await assertSettled(world, ["tl-a", "tl-b"]);
  });

  it("sets the pre-reboot labels before the reboot and swaps them for the post-reboot labels once it is confirmed", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("lb-a");
    await setPolicy({ nodeLabels: { preReboot: { "example.com/reboot": "in-progress", "example.com/draining": "true" }, postReboot: { "example.com/reboot": "done" } } });
    const agent = await TestAgent.on(sim, "lb-a", true);
    let atOrder: Record<string, string> | undefined;
    const send: Send = async (node, body) => {
      const answer = await postCheckin(node, body);
      if (answer.body.action === "reboot") atOrder ??= labelsOf(world, node);
      return answer;
    };
    assert.equal((await agent.tick(send)).action, "reboot");
    assert.equal(atOrder?.["example.com/reboot"], "in-progress");
    assert.equal(atOrder?.["example.com/draining"], "true");
    await finish([agent], send);
    const after = labelsOf(world, "lb-a");
    assert.equal(after["example.com/reboot"], "done");
    assert.equal(after["example.com/draining"], undefined, "a pre-reboot label the post-reboot set does not name is removed");
    assert.equal(after["kubernetes.io/hostname"], "lb-a", "other labels are left alone");
    await assertSettled(world, ["lb-a"]);
  });

  it("evicts only the pods the drain pod selector selects and leaves the others running through the reboot", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("ds-a");
    sim.addDeployment("default", "ds-web", { replicas: 2, labels: { app: "ds-web", tier: "web" }, nodes: ["ds-a"] });
    sim.addDeployment("default", "ds-cache", { replicas: 1, labels: { app: "ds-cache", tier: "cache" }, nodes: ["ds-a"] });
    const podsOn = (tier: string) => sim.pods({ node: "ds-a" }).filter((p) => p.metadata.labels?.tier === tier).map((p) => p.metadata.name).sort();
    const webBefore = podsOn("web");
    const cacheBefore = podsOn("cache");
    assert.equal(webBefore.length, 2);
    assert.equal(cacheBefore.length, 1);
    await setPolicy({ drain: { podSelector: "tier=web" } });
    const agent = await TestAgent.on(sim, "ds-a", true);
    let atOrder: { web: string[]; cache: string[] } | undefined;
    const send: Send = async (node, body) => {
      const answer = await postCheckin(node, body);
      if (answer.body.action === "reboot") atOrder ??= { web: podsOn("web"), cache: podsOn("cache") };
      return answer;
    };
    await until(() => agent.reboots === 1, () => agent.tick(send));
    assert.deepEqual(atOrder, { web: [], cache: cacheBefore }, "at the reboot order only the unselected pod is left on the node");
    await finish([agent], send);
    assert.deepEqual(podsOn("cache"), cacheBefore, "the unselected pod was never evicted");
    assert.equal(sim.getPod("default", cacheBefore[0]!)?.metadata.deletionTimestamp, undefined);
    for (const name of webBefore) assert.equal(sim.getPod("default", name), undefined, `${name} was evicted`);
    await assertSettled(world, ["ds-a"]);
  });
});

describe("when the reboot is ordered, through the check-in path", () => {
  it("waits delayBeforeReboot after the drain before ordering the reboot", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("dl-a");
    await setPolicy({ drain: { delayBeforeRebootSeconds: 300 } });
    const clock = new ManualClock();
    const { send } = await clocked(clock);
    const agent = await TestAgent.on(sim, "dl-a", true);

    const drained = await agent.tick(send);
    assert.equal(drained.action, "wait");
    assert.equal(drained.state, "draining");
    assert.equal(drained.reason, "drained; waiting 300 s more before ordering the reboot (drain.delayBeforeRebootSeconds)");
    assert.ok(isCordoned(world, "dl-a"));
    clock.advance(200_000);
    assert.equal((await agent.tick(send)).reason, "drained; waiting 100 s more before ordering the reboot (drain.delayBeforeRebootSeconds)");
    assert.equal(agent.reboots, 0);
    clock.advance(100_000);
    assert.equal((await agent.tick(send)).action, "reboot");
    await finish([agent], send);
    await assertSettled(world, ["dl-a"]);
  });

  it("reboots anyway when the drain times out with forceRebootAfterTimeout", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("fr-a");
    sim.addDeployment("db", "fr-db", { replicas: 2, pdb: { minAvailable: 2 }, nodes: ["fr-a"] });
    await setPolicy({ blockers: { pdbPrecheck: false }, drain: { timeoutMinutes: 10, forceRebootAfterTimeout: true } });
    const clock = new ManualClock();
    const { send } = await clocked(clock);
    const agent = await TestAgent.on(sim, "fr-a", true);

    const blocked = await agent.tick(send);
    assert.equal(blocked.state, "draining");
    assert.match(blocked.reason, /protected by PodDisruptionBudget db\/fr-db/);
    clock.advance(5 * 60_000);
    assert.equal((await agent.tick(send)).state, "draining", "still within the drain timeout");
    clock.advance(6 * 60_000);
    const forced = await agent.tick(send);
    assert.equal(forced.action, "reboot");
    assert.match(forced.reason, /^drain timed out after 10 min: pod db\/fr-db-\S+ is protected by PodDisruptionBudget db\/fr-db.*; rebooting anyway \(drain.forceRebootAfterTimeout\)$/);
    assert.equal(sim.pods({ node: "fr-a", namespace: "db" }).length, 2, "the protected pods were still on the node");
    await finish([agent], send, () => clock.advance(1_000));
    assert.equal(agent.reboots, 1);
    await assertSettled(world, ["fr-a"]);
  });
});

describe("the drain-failure policy through the check-in path", () => {
  it("quarantines a node whose drain failed: it stays cordoned and labelled until POST …/release, then takes a fresh turn", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("q-a");
    sim.addPod("default", "q-bare", { node: "q-a" });
    await setPolicy({ drainFailurePolicy: { mode: "quarantine", label: "example.com/quarantined" } });
    const agent = await TestAgent.on(sim, "q-a", true);

    const failed = await agent.tick();
    assert.equal(failed.action, "none");
    assert.equal(failed.state, "quarantined");
    assert.match(failed.reason, /^drain refused: pod default\/q-bare is not managed by a controller \(allow with forceUnmanaged\); drain failed; quarantined by the drain-failure policy \(label example.com\/quarantined\), release it with POST …\/release$/);
    const node = sim.getNode("q-a")!;
    assert.equal(node.spec?.unschedulable, true, "left cordoned");
    assert.equal(node.metadata.labels?.["example.com/quarantined"], "true");
    assert.equal(node.metadata.annotations?.[nodeAnnotations.state], "quarantined", "kubectl shows the state");
    assert.equal((await record("q-a")).state, "quarantined");
    assert.deepEqual(await lockHolders(), [], "a quarantined node holds no slot");
    assert.equal((await agent.tick()).state, "quarantined", "it stays quarantined");
    assert.equal(agent.reboots, 0);

    await deletePod(world, "default", "q-bare"); // the operator deals with the pod
    const released = await postRelease("q-a");
    assert.equal(released.status, 200, released.text);
    assert.equal(released.body.released, true);
    assert.equal(labelsOf(world, "q-a")["example.com/quarantined"], undefined, "the quarantine label is removed");
    await finish([agent]);
    assert.equal(agent.reboots, 1, "the node still needed its reboot and got it");
    assert.equal(sim.getNode("q-a")!.metadata.annotations?.[nodeAnnotations.state], undefined);
    await assertSettled(world, ["q-a"]);
  });

  it("retries a failing drain with force-after and reboots without a complete drain once the deadline has passed", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("fa-a");
    sim.addPod("default", "fa-bare", { node: "fa-a" });
    await setPolicy({ drainFailurePolicy: { mode: "force-after", deadlineMinutes: 60 } });
    const start = new Date("2026-03-04T10:00:00Z");
    const clock = new ManualClock(start);
    const { send } = await clocked(clock);
    const agent = await TestAgent.on(sim, "fa-a", true);

    const first = await agent.tick(send);
    assert.equal(first.state, "drain-failed");
    assert.match(first.reason, /drain failed \(1 in a row\); retrying at 2026-03-04T10:30:00.000Z, forced after 2026-03-04T11:00:00.000Z$/);
    assert.ok(!isCordoned(world, "fa-a"), "uncordoned while it waits to retry");
    assert.deepEqual(await lockHolders(), []);
    clock.advance(10 * 60_000);
    assert.equal((await agent.tick(send)).state, "drain-failed", "not before the back-off");

    clock.now = new Date("2026-03-04T10:31:00Z");
    const second = await agent.tick(send);
    assert.equal(second.state, "drain-failed");
    assert.match(second.reason, /drain failed \(2 in a row\); retrying at 2026-03-04T11:00:00.000Z, forced after 2026-03-04T11:00:00.000Z$/);

    clock.now = new Date("2026-03-04T11:00:00Z");
    const forced = await agent.tick(send);
    assert.equal(forced.action, "reboot");
    assert.match(forced.reason, /drain still failing 60 min after the first failure: rebooting without a complete drain \(force-after\)$/);
    assert.ok(sim.getPod("default", "fa-bare"), "the pod the drain refused is still there");
    await finish([agent], send);
    assert.equal(agent.reboots, 1);
    const done = await record("fa-a");
    assert.equal(done.failures, undefined, "the failures are forgotten after a completed reboot");
    await assertSettled(world, ["fa-a"]);
  });
});

describe("the reboot-loop breaker through the check-in path", () => {
  it("quarantines a node whose sentinel is still there after a confirmed reboot, and lets an operator release it", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("rl-a");
    const agent = await TestAgent.on(sim, "rl-a", true);
    // The sentinel survives the reboot: the agent keeps reporting that a reboot is required.
    await until(
      () => agent.last?.state === "quarantined",
      async () => {
        await agent.tick();
        agent.rebootRequired = true;
      },
    );
    assert.equal(agent.reboots, 1);
    assert.match(agent.last!.reason, /^reboot loop: the sentinel is still present after a confirmed reboot \(linux-image-azure\); rebooting again would not help; quarantined$/);
    assert.ok(isCordoned(world, "rl-a"), "left cordoned");
    assert.equal(labelsOf(world, "rl-a")["rollcall.io/quarantined"], "true");
    assert.deepEqual(await lockHolders(), []);
    for (let i = 0; i < 3; i++) assert.equal((await agent.tick()).action, "none");
    assert.equal(agent.reboots, 1, "no further reboot");

    agent.rebootRequired = false; // the operator fixed what kept the sentinel
    assert.equal((await agent.tick()).state, "quarantined");
    const released = await postRelease("rl-a");
    assert.equal(released.status, 200, released.text);
    assert.equal(released.body.state, "idle");
    assert.equal(labelsOf(world, "rl-a")["rollcall.io/quarantined"], undefined);
    assert.equal((await agent.tick()).state, "idle");
    assert.equal((await record("rl-a")).consecutiveReboots, undefined, "the count starts afresh");
    await assertSettled(world, ["rl-a"]);
  });

  it("holds a node that asks again after maxConsecutiveReboots reboots within a day, without cordoning it, until released", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("rl-b");
    await setPolicy({ rebootLoop: { maxConsecutiveReboots: 2 } });
    const agent = await TestAgent.on(sim, "rl-b", true);
    // Each reboot clears the sentinel, and the next patch run brings it back at once.
    for (let round = 1; round <= 2; round++) {
      await until(() => agent.reboots === round && agent.last?.state === "idle", () => agent.tick());
      agent.rebootRequired = true;
    }
    const held = await agent.tick();
    assert.equal(held.state, "quarantined");
    assert.equal(held.action, "none");
    assert.match(held.reason, /^reboot loop: the node asks for another reboot after 2 reboots in a row, the last at .*\(rebootLoop.maxConsecutiveReboots is 2\); held until an operator releases it$/);
    assert.equal(isCordoned(world, "rl-b"), false, "a node that runs fine is not cordoned");
    assert.equal(labelsOf(world, "rl-b")["rollcall.io/quarantined"], "true");
    assert.equal(agent.reboots, 2);

    assert.equal((await postRelease("rl-b")).status, 200);
    assert.equal(labelsOf(world, "rl-b")["rollcall.io/quarantined"], undefined);
    await until(() => agent.reboots === 3 && agent.last?.state === "idle", () => agent.tick());
    await assertSettled(world, ["rl-b"]);
  });
});

describe("notifications through the check-in path", () => {
  const eventsOf = (requests: CapturedRequest[], node: string, key: (body: any) => string) =>
    requests.filter((r) => JSON.stringify(r.body).includes(node)).map((r) => key(r.body));

  it("posts generic JSON for drain start, reboot, completion and a failed drain to the webhook", async () => {
    world.configure({ ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK: "true" }); // the webhook server listens on loopback
    const { sim } = world;
    sim.addNode("nt-a");
    sim.addNode("nt-f");
    sim.addDeployment("default", "nt-web", { replicas: 1, nodes: ["nt-a"] });
    sim.addPod("default", "nt-bare", { node: "nt-f" });
    const hook = await startCaptureServer();
    try {
      await setPolicy({ concurrency: 2, notifications: { webhookUrl: `${hook.url}/hooks/rollcall`, format: "generic" } });
      const a = await TestAgent.on(sim, "nt-a", true);
      const f = await TestAgent.on(sim, "nt-f", true);
      await finish([a]);
      assert.equal((await f.tick()).state, "drain-failed");

      assert.ok(hook.requests.every((r) => r.method === "POST" && r.path === "/hooks/rollcall" && r.headers["content-type"] === "application/json"));
      const bodies = hook.requests.map((r) => r.body as Record<string, string>);
      assert.deepEqual(
        bodies.map((b) => `${b.node}:${b.event}`),
        ["nt-a:drainStart", "nt-a:reboot", "nt-a:complete", "nt-f:drainStart", "nt-f:failure"],
      );
      const [drainStart, reboot, complete, , failure] = bodies;
      for (const body of bodies) {
        assert.deepEqual(Object.keys(body).sort(), ["at", "cluster", "event", "from", "message", "node", "source", "state", "why"]);
        assert.equal(body.source, "rollcall");
        assert.equal(body.cluster, "prod");
        assert.ok(!Number.isNaN(Date.parse(body.at!)));
      }
      assert.deepEqual([drainStart!.from, drainStart!.state], ["cordoning", "draining"]);
      assert.equal(drainStart!.message, "Draining node nt-a in cluster prod before its reboot: cordoned");
      assert.deepEqual([reboot!.state, reboot!.message], ["reboot-ordered", "Rebooting node nt-a in cluster prod"]);
      assert.deepEqual([complete!.from, complete!.state], ["rebooted", "releasing"]);
      assert.equal(complete!.message, "Node nt-a in cluster prod rebooted and is back in service");
      assert.equal(failure!.state, "releasing");
      assert.match(failure!.message!, /^Reboot of node nt-f in cluster prod failed \(releasing\): drain refused: pod default\/nt-bare is not managed by a controller/);
      assert.match(failure!.why!, /drain failed \(1 in a row\); retrying after 30 min/);
    } finally {
      await hook.close();
    }
    await assertSettled(world, ["nt-a"]);
  });

  it("posts Slack and Teams payloads with the policy's message templates", async () => {
    world.configure({ ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK: "true" }); // the webhook server listens on loopback
    const { sim } = world;
    sim.addNode("sl-a");
    sim.addNode("tm-a");
    sim.addNode("tm-q");
    sim.addPod("default", "tm-bare", { node: "tm-q" });
    const hook = await startCaptureServer();
    try {
      const templates = { reboot: "{{event}}: rebooting {{node}} of {{cluster}} for {{reasons}}", complete: "{{node}} is back ({{from}} → {{state}})" };
      await setPolicy({ notifications: { webhookUrl: `${hook.url}/slack`, format: "slack", templates, events: ["reboot", "complete"] } });
      const slack = await TestAgent.on(sim, "sl-a", true);
      await finish([slack]);
      const slackBodies = hook.requests.map((r) => r.body as any);
      assert.deepEqual(
        slackBodies.map((b) => b.text),
        ["reboot: rebooting sl-a of prod for linux-image-azure", "sl-a is back (rebooted → releasing)"],
        "only the chosen events, with the templates rendered",
      );
      for (const body of slackBodies) {
        assert.equal(body.blocks[0].type, "section");
        assert.equal(body.blocks[0].text.type, "mrkdwn");
        assert.equal(body.blocks[1].type, "context");
        assert.match(body.blocks[1].elements[0].text, /cluster `prod` · node `sl-a` · /);
      }
      assert.equal(slackBodies[0].blocks[0].text.text, "*Reboot ordered* — reboot: rebooting sl-a of prod for linux-image-azure");
      assert.equal(slackBodies[1].blocks[0].text.text, "*Reboot complete* — sl-a is back (rebooted → releasing)");

      hook.requests.length = 0;
      await setPolicy({
        notifications: { webhookUrl: `${hook.url}/teams`, format: "teams", templates: { failure: "{{node}} quarantined: {{why}}" } },
        drainFailurePolicy: { mode: "quarantine" },
      });
      const teams = await TestAgent.on(sim, "tm-a", true);
      await finish([teams]);
      const quarantined = await TestAgent.on(sim, "tm-q", true);
      assert.equal((await quarantined.tick()).state, "quarantined");
      const cards = hook.requests.map((r) => r.body as any);
      assert.ok(hook.requests.every((r) => r.path === "/teams"));
      for (const card of cards) {
        assert.equal(card.type, "message");
        assert.equal(card.attachments.length, 1);
        assert.equal(card.attachments[0].contentType, "application/vnd.microsoft.card.adaptive");
        assert.equal(card.attachments[0].content.type, "AdaptiveCard");
      }
      const titles = cards.map((c) => `${c.attachments[0].content.body[2].facts[1].value}: ${c.attachments[0].content.body[0].text}`);
      assert.deepEqual(titles, [
        "tm-a: Rollcall: Drain started",
        "tm-a: Rollcall: Reboot ordered",
        "tm-a: Rollcall: Reboot complete",
        "tm-q: Rollcall: Drain started",
        "tm-q: Rollcall: Reboot failed",
      ]);
      const failure = cards.at(-1).attachments[0].content;
      assert.equal(failure.body[0].color, "Attention");
      assert.match(failure.body[1].text, /^tm-q quarantined: drain refused: pod default\/tm-bare is not managed by a controller.*quarantined by the drain-failure policy/);
      assert.deepEqual(failure.body[2].facts.slice(0, 3), [
        { title: "Cluster", value: "prod" },
        { title: "Node", value: "tm-q" },
        { title: "State", value: "releasing → quarantined" },
      ]);
    } finally {
      await hook.close();
    }
    await assertSettled(world, ["sl-a", "tm-a"]);
    await deletePod(world, "default", "tm-bare");
    assert.equal((await postRelease("tm-q")).status, 200);
  });

  it("reboots normally when the webhook fails or cannot be reached", async () => {
    world.configure({ ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK: "true" }); // the webhook server listens on loopback
    const { sim } = world;
    sim.addNode("wf-a");
    sim.addNode("wf-b");
    const failing = await startCaptureServer(() => ({ status: 500, body: "boom" }));
    const gone = await startCaptureServer();
    await gone.close();
    try {
      await setPolicy({ notifications: { webhookUrl: failing.url, format: "generic" } });
      const a = await TestAgent.on(sim, "wf-a", true);
      await finish([a]);
      assert.equal(a.reboots, 1);
      assert.deepEqual(
        failing.requests.map((r) => (r.body as { event: string }).event),
        ["drainStart", "reboot", "complete"],
        "every notification was tried once, and each failure was only logged",
      );

      await setPolicy({ notifications: { webhookUrl: gone.url, format: "slack" } });
      const b = await TestAgent.on(sim, "wf-b", true);
      await finish([b]);
      assert.equal(b.reboots, 1);
    } finally {
      await failing.close();
    }
    await assertSettled(world, ["wf-a", "wf-b"]);
  });
});
