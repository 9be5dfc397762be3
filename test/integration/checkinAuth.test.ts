import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { HttpRequest, InvocationContext } from "@azure/functions";
import { checkin } from "../../functions/checkin";
import { AgentAuthenticator, AgentAuthError, POD_NAME_EXTRA, resetAgentAuthForTests } from "../../shared/auth/tokenReview";
import { HttpError } from "../../shared/http/http";
import { getRollcall } from "../../shared/orchestrator/fromConfig";
import { FakeClusterApi } from "../support/fakeClusterApi";
import { leaksInternals } from "../support/operatorCalls";
import { CLUSTER, invocation, useWorld } from "../support/world";

const world = useWorld();
const AGENT_NS = "rollcall";
const AGENT_SA = "rollcall-agent";

function configure(settings: Record<string, string> = {}): void {
  delete process.env.ROLLCALL_AGENT_AUDIENCE;
  world.configure({ ROLLCALL_AGENT_AUTH: "tokenreview", ...settings });
  resetAgentAuthForTests();
}

/** A node with the agent's pod on it, as the DaemonSet would place it. */
function nodeWithAgentPod(node: string): string {
  world.sim.addNode(node);
  const pod = `agent-${node}`;
  world.sim.addPod(AGENT_NS, pod, { node, labels: { app: AGENT_SA } });
  return pod;
}

function agentToken(pod: string, options: { audiences?: string[]; expiresInSeconds?: number } = {}): string {
  return world.sim.issueServiceAccountToken({ namespace: AGENT_NS, serviceAccount: AGENT_SA, pod, audiences: ["rollcall"], ...options });
}

const body = (bootId = "0b5f0f43-8d0c-4d5e-9a52-2a1f3e4c5d6e") => ({ bootId, rebootRequired: true, reasons: ["linux-image"], agentVersion: "1.0.0" });

