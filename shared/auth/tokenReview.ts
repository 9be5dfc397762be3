import { createHash } from "node:crypto";
import type { HttpRequest } from "@azure/functions";
import { type Config, DEFAULT_AGENT, getConfig } from "../config/config";
import { HttpError } from "../http/http";
import type { ClusterApi, KubePodIdentity } from "../kube/clusterApi";
import type { ClusterApiFactory } from "../kube/connect";
import type { Logger } from "../orchestrator/transitionLog";
import { telemetryEvents, type Telemetry } from "../telemetry/names";
import type { RejectionLog } from "./rejections";

/**
 * Check-in authentication: a check-in must prove it comes from the Rollcall agent on the node it names.
 *
 * The agent sends its projected service-account token (audience `rollcall`) as a bearer token, and
 * Rollcall asks the node's own cluster about it (TokenReview, with Rollcall's audience: without one the
 * API server checks its own audience). Any pod may mount a token for any audience, so a reviewed token
 * proves only *whose pod* sent it; Rollcall then requires, in this order:
 *   1. `user.username` is the agent's ServiceAccount, `system:serviceaccount:<ns>:<name>`
 *      (per cluster in ROLLCALL_CLUSTERS, default rollcall/rollcall-agent) — `wrong_service_account`;
 *   2. the token is bound to a pod (`authentication.kubernetes.io/pod-name`/`pod-uid` extras; a token
 *      bound to a Node alone does not say which workload holds it) — `wrong_pod`;
 *   3. that pod, read from the API server, has the token's uid (same object, not a namesake), and its
 *      controller is the agent DaemonSet — `wrong_pod`; it is not terminating — `pod_terminating`;
 *   4. it runs on the node named in the route — `wrong_node`.
 * The pod is always read: Kubernetes 1.24 puts no node name in the review (see
 * ../shared/k8s-captured/tokenreview-bound-pod-token.json), and only the pod says who owns it.
 *
 * A review is remembered for a few minutes (never past the token's expiry), but a remembered review
 * may only let through a check-in that changes nothing (the caller says so with `allowCached`): a
 * deleted pod's token keeps passing the API server's own cache for ~10 s and would otherwise pass ours
 * for minutes. Every check-in that could change a node is reviewed afresh, pod read included. A
 * queued node's unchanged check-in may ride on one too (a long queue would otherwise cost the API server
 * two calls per node per busy interval), because waiting changes nothing: before such a node takes a
 * slot, its own check-in is reviewed afresh, or, when another node's release hands it the slot, the pod
 * of its last fresh review is read (`recordedAgentProblem`).
 */

export const POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name";
export const POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid";
const SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:";

/**
 * Where the agent puts its token. `Authorization` is taken by App Service authentication when Entra ID
 * protects the operator API (it validates any bearer token it sees as an Entra token), so the agent
 * uses a header of its own; `Authorization: Bearer` is still accepted where Easy Auth is off.
 */
export const AGENT_TOKEN_HEADER = "x-rollcall-agent-token";

/** A bearer token's alphabet (RFC 6750 b64token); anything else is refused before it reaches the API server. */
const TOKEN_SHAPE = /^[A-Za-z0-9._~+/-]+=*$/;
const MAX_TOKEN_LENGTH = 16 * 1024;
/**
 * How long a positive review may vouch for a no-op check-in: longer than the idle check-in interval
 * (so idle check-ins make no Kubernetes call) and never past the token's own expiry.
 */
export const REVIEW_CACHE_MS = 10 * 60_000;

/** Who the agent must be in one cluster (`agent` in ROLLCALL_CLUSTERS). */
export interface ExpectedAgent {
  namespace: string;
  serviceAccount: string;
  daemonSet: string;
}

/** Each configured cluster's expected agent, the shipped manifests' names where a cluster sets none. */
export function expectedAgents(config: Pick<Config, "clusters">): (cluster: string) => ExpectedAgent {
  const agents = new Map(config.clusters.map((c) => [c.name, c.agent ?? DEFAULT_AGENT]));
  return (cluster) => agents.get(cluster) ?? DEFAULT_AGENT;
}

export interface AgentIdentity {
  cluster: string;
  node: string;
  /** `system:serviceaccount:<namespace>:<name>`. */
  username: string;
  pod: { namespace: string; name: string; uid: string };
  /** A remembered review vouched for this check-in: no Kubernetes call was made for it. */
  remembered?: boolean;
}

/** `rollcall/rollcall-agent-x7k2p (uid 1956016e-…)`: how history and logs name the agent that asked. */
export function describeAgent(identity: Pick<AgentIdentity, "pod">): string {
  return `${identity.pod.namespace}/${identity.pod.name} (uid ${identity.pod.uid})`;
}

