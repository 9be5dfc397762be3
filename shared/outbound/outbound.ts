import { lookup } from "node:dns/promises";
import { isIP } from "node:net";

/**
 * The rules for requests the app makes because a policy says so (the Prometheus blocker, webhook
 * notifications). A policy is written with an operator key; the app's settings hold its storage key,
 * cluster credentials and a managed identity with rights on Storage, ARM and the clusters. So the
 * holder of a policy key chooses only among what the app's operator allowed:
 *
 * - secrets come only from app settings named `ROLLCALL_SECRET_*`, declared for that purpose;
 * - Entra ID tokens only for the scopes in `TOKEN_SCOPES` (Azure Monitor's query endpoint);
 * - URLs only over https to hosts in `ROLLCALL_PROMETHEUS_HOSTS` / `ROLLCALL_WEBHOOK_HOSTS`, plain
 *   http only to the loopback interface and only with `ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK` (local runs);
 * - redirects are never followed, so a credential cannot be forwarded to another address.
 *
 * Checked when the policy is PUT (400 naming the field) and again before every call, because the
 * settings may have changed since.
 */

/** App settings a policy may name as the source of a secret start with this. */
export const SECRET_SETTING_PREFIX = "ROLLCALL_SECRET_";

/**
 * The only token scopes a policy may ask the app's identity for: the Azure Monitor workspace query
 * endpoint ("Query Prometheus metrics using the API and PromQL", Microsoft Learn: resource
 * https://prometheus.monitor.azure.com, role Monitoring Data Reader).
 */
export const TOKEN_SCOPES = ["https://prometheus.monitor.azure.com/.default"] as const;

export type OutboundPurpose = "prometheus" | "webhook";

export interface OutboundRules {
  /** Host names (`prom.example.com`) or suffixes (`*.prometheus.monitor.azure.com`) the Prometheus blocker may call. */
  prometheusHosts: readonly string[];
  /** The same for notification webhooks. */
  webhookHosts: readonly string[];
  /** Plain http (and https) to 127.0.0.0/8, ::1 and localhost; for `npm start` and tests, never in Azure. */
  allowHttpLoopback: boolean;
}

export const HOSTS_SETTING: Record<OutboundPurpose, string> = { prometheus: "ROLLCALL_PROMETHEUS_HOSTS", webhook: "ROLLCALL_WEBHOOK_HOSTS" };
export const LOOPBACK_SETTING = "ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK";

const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Why a host pattern of a hosts setting is not one (an exact host name or IP, or `*.` and a name with a dot), or undefined. */
export function hostPatternProblem(pattern: string): string | undefined {
  const name = pattern.startsWith("*.") ? pattern.slice(2) : pattern;
  if (isIP(name) && !pattern.startsWith("*.")) return undefined;
  if (!DNS_NAME.test(name)) return `"${pattern}" is not a host name or *.suffix (no scheme, port, path or other wildcard)`;
  if (pattern.startsWith("*.") && !name.includes(".")) return `"${pattern}" would allow a whole top-level domain; name a suffix with a dot, e.g. *.example.com`;
  return undefined;
}

/** Parses a comma-separated hosts setting into lower-case patterns; throws naming the bad entry. */
export function parseHostPatterns(text: string): string[] {
  const patterns = text.split(",").map((p) => p.trim().toLowerCase().replace(/\.$/, "")).filter(Boolean);
  for (const pattern of patterns) {
    const problem = hostPatternProblem(pattern);
    if (problem) throw new Error(problem);
  }
  return patterns;
}

/** The URL's host without IPv6 brackets or a trailing dot, lower case. */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, "").replace(/\.$/, "").toLowerCase();
}

export function isLoopback(host: string): boolean {
  if (host === "localhost" || host.endsWith(".localhost") || host === "0.0.0.0" || host === "::") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1" || host === "0:0:0:0:0:0:0:1";
}

export function hostAllowed(host: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (p.startsWith("*.") ? host.endsWith(p.slice(1)) : host === p));
}

/**
 * Why the app cannot reach this host at all: a Kubernetes service name (`*.svc`, `*.cluster.local`)
 * or a single-label name only resolves inside a cluster, and the Function App runs outside it.
 */
export function inClusterHostProblem(host: string): string | undefined {
  if (isIP(host) || isLoopback(host)) return undefined;
  const inCluster = host.endsWith(".svc") || host.includes(".svc.") || host.endsWith(".cluster.local");
  if (!inCluster && host.includes(".")) return undefined;
  return (
    `names ${host}, ${inCluster ? "an in-cluster service DNS name" : "a single-label name, which only resolves inside a cluster"}; ` +
    "Rollcall runs outside the cluster (in the Function App) and cannot resolve it: use an endpoint reachable from the app, " +
    "such as the Azure Monitor workspace's Prometheus query endpoint (https://<workspace>.<region>.prometheus.monitor.azure.com)"
  );
}

