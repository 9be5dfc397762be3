import { odata, type TableClient, type TransactionAction } from "@azure/data-tables";
import type { NodeRecord, ReleaseOutcome } from "../node/nodeRecord";
import { prefixFilter } from "../storage/table";

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

export interface HistoryEntry {
  cluster: string;
  node: string;
  outcome: ReleaseOutcome;
  why: string;
  leaseId?: string;
  requestedBy: string;
  requestId?: string;
  cancelledBy?: string;
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

export function historyEntry(record: NodeRecord, now: Date): HistoryEntry {
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
    outcome: record.outcome ?? "completed",
    why: record.why,
    leaseId: record.leaseId,
    requestedBy: record.request?.requestedBy ?? "sentinel",
    requestId: record.request?.id,
    cancelledBy: record.request?.cancelledBy,
    reasons: record.request ? [record.request.reason] : record.reasons,
    startedAt: record.pendingSince,
    finishedAt: end,
    phases: Object.fromEntries(Object.entries(phases).filter(([, v]) => v !== undefined)) as PhaseDurations,
  };
}

export function historyAction(entry: HistoryEntry): TransactionAction {
  const { cluster, reasons, phases, ...rest } = entry;
  const entity = {
    partitionKey: cluster,
    rowKey: historyRowKey(new Date(entry.finishedAt), entry.node),
    ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
    reasons: JSON.stringify(reasons),
    phases: JSON.stringify(phases),
  };
  return ["create", entity];
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
      outcome: e.outcome as ReleaseOutcome,
      why: String(e.why),
      leaseId: e.leaseId as string | undefined,
      requestedBy: String(e.requestedBy),
      requestId: e.requestId as string | undefined,
      cancelledBy: e.cancelledBy as string | undefined,
      reasons: JSON.parse(String(e.reasons ?? "[]")) as string[],
      startedAt: e.startedAt as string | undefined,
      finishedAt: String(e.finishedAt),
      phases: JSON.parse(String(e.phases ?? "{}")) as PhaseDurations,
    })),
    continuationToken: page.value.continuationToken,
  };
}
