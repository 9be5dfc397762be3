import type { HistoryEntry, PhaseDurations } from "../history/history";
import type { LockHolder } from "../lock/tableLock";
import type { NodeRecord } from "../node/nodeRecord";
import { NODE_STATES } from "../node/stateMachine";
import { Exposition } from "./exposition";

/**
 * What `GET /api/metrics` exposes (docs/monitoring.md, "Prometheus metrics"): gauges read from the
 * node records and the lock row at scrape time, and phase-duration histograms over the newest
 * finished leases of each cluster's history.
 */

/** One history page (the most `readHistory` serves at once): the histograms' window per cluster. */
export const PHASE_WINDOW_ENTRIES = 100;

/**
 * Seconds, from a fast cordon to a day's wait for a maintenance window: a drain blocked by a
 * PodDisruptionBudget lasts minutes to the drain timeout, a reboot one to ten minutes.
 */
export const PHASE_BUCKETS_SECONDS = [5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400] as const;

const PHASES = ["wait", "cordon", "drain", "reboot", "return"] as const satisfies readonly (keyof PhaseDurations)[];

export interface ClusterSnapshot {
  cluster: string;
  nodes: readonly NodeRecord[];
  holders: readonly LockHolder[];
  slots: number;
  /** Newest first, at most PHASE_WINDOW_ENTRIES. */
  history: readonly HistoryEntry[];
}

const epochSeconds = (iso: string) => Date.parse(iso) / 1000;

export function renderMetrics(clusters: readonly ClusterSnapshot[]): string {
  const perNode = <T>(pick: (n: NodeRecord, cluster: string) => T[]) => clusters.flatMap((c) => c.nodes.flatMap((n) => pick(n, c.cluster)));
  const perCluster = (value: (c: ClusterSnapshot) => number) => clusters.map((c) => ({ labels: { cluster: c.cluster }, value: value(c) }));
  return new Exposition()
    .gauge(
      "rollcall_reboot_required",
      "1 when the node's agent last reported the reboot sentinel (kured_reboot_required's meaning), else 0.",
      perNode((n, cluster) => [{ labels: { cluster, node: n.node }, value: n.rebootRequired ? 1 : 0 }]),
    )
    .gauge(
      "rollcall_node_state",
      "1 for the node's current Rollcall state, 0 for every other state.",
      perNode((n, cluster) => NODE_STATES.map((state) => ({ labels: { cluster, node: n.node, state }, value: n.state === state ? 1 : 0 }))),
    )
    .gauge(
      "rollcall_node_last_checkin_timestamp_seconds",
      "When the node's agent last checked in (Unix seconds).",
      perNode((n, cluster) => (n.lastCheckinAt ? [{ labels: { cluster, node: n.node }, value: epochSeconds(n.lastCheckinAt) }] : [])),
    )
    .gauge("rollcall_lock_slots", "Rollout slots of the cluster's lock (the policy's concurrency).", perCluster((c) => c.slots))
    .gauge("rollcall_lock_holders", "Slots held now, expired leases included.", perCluster((c) => c.holders.length))
    .gauge(
      "rollcall_lock_holder_expiry_timestamp_seconds",
      "One series per lock holder: when its lease expires (Unix seconds); past time() means the holder outlived the lock TTL.",
      clusters.flatMap((c) => c.holders.map((h) => ({ labels: { cluster: c.cluster, node: h.node }, value: epochSeconds(h.expiresAt) }))),
    )
    .gauge("rollcall_queue_length", "Nodes in state pending, waiting for a slot.", perCluster((c) => c.nodes.filter((n) => n.state === "pending").length))
    .gauge("rollcall_nodes_stuck", "Nodes in state stuck (a lease outlived the lock TTL; an operator must look).", perCluster((c) => c.nodes.filter((n) => n.state === "stuck").length))
    .gauge(
      "rollcall_phase_window_entries",
      `Finished leases the phase histograms cover: the newest ${PHASE_WINDOW_ENTRIES} history entries of the cluster, or fewer.`,
      perCluster((c) => finished(c.history).length),
    )
    .histogram(
      "rollcall_phase_duration_seconds",
      `Seconds per phase (wait, cordon, drain, reboot, return) over the newest ${PHASE_WINDOW_ENTRIES} finished leases; a window, not a counter since start: use histogram_quantile() on it directly, not on rate().`,
      PHASE_BUCKETS_SECONDS,
      clusters.flatMap((c) =>
        PHASES.map((phase) => ({
          labels: { cluster: c.cluster, phase },
          observations: finished(c.history).flatMap((e) => (e.phases[phase] === undefined ? [] : [e.phases[phase]!])),
        })),
      ),
    )
    .text();
}

/** A stuck episode's entry is no finished lease: the entry that ends it carries the same phases again. */
function finished(history: readonly HistoryEntry[]): readonly HistoryEntry[] {
  return history.filter((e) => e.outcome !== "stuck");
}
