import { isClusterName, isNodeName } from "../shared/protocol/wire";

/**
 * The agent's settings, all from environment variables (the DaemonSet sets them from a Secret,
 * the downward API and literals). A bad value stops the agent with the variable's name.
 */
export interface AgentConfig {
  /** Base URL of the Function App, e.g. `https://rollcall-prod.azurewebsites.net`. */
  url: string;
  functionKey: string;
  cluster: string;
  node: string;
  /** The projected service-account token, re-read on every check-in; undefined sends no bearer token. */
  tokenFile?: string;
  /** kured's `--reboot-sentinel`: the file whose presence means "reboot required". */
  sentinelFile: string;
  /** kured's `--reboot-sentinel-command`: exit code 0 means "reboot required". Replaces the file when set. */
  sentinelCommand?: string[];
  rebootCommand: string[];
  bootIdFile: string;
  /** Where the agent remembers the lease it rebooted for; must survive container restarts (hostPath). */
  stateDir: string;
  /** ± fraction applied to every interval, so that a fleet does not check in in lockstep. */
  jitter: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  requestTimeoutMs: number;
  /** How check-ins travel: `curl` (the image's, one process per check-in) or `node` (Node's http module, in-process; some 6 MB more resident over https). */
  httpClient: "curl" | "node";
  /** Simulation and benchmarks only: multiplies the answered interval (e.g. 0.2 for a 5× faster demo). */
  intervalScale: number;
  /** Watch the sentinel and the boot id and check in at once when either changes. */
  watch: boolean;
  /**
   * How often a watched file that gives no change events is read instead. The boot id always is:
   * `/proc/sys/kernel/random/boot_id` is procfs, which inotify never reports on. Every 5 s is one
   * 256-byte read, nothing beside a check-in, and still far sooner than an idle interval.
   */
  watchPollMs: number;
}

export class AgentConfigError extends Error {
  override name = "AgentConfigError";
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable} ${problem}`);
  }
}

export const DEFAULT_REBOOT_COMMAND = ["nsenter", "-m/proc/1/ns/mnt", "--", "/bin/systemctl", "reboot"];

type Env = Record<string, string | undefined>;

export function parseAgentConfig(env: Env): AgentConfig {
  const url = required(env, "ROLLCALL_URL");
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new AgentConfigError("ROLLCALL_URL", `must be the Function App's URL such as https://rollcall.azurewebsites.net (got ${JSON.stringify(url)})`);
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") throw new AgentConfigError("ROLLCALL_URL", `must be an http(s) URL (got ${parsed.protocol})`);
  if (parsed.protocol === "http:" && !isLoopback(parsed.hostname) && env.ROLLCALL_ALLOW_HTTP !== "true") {
    throw new AgentConfigError("ROLLCALL_URL", "must use https outside loopback: the function key and token would travel in clear (set ROLLCALL_ALLOW_HTTP=true to override)");
  }

  const cluster = required(env, "ROLLCALL_CLUSTER");
  if (!isClusterName(cluster)) throw new AgentConfigError("ROLLCALL_CLUSTER", `must be the cluster's name in ROLLCALL_CLUSTERS, a DNS label (got ${JSON.stringify(cluster)})`);
  const node = required(env, "NODE_NAME");
  if (!isNodeName(node)) throw new AgentConfigError("NODE_NAME", `must be a Kubernetes node name (got ${JSON.stringify(node)}); set it from spec.nodeName with the downward API`);

  const tokenFile = env.ROLLCALL_TOKEN_FILE === undefined ? "/var/run/secrets/rollcall/token" : env.ROLLCALL_TOKEN_FILE.trim() || undefined;
  const backoffBaseMs = seconds(env, "ROLLCALL_BACKOFF_BASE_SECONDS", 5, 0.1, 3_600);
  const backoffMaxMs = seconds(env, "ROLLCALL_BACKOFF_MAX_SECONDS", 300, 0.1, 86_400);
  if (backoffMaxMs < backoffBaseMs) throw new AgentConfigError("ROLLCALL_BACKOFF_MAX_SECONDS", "must not be smaller than ROLLCALL_BACKOFF_BASE_SECONDS");

  return {
    url: parsed.toString().replace(/\/+$/, ""),
    functionKey: functionKey(env),
    cluster,
    node,
    tokenFile,
    sentinelFile: env.ROLLCALL_SENTINEL_FILE || "/var/run/reboot-required",
    sentinelCommand: env.ROLLCALL_SENTINEL_COMMAND ? command(env, "ROLLCALL_SENTINEL_COMMAND") : undefined,
    rebootCommand: env.ROLLCALL_REBOOT_COMMAND ? command(env, "ROLLCALL_REBOOT_COMMAND") : DEFAULT_REBOOT_COMMAND,
    bootIdFile: env.ROLLCALL_BOOT_ID_FILE || "/proc/sys/kernel/random/boot_id",
    stateDir: env.ROLLCALL_STATE_DIR || "/var/lib/rollcall-agent",
    jitter: number(env, "ROLLCALL_JITTER", 0.1, (n) => n >= 0 && n <= 0.5, "must be a fraction between 0 and 0.5"),
    backoffBaseMs,
    backoffMaxMs,
    requestTimeoutMs: seconds(env, "ROLLCALL_REQUEST_TIMEOUT_SECONDS", 30, 1, 300),
    httpClient: httpClient(env),
    intervalScale: number(env, "ROLLCALL_INTERVAL_SCALE", 1, (n) => n >= 0.01 && n <= 1, "must be a number between 0.01 and 1"),
    watch: (env.ROLLCALL_WATCH ?? "true") !== "false",
    watchPollMs: seconds(env, "ROLLCALL_WATCH_POLL_SECONDS", 5, 0.1, 3_600),
  };
}

