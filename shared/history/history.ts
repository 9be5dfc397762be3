import { odata, type TableClient, type TransactionAction } from "@azure/data-tables";
import { MAX_MESSAGE_CHARS, type NodeRecord, type ReleaseOutcome } from "../node/nodeRecord";
import { assertStorable, clip, prefixFilter, readText, TABLE_LIMITS, textProperties } from "../storage/table";

/**
 * One row per finished lease (rebooted, failed, cancelled, maintenance ended), written in the same
 * transaction that frees the lock slot, so history can never disagree with what happened.
 * Row keys sort newest first: `history:<inverted epoch ms>:<node>`.
 */

export interface PhaseDurations {
  /** Pending until the lock was taken. */
  wait?: number;
  cordon?: number;
  drain?: number;
  reboot?: number;
  /** New boot reported until the node was confirmed and released. */
  return?: number;
}

/** How a lease ended; `stuck`: the node never came back from its reboot order and its slot was freed (a later entry tells how it ended). */
export type HistoryOutcome = ReleaseOutcome | "stuck";

export interface HistoryEntry {
  cluster: string;
  node: string;
  outcome: HistoryOutcome;
  why: string;
  leaseId?: string;
  requestedBy: string;
  requestId?: string;
  cancelledBy?: string;
  /** Who ended the drain-failure back-off of this turn with POST …/retry. */
  retriedBy?: string;
  reasons: string[];
  startedAt?: string;
  finishedAt: string;
  /** Seconds per phase. */
  phases: PhaseDurations;
}

const HISTORY_PREFIX = "history:";
const MAX_EPOCH_MS = 8_640_000_000_000_000;

export function historyRowKey(finishedAt: Date, node: string): string {
  return `${HISTORY_PREFIX}${String(MAX_EPOCH_MS - finishedAt.getTime()).padStart(16, "0")}:${node}`;
}

export function historyEntry(record: NodeRecord, now: Date, outcome: HistoryOutcome = record.outcome ?? "completed"): HistoryEntry {
  const seconds = (from?: string, to?: string) => (from && to ? Math.max(0, (Date.parse(to) - Date.parse(from)) / 1000) : undefined);
  const end = now.toISOString();
  const phases: PhaseDurations = {
    wait: seconds(record.pendingSince, record.acquiredAt),
    cordon: seconds(record.acquiredAt, record.drainStartedAt),
    drain: seconds(record.drainStartedAt, record.rebootOrderedAt ?? (record.outcome === "completed" ? undefined : end)),
    reboot: seconds(record.rebootOrderedAt, record.rebootedAt),
    return: seconds(record.rebootedAt, end),
  };
  return {
    cluster: record.cluster,
    node: record.node,
    outcome,
    why: record.why,
    leaseId: record.leaseId,
    requestedBy: record.request?.requestedBy ?? (record.rebootReportedBy ? `agent ${record.rebootReportedBy}` : "sentinel"),
    requestId: record.request?.id,
    cancelledBy: record.request?.cancelledBy,
    retriedBy: record.retriedBy,
    reasons: record.request ? [record.request.reason] : (record.turnReasons ?? record.reasons),
    startedAt: record.pendingSince,
    finishedAt: end,
    phases: Object.fromEntries(Object.entries(phases).filter(([, v]) => v !== undefined)) as PhaseDurations,
  };
}

/**
 * The row, sized for its worst case: the reasons of a maximal check-in in two string parts, `why`
 * clipped like the node record's messages, names of at most 253 and operators of at most 200
 * characters: under 130 KB of the entity's 1 MiB.
 */
export function historyAction(entry: HistoryEntry): TransactionAction {
  const { cluster, reasons, phases, ...rest } = entry;
  const entity = {
    partitionKey: cluster,
    // The end of a stuck episode may be written in the same millisecond as its start (a hand-moved clock, a
    // node that checks in at once): the start sorts just after it, i.e. as the older of the two.
    rowKey: `${historyRowKey(new Date(entry.finishedAt), entry.node)}${entry.outcome === "stuck" ? ":stuck" : ""}`,
    ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
    why: clip(entry.why, MAX_MESSAGE_CHARS),
    ...textProperties("reasons", JSON.stringify(reasons)),
    phases: JSON.stringify(phases),
  };
  assertStorable(entity);
  return ["create", entity];
}

/**
 * The continuation token of a history page is base64 JSON `{nextPartitionKey, nextRowKey}`: the
 * service's opaque continuation values (Azure's look like `1!12!cHJvZA--`, Azurite's are base64),
 * which the SDK puts into the next query's URL. A value with a lone surrogate made it throw
 * `URIError` there (a 500 before this check). A token of this API is the canonical base64 of ASCII
 * JSON with exactly those fields, each a key-sized string of the characters such values use; the
 * query's own filter keeps any token inside the cluster's history rows.
 */
export function isHistoryToken(token: string): boolean {
  if (token.length > 4096 || !/^[A-Za-z0-9+/]+={0,2}$/.test(token)) return false;
  const bytes = Buffer.from(token, "base64");
  if (bytes.toString("base64") !== token) return false;
  // The SDK decodes the bytes as Latin-1, so only ASCII reads the same here and there.
  if (bytes.some((byte) => byte > 0x7f)) return false;
  let decoded: unknown;
  try {
    decoded = JSON.parse(bytes.toString("ascii"));
  } catch {
    return false;
  }
  if (typeof decoded !== "object" || decoded === null || Array.isArray(decoded)) return false;
  const { nextPartitionKey, nextRowKey, ...rest } = decoded as Record<string, unknown>;
  return Object.keys(rest).length === 0 && isContinuationValue(nextPartitionKey) && (nextRowKey === undefined || isContinuationValue(nextRowKey));
}

function isContinuationValue(value: unknown): boolean {
  return typeof value === "string" && value.length <= TABLE_LIMITS.keyChars && /^[A-Za-z0-9!*_.~+/=-]+$/.test(value);
}

export interface HistoryPage {
  entries: HistoryEntry[];
  continuationToken?: string;
}

/** Newest first, `limit` at a time; `node` narrows to one node. */
export async function readHistory(
  table: TableClient,
  cluster: string,
  options: { limit: number; continuationToken?: string; node?: string },
): Promise<HistoryPage> {
  const { from, to } = prefixFilter(HISTORY_PREFIX);
  const filter = options.node
    ? odata`PartitionKey eq ${cluster} and RowKey ge ${from} and RowKey lt ${to} and node eq ${options.node}`
    : odata`PartitionKey eq ${cluster} and RowKey ge ${from} and RowKey lt ${to}`;
  const pages = table.listEntities<Record<string, unknown>>({ queryOptions: { filter } }).byPage({
    maxPageSize: options.limit,
    continuationToken: options.continuationToken,
  });
  const page = await pages.next();
  if (page.done) return { entries: [] };
  return {
    entries: page.value.map((e) => ({
      cluster,
      node: String(e.node),
      outcome: e.outcome as HistoryOutcome,
      why: String(e.why),
      leaseId: e.leaseId as string | undefined,
      requestedBy: String(e.requestedBy),
      requestId: e.requestId as string | undefined,
      cancelledBy: e.cancelledBy as string | undefined,
      retriedBy: e.retriedBy as string | undefined,
      reasons: JSON.parse(readText(e, "reasons") ?? "[]") as string[],
      startedAt: e.startedAt as string | undefined,
      finishedAt: String(e.finishedAt),
      phases: JSON.parse(String(e.phases ?? "{}")) as PhaseDurations,
    })),
    continuationToken: page.value.continuationToken,
  };
}