/**
 * Authenticates one check-in. `allowCached`: the check-in reports exactly what is stored for an idle
 * node, so a remembered review may vouch for it. `known`: the node has a record (its rejections are
 * kept for the status route). Resolves to undefined only when authentication is off.
 */
export type AgentVerifier = (options: { allowCached: boolean; known: boolean }) => Promise<AgentIdentity | undefined>;

/** The rejection of a check-in's credentials: 401 without a usable one, 403 with the wrong identity. */
export class AgentAuthError extends HttpError {
  constructor(
    status: 401 | 403,
    code: string,
    message: string,
    /** Who the credential claimed to be, for logs (never the token). */
    readonly claimed = "unknown",
  ) {
    super(status, code, message);
  }
}

export interface AgentAuthenticatorOptions {
  kube: ClusterApiFactory;
  audience: string;
  agent: (cluster: string) => ExpectedAgent;
  cacheMs?: number;
  maxCacheEntries?: number;
  clock?: () => number;
  /** Reviews in flight at once per cluster; the rest wait their turn (REVIEWS_IN_FLIGHT when not given). */
  maxReviewsInFlight?: number;
}

/**
 * Fresh reviews (TokenReview and pod read) one instance has in flight per cluster. When a whole fleet's
 * sentinels appear at once, 1,000 concurrent reviews all ran into the request timeout, every agent
 * retried, and none got through; queued behind a bound, they are served at the API server's pace.
 */
export const REVIEWS_IN_FLIGHT = 16;

interface CacheEntry {
  identity: AgentIdentity;
  expiresAt: number;
}

export class AgentAuthenticator {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly cacheMs: number;
  private readonly maxCacheEntries: number;
  private readonly clock: () => number;
  private readonly inFlight = new Map<string, { running: number; queue: (() => void)[] }>();
  /** How many TokenReviews this authenticator asked for; tests read it to see the cache work. */
  reviews = 0;
  /** The most reviews that were in flight at once for one cluster. */
  peakInFlight = 0;

  constructor(private readonly options: AgentAuthenticatorOptions) {
    this.cacheMs = options.cacheMs ?? REVIEW_CACHE_MS;
    this.maxCacheEntries = options.maxCacheEntries ?? 10_000;
    this.clock = options.clock ?? Date.now;
  }

  /** The agent's identity, or an `AgentAuthError` (401/403) naming the rule that failed. */
  async authenticate(headers: AgentCredentials, cluster: string, node: string, options: { allowCached: boolean }): Promise<AgentIdentity> {
    const token = agentToken(headers);
    const key = createHash("sha256").update(`${cluster}\n${this.options.audience}\n${token}`).digest("base64url");
    const cached = this.cache.get(key);
    if (options.allowCached && cached && cached.expiresAt > this.clock() && cached.identity.node === node) return { ...cached.identity, remembered: true };
    const identity = await this.bounded(cluster, () => this.review(token, cluster, node));
    this.remember(key, identity, token);
    return identity;
  }

  private async bounded<T>(cluster: string, work: () => Promise<T>): Promise<T> {
    const limit = this.options.maxReviewsInFlight ?? REVIEWS_IN_FLIGHT;
    let slots = this.inFlight.get(cluster);
    if (!slots) this.inFlight.set(cluster, (slots = { running: 0, queue: [] }));
    if (slots.running >= limit) await new Promise<void>((resolve) => slots.queue.push(resolve));
    else slots.running++;
    this.peakInFlight = Math.max(this.peakInFlight, slots.running);
    try {
      return await work();
    } finally {
      // The slot passes straight to the next in line, or is given back.
      const next = slots.queue.shift();
      if (next) next();
      else slots.running--;
    }
  }

