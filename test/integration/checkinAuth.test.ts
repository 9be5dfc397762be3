import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { HttpRequest, InvocationContext } from "@azure/functions";
import { checkin } from "../../functions/checkin";
import { clusterStatus } from "../../functions/clusterStatus";
import { AgentAuthenticator, AgentAuthError, POD_NAME_EXTRA, POD_UID_EXTRA, resetAgentAuthForTests } from "../../shared/auth/tokenReview";
import { HttpError } from "../../shared/http/http";
import { getRollcall, resetForTests } from "../../shared/orchestrator/fromConfig";
import { resetTelemetry, useMemoryTelemetry } from "../../shared/telemetry/telemetry";
import { FakeClusterApi } from "../support/fakeClusterApi";
import { call, leaksInternals } from "../support/operatorCalls";
import { CLUSTER, invocation, useWorld } from "../support/world";

/**
 * Check-ins are authenticated against the simulated API server, which answers TokenReviews as the
 * captured kube-apiserver does (test/integration/kubeSimConformance.test.ts). Each forged check-in
 * below is one a workload on a real node could send.
 */

const world = useWorld();
const AGENT_NS = "rollcall";
const AGENT = "rollcall-agent";
const BOOT = "0b5f0f43-8d0c-4d5e-9a52-2a1f3e4c5d6e";

function configure(settings: Record<string, string> = {}): void {
  delete process.env.ROLLCALL_AGENT_AUDIENCE;
  world.configure({ ROLLCALL_AGENT_AUTH: "tokenreview", ...settings });
  resetAgentAuthForTests();
}

/** Nodes with the agent DaemonSet's pod on each, as the shipped manifests place it. */
function nodesWithAgents(...nodes: string[]): void {
  for (const node of nodes) world.sim.addNode(node);
  if (!world.sim.pods({ namespace: AGENT_NS }).length) world.sim.addDaemonSet(AGENT_NS, AGENT, { labels: { "app.kubernetes.io/name": AGENT } });
}

function agentPod(node: string) {
  const pod = world.sim.pods({ namespace: AGENT_NS, node }).find((p) => !p.metadata.deletionTimestamp);
  assert.ok(pod, `an agent pod runs on ${node}`);
  return pod;
}

function agentToken(node: string, options: { audiences?: string[]; expiresInSeconds?: number } = {}): string {
  return world.sim.issueServiceAccountToken({ namespace: AGENT_NS, serviceAccount: AGENT, pod: agentPod(node).metadata.name, audiences: ["rollcall"], ...options });
}

const report = (rebootRequired: boolean, bootId = BOOT) => ({ bootId, rebootRequired, reasons: rebootRequired ? ["linux-image"] : [], agentVersion: "1.0.0" });

async function postCheckin(node: string, authorization: string | undefined, rebootRequired = true, context: InvocationContext = invocation(), bootId = BOOT) {
  const request = new HttpRequest({
    method: "POST",
    url: `http://localhost/api/clusters/${CLUSTER}/nodes/${node}/checkin`,
    params: { cluster: CLUSTER, node },
    headers: { "content-type": "application/json", ...(authorization === undefined ? {} : { authorization }) },
    body: { string: JSON.stringify(report(rebootRequired, bootId)) },
  });
  const response = await checkin(request, context);
  return { status: response.status ?? 200, body: response.jsonBody as any, text: JSON.stringify(response.jsonBody) };
}

async function record(node: string) {
  return (await (await getRollcall()).store.get(CLUSTER, node))?.value;
}

const tokenReviews = () => world.sim.requestLog.filter((r) => r.path.endsWith("/tokenreviews")).length;

function assertRefused(answer: { status: number; body: any; text: string }, status: number, code: string, message: RegExp): void {
  assert.equal(answer.status, status, answer.text);
  assert.equal(answer.body.error.code, code, answer.text);
  assert.match(answer.body.error.message, message);
  assert.ok(!leaksInternals(answer.text), answer.text);
}

/** An idle node the genuine agent registered; the test then forges check-ins against it. */
async function registeredIdle(node: string) {
  nodesWithAgents(node);
  assert.equal((await postCheckin(node, `Bearer ${agentToken(node)}`, false)).status, 200);
  return (await record(node))!;
}

