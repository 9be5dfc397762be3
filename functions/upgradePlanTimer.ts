import { app, type InvocationContext, type Timer } from "@azure/functions";
import { DEFAULT_UPGRADE_APPLY_SCHEDULE, DEFAULT_UPGRADE_SCHEDULE, getConfig } from "../shared/config/config";
import { applyCluster } from "../shared/upgrade/applier";
import { getUpgradeDeps } from "../shared/upgrade/fromConfig";
import { planAllClusters, refreshPoolPauses } from "../shared/upgrade/service";

/** ROLLCALL_UPGRADE_SCHEDULE (default daily): plan every configured AKS cluster and log one line per step. */
export async function upgradePlanTimer(_timer: Timer, context: InvocationContext): Promise<void> {
  const deps = await getUpgradeDeps(context);
  const results = await planAllClusters(deps, getConfig().clusters);
  context.info(`upgrade-plan planned=${results.filter((r) => r.ok).length} failed=${results.filter((r) => !r.ok).length}`);
}

/**
 * ROLLCALL_UPGRADE_APPLY_SCHEDULE (default every 15 min): for clusters in apply mode, follow the running
 * step or start a due one; first, for every AKS cluster, read the pools' provisioning states (the
 * reboot pause's polling fallback for upgrades Rollcall did not start and missed events).
 */
export async function upgradeApplyTimer(_timer: Timer, context: InvocationContext): Promise<void> {
  const deps = await getUpgradeDeps(context);
  for (const connection of getConfig().clusters.filter((c) => c.aksResourceId)) {
    try {
      await refreshPoolPauses(deps, connection);
      if (!connection.upgrade?.apply) continue;
      const result = await applyCluster(deps, connection);
      context.info(`upgrade-apply cluster=${result.cluster} action=${result.action}${result.stepId ? ` step=${result.stepId}` : ""}: ${result.message}`);
    } catch (error) {
      context.error(`upgrade-apply failed cluster=${connection.name}: ${(error as Error).message}`);
    }
  }
}

// Schedules are fixed at registration; the config schema validates the same settings when first read.
app.timer("upgradePlanTimer", { schedule: process.env.ROLLCALL_UPGRADE_SCHEDULE || DEFAULT_UPGRADE_SCHEDULE, handler: upgradePlanTimer });
app.timer("upgradeApplyTimer", { schedule: process.env.ROLLCALL_UPGRADE_APPLY_SCHEDULE || DEFAULT_UPGRADE_APPLY_SCHEDULE, handler: upgradeApplyTimer });
