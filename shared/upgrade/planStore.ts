import type { TableClient } from "@azure/data-tables";
import { assertStorable, clip, isNotFound, readText, textProperties } from "../storage/table";
import type { ArmFailure } from "./armFacts";
import type { StepKind, UpgradePlan } from "./planner";

/**
 * Upgrade rows live in the cluster's partition of the one Rollcall table:
 * - `upgrade:plan`    the latest plan (JSON, chunked) and the latest ARM failure, kept apart so a failure never erases the plan;
 * - `upgrade:active`  the step apply mode has started and is following (its poller state), at most one per cluster;
 * - `upgrade:history` the last outcomes of applied steps;
 * - `upgrade:apply`   apply mode's state: paused or not, approvals, steps ARM refused, the window occurrence used;
 * - `upgrade:pauses`  pools whose reboots are paused by ARM's provisioning state or AKS's events (./pauses.ts).
 */
export const upgradeRowKeys = {
  plan: "upgrade:plan",
  active: "upgrade:active",
  history: "upgrade:history",
  apply: "upgrade:apply",
  pauses: "upgrade:pauses",
  prefix: "upgrade:",
} as const;

/**
 * The plan row's worst case within the entity's 1 MiB (UTF-16): 16 chunks of 30,000 characters
 * (960,000 bytes) and a last error whose messages are clipped to `MAX_ARM_MESSAGE_CHARS` (≤ 10 KB).
 * 30 chunks, as before, were 1.8 MB: a plan over ~17 chunks was refused by storage.
 */
const CHUNK = 30_000;
const MAX_CHUNKS = 16;
const HISTORY_LENGTH = 20;
/** ARM's error messages are kept to this length in the plan row and the outcomes. */
const MAX_ARM_MESSAGE_CHARS = 2_000;

export interface PlanError {
  at: string;
  failure: ArmFailure;
}

export interface StepOutcome {
  stepId: string;
  kind: StepKind;
  pool?: string;
  to: string;
  /**
   * started: ARM accepted it; succeeded/failed: the long-running operation ended; deferred: try later
   * (another operation in progress); refused: ARM will not do this upgrade (not retried until the plan changes).
   */
  result: "started" | "succeeded" | "failed" | "deferred" | "refused";
  at: string;
  message?: string;
  /** When the step started (for its started/succeeded/failed outcomes). */
  startedAt?: string;
  /** Who approved it (apply: "approve"). */
  approvedBy?: string;
  /** ARM's async operation id. */
  operationId?: string;
  /** Consecutive deferrals of one step folded into this one entry. */
  count?: number;
}

export interface StoredPlan {
  plan?: UpgradePlan;
  lastError?: PlanError;
}

export interface ActiveOperation {
  stepId: string;
  kind: StepKind;
  pool?: string;
  from: string;
  to: string;
  startedAt: string;
  /** Serialized `@azure/core-lro` poller state, to follow the operation from a later invocation. */
  pollerState?: string;
  approvedBy?: string;
  operationId?: string;
}

/** Apply mode's own state for one cluster. */
export interface ApplyState {
  /** An operator paused apply mode: no new step starts (a running one is still followed). */
  paused?: { by: string; at: string; reason?: string };
  /** Approvals (apply: "approve") by step id. */
  approvals: Record<string, { by: string; at: string }>;
  /** Steps ARM refused, by `stepId@from`: not started again until the plan changes or an operator resumes. */
  refused: Record<string, { at: string; message: string }>;
  /** End of the window occurrence in which the last step started: one step per occurrence. */
  occupiedUntil?: string;
  /** Who last resumed apply mode, and when. */
  resumed?: { by: string; at: string };
}

type Row = Record<string, unknown> & { partitionKey: string; rowKey: string };