  private async review(token: string, cluster: string, node: string): Promise<AgentIdentity> {
    const { audience } = this.options;
    const expected = this.options.agent(cluster);
    const kube = await this.options.kube(cluster);
    this.reviews++;
    let review;
    try {
      review = await kube.reviewToken(token, [audience]);
    } catch (error) {
      throw unavailable(cluster, `the TokenReview failed: ${(error as Error).message}`, "may its identity create tokenreviews?");
    }
    if (!review.authenticated) {
      const reason = review.error ?? "the token was not authenticated";
      if (/audience/i.test(reason)) throw new AgentAuthError(403, "wrong_audience", `The agent's token is not valid for audience "${audience}": ${reason}`);
      throw new AgentAuthError(401, "invalid_token", `Cluster ${cluster} does not accept the agent's token: ${reason}`);
    }
    const username = review.username ?? "";
    if (!review.audiences.includes(audience)) {
      throw new AgentAuthError(403, "wrong_audience", `The agent's token is not valid for audience "${audience}" (valid for: ${review.audiences.join(", ") || "none"})`, username);
    }
    const agentUser = `${SERVICE_ACCOUNT_PREFIX}${expected.namespace}:${expected.serviceAccount}`;
    if (username !== agentUser) {
      throw new AgentAuthError(
        403,
        "wrong_service_account",
        `The token belongs to ${username || "an unnamed user"}, not to the agent's ServiceAccount ${expected.namespace}/${expected.serviceAccount}: only the Rollcall agent may check in (set agent.namespace/serviceAccount in ROLLCALL_CLUSTERS if yours is named differently)`,
        username,
      );
    }
    const podName = review.extra[POD_NAME_EXTRA]?.[0];
    const podUid = review.extra[POD_UID_EXTRA]?.[0];
    if (!podName || !podUid) {
      throw new AgentAuthError(
        403,
        "wrong_pod",
        `The agent's token is not bound to a pod: mount a projected service-account token (audience "${audience}") into the agent pod`,
        username,
      );
    }
    const claimed = `${expected.namespace}/${podName} (uid ${podUid})`;
    let pod;
    try {
      pod = await kube.getPodIdentity(expected.namespace, podName);
    } catch (error) {
      throw unavailable(cluster, `reading pod ${expected.namespace}/${podName} failed: ${(error as Error).message}`, "may its identity list pods?");
    }
    const problem = podProblem(pod, podUid, expected, claimed, node);
    if (problem) throw problem;
    return { cluster, node, username, pod: { namespace: expected.namespace, name: podName, uid: podUid } };
  }

  private remember(key: string, identity: AgentIdentity, token: string): void {
    const now = this.clock();
    // A new agent pod on the node retires whatever the previous one's tokens had earned.
    for (const [other, entry] of this.cache) {
      if (entry.identity.cluster === identity.cluster && entry.identity.node === identity.node && entry.identity.pod.uid !== identity.pod.uid) this.cache.delete(other);
    }
    const expiresAt = Math.min(now + this.cacheMs, jwtExpiry(token) ?? Number.POSITIVE_INFINITY);
    if (expiresAt <= now) return;
    this.cache.delete(key);
    this.cache.set(key, { identity, expiresAt });
    for (const [oldest] of this.cache) {
      if (this.cache.size <= this.maxCacheEntries) break;
      this.cache.delete(oldest);
    }
  }
}

/** Rules 3 and 4 above, on the pod as the API server has it now. */
function podProblem(pod: KubePodIdentity | undefined, uid: string, expected: ExpectedAgent, claimed: string, node: string): AgentAuthError | undefined {
  if (!pod || pod.uid !== uid) return new AgentAuthError(403, "wrong_pod", `The agent's token is bound to pod ${claimed}, which no longer exists`, claimed);
  if (pod.controller?.kind !== "DaemonSet" || pod.controller.name !== expected.daemonSet) {
    const owner = pod.controller ? `${pod.controller.kind} ${pod.controller.name}` : "no controller";
    return new AgentAuthError(403, "wrong_pod", `Pod ${claimed} is owned by ${owner}, not by the agent DaemonSet ${expected.namespace}/${expected.daemonSet}`, claimed);
  }
  if (pod.terminating) return new AgentAuthError(403, "pod_terminating", `Pod ${claimed} is being deleted: its token no longer speaks for the node`, claimed);
  if (pod.nodeName !== node) {
    return new AgentAuthError(
      403,
      "wrong_node",
      `The agent's token belongs to pod ${claimed} on node ${pod.nodeName ?? "(none)"}, not on node ${node}: an agent may only check in for its own node`,
      claimed,
    );
  }
  return undefined;
}

/**
 * Whether the agent pod a fresh review last vouched for still speaks for its node: before a slot is
 * handed to a node whose queued check-ins rode on a remembered review. A pod-bound token is valid only
 * while its pod exists with its uid, so reading the pod is as strict as a new review (stricter: the API
 * server's authentication cache keeps a deleted pod's token valid for ~10 s). Resolves to why not, or undefined.
 */
export async function recordedAgentProblem(kube: ClusterApi, expected: ExpectedAgent, pod: { name: string; uid: string } | undefined, node: string): Promise<string | undefined> {
  if (!pod) return "no check-in of its agent has been verified yet";
  const claimed = `${expected.namespace}/${pod.name} (uid ${pod.uid})`;
  let found;
  try {
    found = await kube.getPodIdentity(expected.namespace, pod.name);
  } catch (error) {
    return `its agent pod ${claimed} could not be read: ${(error as Error).message}`;
  }
  return podProblem(found, pod.uid, expected, claimed, node)?.message;
}

function unavailable(cluster: string, detail: string, hint: string): HttpError {
  return Object.assign(
    new HttpError(503, "token_review_unavailable", `Rollcall could not check the agent's identity with cluster ${cluster} (${hint} see the logs); try again later`),
    { detail },
  );
}

/** The headers a check-in's credential may come in: a `Headers`, or a plain lookup in tests. */
export type AgentCredentials = Pick<Headers, "get"> | string | null;

