import { parseConfig } from "../../shared/config/config";
import type { KubePod } from "../../shared/kube/clusterApi";
import type { NodeRecord } from "../../shared/node/nodeRecord";
import { policyFromConfig, type Policy } from "../../shared/policy/policy";

const defaults = policyFromConfig(parseConfig({ ROLLCALL_STORAGE_CONNECTION: "UseDevelopmentStorage=true" }));

/** The policy fields every test shares: the app-setting defaults (lock TTL 60 min, drain timeout 15 min, …). */
export const policyBase: Pick<Policy, "lockTtlMs" | "drain" | "drainFailureBackoffMs" | "checkinIdleSeconds" | "checkinBusySeconds"> = {
  lockTtlMs: defaults.lockTtlMs,
  drain: defaults.drain,
  drainFailureBackoffMs: defaults.drainFailureBackoffMs,
  checkinIdleSeconds: defaults.checkinIdleSeconds,
  checkinBusySeconds: defaults.checkinBusySeconds,
};

/** A running pod of a ReplicaSet, as most drain tests want it. */
export function runningPod(overrides: Partial<KubePod> = {}): KubePod {
  return {
    namespace: "default",
    name: "web-1",
    phase: "Running",
    controllerKinds: ["ReplicaSet"],
    mirror: false,
    usesEmptyDir: false,
    labels: {},
    ...overrides,
  };
}

/** The most recent release among `records` (a `releasing → …` transition): a gate context's `lastRelease` built from test records. */
export function lastReleaseIn(records: readonly NodeRecord[]): { node: string; at: Date } | undefined {
  let best: { node: string; at: Date } | undefined;
  for (const record of records) {
    for (const t of record.recent ?? []) {
      if (t.from !== "releasing") continue;
      const at = new Date(t.at);
      if (!best || at > best.at) best = { node: record.node, at };
    }
  }
  return best;
}
