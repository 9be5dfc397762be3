import type { Config, DrainSettings } from "../config/config";
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

/**
 * Decides whether a pending node may take the lock now. It is asked before the lock is taken and
 * again before the reboot is ordered; an answer is a reason an operator can read, or undefined.
 */
export interface RebootGate {
  holdReason(record: NodeRecord, policy: Policy, now: Date): Promise<string | undefined>;
}

export const openGate: RebootGate = { holdReason: async () => undefined };