/** Why the app must not call `text` for `purpose` under `rules`, or undefined when it may. Never echoes the URL (a webhook URL is a secret). */
export function outboundUrlProblem(text: string, purpose: OutboundPurpose, rules: OutboundRules): string | undefined {
  if (!URL.canParse(text)) return "is not a URL";
  const url = new URL(text);
  if (url.protocol !== "https:" && url.protocol !== "http:") return "must be an https:// URL";
  if (url.username || url.password) return "must not carry a user name or password (a secret belongs in a ROLLCALL_SECRET_* app setting)";
  const host = hostOf(url);
  if (isLoopback(host)) {
    return rules.allowHttpLoopback ? undefined : `names the loopback interface (${host}), which is refused unless ${LOOPBACK_SETTING} is true (local runs only)`;
  }
  const inCluster = inClusterHostProblem(host);
  if (inCluster) return inCluster;
  if (url.protocol !== "https:") return "must be https: plain http is allowed only to the loopback interface in local runs";
  const patterns = purpose === "prometheus" ? rules.prometheusHosts : rules.webhookHosts;
  if (!hostAllowed(host, patterns)) {
    const allowed = patterns.length ? `it allows ${patterns.join(", ")}` : "it is empty";
    return `names the host ${host}, which is not in ${HOSTS_SETTING[purpose]} (${allowed}); the app's operator adds hosts there`;
  }
  return undefined;
}

/** Why `name` may not be a policy's source of a secret, or undefined. */
export function secretSettingProblem(name: string): string | undefined {
  return name.startsWith(SECRET_SETTING_PREFIX) && name.length > SECRET_SETTING_PREFIX.length
    ? undefined
    : `must name an app setting declared for policies: its name starts with ${SECRET_SETTING_PREFIX} (e.g. ${SECRET_SETTING_PREFIX}PROMETHEUS_TOKEN); other settings hold the app's own secrets`;
}

export function tokenScopeProblem(scope: string): string | undefined {
  return (TOKEN_SCOPES as readonly string[]).includes(scope) ? undefined : `must be one of ${TOKEN_SCOPES.join(", ")}: the app's identity hands out no token for other resources`;
}

/** A request the rules refuse, or an answer they do not accept (a redirect); never retried. */
export class OutboundRefused extends Error {
  override name = "OutboundRefused";
}

/** The value of a `ROLLCALL_SECRET_*` setting; throws when the name is not one or it is not set. */
export function readSecretSetting(name: string, env: Record<string, string | undefined>, field: string): string {
  const problem = secretSettingProblem(name);
  if (problem) throw new OutboundRefused(`${field} ${name} ${problem}`);
  const value = env[name];
  if (!value) throw new OutboundRefused(`the app setting ${name} (${field}) is not set`);
  return value;
}

export interface OutboundCall {
  purpose: OutboundPurpose;
  rules: OutboundRules;
  fetch?: typeof fetch;
}

/**
 * `fetch` under the rules: the URL is checked first, redirects are not followed (`redirect: "manual"`),
 * and a 3xx answer is an `OutboundRefused` naming only the target's host.
 */
export async function fetchOutbound(url: string, init: RequestInit, call: OutboundCall): Promise<Response> {
  const problem = outboundUrlProblem(url, call.purpose, call.rules);
  if (problem) throw new OutboundRefused(`the URL ${problem}`);
  const response = await (call.fetch ?? fetch)(url, { ...init, redirect: "manual" });
  if (response.status >= 300 && response.status < 400) {
    await response.body?.cancel().catch(() => undefined);
    const location = response.headers.get("location");
    const target = location && URL.canParse(location, url) ? new URL(location, url).host : "an unnamed address";
    throw new OutboundRefused(`answered ${response.status}, a redirect to ${target}; redirects are not followed, so that no credential goes elsewhere: use the final URL`);
  }
  return response;
}

export type HostResolver = (host: string) => Promise<void>;

/** A PUT waits at most this long for the system resolver (getaddrinfo has no timeout of its own). */
export const RESOLVE_TIMEOUT_MS = 5_000;

const systemResolver: HostResolver = async (host) => {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${RESOLVE_TIMEOUT_MS / 1000} s`)), RESOLVE_TIMEOUT_MS);
    timer.unref();
  });
  try {
    await Promise.race([lookup(host), timeout]);
  } finally {
    clearTimeout(timer);
  }
};
let resolver = systemResolver;

/** Resolves `host` as the app would (the system resolver), throwing when it cannot. */
export function resolveHost(host: string): Promise<void> {
  return resolver(host);
}

/** Tests on machines without DNS answer lookups themselves; `undefined` restores the system resolver. */
export function setHostResolverForTests(replacement?: HostResolver): void {
  resolver = replacement ?? systemResolver;
}