describe("check-in authentication", () => {
  it("accepts the agent DaemonSet's pod token for its own node and records which pod asked for the reboot", async () => {
    configure();
    nodesWithAgents("auth-ok");
    const first = await postCheckin("auth-ok", `Bearer ${agentToken("auth-ok")}`);
    assert.equal(first.status, 200, first.text);
    const pod = agentPod("auth-ok");
    assert.equal((await record("auth-ok"))?.rebootReportedBy, `${AGENT_NS}/${pod.metadata.name} (uid ${pod.metadata.uid})`);
  });

  it("takes the agent's token from its own header, which App Service authentication leaves alone", async () => {
    configure();
    nodesWithAgents("auth-header");
    const request = new HttpRequest({
      method: "POST",
      url: `http://localhost/api/clusters/${CLUSTER}/nodes/auth-header/checkin`,
      params: { cluster: CLUSTER, node: "auth-header" },
      headers: { "content-type": "application/json", "x-rollcall-agent-token": agentToken("auth-header"), authorization: "Bearer an-entra-token-for-someone-else" },
      body: { string: JSON.stringify(report(true)) },
    });
    const response = await checkin(request, invocation());
    assert.equal(response.status ?? 200, 200, JSON.stringify(response.jsonBody));
    assert.equal((await record("auth-header"))?.rebootRequired, true);
  });

  it("refuses a pod of another ServiceAccount on the node, even with a projected rollcall token, and writes nothing", async () => {
    configure();
    const before = await registeredIdle("auth-sa");
    // The attack from the issue: any workload may mount a token with audience rollcall.
    world.sim.addPod("apps", "innocent-looking", { node: "auth-sa" });
    const forged = world.sim.issueServiceAccountToken({ namespace: "apps", serviceAccount: "default", pod: "innocent-looking", audiences: ["rollcall"] });
    assertRefused(await postCheckin("auth-sa", `Bearer ${forged}`), 403, "wrong_service_account", /system:serviceaccount:apps:default, not to the agent's ServiceAccount rollcall\/rollcall-agent/);
    assert.deepEqual(await record("auth-sa"), before, "the node's record is untouched");
    assert.equal(world.sim.getNode("auth-sa")?.spec?.unschedulable, undefined);
  });

  it("cannot withdraw another node's pending reboot with a forged token", async () => {
    configure({ ROLLCALL_CONCURRENCY: "1" });
    nodesWithAgents("auth-holder", "auth-queued");
    assert.equal((await postCheckin("auth-holder", `Bearer ${agentToken("auth-holder")}`)).status, 200);
    assert.equal((await postCheckin("auth-queued", `Bearer ${agentToken("auth-queued")}`)).status, 200);
    const queued = await record("auth-queued");
    assert.equal(queued?.state, "pending");
    world.sim.addPod("apps", "canceller", { node: "auth-queued" });
    const forged = world.sim.issueServiceAccountToken({ namespace: "apps", serviceAccount: "default", pod: "canceller", audiences: ["rollcall"] });
    assertRefused(await postCheckin("auth-queued", `Bearer ${forged}`, false), 403, "wrong_service_account", /apps:default/);
    assert.equal((await record("auth-queued"))?.state, "pending");
    assert.equal((await record("auth-queued"))?.rebootRequired, true);
  });

  it("refuses a pod that runs as the agent's ServiceAccount but is not the agent DaemonSet's", async () => {
    configure();
    const before = await registeredIdle("auth-owner");
    world.sim.addPod(AGENT_NS, "lookalike", { node: "auth-owner" });
    const token = world.sim.issueServiceAccountToken({ namespace: AGENT_NS, serviceAccount: AGENT, pod: "lookalike", audiences: ["rollcall"] });
    assertRefused(await postCheckin("auth-owner", `Bearer ${token}`), 403, "wrong_pod", /owned by no controller, not by the agent DaemonSet rollcall\/rollcall-agent/);
    assert.deepEqual(await record("auth-owner"), before);
  });

  it("refuses a deleted agent pod's token at once, although the API server still accepts it for a few seconds", async () => {
    configure();
    await registeredIdle("auth-gone");
    const pod = agentPod("auth-gone");
    const token = agentToken("auth-gone");
    assert.equal((await postCheckin("auth-gone", `Bearer ${token}`, false)).status, 200, "the token worked while its pod lived");
    world.sim.deletePod(AGENT_NS, pod.metadata.name);
    // kube-apiserver answers from its authentication cache for ~10 s after the delete; Rollcall reads the pod.
    assertRefused(await postCheckin("auth-gone", `Bearer ${token}`), 403, "wrong_pod", /no longer exists/);
    const after = await record("auth-gone");
    assert.equal(after?.rebootRequired, false, "the reboot requirement of a dead pod's token was not recorded");
    assert.equal(after?.state, "idle");
  });

  it("never lets a remembered review authorise a change once the pod is gone", async () => {
    configure();
    world.sim.tokenAuthenticationCacheMs = 0;
    try {
      await registeredIdle("auth-cache");
      const token = agentToken("auth-cache");
      for (let i = 0; i < 2; i++) assert.equal((await postCheckin("auth-cache", `Bearer ${token}`, false)).status, 200);
      world.sim.deletePod(AGENT_NS, agentPod("auth-cache").metadata.name);
      const reviews = tokenReviews();
      assertRefused(await postCheckin("auth-cache", `Bearer ${token}`, true), 401, "invalid_token", /invalidated/);
      assert.equal(tokenReviews() - reviews, 1, "a check-in that would change the node is reviewed afresh");
      assert.equal((await record("auth-cache"))?.rebootRequired, false);
    } finally {
      world.sim.tokenAuthenticationCacheMs = 10_000;
    }
  });

  it("reuses a review only for idle check-ins that change nothing: one storage read and no Kubernetes call", async () => {
    configure();
    await registeredIdle("auth-idle");
    const token = agentToken("auth-idle");
    assert.equal((await postCheckin("auth-idle", `Bearer ${token}`, false)).status, 200);
    const { table } = await getRollcall();
    let storageCalls = 0;
    table.pipeline.addPolicy({ name: "count-auth-idle", sendRequest: (request, next) => (storageCalls++, next(request)) });
    const kubeCalls = world.sim.requestLog.length;
    try {
      for (let i = 0; i < 3; i++) assert.equal((await postCheckin("auth-idle", `Bearer ${token}`, false)).status, 200);
      assert.equal(storageCalls, 3, "one storage read per idle check-in");
      assert.equal(world.sim.requestLog.length, kubeCalls, "no Kubernetes call");
      // The sentinel appears: that check-in changes the node, so it is reviewed afresh (TokenReview and pod).
      assert.equal((await postCheckin("auth-idle", `Bearer ${token}`, true)).status, 200);
      const calls = world.sim.requestLog.slice(kubeCalls).map((r) => r.path);
      assert.ok(calls.some((p) => p.endsWith("/tokenreviews")), calls.join("\n"));
      assert.ok(calls.some((p) => p === `/api/v1/namespaces/${AGENT_NS}/pods`), calls.join("\n"));
    } finally {
      table.pipeline.removePolicy({ name: "count-auth-idle" });
    }
  });

  it("reviews afresh every check-in of a node that holds a slot, and lets a queued node's unchanged check-ins ride on a remembered review", async () => {
    configure({ ROLLCALL_CONCURRENCY: "1" });
    nodesWithAgents("auth-busy-a", "auth-busy-b");
    const tokenA = agentToken("auth-busy-a");
    const tokenB = agentToken("auth-busy-b");
    assert.equal((await postCheckin("auth-busy-a", `Bearer ${tokenA}`)).status, 200);
    assert.equal((await postCheckin("auth-busy-b", `Bearer ${tokenB}`)).status, 200);
    assert.equal((await record("auth-busy-b"))?.state, "pending");
    const before = tokenReviews();
    for (let i = 0; i < 2; i++) await postCheckin("auth-busy-a", `Bearer ${tokenA}`);
    assert.equal(tokenReviews() - before, 2, "the slot holder's check-ins");
    const calls = world.sim.requestLog.length;
    for (let i = 0; i < 2; i++) assert.equal((await postCheckin("auth-busy-b", `Bearer ${tokenB}`)).status, 200);
    assert.deepEqual(world.sim.requestLog.slice(calls).map((r) => `${r.method} ${r.path}`), [], "a queued node's unchanged check-in makes no Kubernetes call");
    assert.equal((await record("auth-busy-b"))?.state, "pending");
  });

  it("hands a freed slot only to a queued node whose agent pod still exists, and reviews its remembered check-in afresh before its turn", async () => {
    configure({ ROLLCALL_CONCURRENCY: "1" });
    nodesWithAgents("auth-q-a", "auth-q-b");
    const tokenA = agentToken("auth-q-a");
    const tokenB = agentToken("auth-q-b");
    assert.equal((await postCheckin("auth-q-a", `Bearer ${tokenA}`)).body.action, "reboot");
    assert.equal((await postCheckin("auth-q-b", `Bearer ${tokenB}`)).status, 200);
    assert.equal((await record("auth-q-b"))?.state, "pending");
    // B's agent pod is deleted; its token still passes the remembered review while B waits in the queue.
    world.sim.deletePod(AGENT_NS, agentPod("auth-q-b").metadata.name);
    assert.equal((await postCheckin("auth-q-b", `Bearer ${tokenB}`)).body.action, "wait");

    // A reboots and comes back: its release offers the slot to B, whose recorded pod is gone.
    const newBoot = await world.sim.rebootNode("auth-q-a", { downMs: 10 });
    assert.equal((await postCheckin("auth-q-a", `Bearer ${tokenA}`, false, invocation(), newBoot)).status, 200);
    assert.equal((await record("auth-q-a"))?.state, "idle");
    const b = await record("auth-q-b");
    assert.equal(b?.state, "pending");
    assert.match(b?.holdReason ?? "", /waiting for the node's agent: .* no longer exists/);
    assert.equal(world.sim.getNode("auth-q-b")!.spec?.unschedulable, undefined, "B was never cordoned");
    assert.deepEqual((await (await getRollcall()).lock.view(CLUSTER)).holders, []);

    // With the slot free, B's own check-in on the remembered review is reviewed afresh, and refused.
    const reviews = tokenReviews();
    assertRefused(await postCheckin("auth-q-b", `Bearer ${tokenB}`), 403, "wrong_pod", /no longer exists/);
    assert.equal(tokenReviews() - reviews, 1);
    assert.equal((await record("auth-q-b"))?.state, "pending");
    assert.deepEqual((await (await getRollcall()).lock.view(CLUSTER)).holders, []);
  });

  it("refuses an agent's token for another node with 403 wrong_node", async () => {
    configure();
    const victim = await registeredIdle("auth-victim");
    nodesWithAgents("auth-attacker");
    const attacker = agentPod("auth-attacker");
    const answer = await postCheckin("auth-victim", `Bearer ${agentToken("auth-attacker")}`);
    assertRefused(answer, 403, "wrong_node", new RegExp(`pod rollcall/${attacker.metadata.name} .* on node auth-attacker, not on node auth-victim`));
    assert.deepEqual(await record("auth-victim"), victim);
  });

  it("refuses a token for another audience with 403 wrong_audience", async () => {
    configure();
    nodesWithAgents("auth-aud");
    assertRefused(await postCheckin("auth-aud", `Bearer ${agentToken("auth-aud", { audiences: ["https://kubernetes.default.svc"] })}`), 403, "wrong_audience", /not valid for audience "rollcall"/);
    assert.equal(await record("auth-aud"), undefined);
  });

  it("accepts the audience set in ROLLCALL_AGENT_AUDIENCE and only that one", async () => {
    configure({ ROLLCALL_AGENT_AUDIENCE: "rollcall-prod" });
    nodesWithAgents("auth-custom");
    assert.equal((await postCheckin("auth-custom", `Bearer ${agentToken("auth-custom", { audiences: ["rollcall-prod"] })}`)).status, 200);
    assertRefused(await postCheckin("auth-custom", `Bearer ${agentToken("auth-custom")}`), 403, "wrong_audience", /rollcall-prod/);
  });

  it("takes the agent's namespace, ServiceAccount and DaemonSet from the cluster's settings", async () => {
    configure();
    process.env.ROLLCALL_CLUSTERS = JSON.stringify([
      { name: CLUSTER, kubeconfig: world.sim.kubeconfig, agent: { namespace: "ops", serviceAccount: "reboot-agent", daemonSet: "reboot-agent" } },
    ]);
    resetAgentAuthForTests();
    resetForTests();
    world.sim.addNode("auth-ops");
    world.sim.addDaemonSet("ops", "reboot-agent");
    const pod = world.sim.pods({ namespace: "ops", node: "auth-ops" })[0]!;
    const token = world.sim.issueServiceAccountToken({ namespace: "ops", serviceAccount: "reboot-agent", pod: pod.metadata.name, audiences: ["rollcall"] });
    assert.equal((await postCheckin("auth-ops", `Bearer ${token}`)).status, 200);
    nodesWithAgents("auth-ops-default");
    assertRefused(await postCheckin("auth-ops-default", `Bearer ${agentToken("auth-ops-default")}`), 403, "wrong_service_account", /ops\/reboot-agent/);
  });

  it("refuses an expired token with 401 invalid_token", async () => {
    configure();
    nodesWithAgents("auth-old");
    assertRefused(await postCheckin("auth-old", `Bearer ${agentToken("auth-old", { expiresInSeconds: 0 })}`), 401, "invalid_token", /expired/);
    assert.equal(await record("auth-old"), undefined);
  });

  it("refuses garbage and forged claims with 401 invalid_token, asking the cluster only about well-formed tokens", async () => {
    configure();
    nodesWithAgents("auth-junk");
    const before = tokenReviews();
    assertRefused(await postCheckin("auth-junk", "Bearer <script>alert(1)</script>"), 401, "invalid_token", /malformed/);
    assert.equal(tokenReviews(), before, "a malformed token never reaches the API server");
    // A genuine token whose claims were edited to name the agent's pod on another node.
    const [header, payload, signature] = agentToken("auth-junk").split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString());
    claims["kubernetes.io"].pod.name = "someone-else";
    const forged = `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${signature}`;
    assertRefused(await postCheckin("auth-junk", `Bearer ${forged}`), 401, "invalid_token", /cryptographic primitive/);
    assertRefused(await postCheckin("auth-junk", `Bearer ${forged}`), 401, "invalid_token", /cryptographic primitive/);
    assert.equal(tokenReviews() - before, 2, "refusals are not cached");
    assert.equal(await record("auth-junk"), undefined);
  });

  it("refuses a token bound to the node alone, without a pod, with 403 wrong_pod", async () => {
    configure();
    nodesWithAgents("auth-unbound");
    const token = world.sim.issueServiceAccountToken({ namespace: AGENT_NS, serviceAccount: AGENT, node: "auth-unbound", audiences: ["rollcall"] });
    assertRefused(await postCheckin("auth-unbound", `Bearer ${token}`), 403, "wrong_pod", /not bound to a pod/);
  });

  it("answers a check-in without a bearer token with 401 missing_token", async () => {
    configure();
    nodesWithAgents("auth-none");
    assertRefused(await postCheckin("auth-none", undefined), 401, "missing_token", /Authorization/);
    assertRefused(await postCheckin("auth-none", ""), 401, "missing_token", /Authorization/);
    assertRefused(await postCheckin("auth-none", "Basic dXNlcjpwYXNz"), 401, "missing_token", /Bearer/);
    assert.equal(await record("auth-none"), undefined);
  });

  it("logs and reports each refusal with the claimed identity, never the token, and shows repeated refusals in the cluster status", async () => {
    configure();
    const telemetry = useMemoryTelemetry();
    try {
      await registeredIdle("auth-seen");
      world.sim.addPod("apps", "prober", { node: "auth-seen" });
      const forged = world.sim.issueServiceAccountToken({ namespace: "apps", serviceAccount: "default", pod: "prober", audiences: ["rollcall"] });
      const warnings: string[] = [];
      const context = new InvocationContext({ functionName: "checkin", logHandler: (level, ...args) => level === "warning" && warnings.push(args.join(" ")) });
      for (let i = 0; i < 3; i++) await postCheckin("auth-seen", `Bearer ${forged}`, true, context);
      assert.ok(warnings.some((w) => /check-in refused cluster=prod node=auth-seen code=wrong_service_account claimed="system:serviceaccount:apps:default"/.test(w)), warnings.join("\n"));
      assert.ok(warnings.every((w) => !w.includes(forged)), "the token never reaches a log line");
      const events = telemetry.events.filter((e) => e.name === "RollcallCheckinRejected");
      assert.equal(events.length, 3);
      assert.deepEqual({ ...events[0]!.dimensions }, { cluster: CLUSTER, node: "auth-seen", code: "wrong_service_account", claimed: "system:serviceaccount:apps:default" });

      const status = await call(clusterStatus, { method: "GET", path: `/api/clusters/${CLUSTER}/status`, params: { cluster: CLUSTER } });
      assert.equal(status.status, 200, status.text);
      const seen = status.body.checkinRejections.find((r: { node: string }) => r.node === "auth-seen");
      assert.equal(seen?.code, "wrong_service_account", status.text);
      assert.equal(seen?.claimed, "system:serviceaccount:apps:default");
      assert.ok(seen.count >= 1);
    } finally {
      resetTelemetry();
    }
  });

  it("lets check-ins through without a token when ROLLCALL_AGENT_AUTH=off, and warns loudly", async () => {
    configure({ ROLLCALL_AGENT_AUTH: "off" });
    world.sim.addNode("auth-off");
    const warnings: string[] = [];
    const context = new InvocationContext({ functionName: "checkin", logHandler: (level, ...args) => level === "warning" && warnings.push(args.join(" ")) });
    const answer = await postCheckin("auth-off", undefined, true, context);
    assert.equal(answer.status, 200, answer.text);
    assert.ok(warnings.some((w) => /ROLLCALL_AGENT_AUTH=off.*NOT AUTHENTICATED/.test(w)), warnings.join("\n"));
  });
});

describe("the agent authenticator", () => {
  const token = "header.payload.signature";
  const agent = { namespace: "rollcall", serviceAccount: "rollcall-agent", daemonSet: "rollcall-agent" };
  const controller = { kind: "DaemonSet", name: "rollcall-agent" };
  function setup() {
    const kube = new FakeClusterApi();
    kube.tokenReviews.set(token, {
      authenticated: true,
      audiences: ["rollcall"],
      username: "system:serviceaccount:rollcall:rollcall-agent",
      extra: { [POD_NAME_EXTRA]: ["agent-x"], [POD_UID_EXTRA]: ["uid-1"] },
    });
    kube.podIdentities.set("rollcall/agent-x", { uid: "uid-1", nodeName: "node-x", terminating: false, controller });
    let now = 1_000_000;
    const auth = new AgentAuthenticator({ kube: async () => kube, audience: "rollcall", agent: () => agent, cacheMs: 60_000, clock: () => now });
    return { kube, auth, advance: (ms: number) => (now += ms) };
  }
  const refused = (code: string, pattern?: RegExp) => (e: AgentAuthError) => e instanceof AgentAuthError && e.code === code && (!pattern || pattern.test(e.message));

  it("keeps at most sixteen reviews of one cluster in flight and serves the rest in turn, as when a fleet's sentinels appear at once", async () => {
    const { kube } = setup();
    let running = 0;
    let peak = 0;
    const slow = Object.assign(Object.create(kube) as FakeClusterApi, {
      reviewToken: async (...args: Parameters<FakeClusterApi["reviewToken"]>) => {
        peak = Math.max(peak, ++running);
        await new Promise((resolve) => setTimeout(resolve, 5));
        running--;
        return kube.reviewToken(...args);
      },
    });
    const auth = new AgentAuthenticator({ kube: async () => slow, audience: "rollcall", agent: () => agent });
    const answers = await Promise.all(Array.from({ length: 40 }, () => auth.authenticate(`Bearer ${token}`, "prod", "node-x", { allowCached: false })));
    assert.equal(answers.length, 40);
    assert.ok(answers.every((a) => a.pod.uid === "uid-1"));
    assert.deepEqual([peak, auth.peakInFlight, auth.reviews], [16, 16, 40]);
  });

  it("names the agent's pod, read from the cluster, as the identity", async () => {
    const { auth } = setup();
    const identity = await auth.authenticate(`Bearer ${token}`, "prod", "node-x", { allowCached: false });
    assert.deepEqual(identity, { cluster: "prod", node: "node-x", username: "system:serviceaccount:rollcall:rollcall-agent", pod: { namespace: "rollcall", name: "agent-x", uid: "uid-1" } });
    await assert.rejects(auth.authenticate(`Bearer ${token}`, "prod", "node-y", { allowCached: true }), refused("wrong_node"));
  });

  it("refuses a token whose pod was replaced by a namesake with another uid", async () => {
    const { kube, auth } = setup();
    kube.podIdentities.set("rollcall/agent-x", { uid: "uid-2", nodeName: "node-x", terminating: false, controller });
    await assert.rejects(auth.authenticate(`Bearer ${token}`, "prod", "node-x", { allowCached: false }), refused("wrong_pod", /no longer exists/));
  });

  it("refuses a terminating pod's token with 403 pod_terminating", async () => {
    const { kube, auth } = setup();
    kube.podIdentities.set("rollcall/agent-x", { uid: "uid-1", nodeName: "node-x", terminating: true, controller });
    await assert.rejects(auth.authenticate(`Bearer ${token}`, "prod", "node-x", { allowCached: false }), (e: AgentAuthError) => refused("pod_terminating")(e) && e.status === 403);
  });

  it("refuses a pod owned by another DaemonSet", async () => {
    const { kube, auth } = setup();
    kube.podIdentities.set("rollcall/agent-x", { uid: "uid-1", nodeName: "node-x", terminating: false, controller: { kind: "DaemonSet", name: "other" } });
    await assert.rejects(auth.authenticate(`Bearer ${token}`, "prod", "node-x", { allowCached: false }), refused("wrong_pod", /DaemonSet other/));
  });

  it("uses a remembered review only when the caller allows it, and only within the cache period", async () => {
    const { kube, auth, advance } = setup();
    await auth.authenticate(`Bearer ${token}`, "prod", "node-x", { allowCached: true });
    await auth.authenticate(`Bearer ${token}`, "prod", "node-x", { allowCached: true });
    assert.equal(kube.tokenReviewCalls, 1);
    await auth.authenticate(`Bearer ${token}`, "prod", "node-x", { allowCached: false });
    assert.equal(kube.tokenReviewCalls, 2, "a check-in that may change the node is reviewed afresh");
    advance(61_000);
    await auth.authenticate(`Bearer ${token}`, "prod", "node-x", { allowCached: true });
    assert.equal(kube.tokenReviewCalls, 3, "the cache period is over");
  });

  it("forgets the reviews of a node's previous agent pod once a new pod checks in", async () => {
    const { kube, auth } = setup();
    await auth.authenticate(`Bearer ${token}`, "prod", "node-x", { allowCached: false });
    kube.tokenReviews.set("new.pod.token", { authenticated: true, audiences: ["rollcall"], username: "system:serviceaccount:rollcall:rollcall-agent", extra: { [POD_NAME_EXTRA]: ["agent-z"], [POD_UID_EXTRA]: ["uid-9"] } });
    kube.podIdentities.set("rollcall/agent-z", { uid: "uid-9", nodeName: "node-x", terminating: false, controller });
    await auth.authenticate("Bearer new.pod.token", "prod", "node-x", { allowCached: false });
    kube.podIdentities.delete("rollcall/agent-x");
    await assert.rejects(auth.authenticate(`Bearer ${token}`, "prod", "node-x", { allowCached: true }), refused("wrong_pod"));
  });

  it("answers 503 when the cluster cannot review tokens, without caching anything", async () => {
    const { kube, auth } = setup();
    kube.reviewToken = async () => {
      throw Object.assign(new Error("tokenreviews.authentication.k8s.io is forbidden"), { code: 403 });
    };
    await assert.rejects(auth.authenticate(`Bearer ${token}`, "prod", "node-x", { allowCached: true }), (e: HttpError) => e.status === 503 && e.code === "token_review_unavailable");
  });

  it("refuses an authenticated token whose review does not name Rollcall's audience", async () => {
    const { kube, auth } = setup();
    kube.reviewToken = async () => ({ authenticated: true, audiences: [], username: "system:serviceaccount:rollcall:rollcall-agent", extra: {} });
    await assert.rejects(auth.authenticate(`Bearer ${token}`, "prod", "node-x", { allowCached: false }), refused("wrong_audience"));
  });
});