async function read(table: TableClient, cluster: string, rowKey: string): Promise<Row | undefined> {
  try {
    return (await table.getEntity<Record<string, unknown>>(cluster, rowKey)) as Row;
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

export async function savePlan(table: TableClient, cluster: string, plan: UpgradePlan): Promise<void> {
  const text = JSON.stringify(plan);
  const chunks: Record<string, string> = {};
  const count = Math.ceil(text.length / CHUNK);
  if (count > MAX_CHUNKS) throw new Error(`The upgrade plan for ${cluster} is too large to store (${text.length} characters)`);
  for (let i = 0; i < MAX_CHUNKS; i++) chunks[`plan${i}`] = text.slice(i * CHUNK, (i + 1) * CHUNK);
  const entity = { partitionKey: cluster, rowKey: upgradeRowKeys.plan, computedAt: plan.computedAt, steps: plan.steps.length, chunks: count, lastError: "", ...chunks };
  await table.upsertEntity(entity, "Merge");
}

/** Records an ARM failure next to the previous plan, which stays readable. */
export async function savePlanError(table: TableClient, cluster: string, error: PlanError): Promise<void> {
  const failure = { ...error.failure, message: clip(error.failure.message, MAX_ARM_MESSAGE_CHARS), explanation: clip(error.failure.explanation, MAX_ARM_MESSAGE_CHARS) };
  await table.upsertEntity({ partitionKey: cluster, rowKey: upgradeRowKeys.plan, lastError: JSON.stringify({ ...error, failure }) }, "Merge");
}

export async function loadPlan(table: TableClient, cluster: string): Promise<StoredPlan | undefined> {
  const row = await read(table, cluster, upgradeRowKeys.plan);
  if (!row) return undefined;
  const count = Number(row.chunks ?? 0);
  let text = "";
  for (let i = 0; i < count; i++) text += String(row[`plan${i}`] ?? "");
  return {
    plan: text ? (JSON.parse(text) as UpgradePlan) : undefined,
    lastError: typeof row.lastError === "string" && row.lastError ? (JSON.parse(row.lastError) as PlanError) : undefined,
  };
}

export async function loadActive(table: TableClient, cluster: string): Promise<ActiveOperation | undefined> {
  const row = await read(table, cluster, upgradeRowKeys.active);
  const operation = row && readText(row, "operation");
  return operation ? (JSON.parse(operation) as ActiveOperation) : undefined;
}

/** Claims the cluster's single operation slot; false when another invocation holds it. */
export async function claimActive(table: TableClient, cluster: string, operation: ActiveOperation): Promise<boolean> {
  try {
    await table.createEntity(activeRow(cluster, operation));
    return true;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 409) return false;
    throw error;
  }
}

export async function updateActive(table: TableClient, cluster: string, operation: ActiveOperation): Promise<void> {
  await table.upsertEntity(activeRow(cluster, operation), "Replace");
}

/** The serialized poller may hold ARM's whole answer, so the operation takes as many string parts as it needs, within the entity's 1 MiB. */
function activeRow(cluster: string, operation: ActiveOperation) {
  const row = { partitionKey: cluster, rowKey: upgradeRowKeys.active, ...textProperties("operation", JSON.stringify(operation)) };
  assertStorable(row);
  return row;
}

export async function clearActive(table: TableClient, cluster: string): Promise<void> {
  try {
    await table.deleteEntity(cluster, upgradeRowKeys.active);
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
}

export async function loadHistory(table: TableClient, cluster: string): Promise<StepOutcome[]> {
  const row = await read(table, cluster, upgradeRowKeys.history);
  const outcomes = row && readText(row, "outcomes");
  return outcomes ? (JSON.parse(outcomes) as StepOutcome[]) : [];
}

export async function recordOutcome(table: TableClient, cluster: string, outcome: StepOutcome): Promise<void> {
  const kept: StepOutcome = { ...outcome, ...(outcome.message !== undefined && { message: clip(outcome.message, MAX_ARM_MESSAGE_CHARS) }) };
  const history = await loadHistory(table, cluster);
  const last = history[0];
  // A step deferred again and again is one entry with a count, not a history full of deferrals.
  const repeated = kept.result === "deferred" && last?.result === "deferred" && last.stepId === kept.stepId;
  const outcomes = repeated ? [{ ...kept, count: (last.count ?? 1) + 1 }, ...history.slice(1)] : [kept, ...history].slice(0, HISTORY_LENGTH);
  // Twenty outcomes with clipped messages are under 60,000 characters: two parts.
  await table.upsertEntity({ partitionKey: cluster, rowKey: upgradeRowKeys.history, ...textProperties("outcomes", JSON.stringify(outcomes)) }, "Replace");
}

const parseApplyState = (row: Row | undefined): ApplyState => ({
  approvals: {},
  refused: {},
  ...(row && typeof row.state === "string" ? (JSON.parse(row.state) as Partial<ApplyState>) : {}),
});

export async function loadApplyState(table: TableClient, cluster: string): Promise<ApplyState> {
  return parseApplyState(await read(table, cluster, upgradeRowKeys.apply));
}

/** Read-modify-write of the apply state, retried on a concurrent change (ETag). */
export async function updateApplyState(table: TableClient, cluster: string, change: (state: ApplyState) => void): Promise<ApplyState> {
  for (let attempt = 0; ; attempt++) {
    const row = await read(table, cluster, upgradeRowKeys.apply);
    const state = parseApplyState(row);
    change(state);
    // Approvals and refusals of steps long gone would grow the row without bound.
    for (const map of [state.approvals, state.refused]) {
      const keys = Object.keys(map);
      for (const key of keys.slice(0, Math.max(0, keys.length - 50))) delete map[key];
    }
    const entity = { partitionKey: cluster, rowKey: upgradeRowKeys.apply, state: JSON.stringify(state) };
    try {
      if (row?.etag) await table.updateEntity(entity, "Replace", { etag: String(row.etag) });
      else await table.createEntity(entity);
      return state;
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode;
      if ((status === 412 || status === 409) && attempt < 5) continue;
      throw error;
    }
  }
}
