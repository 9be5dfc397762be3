import { createHash } from "node:crypto";
import type { HttpRequest } from "@azure/functions";
import { ConfigError, getConfig } from "../config/config";
import { HttpError } from "../http/http";
import type { ClusterApiFactory } from "../kube/connect";
import type { Logger } from "../orchestrator/transitionLog";

/**
 * Check-in authentication: a check-in must prove it comes from the node it names.
 *
 * The agent sends its projected service-account token (audience `rollcall`) as a bearer token.
 * Rollcall asks the node's own cluster about it with a TokenReview: the token must be authenticated,
 * valid for Rollcall's audience, belong to a service account, and be bound to a pod that runs on the
 * named node. The node comes from the token's `authentication.kubernetes.io/node-name` extra
 * (Kubernetes ≥ 1.30), else from reading the pod named in `authentication.kubernetes.io/pod-name`.
 *
 * Positive answers are cached briefly, keyed by a hash of the token, so that steady check-ins do not
 * each cost a TokenReview. A rejection is never cached: the next check-in asks again.
 */

export const NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name";
export const POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name";
const SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:";

/** A bearer token's alphabet (RFC 6750 b64token); anything else is refused before it reaches the API server. */
const TOKEN_SHAPE = /^[A-Za-z0-9._~+/-]+=*$/;
const MAX_TOKEN_LENGTH = 16 * 1024;
/**
 * How long a positive review is trusted (never past the token's own expiry). Longer than the idle
 * check-in interval, so that an idle check-in makes no Kubernetes call; the price is that a token of
 * a deleted pod stays accepted that long, and only ever for the node it was bound to.
 */
const REVIEW_CACHE_MS = 15 * 60_000;

export interface AgentIdentity {
  cluster: string;
  node: string;
  /** `system:serviceaccount:<namespace>:<name>`. */
  username: string;
  /** `<namespace>/<pod>` the token is bound to. */
  pod?: string;
}

export interface TokenReviewOptions {
  kube: ClusterApiFactory;
  audience: string;
  /** Longest a positive review is trusted without asking again. */
  cacheMs?: number;
  maxCacheEntries?: number;
  clock?: () => number;
}

interface CacheEntry {
  identity: AgentIdentity;
  expiresAt: number;
}

/** The rejection of a check-in's credentials: 401 without any, 403 with wrong ones. */
export class AgentAuthError extends HttpError {
  constructor(status: 401 | 403, code: string, message: string) {
    super(status, code, message);
  }
}

export class AgentAuthenticator {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly cacheMs: number;
  private readonly maxCacheEntries: number;
  private readonly clock: () => number;
  /** How many TokenReviews this authenticator asked for; tests read it to see the cache work. */
  reviews = 0;

  constructor(private readonly options: TokenReviewOptions) {
    this.cacheMs = options.cacheMs ?? REVIEW_CACHE_MS;
    this.maxCacheEntries = options.maxCacheEntries ?? 10_000;
    this.clock = options.clock ?? Date.now;
  }

  /** The agent's identity, or an `AgentAuthError` (401/403) saying plainly what is wrong. */
  async authenticate(authorization: string | null, cluster: string, node: string, log: Logger): Promise<AgentIdentity> {
    const token = bearerToken(authorization);
    const key = createHash("sha256").update(`${cluster}\n${this.options.audience}\n${token}`).digest("base64url");
    const now = this.clock();
    const cached = this.cache.get(key);
    const identity = cached && cached.expiresAt > now ? cached.identity : await this.review(token, cluster, key, log);
    if (identity.node !== node) {
      log.warn(`check-in refused cluster=${cluster} node=${node}: token of ${identity.pod ?? identity.username} runs on node ${identity.node}`);
      throw new AgentAuthError(
        403,
        "wrong_node",
        `The agent's token belongs to ${identity.pod ? `pod ${identity.pod}` : identity.username} on node ${identity.node}, not on node ${node}: an agent may only check in for its own node`,
      );
    }
    return identity;
  }

