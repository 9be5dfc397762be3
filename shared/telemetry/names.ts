/**
 * The names Rollcall's telemetry uses in Application Insights. The workbook, the alert rules and the
 * KQL in the docs query exactly these, so renaming one is a breaking change for dashboards.
 */
export const telemetryEvents = {
  /** One per node state transition. Dimensions: cluster, node, from, to, why, leaseId. */
  transition: "RollcallTransition",
  /** A node whose lock outlived its TTL or whose drain stalled. Dimensions: cluster, node, state, why. */
  stuck: "RollcallStuckNode",
  /** A check-in refused by authentication. Dimensions: cluster, node, code (the rule), claimed (who the credential claimed to be). */
  checkinRejected: "RollcallCheckinRejected",
  /** An upgrade plan computed. Dimensions: cluster, steps, summary. */
  upgradePlan: "RollcallUpgradePlan",
} as const;

export const telemetryMetrics = {
  lockWaitSeconds: "rollcall.lock_wait_seconds",
  drainSeconds: "rollcall.drain_seconds",
  rebootSeconds: "rollcall.reboot_seconds",
  returnSeconds: "rollcall.return_seconds",
  nodesPending: "rollcall.nodes_pending",
  nodesStuck: "rollcall.nodes_stuck",
  checkins: "rollcall.checkins",
  errors: "rollcall.errors",
} as const;

/** Every event and metric carries these dimensions where they apply. */
export type TelemetryDimensions = { cluster: string; node?: string } & Record<string, string | number | boolean | undefined>;

/** The small seam the domain writes telemetry through; see `shared/telemetry/telemetry.ts` for implementations. */
export interface Telemetry {
  event(name: string, dimensions: TelemetryDimensions): void;
  metric(name: string, value: number, dimensions: TelemetryDimensions): void;
  exception(error: unknown, dimensions: TelemetryDimensions): void;
}
