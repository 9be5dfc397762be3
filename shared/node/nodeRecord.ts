import { odata, type TableClient, type TableEntity, type TransactionAction } from "@azure/data-tables";
import { assertStorable, clip, isConflict, isNotFound, isTextPart, prefixFilter, readText, rowKeys, textProperties } from "../storage/table";
import type { NodeState } from "./stateMachine";

/** Everything Rollcall knows about one node, kept in one Table Storage row and changed only by ETag. */
export interface NodeRecord {
  cluster: string;
  node: string;
  state: NodeState;
  /** When the node entered `state`. */
  since: string;
  /** Why it did, in words an operator reads in the status. */
  why: string;
  /** What holds the node in its state right now (lock, drain blocker, policy), kept for the status API. */
  holdReason?: string;
  /** A policy gate, not the queue or the slots, held the pending node at its last step. */
  heldByGate?: boolean;

  /** Facts the agent reports on every check-in. */
  bootId?: string;
  agentVersion?: string;
  rebootRequired: boolean;
  reasons: string[];
  lastCheckinAt?: string;
  /** Until when the agent's last check-in is held open for the node's turn (`Prefer: wait`): it is there meanwhile. */
  checkinHeldUntil?: string;
  /** The reasons reported when this lease took its slot, for the history entry its release writes. */
  turnReasons?: string[];
  /** The agent pod (`namespace/name (uid …)`) that first reported the current reboot requirement. */
  rebootReportedBy?: string;
  /** The agent pod (name and uid, in the cluster's agent namespace) the last fresh review of a check-in vouched for. */
  agentPodName?: string;
  agentPodUid?: string;

  /** The lock lease while the node holds a slot. */
  leaseId?: string;
  /** The node was already cordoned by someone else before Rollcall took it: leave it cordoned. */
  wasUnschedulable?: boolean;
  /**
   * The uid of the node object this lease took its slot for (then: cordoned): a node re-created under
   * the same name is another machine. Also what the lease's Events name (`involvedObject.uid`).
   */
  nodeUid?: string;
  /** Boot ids (agent's, node object's) when this lease cordoned the node: a change means it rebooted by itself. */
  leaseBootId?: string;
  leaseNodeBootId?: string;
  pendingSince?: string;
  acquiredAt?: string;
  drainStartedAt?: string;
  /** What the drain is waiting for, e.g. which pod and PodDisruptionBudget. */
  drainBlocker?: string;
  /** No blind drain pass before this time (kubectl's 5 s after a budget's refusal, or the server's Retry-After). */
  drainRetryAt?: string;
  /** The budgets (`namespace/name`) that refused the last pass: re-read to retry before `drainRetryAt`. */
  drainBlockedBy?: string[];
  /** `drainRetryAt` is the server's Retry-After: no pass before it, whatever the budget says. */
  drainRetryHinted?: boolean;
  /** Consecutive drain passes refused by a PodDisruptionBudget. */
  drainAttempts?: number;
  /** When the drain finished, for the delay before the reboot order. */
  drainedAt?: string;
  rebootOrderedAt?: string;
  /** Boot ids when the reboot was ordered, from the agent and from the node object: a reboot must change both. */
  orderBootId?: string;
  orderNodeBootId?: string;
  rebootedAt?: string;
  /** Where `releasing` leads: back to idle, or to a back-off after a failed drain. */
  outcome?: ReleaseOutcome;
  /** Shadow mode: the boot id whose turn was decided; the node waits for someone else's reboot (kured's) before another. */
  shadowBootId?: string;
  /** In `drain-failed`: no new attempt before this time. */
  retryAt?: string;
  /** Consecutive failed drains, and when the first of them happened (for the drain-failure policy). */
  failures?: number;
  firstDrainFailureAt?: string;
  /** Confirmed reboots in a row, each needed within 24 h of the one before (the reboot-loop breaker). */
  consecutiveReboots?: number;
  /** When the last confirmed reboot completed. */
  lastRebootAt?: string;
  /** The node label Rollcall set when it quarantined the node, removed when it is released. */
  quarantineLabel?: string;

  /** An operator's request for this node, waiting its turn like a sentinel reboot. */
  request?: ManualRequest;
  /** Who asked to retry a drain-failed node now rather than after its back-off; set by the retry API, acted on by the state's step. */
  retryRequestedBy?: string;
  /** Who retried the turn now under way, for the history entry of the lease it leads to. */
  retriedBy?: string;
  /** Who released the node from maintenance, stuck or quarantine; set by the release API, acted on by the state's step. */
  releaseRequestedBy?: string;
  /** The node's last transitions, newest last, for the node API. */
  recent?: RecentTransition[];
}

export interface ManualRequest {
  id: string;
  reason: string;
  requestedBy: string;
  requestedAt: string;
  /** Not started before this time. */
  notBefore?: string;
  /** `drain-only`: cordon and drain for maintenance, no reboot, until released. */
  mode: "reboot" | "drain-only";
  /** Higher goes first among pending nodes; sentinel reboots have 0. */
  priority: number;
  /** Who withdrew it after the node had taken a slot: kept until the release writes history. */
  cancelledBy?: string;
}

export interface RecentTransition {
  at: string;
  from: string;
  to: string;
  why: string;
}