function agentToken(headers: AgentCredentials): string {
  const own = typeof headers === "object" && headers !== null ? headers.get(AGENT_TOKEN_HEADER)?.trim() : undefined;
  const authorization = typeof headers === "object" && headers !== null ? headers.get("authorization") : headers;
  let token = own;
  if (!token) {
    if (!authorization?.trim()) {
      throw new AgentAuthError(
        401,
        "missing_token",
        `The check-in carries no agent token: the agent must send its projected service-account token in ${AGENT_TOKEN_HEADER} (or 'Authorization: Bearer <token>')`,
      );
    }
    const match = authorization.trim().match(/^Bearer\s+(\S+)$/i);
    if (!match) throw new AgentAuthError(401, "missing_token", "The Authorization header must be 'Bearer <projected service-account token>'");
    token = match[1]!;
  }
  if (token.length > MAX_TOKEN_LENGTH || !TOKEN_SHAPE.test(token)) {
    throw new AgentAuthError(401, "invalid_token", "The bearer token is malformed: it is not a Kubernetes service-account token");
  }
  return token;
}

/**
 * The `exp` of a JWT, read without verifying the signature: it only shortens how long a review that
 * the API server already accepted is trusted, so an untrusted value cannot lengthen anything.
 */
function jwtExpiry(token: string): number | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as { exp?: unknown };
    return typeof payload.exp === "number" ? payload.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

// --- the process-wide check-in authentication the check-in function uses ---------------------------

const OFF_WARNING =
  "ROLLCALL_AGENT_AUTH=off: CHECK-INS ARE NOT AUTHENTICATED. Any caller with the function key can claim to be any node " +
  "and have it rebooted. This setting is for the local simulation only (it is refused on Azure).";

let announced = false;
let warnedInvocation = false;

/**
 * Says loudly, once per process (every cold start), that check-in authentication is off. Safe to call
 * at module load: a configuration error is left for the first request (and the health route) to report.
 */
export function announceAgentAuthMode(log: Pick<Logger, "warn"> = console): void {
  if (announced) return;
  try {
    if (getConfig().agentAuth.mode === "off") {
      log.warn(`WARNING ${OFF_WARNING}`);
      announced = true;
    }
  } catch {
    // The first request reports the bad setting with its name.
  }
}

export interface CheckinAuthDeps {
  kube: ClusterApiFactory;
  rejections: RejectionLog;
  telemetry: Telemetry;
}

/** Built for one configuration and one set of cluster clients (both change when tests or `npm start` start over). */
let authenticator: { config: object; kube: ClusterApiFactory; value: AgentAuthenticator } | undefined;

/**
 * The verifier for one check-in (see `AgentVerifier`). A rejection is logged as a warning and sent as
 * telemetry naming the cluster, node, rule and claimed identity, and kept for the status route when the
 * node is known; with `ROLLCALL_AGENT_AUTH=off` every check-in is let through, with a warning.
 */
export function checkinVerifier(request: Pick<HttpRequest, "headers">, cluster: string, node: string, log: Logger, deps: CheckinAuthDeps): AgentVerifier {
  const config = getConfig();
  const { mode, audience } = config.agentAuth;
  return async ({ allowCached, known }) => {
    if (mode === "off") {
      if (!warnedInvocation) {
        warnedInvocation = true;
        log.warn(`WARNING ${OFF_WARNING}`);
      }
      return undefined;
    }
    if (authenticator?.config !== config || authenticator.kube !== deps.kube) {
      authenticator = { config, kube: deps.kube, value: new AgentAuthenticator({ kube: deps.kube, audience, agent: expectedAgents(config) }) };
    }
    try {
      return await authenticator.value.authenticate(request.headers, cluster, node, { allowCached });
    } catch (error) {
      if (error instanceof AgentAuthError) {
        log.warn(`check-in refused cluster=${cluster} node=${node} code=${error.code} claimed=${JSON.stringify(error.claimed)}: ${error.message}`);
        deps.telemetry.event(telemetryEvents.checkinRejected, { cluster, node, code: error.code, claimed: error.claimed });
        if (known) await deps.rejections.record(cluster, node, error.code, error.claimed, log);
      } else if (error instanceof HttpError) {
        log.error(`check-in authentication unavailable cluster=${cluster} node=${node}: ${(error as HttpError & { detail?: string }).detail ?? error.message}`);
      }
      throw error;
    }
  };
}

/** Forget the process-wide authenticator and its cache (tests change settings and clusters between runs). */
export function resetAgentAuthForTests(): void {
  authenticator = undefined;
  announced = false;
  warnedInvocation = false;
}

/** The process-wide authenticator, for tests that count TokenReviews. */
export function currentAgentAuthenticator(): AgentAuthenticator | undefined {
  return authenticator?.value;
}
