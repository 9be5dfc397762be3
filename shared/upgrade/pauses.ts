import type { TableClient } from "@azure/data-tables";
import { isNotFound, readText, textProperties } from "../storage/table";
import { loadActive, upgradeRowKeys } from "./planStore";

/**
 * While AKS upgrades a node pool (version or node image), it cordons, drains and reimages that pool's
 * nodes itself: a sentinel reboot there would only add disruption, and could race AKS's drain. The
 * reboot gate asks this module, which knows three sources, whoever started the upgrade:
 * - the operation apply mode started and follows (`upgrade:active`);
 * - ARM's `provisioningState` of the pool (Upgrading, UpgradingNodeImageVersion, …), read whenever
 *   Rollcall reads the pool: the polling fallback for operations Rollcall did not start;
 * - AKS's Event Grid events `NodePoolRollingStarted` until `NodePoolRollingSucceeded`/`Failed`
 *   (https://learn.microsoft.com/azure/aks/quickstart-event-grid).
 * A pool is paused while any source says it is upgrading. Only the source that raised a pause lifts
 * it, except that a poll showing a settled pool after an event's time lifts that event's pause (the
 * fallback for a missed end event). Pauses older than PAUSE_STALE_AFTER_MS expire.
 */

/** A pause older than this is treated as abandoned, so that a lost follower or event never pauses reboots forever. */
export const PAUSE_STALE_AFTER_MS = 48 * 3_600_000;
/** How long after a start event a poll must be before its settled state may lift that event's pause. */
export const EVENT_POLL_GRACE_MS = 5 * 60_000;

/** ARM provisioning states of a settled pool; any other (Upgrading, Updating, UpgradingNodeImageVersion, Scaling, …) is an operation in progress. */
const SETTLED = new Set(["succeeded", "failed", "canceled"]);
export const isSettled = (provisioningState: string | undefined) => provisioningState === undefined || SETTLED.has(provisioningState.toLowerCase());

interface PoolPause {
  /** ARM showed the pool in this state at `seenAt`. */
  arm?: { state: string; seenAt: string };
  /** An Event Grid NodePoolRollingStarted. */
  event?: { type: string; at: string; id: string };
}
type Pauses = Record<string, PoolPause>;

async function readPauses(table: TableClient, cluster: string): Promise<{ pauses: Pauses; etag?: string }> {
  try {
    const row = await table.getEntity<Record<string, unknown>>(cluster, upgradeRowKeys.pauses);
    const text = readText(row, "pauses");
    return { pauses: text ? (JSON.parse(text) as Pauses) : {}, etag: row.etag };
  } catch (error) {
    if (isNotFound(error)) return { pauses: {} };
    throw error;
  }
}

/** Read-modify-write with the row's ETag; a concurrent writer makes it read again. */
async function updatePauses(table: TableClient, cluster: string, change: (pauses: Pauses) => void): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const { pauses, etag } = await readPauses(table, cluster);
    change(pauses);
    for (const [pool, p] of Object.entries(pauses)) if (!p.arm && !p.event) delete pauses[pool];
    // Pools named by events as well as by ARM: as many string parts as the pauses need.
    const entity = { partitionKey: cluster, rowKey: upgradeRowKeys.pauses, ...textProperties("pauses", JSON.stringify(pauses)) };
    try {
      if (etag) await table.updateEntity(entity, "Replace", { etag });
      else await table.createEntity(entity);
      return;
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode;
      if ((status === 412 || status === 409) && attempt < 5) continue;
      throw error;
    }
  }
}

/** The polling fallback: ARM's provisioning state of each pool, as just read. */
export async function recordPoolStates(table: TableClient, cluster: string, pools: Array<{ name: string; provisioningState?: string }>, now: Date): Promise<void> {
  const { pauses } = await readPauses(table, cluster);
  const changes = pools.some((p) => !isSettled(p.provisioningState) || pauses[p.name]);
  if (!changes) return;
  await updatePauses(table, cluster, (current) => {
    for (const pool of pools) {
      const entry = (current[pool.name] ??= {});
      if (!isSettled(pool.provisioningState)) {
        entry.arm = { state: pool.provisioningState!, seenAt: now.toISOString() };
        continue;
      }
      delete entry.arm;
      if (entry.event && now.getTime() - Date.parse(entry.event.at) > EVENT_POLL_GRACE_MS) delete entry.event;
    }
  });
}

/** An AKS NodePoolRolling* event: Started pauses the pool, Succeeded/Failed lifts that pause (an older event never overrides a newer one). */
export async function recordPoolEvent(table: TableClient, cluster: string, pool: string, event: { type: string; at: string; id: string; started: boolean }): Promise<void> {
  await updatePauses(table, cluster, (current) => {
    const entry = (current[pool] ??= {});
    if (entry.event && Date.parse(entry.event.at) > Date.parse(event.at)) return;
    if (event.started) entry.event = { type: event.type, at: event.at, id: event.id };
    else delete entry.event;
  });
}

export interface PoolPauseReason {
  pool: string;
  reason: string;
}

/** Every pool of the cluster whose reboots are paused now, with why. */
export async function pausedPools(table: TableClient, cluster: string, now: Date = new Date()): Promise<PoolPauseReason[]> {
  const [active, { pauses }] = await Promise.all([loadActive(table, cluster), readPauses(table, cluster)]);
  const fresh = (at: string) => now.getTime() - Date.parse(at) <= PAUSE_STALE_AFTER_MS;
  const reasons = new Map<string, string[]>();
  const add = (pool: string, why: string) => reasons.set(pool, [...(reasons.get(pool) ?? []), why]);
  if (active?.pool && active.kind !== "controlPlane" && fresh(active.startedAt)) {
    add(active.pool, `Rollcall is upgrading it (${active.kind === "nodeImage" ? "node image" : "version"} → ${active.to}, started ${active.startedAt})`);
  }
  for (const [pool, p] of Object.entries(pauses)) {
    if (p.arm && fresh(p.arm.seenAt)) add(pool, `ARM shows provisioningState ${p.arm.state} (seen ${p.arm.seenAt})`);
    if (p.event && fresh(p.event.at)) add(pool, `AKS reported ${p.event.type} at ${p.event.at}`);
  }
  return [...reasons].map(([pool, why]) => ({ pool, reason: why.join("; ") }));
}

/** Names of the cluster's pools with an upgrade in progress (empty when none, or for a control-plane-only upgrade). */
export async function activePoolUpgrades(table: TableClient, cluster: string, now: Date = new Date()): Promise<string[]> {
  return (await pausedPools(table, cluster, now)).map((p) => p.pool);
}

/** A status line for the reboot path: why reboots on `pool` are paused, if they are. */
export async function rebootPauseReason(table: TableClient, cluster: string, pool: string, now: Date = new Date()): Promise<string | undefined> {
  return pauseReasonFor(pool, await pausedPools(table, cluster, now));
}

/** The same, from pauses already read (`pausedPools`). */
export function pauseReasonFor(pool: string, paused: readonly PoolPauseReason[]): string | undefined {
  const match = paused.find((p) => p.pool === pool);
  return match ? `sentinel reboots paused: pool ${pool} is being upgraded: ${match.reason}; the upgrade replaces its nodes` : undefined;
}
