import type { MaintenanceSchedule } from "../../upgrade/maintenanceWindow";
import type { AksMaintenanceConfigurationName, GateContext } from "../policy";
import { aksWindowStateAt, windowHoldReason, windowStateAt } from "../window";
import type { NamedGate } from "./gate";

/** Reads the cluster's AKS planned-maintenance configuration of this name; undefined when it has none. */
export type AksScheduleLoader = (cluster: string, name: AksMaintenanceConfigurationName) => Promise<MaintenanceSchedule | undefined>;

/**
 * The reboot-window gate: nothing starts outside the policy's windows (or the cluster's AKS
 * maintenance configuration), and before the lock a node starts only if the window stays open for
 * at least the drain timeout. Asked in both phases; a drained node waits cordoned for the window.
 */
export function windowGate(deps: { aksSchedule?: AksScheduleLoader } = {}): NamedGate {
  return {
    name: "window",
    async holdReason({ policy, record, now, phase }: GateContext) {
      if (policy.useAksMaintenanceConfiguration) {
        const name = policy.useAksMaintenanceConfiguration;
        if (!deps.aksSchedule) throw new Error(`the policy uses the AKS maintenance configuration ${name}, but no ARM reader is configured`);
        const schedule = await deps.aksSchedule(record.cluster, name);
        if (!schedule) return `the cluster has no AKS maintenance configuration ${name}; nothing starts until it exists or the policy names windows`;
        return windowHoldReason(aksWindowStateAt(schedule, now), now, policy.drain.timeoutMs, phase, `AKS maintenance window ${name}`);
      }
      if (!policy.windows?.length) return undefined;
      return windowHoldReason(windowStateAt(policy.windows, now), now, policy.drain.timeoutMs, phase);
    },
  };
}