  private async review(token: string, cluster: string, key: string, log: Logger): Promise<AgentIdentity> {
    const audience = this.options.audience;
    const kube = await this.options.kube(cluster);
    this.reviews++;
    let review;
    try {
      review = await kube.reviewToken(token, [audience]);
    } catch (error) {
      log.error(`TokenReview failed cluster=${cluster}: ${(error as Error).message}`);
      throw new HttpError(
        503,
        "token_review_unavailable",
        `Rollcall could not review the agent's token with cluster ${cluster} (may its identity create tokenreviews? see the logs); try again later`,
      );
    }
    if (!review.authenticated) {
      const reason = review.error ?? "the token was not authenticated";
      log.warn(`check-in refused cluster=${cluster}: token not authenticated: ${reason}`);
      if (/audience/i.test(reason)) {
        throw new AgentAuthError(403, "wrong_audience", `The agent's token is not valid for audience "${audience}": ${reason}`);
      }
      if (/expired/i.test(reason)) throw new AgentAuthError(403, "token_expired", `The agent's token has expired: ${reason}`);
      throw new AgentAuthError(403, "invalid_token", `Cluster ${cluster} does not accept the agent's token: ${reason}`);
    }
    if (!review.audiences.includes(audience)) {
      throw new AgentAuthError(403, "wrong_audience", `The agent's token is not valid for audience "${audience}" (valid for: ${review.audiences.join(", ") || "none"})`);
    }
    const username = review.username ?? "";
    if (!username.startsWith(SERVICE_ACCOUNT_PREFIX)) {
      throw new AgentAuthError(403, "not_a_service_account", `The token belongs to ${username || "an unnamed user"}, not to the agent's service account`);
    }
    const namespace = username.slice(SERVICE_ACCOUNT_PREFIX.length).split(":")[0] ?? "";
    const podName = review.extra[POD_NAME_EXTRA]?.[0];
    const pod = podName ? `${namespace}/${podName}` : undefined;
    let tokenNode = review.extra[NODE_NAME_EXTRA]?.[0];
    if (!tokenNode && podName) tokenNode = await this.podNode(cluster, namespace, podName, log);
    if (!tokenNode) {
      throw new AgentAuthError(
        403,
        "not_bound_to_a_node",
        podName
          ? `The agent's token is bound to pod ${pod}, which no longer exists or is not scheduled on a node`
          : `The agent's token is not bound to a pod: mount a projected service-account token (audience "${audience}") into the agent`,
      );
    }
    const identity: AgentIdentity = { cluster, node: tokenNode, username, pod };
    this.remember(key, identity, token);
    return identity;
  }

  private async podNode(cluster: string, namespace: string, pod: string, log: Logger): Promise<string | undefined> {
    try {
      return await (await this.options.kube(cluster)).getPodNode(namespace, pod);
    } catch (error) {
      log.error(`reading pod ${namespace}/${pod} failed cluster=${cluster}: ${(error as Error).message}`);
      throw new HttpError(503, "token_review_unavailable", `Rollcall could not read the agent's pod ${namespace}/${pod} in cluster ${cluster}; try again later`);
    }
  }

  private remember(key: string, identity: AgentIdentity, token: string): void {
    const now = this.clock();
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

function bearerToken(authorization: string | null): string {
  if (!authorization?.trim()) {
    throw new AgentAuthError(
      401,
      "missing_token",
      "The check-in has no Authorization header: the agent must send its projected service-account token as 'Authorization: Bearer <token>'",
    );
  }
  const match = authorization.trim().match(/^Bearer\s+(\S+)$/i);
  if (!match) throw new AgentAuthError(401, "missing_token", "The Authorization header must be 'Bearer <projected service-account token>'");
  const token = match[1]!;
  if (token.length > MAX_TOKEN_LENGTH || !TOKEN_SHAPE.test(token)) {
    throw new AgentAuthError(403, "invalid_token", "The bearer token is malformed: it is not a Kubernetes service-account token");
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

// --- the process-wide authenticator the check-in function uses -------------------------------------

let authenticator: AgentAuthenticator | undefined;
/** The "authentication is off" warning went to the console at load / to an invocation's log. */
let announced = false;
let warnedInvocation = false;

/** True when running on Azure App Service / Functions rather than locally. */
function onAzure(): boolean {
  return Boolean(process.env.WEBSITE_INSTANCE_ID);
}

const OFF_WARNING =
  "ROLLCALL_AGENT_AUTH=off: CHECK-INS ARE NOT AUTHENTICATED. Any caller with the function key can claim to be any node " +
  "and have it rebooted. This setting is for the local simulation only.";

/**
 * Says loudly, once per process (every cold start), that check-in authentication is off; the first
 * check-in of the process says it again in its own log. Safe to call at module load: a configuration
 * error is left for the first request to report.
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

/**
 * Verifies that a check-in comes from the agent on `node` (see above). With `ROLLCALL_AGENT_AUTH=off`
 * every check-in is let through, with a warning; on Azure that setting is refused outright.
 */
export async function authenticateCheckin(
  request: Pick<HttpRequest, "headers">,
  cluster: string,
  node: string,
  log: Logger,
  kube: () => Promise<ClusterApiFactory>,
): Promise<AgentIdentity | undefined> {
  const { mode, audience } = getConfig().agentAuth;
  if (mode === "off") {
    if (onAzure()) throw new ConfigError(`Invalid app settings: ROLLCALL_AGENT_AUTH=off is for the local simulation only and is refused on Azure`);
    if (!warnedInvocation) {
      warnedInvocation = true;
      log.warn(`WARNING ${OFF_WARNING}`);
    }
    return undefined;
  }
  if (!authenticator || authenticatorAudience !== audience) {
    authenticator = new AgentAuthenticator({ kube: async (name) => (await kube())(name), audience });
    authenticatorAudience = audience;
  }
  return authenticator.authenticate(request.headers.get("authorization"), cluster, node, log);
}

let authenticatorAudience: string | undefined;

/** Forget the process-wide authenticator and its cache (tests change settings and clusters between runs). */
export function resetAgentAuthForTests(): void {
  authenticator = undefined;
  authenticatorAudience = undefined;
  announced = false;
  warnedInvocation = false;
}

/** The process-wide authenticator, for tests that count TokenReviews. */
export function currentAgentAuthenticator(): AgentAuthenticator | undefined {
  return authenticator;
}