/** `interrupted`: the node stopped being ours mid-lease (uncordoned or re-cordoned by someone else); the turn is handed back and retried after the drain-failure back-off. */
/** `shadow`: a turn of shadow mode, decided and recorded, with nothing done to the node. */
export type ReleaseOutcome = "completed" | "cancelled" | "drain-failed" | "quarantined" | "node-deleted" | "operator-released" | "interrupted" | "shadow";

export interface Versioned<T> {
  value: T;
  etag: string;
}

/** Fields kept as JSON text, because Table Storage has no array type; each may take several string parts. */
const JSON_FIELDS = ["reasons", "turnReasons", "request", "recent", "drainBlockedBy"] as const;

/**
 * The longest message a record keeps (`why`, `holdReason`, `drainBlocker`, each transition's `why`).
 * Messages quote things Rollcall does not bound itself (pod and PodDisruptionBudget names, API server
 * errors); the longest Rollcall writes on purpose, five reasons of 200 characters, is about 1,050.
 */
export const MAX_MESSAGE_CHARS = 2_000;

/**
 * The row, sized for its worst case: `reasons` and `turnReasons` of a maximal check-in
 * (`MAX_REASONS_JSON_BYTES`, two parts each), ten transitions of `MAX_MESSAGE_CHARS` (≤ 45,000 characters of JSON), an operator request
 * (≤ 1,600) and the messages: about 360 KB of the entity's 1 MiB.
 */
export function toEntity(record: NodeRecord): TableEntity {
  const entity: TableEntity<Record<string, unknown>> = { partitionKey: record.cluster, rowKey: rowKeys.node(record.node) };
  for (const [key, value] of Object.entries(record)) {
    if (key === "cluster" || value === undefined) continue;
    if (key === "recent") Object.assign(entity, textProperties(key, JSON.stringify((value as RecentTransition[]).map((t) => ({ ...t, why: clip(t.why, MAX_MESSAGE_CHARS) })))));
    else if ((JSON_FIELDS as readonly string[]).includes(key)) Object.assign(entity, textProperties(key, JSON.stringify(value)));
    else entity[key] = typeof value === "string" ? clip(value, MAX_MESSAGE_CHARS) : value;
  }
  assertStorable(entity);
  return entity;
}

export function fromEntity(entity: Record<string, unknown> & { partitionKey?: string }): NodeRecord {
  const record: Record<string, unknown> = { cluster: entity.partitionKey };
  for (const [key, value] of Object.entries(entity)) {
    if (key === "partitionKey" || key === "rowKey" || key === "etag" || key === "timestamp" || key.startsWith("odata") || isTextPart(key)) continue;
    record[key] = (JSON_FIELDS as readonly string[]).includes(key) && typeof value === "string" ? JSON.parse(readText(entity, key)!) : value;
  }
  return record as unknown as NodeRecord;
}

export class StaleRecordError extends Error {
  constructor(cluster: string, node: string) {
    super(`The record of node ${node} in cluster ${cluster} changed since it was read`);
  }
}

/** Node records of one table. Writes are compare-and-swap: a stale ETag throws `StaleRecordError`. */
export class NodeStore {
  constructor(private readonly table: TableClient) {}

  async get(cluster: string, node: string): Promise<Versioned<NodeRecord> | undefined> {
    try {
      const entity = await this.table.getEntity<Record<string, unknown>>(cluster, rowKeys.node(node));
      return { value: fromEntity(entity), etag: entity.etag };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async create(record: NodeRecord): Promise<Versioned<NodeRecord>> {
    try {
      const response = await this.table.createEntity(toEntity(record));
      return { value: record, etag: response.etag! };
    } catch (error) {
      if (isConflict(error)) throw new StaleRecordError(record.cluster, record.node);
      throw error;
    }
  }

  async replace(record: NodeRecord, etag: string): Promise<Versioned<NodeRecord>> {
    try {
      const response = await this.table.updateEntity(toEntity(record), "Replace", { etag });
      return { value: record, etag: response.etag! };
    } catch (error) {
      if (isConflict(error) || isNotFound(error)) throw new StaleRecordError(record.cluster, record.node);
      throw error;
    }
  }

  /** Replaces the record if its ETag still matches, in one transaction with `alongWith` (rows of the same cluster, e.g. history). */
  async replaceWith(record: NodeRecord, etag: string, alongWith: TransactionAction[]): Promise<void> {
    try {
      await this.table.submitTransaction([this.replaceAction(record, etag), ...alongWith]);
    } catch (error) {
      if (isConflict(error) || isNotFound(error)) throw new StaleRecordError(record.cluster, record.node);
      throw error;
    }
  }

  /** The transaction action that replaces this record if its ETag still matches. */
  replaceAction(record: NodeRecord, etag: string): TransactionAction {
    return ["update", toEntity(record), "Replace", { etag }];
  }

  /** The cluster's records; with `state`, only those in it (filtered by the service: a long idle fleet is not sent). */
  async list(cluster: string, only: { state?: NodeState } = {}): Promise<Versioned<NodeRecord>[]> {
    const { from, to } = prefixFilter(rowKeys.nodePrefix);
    const range = odata`PartitionKey eq ${cluster} and RowKey ge ${from} and RowKey lt ${to}`;
    const filter = only.state ? `${range} and ${odata`state eq ${only.state}`}` : range;
    const records: Versioned<NodeRecord>[] = [];
    for await (const entity of this.table.listEntities<Record<string, unknown>>({ queryOptions: { filter } })) {
      records.push({ value: fromEntity(entity), etag: entity.etag });
    }
    return records;
  }
}
