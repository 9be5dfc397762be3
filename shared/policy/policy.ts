import type { Config, DrainSettings } from "../config/config";
import type { ClusterApi } from "../kube/clusterApi";
import type { NodeRecord } from "../node/nodeRecord";

/** The rules one cluster's reboots follow. Defaults come from app settings. */
export interface Policy {
  /** The stored policy's version (see `PolicyStore`); absent for the app-setting defaults alone. */
  version?: number;
  /** Lock slots: how many nodes may be out at once. */
  concurrency: number;
  lockTtlMs: number;
  drain: DrainSettings & DrainExtras;
  drainFailureBackoffMs: number;
  checkinIdleSeconds: number;
  checkinBusySeconds: number;

  // ---- Reboot policy (issue 6). Optional so that older literals stay valid; `policyFromConfig` and
  // ---- `resolvePolicy` (policySchema.ts) always fill them. Absent means the feature is off.

  /** Weekly reboot windows in IANA time zones; nothing starts outside them. Absent or empty: any time. */
  windows?: WeeklyWindow[];
  /** Use the cluster's AKS planned-maintenance configuration of this name as the window instead. */
  useAksMaintenanceConfiguration?: AksMaintenanceConfigurationName;
  /** At most this many nodes of one availability zone (`topology.kubernetes.io/zone`) out at once. */
  maxPerZone?: number;
  /** At most this many nodes of one node pool (`kubernetes.azure.com/agentpool` or `agentpool`) out at once. */
  maxPerPool?: number;
  /** Cluster-wide cap of unavailable nodes (NotReady, unschedulable or held by Rollcall): a count or `"NN%"`. */
  maxUnavailable?: number | string;
  blockers?: BlockerPolicy;
  health?: HealthPolicy;
  /** Nodes waiting for their turn get this `PreferNoSchedule` taint; removed when done or no longer needed. */
  preferNoScheduleTaint?: { enabled: boolean; key: string };
  /** Which pending node goes first: operator priority then oldest request (default), or oldest request only. */
  pendingOrder?: PendingOrder;
  /** What happens after a drain failed (timeout or refusal). Default: retry with `drainFailureBackoffMs`. */
  drainFailure?: DrainFailurePolicy;
  /** Stop rebooting a node that needs this many reboots in a row (or whose sentinel survives a reboot). */
  rebootLoop?: { maxConsecutiveReboots: number };
  /** Labels set on the node when it takes its turn (before cordon) and after the reboot is confirmed. */
  nodeLabels?: { preReboot: Record<string, string>; postReboot: Record<string, string> };
  notifications?: NotificationPolicy;
  /**
   * `shadow`: decide everything (who takes the lock, what would be evicted, what blocks) and record it
   * in status and history, but write nothing to the cluster and never answer `reboot` (beside kured,
   * docs/kured-migration.md). Absent: `active`.
   */
  mode?: PolicyMode;
  /** Also write kured's node annotations (`weave.works/kured-reboot-in-progress`, `…-most-recent-reboot-needed`) for dashboards keyed on them. */
  kuredAnnotations?: boolean;
}

export type PolicyMode = "active" | "shadow";

/** Drain options beyond the app-setting ones; all optional, absent means off / zero. */
export interface DrainExtras {
  /** Only pods matching this label selector are evicted (kured's --drain-pod-selector). */
  podSelector?: string;
  /** Wait this long after the drain before ordering the reboot (kured's --drain-delay / --reboot-delay). */
  delayBeforeRebootMs?: number;
  /** Opt-in: when the drain times out, order the reboot anyway (kured's --force-reboot). */
  forceRebootAfterTimeout?: boolean;
}

export type Weekday = "mon" | "tue" | "wed" | "thu" | "fri" | "sat" | "sun";
export const WEEKDAYS: readonly Weekday[] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/** A window opening on each of `days` at `start` and closing at `end` (the next day when `end` <= `start`). */
export interface WeeklyWindow {
  days: Weekday[];
  /** Local `HH:MM`. */
  start: string;
  /** Local `HH:MM`; `24:00` is midnight at the end of the day. */
  end: string;
  /** IANA time zone name, e.g. `Europe/Berlin`. */
  timeZone: string;
}

export type AksMaintenanceConfigurationName = "aksManagedNodeOSUpgradeSchedule" | "default";

export interface PodBlocker {
  /** A Kubernetes label selector, e.g. `app=backup,tier!=test` or `job in (etl,report)`. */
  selector: string;
  /** `node`: only pods on the node asking to reboot (kured's behaviour); `cluster`: any pod in the cluster. */
  scope: "node" | "cluster";
}

export interface PrometheusBlocker {
  /** Base URL of a Prometheus-compatible query API; Rollcall calls `GET {url}/api/v1/query` (gates/prometheus.ts). */
  url: string;
  /** A PromQL expression that blocks while it returns any series; absent: the built-in `ALERTS` query with the filters below. */
  query?: string;
  /** Alerts whose name matches are ignored (kured's --alert-filter-regexp)… */
  alertFilterRegex?: string;
  /** …or, when true, only alerts whose name matches block (kured's --alert-filter-match-only). */
  alertFilterMatchOnly: boolean;
  /** Only firing alerts block; pending ones are ignored (kured's --alert-firing-only). */
  firingOnly: boolean;
  /** `azure-managed-identity`: send an Entra ID bearer token (Azure Monitor managed Prometheus). */
  auth: "none" | "azure-managed-identity";
  /** Token scope for `azure-managed-identity`; one of `TOKEN_SCOPES` (shared/outbound/outbound.ts). */
  tokenScope: string;
  /** Name of a `ROLLCALL_SECRET_*` app setting holding a static bearer token (kept out of the policy row). */
  bearerTokenSetting?: string;
  timeoutMs: number;
}

