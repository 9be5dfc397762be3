/**
 * The check-in protocol's plain parts, free of any schema library: the node agent imports only this
 * file (and types), so its bundle carries no zod (about 13 MB of the agent's idle RSS, issue 15).
 * The orchestrator validates requests with the zod schemas in `checkin.ts`, built on these constants;
 * `test/unit/protocol.test.ts` checks that both sides agree.
 */

/** The largest check-in body accepted; a full `.pkgs` list of a big patch run fits comfortably. */
export const MAX_CHECKIN_BYTES = 64 * 1024;

/** Reasons: at most this many, each at most `MAX_REASON_LENGTH` characters… */
export const MAX_REASONS = 500;
export const MAX_REASON_LENGTH = 200;
/**
 * …and all of them together at most this long as JSON (counted in UTF-8 bytes, never fewer than
 * UTF-16 characters), which leaves room in `MAX_CHECKIN_BYTES` for the other fields. The node record
 * and the history row keep the list in two 32,000-character string parts; before this limit a list
 * over one part's 32K characters (500 package names of 68 characters) failed every check-in with 500.
 */
export const MAX_REASONS_JSON_BYTES = 60_000;

/** A lease id is a UUID (any version, as zod's `uuid()` accepts). */
export const LEASE_ID_PATTERN = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** Kubernetes node names: DNS-1123 subdomains of at most 253 characters. */
export const NODE_NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Rollcall's cluster names: DNS-1123 labels of at most 63 characters. */
export const CLUSTER_NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function isNodeName(value: string): boolean {
  return value.length >= 1 && value.length <= 253 && NODE_NAME_PATTERN.test(value);
}

export function isClusterName(value: string): boolean {
  return value.length >= 1 && value.length <= 63 && CLUSTER_NAME_PATTERN.test(value);
}

/** False for text with a lone UTF-16 surrogate, which no storage key, URL or UTF-8 body can carry. */
export function isWellFormed(text: string): boolean {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
}

export function reasonsJsonBytes(reasons: readonly string[]): number {
  return Buffer.byteLength(JSON.stringify(reasons));
}

export function checkinPath(cluster: string, node: string): string {
  return `/api/clusters/${encodeURIComponent(cluster)}/nodes/${encodeURIComponent(node)}/checkin`;
}

export type CheckinAction = "none" | "wait" | "reboot";

/** The orchestrator's answer to a check-in. */
export interface CheckinAnswer {
  action: CheckinAction;
  /** Present only with `reboot`: the agent reboots at most once per lease and echoes it after boot. */
  leaseId?: string;
  /** The node's state in the orchestrator, for the agent's log. */
  state: string;
  reason: string;
  nextCheckinSeconds: number;
}

/**
 * The agent's reading of an answer: the few fields it acts on, each checked; other fields are
 * ignored, as the schema on the server side does. Answers what is wrong, or the answer.
 */
export function parseCheckinAnswer(value: unknown): { answer: CheckinAnswer } | { problem: string } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { problem: "the answer is not an object" };
  const v = value as Record<string, unknown>;
  if (v.action !== "none" && v.action !== "wait" && v.action !== "reboot") return { problem: "action: must be none, wait or reboot" };
  if (v.leaseId !== undefined && (typeof v.leaseId !== "string" || !LEASE_ID_PATTERN.test(v.leaseId))) return { problem: "leaseId: must be a UUID" };
  if (typeof v.state !== "string") return { problem: "state: must be a string" };
  if (typeof v.reason !== "string") return { problem: "reason: must be a string" };
  const next = v.nextCheckinSeconds;
  if (typeof next !== "number" || !Number.isInteger(next) || next <= 0) return { problem: "nextCheckinSeconds: must be a positive integer" };
  return { answer: { action: v.action, ...(v.leaseId !== undefined && { leaseId: v.leaseId as string }), state: v.state, reason: v.reason, nextCheckinSeconds: next } };
}

/**
 * How long the agent lets a check-in wait for an answer held until its node's turn: the request's
 * `Prefer: wait=N` (RFC 7240, section 4.3). An orchestrator that does not know the preference ignores
 * it and answers at once, as the RFC asks; so does this one for anything but a plain count of seconds.
 */
export function preferredWaitSeconds(prefer: string | null | undefined): number {
  for (const preference of (prefer ?? "").split(",")) {
    const match = /^\s*wait\s*=\s*"?(\d{1,6})"?\s*(;.*)?$/i.exec(preference);
    if (match) return Number(match[1]);
  }
  return 0;
}

export function preferWait(seconds: number): string {
  return `wait=${Math.max(0, Math.floor(seconds))}`;
}
