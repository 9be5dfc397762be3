import type { TableClient } from "@azure/data-tables";
import { loadActive } from "./planStore";

/**
 * While apply mode upgrades a pool (version or node image), AKS replaces that pool's nodes anyway:
 * Rollcall's sentinel reboots there would only add disruption, so the reboot gate asks this first.
 */

/** An operation older than this is treated as abandoned, so that a lost follower never pauses reboots forever. */
export const PAUSE_STALE_AFTER_MS = 48 * 3_600_000;

/** Names of the cluster's pools with an upgrade in progress (empty when none, or for a control-plane-only upgrade). */
export async function activePoolUpgrades(table: TableClient, cluster: string, now: Date = new Date()): Promise<string[]> {
  const active = await loadActive(table, cluster);
  if (!active || !active.pool || active.kind === "controlPlane") return [];
  if (now.getTime() - Date.parse(active.startedAt) > PAUSE_STALE_AFTER_MS) return [];
  return [active.pool];
}

/** A status line for the reboot path: why reboots on `pool` are paused, if they are. */
export async function rebootPauseReason(table: TableClient, cluster: string, pool: string, now: Date = new Date()): Promise<string | undefined> {
  const pools = await activePoolUpgrades(table, cluster, now);
  if (!pools.includes(pool)) return undefined;
  const active = (await loadActive(table, cluster))!;
  return `sentinel reboots paused: pool ${pool} is being upgraded (${active.kind === "nodeImage" ? "node image" : "version"} → ${active.to}, started ${active.startedAt}); the upgrade replaces its nodes`;
}
