import type { Config, DrainSettings } from "../config/config";
import type { ClusterApi } from "../kube/clusterApi";
import type { NodeRecord } from "../node/nodeRecord";

/** The rules one cluster's reboots follow. Defaults come from app settings. */
export interface Policy {
  /** Lock slots: how many nodes may be out at once. */
  concurrency: number;
  lockTtlMs: number;
  drain: DrainSettings;
  drainFailureBackoffMs: number;
  checkinIdleSeconds: number;
  checkinBusySeconds: number;
}

export type PolicySource = (cluster: string) => Promise<Policy>;

export function policyFromConfig(config: Config): Policy {
  return { ...config.defaults, drain: { ...config.defaults.drain } };
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
}

/**
 * Decides whether a node may go on now. The answer is a reason an operator can read (shown in the
 * status as what holds the node back), or undefined when nothing does.
 */
export interface RebootGate {
  holdReason(context: GateContext): Promise<string | undefined>;
}

export const openGate: RebootGate = { holdReason: async () => undefined };