export interface BlockerPolicy {
  podSelectors: PodBlocker[];
  prometheus?: PrometheusBlocker;
  /** Do not take a node whose pods are covered by a PodDisruptionBudget that allows no disruption now. */
  pdbPrecheck: boolean;
}

export interface HealthPolicy {
  /** The next node waits until the last one is Ready and no PodDisruptionBudget is still short of pods. */
  waitForHealthy: boolean;
  /** No lock is taken sooner than this after the last release (kured's --lock-release-delay). */
  lockReleaseDelayMs: number;
}

export type PendingOrder = "priority-then-oldest" | "oldest-first";

export type DrainFailurePolicy =
  /** Release, wait `backoffMs` (doubling per consecutive failure, at most `maxBackoffMs`), try again. */
  | { mode: "retry"; backoffMs: number; maxBackoffMs: number }
  /** Leave the node cordoned, label it, alert; an operator releases it. */
  | { mode: "quarantine"; label: string }
  /** Keep trying until `deadlineMs` after the first failure, then reboot without a complete drain. */
  | { mode: "force-after"; deadlineMs: number };

/** Node transitions, and `upgrade`: what AKS itself announced about the cluster (a new version, support ending). */
export const NOTIFY_EVENTS = ["drainStart", "reboot", "complete", "failure", "stuck", "upgrade"] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

export interface NotificationPolicy {
  /** The webhook to POST to; or `webhookUrlSetting`, the name of a `ROLLCALL_SECRET_*` app setting holding it. */
  webhookUrl?: string;
  webhookUrlSetting?: string;
  format: "teams" | "slack" | "generic";
  /** Message per event with `{{placeholders}}`; events without one use the built-in text. */
  templates: Partial<Record<NotifyEvent, string>>;
  /** Events that are sent; default all. */
  events: NotifyEvent[];
  timeoutMs: number;
}

/** Defaults of the reboot-policy fields when neither the app settings nor the cluster's policy set them. */
export const POLICY_DEFAULTS = {
  preferNoScheduleTaintKey: "rollcall.io/reboot-pending",
  quarantineLabel: "rollcall.io/quarantined",
  maxBackoffMs: 4 * 60 * 60_000,
  maxConsecutiveReboots: 3,
  prometheusTokenScope: "https://prometheus.monitor.azure.com/.default",
  prometheusTimeoutMs: 5_000,
  notifyTimeoutMs: 5_000,
} as const;

/** Fills the optional reboot-policy fields with their defaults (what a cluster without a policy row gets). */
export function withPolicyDefaults(policy: Policy): Policy {
  return {
    ...policy,
    windows: policy.windows ?? [],
    blockers: policy.blockers ?? { podSelectors: [], pdbPrecheck: true },
    health: policy.health ?? { waitForHealthy: true, lockReleaseDelayMs: 0 },
    preferNoScheduleTaint: policy.preferNoScheduleTaint ?? { enabled: false, key: POLICY_DEFAULTS.preferNoScheduleTaintKey },
    pendingOrder: policy.pendingOrder ?? "priority-then-oldest",
    drainFailure: policy.drainFailure ?? { mode: "retry", backoffMs: policy.drainFailureBackoffMs, maxBackoffMs: Math.max(policy.drainFailureBackoffMs, POLICY_DEFAULTS.maxBackoffMs) },
    rebootLoop: policy.rebootLoop ?? { maxConsecutiveReboots: POLICY_DEFAULTS.maxConsecutiveReboots },
    nodeLabels: policy.nodeLabels ?? { preReboot: {}, postReboot: {} },
  };
}

/**
 * A cluster's effective policy. With `atLeastVersion` (a version the lock row named), a cached policy
 * older than that is read again at once instead of after the cache period.
 */
export type PolicySource = (cluster: string, options?: { atLeastVersion?: number }) => Promise<Policy>;

export function policyFromConfig(config: Config): Policy {
  return withPolicyDefaults({ ...config.defaults, drain: { ...config.defaults.drain } });
}

export interface GateContext {
  record: NodeRecord;
  policy: Policy;
  now: Date;
  /** Asked before the lock is taken, and again once drained, before the reboot is ordered. */
  phase: "before-lock" | "before-reboot";
  kube(): Promise<ClusterApi>;
  /** Every node record of the cluster (read on first call). */
  records(): Promise<NodeRecord[]>;
  /** The node released last in the cluster, and when (kept in the lock row by each release). */
  lastRelease(): Promise<{ node: string; at: Date } | undefined>;
}

/**
 * Decides whether a node may go on now. The answer is a reason an operator can read (shown in the
 * status as what holds the node back), or undefined when nothing does.
 */
export interface RebootGate {
  holdReason(context: GateContext): Promise<string | undefined>;
}

export const openGate: RebootGate = { holdReason: async () => undefined };