async function postCheckin(node: string, authorization?: string, context: InvocationContext = invocation()) {
  const request = new HttpRequest({
    method: "POST",
    url: `http://localhost/api/clusters/${CLUSTER}/nodes/${node}/checkin`,
    params: { cluster: CLUSTER, node },
    headers: { "content-type": "application/json", ...(authorization === undefined ? {} : { authorization }) },
    body: { string: JSON.stringify(body()) },
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

describe("check-in authentication by TokenReview", () => {
  it("accepts the agent's token for its own node, and reuses the review for the next check-ins", async () => {
    configure();
    const pod = nodeWithAgentPod("auth-ok");
    const token = agentToken(pod);
    const before = tokenReviews();
    const first = await postCheckin("auth-ok", `Bearer ${token}`);
    assert.equal(first.status, 200, first.text);
    assert.equal((await record("auth-ok"))?.bootId, body().bootId);
    for (let i = 0; i < 3; i++) assert.equal((await postCheckin("auth-ok", `Bearer ${token}`)).status, 200);
    assert.equal(tokenReviews() - before, 1, "one TokenReview for four check-ins");
  });

  it("refuses a token whose pod runs on another node with 403 wrong_node, and writes nothing", async () => {
    configure();
    nodeWithAgentPod("auth-victim");
    const otherPod = nodeWithAgentPod("auth-attacker");
    const answer = await postCheckin("auth-victim", `Bearer ${agentToken(otherPod)}`);
    assertRefused(answer, 403, "wrong_node", /pod rollcall\/agent-auth-attacker on node auth-attacker, not on node auth-victim/);
    assert.equal(await record("auth-victim"), undefined, "the named node was not touched");
    assert.equal(await record("auth-attacker"), undefined);
    const again = await postCheckin("auth-victim", `Bearer ${agentToken(otherPod)}`);
    assert.equal(again.status, 403, "still refused when the review comes from the cache");
  });

  it("refuses a token for another audience with 403 wrong_audience", async () => {
    configure();
    const pod = nodeWithAgentPod("auth-aud");
    const answer = await postCheckin("auth-aud", `Bearer ${agentToken(pod, { audiences: ["https://kubernetes.default.svc"] })}`);
    assertRefused(answer, 403, "wrong_audience", /not valid for audience "rollcall"/);
    assert.equal(await record("auth-aud"), undefined);
  });

  it("accepts the audience set in ROLLCALL_AGENT_AUDIENCE and only that one", async () => {
    configure({ ROLLCALL_AGENT_AUDIENCE: "rollcall-prod" });
    const pod = nodeWithAgentPod("auth-custom");
    assert.equal((await postCheckin("auth-custom", `Bearer ${agentToken(pod, { audiences: ["rollcall-prod"] })}`)).status, 200);
    assertRefused(await postCheckin("auth-custom", `Bearer ${agentToken(pod)}`), 403, "wrong_audience", /rollcall-prod/);
  });

  it("refuses an expired token with 403 token_expired", async () => {
    configure();
    const pod = nodeWithAgentPod("auth-old");
    const answer = await postCheckin("auth-old", `Bearer ${agentToken(pod, { expiresInSeconds: 0 })}`);
    assertRefused(answer, 403, "token_expired", /expired/);
    assert.equal(await record("auth-old"), undefined);
  });

  it("refuses garbage with 403 invalid_token, asking the cluster only about well-formed tokens", async () => {
    configure();
    nodeWithAgentPod("auth-junk");
    const before = tokenReviews();
    assertRefused(await postCheckin("auth-junk", "Bearer <script>alert(1)</script>"), 403, "invalid_token", /malformed/);
    assert.equal(tokenReviews(), before, "a malformed token never reaches the API server");
    assertRefused(await postCheckin("auth-junk", "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtZSJ9.c2ln"), 403, "invalid_token", /does not accept/);
    assertRefused(await postCheckin("auth-junk", "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtZSJ9.c2ln"), 403, "invalid_token", /does not accept/);
    assert.equal(tokenReviews() - before, 2, "refusals are not cached");
    assert.equal(await record("auth-junk"), undefined);
  });

  it("refuses a token bound to no pod with 403 not_bound_to_a_node", async () => {
    configure();
    world.sim.addNode("auth-unbound");
    const token = world.sim.issueServiceAccountToken({ namespace: AGENT_NS, serviceAccount: AGENT_SA, audiences: ["rollcall"] });
    assertRefused(await postCheckin("auth-unbound", `Bearer ${token}`), 403, "not_bound_to_a_node", /not bound to a pod/);
  });

  it("answers a check-in without a bearer token with 401 missing_token", async () => {
    configure();
    nodeWithAgentPod("auth-none");
    assertRefused(await postCheckin("auth-none"), 401, "missing_token", /Authorization/);
    assertRefused(await postCheckin("auth-none", ""), 401, "missing_token", /Authorization/);
    assertRefused(await postCheckin("auth-none", "Basic dXNlcjpwYXNz"), 401, "missing_token", /Bearer/);
    assert.equal(await record("auth-none"), undefined);
  });

  it("can read the node of the token's pod from the cluster with list rights alone, for clusters whose tokens name no node", async () => {
    configure();
    const pod = nodeWithAgentPod("auth-podnode");
    const kube = await (await getRollcall()).kube(CLUSTER);
    assert.equal(await kube.getPodNode(AGENT_NS, pod), "auth-podnode");
    assert.equal(await kube.getPodNode(AGENT_NS, "no-such-pod"), undefined);
    const review = await kube.reviewToken(agentToken(pod), ["rollcall"]);
    assert.equal(review.authenticated, true);
    assert.deepEqual(review.extra[POD_NAME_EXTRA], [pod]);
  });

  it("lets check-ins through without a token when ROLLCALL_AGENT_AUTH=off, and warns loudly", async () => {
    configure({ ROLLCALL_AGENT_AUTH: "off" });
    world.sim.addNode("auth-off");
    const warnings: string[] = [];
    const context = new InvocationContext({
      functionName: "checkin",
      logHandler: (level, ...args) => {
        if (level === "warning") warnings.push(args.join(" "));
      },
    });
    assert.equal((await postCheckin("auth-off", undefined, context)).status, 200);
    assert.ok(warnings.some((w) => /ROLLCALL_AGENT_AUTH=off.*NOT AUTHENTICATED/.test(w)), warnings.join("\n"));
  });
});

describe("the agent authenticator", () => {
  const log = { info() {}, warn() {}, error() {} };
  const token = "header.payload.signature";
  function setup(review: Partial<Parameters<FakeClusterApi["tokenReviews"]["set"]>[1]> = {}) {
    const kube = new FakeClusterApi();
    kube.tokenReviews.set(token, {
      authenticated: true,
      audiences: ["rollcall"],
      username: "system:serviceaccount:rollcall:rollcall-agent",
      extra: { [POD_NAME_EXTRA]: ["agent-x"] },
      ...review,
    });
    kube.podNodes.set("rollcall/agent-x", "node-x");
    let now = 1_000_000;
    const auth = new AgentAuthenticator({ kube: async () => kube, audience: "rollcall", cacheMs: 60_000, clock: () => now });
    return { kube, auth, advance: (ms: number) => (now += ms) };
  }

  it("falls back to reading the token's pod when the token names no node", async () => {
    const { auth } = setup();
    const identity = await auth.authenticate(`Bearer ${token}`, "prod", "node-x", log);
    assert.deepEqual(identity, { cluster: "prod", node: "node-x", username: "system:serviceaccount:rollcall:rollcall-agent", pod: "rollcall/agent-x" });
    await assert.rejects(auth.authenticate(`Bearer ${token}`, "prod", "node-y", log), (e: AgentAuthError) => e.status === 403 && e.code === "wrong_node");
  });

  it("refuses a token whose pod is gone", async () => {
    const { kube, auth } = setup();
    kube.podNodes.clear();
    await assert.rejects(auth.authenticate(`Bearer ${token}`, "prod", "node-x", log), (e: AgentAuthError) => e.code === "not_bound_to_a_node" && /no longer exists/.test(e.message));
  });

  it("asks again once a cached review is older than the cache period", async () => {
    const { kube, auth, advance } = setup();
    await auth.authenticate(`Bearer ${token}`, "prod", "node-x", log);
    advance(59_000);
    await auth.authenticate(`Bearer ${token}`, "prod", "node-x", log);
    assert.equal(kube.tokenReviewCalls, 1);
    advance(2_000);
    await auth.authenticate(`Bearer ${token}`, "prod", "node-x", log);
    assert.equal(kube.tokenReviewCalls, 2);
  });

  it("refuses a token that is not a service account's", async () => {
    const { auth } = setup({ username: "alice@example.com" });
    await assert.rejects(auth.authenticate(`Bearer ${token}`, "prod", "node-x", log), (e: AgentAuthError) => e.code === "not_a_service_account");
  });

  it("refuses an authenticated token whose review does not name Rollcall's audience", async () => {
    const { kube, auth } = setup();
    kube.reviewToken = async () => ({ authenticated: true, audiences: [], username: "system:serviceaccount:rollcall:a", extra: {} });
    await assert.rejects(auth.authenticate(`Bearer ${token}`, "prod", "node-x", log), (e: AgentAuthError) => e.code === "wrong_audience");
  });

  it("answers 503 when the cluster cannot review tokens, without caching anything", async () => {
    const { kube, auth } = setup();
    kube.reviewToken = async () => {
      throw Object.assign(new Error("tokenreviews.authentication.k8s.io is forbidden"), { code: 403 });
    };
    await assert.rejects(auth.authenticate(`Bearer ${token}`, "prod", "node-x", log), (e: HttpError) => e.status === 503 && e.code === "token_review_unavailable");
  });
});