function required(env: Env, name: string): string {
  const value = env[name]?.trim();
  if (!value) throw new AgentConfigError(name, "is required but not set");
  return value;
}

/** Sent as a header on every check-in: a value no header can carry would fail every one of them. */
function functionKey(env: Env): string {
  const key = required(env, "ROLLCALL_FUNCTION_KEY");
  if (key.length > 1024 || !/^[\x21-\x7e]+$/.test(key)) throw new AgentConfigError("ROLLCALL_FUNCTION_KEY", "must be the checkin function's key: printable characters without spaces, at most 1024");
  return key;
}

function httpClient(env: Env): AgentConfig["httpClient"] {
  const value = env.ROLLCALL_HTTP_CLIENT?.trim() || "curl";
  if (value !== "curl" && value !== "node") throw new AgentConfigError("ROLLCALL_HTTP_CLIENT", `must be curl or node (got ${JSON.stringify(value)})`);
  return value;
}

function number(env: Env, name: string, fallback: number, ok: (n: number) => boolean, problem: string): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || !ok(value)) throw new AgentConfigError(name, `${problem} (got ${JSON.stringify(raw)})`);
  return value;
}

/**
 * Every interval is bounded: a day at most keeps each far inside Node's timer range (a `setTimeout`
 * of more than 2^31−1 ms fires after 1 ms), and the lower bounds keep a fleet from hammering the app.
 */
function seconds(env: Env, name: string, fallback: number, min: number, max: number): number {
  return number(env, name, fallback, (n) => n >= min && n <= max, `must be a number of seconds between ${min} and ${max}`) * 1000;
}

/** A command as a JSON array (`["nsenter","-m/proc/1/ns/mnt","--","test","-f","/x"]`) or words separated by spaces. */
export function parseCommand(text: string): string[] | undefined {
  const trimmed = text.trim();
  if (trimmed.startsWith("[")) {
    try {
      const value: unknown = JSON.parse(trimmed);
      if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "string" && v.length > 0)) return value as string[];
    } catch {
      return undefined;
    }
    return undefined;
  }
  const words = trimmed.split(/\s+/).filter(Boolean);
  return words.length > 0 ? words : undefined;
}

function command(env: Env, name: string): string[] {
  const parsed = parseCommand(env[name] ?? "");
  if (!parsed) throw new AgentConfigError(name, `must be a command: words separated by spaces, or a JSON array of strings (got ${JSON.stringify(env[name])})`);
  return parsed;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\./.test(host);
}
