import type { Config } from "../config/config";
import { armClientFactory, parseAksResourceId, type ArmClientFactory } from "../azure/arm";
import { fromSdk, type MaintenanceSchedule } from "../upgrade/maintenanceWindow";
import type { AksScheduleLoader } from "./gates/window";
import type { AksMaintenanceConfigurationName } from "./policy";

/** Maintenance configurations change rarely; one ARM read per cluster and name per this period. */
const CACHE_MS = 10 * 60_000;

/**
 * Reads `useAksMaintenanceConfiguration` windows from ARM (`maintenanceConfigurations.get`) for
 * clusters configured with an `aksResourceId`, cached for ten minutes per cluster and name.
 * Pass the result to `rebootPolicyGate({ aksSchedule })`. A 404 means the cluster has none.
 */
export function aksMaintenanceScheduleLoader(config: Config, arm: ArmClientFactory = armClientFactory(config), clock = () => Date.now()): AksScheduleLoader {
  const cache = new Map<string, { at: number; value: Promise<MaintenanceSchedule | undefined> }>();
  return (cluster: string, name: AksMaintenanceConfigurationName) => {
    const key = `${cluster}|${name}`;
    const hit = cache.get(key);
    if (hit && clock() - hit.at < CACHE_MS) return hit.value;
    const value = read(config, arm, cluster, name);
    cache.set(key, { at: clock(), value });
    value.catch(() => cache.delete(key));
    return value;
  };
}

async function read(config: Config, arm: ArmClientFactory, cluster: string, name: AksMaintenanceConfigurationName): Promise<MaintenanceSchedule | undefined> {
  const resourceId = config.clusters.find((c) => c.name === cluster)?.aksResourceId;
  if (!resourceId) throw new Error(`cluster ${cluster} has no aksResourceId, so its AKS maintenance configuration cannot be read`);
  const id = parseAksResourceId(resourceId);
  const client = await arm(id.subscriptionId);
  try {
    return fromSdk(await client.maintenanceConfigurations.get(id.resourceGroup, id.name, name));
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return undefined;
    throw error;
  }
}
