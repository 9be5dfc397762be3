// The ESM build is what `await import()` loads at run time, so its types are the ones to name.
import type { ContainerServiceClient } from "@azure/arm-containerservice" with { "resolution-mode": "import" };
import { parseAksResourceId } from "../azure/arm";
import { fromSdk, type MaintenanceSchedule } from "./maintenanceWindow";

/**
 * Reads what the planner needs from Azure Resource Manager, through the real `ContainerServiceClient`,
 * into plain JSON-safe facts. The SDK and @azure/identity are imported lazily: a check-in never pays for them.
 */

export interface PoolFacts {
  name: string;
  mode?: string;
  osType?: string;
  count?: number;
  /** The version the pool runs; `orchestratorVersion` may be an alias such as `1.30`. */
  currentOrchestratorVersion: string;
  orchestratorVersion?: string;
  nodeImageVersion?: string;
  latestNodeImageVersion?: string;
  /** Direct upgrades ARM offers this pool now (its upgrade profile's `upgrades`). */
  upgrades?: Array<{ kubernetesVersion: string; isPreview: boolean }>;
  provisioningState?: string;
  powerState?: string;
  upgradeSettings: {
    maxSurge?: string;
    maxUnavailable?: string;
    drainTimeoutInMinutes?: number;
    nodeSoakDurationInMinutes?: number;
    undrainableNodeBehavior?: string;
  };
  eTag?: string;
}

export interface KubernetesMinor {
  /** `1.30` */
  version: string;
  isPreview: boolean;
  isDefault: boolean;
  /** `KubernetesOfficial`, `AKSLongTermSupport`, when ARM gives them. */
  supportPlan: string[];
  /** Full versions offered for this minor, e.g. `1.30.4`. */
  patches: string[];
  /** ARM's direct upgrades from each patch (`patchVersions[p].upgrades`), what later hops are planned from. */
  patchUpgrades?: Record<string, string[]>;
}

export interface PdbFacts {
  checked: boolean;
  /** PodDisruptionBudgets that currently allow no disruption. */
  blocking: Array<{ namespace: string; name: string }>;
  error?: string;
}

export interface ClusterFacts {
  cluster: string;
  resourceId: string;
  location: string;
  currentKubernetesVersion: string;
  kubernetesVersion?: string;
  provisioningState?: string;
  powerState?: string;
  upgradeChannel?: string;
  nodeOSUpgradeChannel?: string;
  supportPlan?: string;
  eTag?: string;
  /** Direct upgrades ARM offers for the control plane (from the upgrade profile). */
  controlPlaneUpgrades: Array<{ kubernetesVersion: string; isPreview: boolean }>;
  /** Set when the cluster upgrade profile could not be used as is (e.g. `agentPoolProfiles: null`). */
  upgradeProfileNote?: string;
  availableVersions: KubernetesMinor[];
  /** Versions an agent pool may run in this cluster (`getAvailableAgentPoolVersions`); absent when not read. */
  agentPoolVersions?: string[];
  pools: PoolFacts[];
  maintenance: { default?: MaintenanceSchedule; autoUpgrade?: MaintenanceSchedule; nodeOS?: MaintenanceSchedule };
  pdbs?: PdbFacts;
  readAt: string;
}

// ---------------------------------------------------------------------------------------------
// ARM errors

export interface ArmFailure {
  /** HTTP status from ARM, or undefined for a network failure. */
  status?: number;
  /** ARM's error code (`ResourceNotFound`, `AuthorizationFailed`, `OperationNotAllowed`, …). */
  code: string;
  message: string;
  retryAfterSeconds?: number;
  /** What went wrong in operator words. */
  explanation: string;
}

export function describeArmError(error: unknown, what = "ARM"): ArmFailure {
  const e = error as {
    statusCode?: number;
    code?: string;
    message?: string;
    details?: { error?: { code?: string; message?: string } };
    response?: { headers?: { get(name: string): string | undefined }; bodyAsText?: string | null };
  };
  const status = typeof e.statusCode === "number" ? e.statusCode : undefined;
  let code = e.details?.error?.code ?? e.code ?? "Unknown";
  let message = e.details?.error?.message ?? e.message ?? String(error);
  if ((!e.details?.error?.code || code === "Unknown") && e.response?.bodyAsText) {
    try {
      const body = JSON.parse(e.response.bodyAsText) as { error?: { code?: string; message?: string } };
      code = body.error?.code ?? code;
      message = body.error?.message ?? message;
    } catch {
      /* not JSON */
    }
  }
  // @azure/core-lro reports a failed operation as "The long-running operation has failed. <code>. <message>".
  const lro = /^The long-running operation has failed\. ([A-Za-z0-9_.]+)\. ([\s\S]*)$/.exec(message);
  if (lro && code === "Unknown") {
    code = lro[1]!;
    message = lro[2]!;
  }
  const retryAfter = e.response?.headers?.get("retry-after");
  const retryAfterSeconds = retryAfter === undefined ? undefined : parseRetryAfter(retryAfter);
  const explanation =
    status === 404
      ? `${what}: not found (${code}); check aksResourceId`
      : status === 401 || status === 403
        ? `${what}: access denied (${code}); the app's identity lacks the action ARM names below: deploy infra/ (aks-access.bicep; upgradeMode=apply for apply mode) or grant it`
        : status === 429
          ? `${what}: throttled by ARM${retryAfterSeconds !== undefined ? `; retry after ${retryAfterSeconds} s` : ""}`
          : status === 409
            ? `${what}: conflict (${code})`
            : status !== undefined && status >= 500
              ? `${what}: ARM failed with ${status} (${code}); transient, will retry on the next run`
              : status === undefined
                ? `${what}: could not reach ARM (${code})`
                : `${what}: ARM answered ${status} (${code})`;
  return { status, code, message, retryAfterSeconds, explanation };
}

function parseRetryAfter(value: string): number | undefined {
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.round(seconds));
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.round((date - Date.now()) / 1000));
}

// ---------------------------------------------------------------------------------------------
// Reading the facts

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

export async function readClusterFacts(client: ContainerServiceClient, cluster: string, resourceId: string, now = new Date()): Promise<ClusterFacts> {
  const { resourceGroup, name } = parseAksResourceId(resourceId);
  const mc = await client.managedClusters.get(resourceGroup, name);
  const location = mc.location;
  const [profile, versions, pools, maintenance, poolVersions] = await Promise.all([
    readUpgradeProfile(client, resourceGroup, name),
    client.managedClusters.listKubernetesVersions(location),
    collect(client.agentPools.list(resourceGroup, name)),
    readMaintenance(client, resourceGroup, name),
    client.agentPools.getAvailableAgentPoolVersions(resourceGroup, name),
  ]);
  const poolFacts = await Promise.all(
    pools.map(async (pool): Promise<PoolFacts> => {
      const poolProfile = await client.agentPools.getUpgradeProfile(resourceGroup, name, pool.name!);
      return {
        name: pool.name!,
        mode: pool.mode,
        osType: pool.osType,
        count: pool.count,
        currentOrchestratorVersion: pool.currentOrchestratorVersion ?? pool.orchestratorVersion ?? poolProfile.kubernetesVersion,
        orchestratorVersion: pool.orchestratorVersion,
        nodeImageVersion: pool.nodeImageVersion,
        latestNodeImageVersion: poolProfile.latestNodeImageVersion,
        upgrades: (poolProfile.upgrades ?? []).filter((u) => u.kubernetesVersion).map((u) => ({ kubernetesVersion: u.kubernetesVersion!, isPreview: u.isPreview === true })),
        provisioningState: pool.provisioningState,
        powerState: pool.powerState?.code,
        upgradeSettings: { ...pool.upgradeSettings },
        eTag: pool.eTag,
      };
    }),
  );
  return {
    cluster,
    resourceId,
    location,
    currentKubernetesVersion: mc.currentKubernetesVersion ?? mc.kubernetesVersion ?? profile.controlPlaneVersion ?? "",
    kubernetesVersion: mc.kubernetesVersion,
    provisioningState: mc.provisioningState,
    powerState: mc.powerState?.code,
    upgradeChannel: mc.autoUpgradeProfile?.upgradeChannel,
    nodeOSUpgradeChannel: mc.autoUpgradeProfile?.nodeOSUpgradeChannel,
    supportPlan: mc.supportPlan,
    eTag: mc.eTag,
    controlPlaneUpgrades: profile.upgrades,
    upgradeProfileNote: profile.note,
    availableVersions: (versions.values ?? [])
      .filter((v) => v.version)
      .map((v) => ({
        version: v.version!,
        isPreview: v.isPreview === true,
        isDefault: v.isDefault === true,
        supportPlan: v.capabilities?.supportPlan ?? [],
        patches: Object.keys(v.patchVersions ?? {}),
        patchUpgrades: Object.fromEntries(Object.entries(v.patchVersions ?? {}).map(([p, info]) => [p, info.upgrades ?? []])),
      })),
    agentPoolVersions: (poolVersions.agentPoolVersions ?? []).map((v) => v.kubernetesVersion).filter((v): v is string => typeof v === "string"),
    pools: poolFacts,
    maintenance,
    readAt: now.toISOString(),
  };
}

interface ProfileRead {
  controlPlaneVersion?: string;
  upgrades: Array<{ kubernetesVersion: string; isPreview: boolean }>;
  note?: string;
}

/**
 * The cluster upgrade profile. Real responses can carry `agentPoolProfiles: null` (or omit it), and
 * the SDK's deserializer then throws a TypeError; the control plane part is read from the raw body
 * instead, and pools always come from their own upgrade profiles.
 */
async function readUpgradeProfile(client: ContainerServiceClient, resourceGroup: string, name: string): Promise<ProfileRead> {
  let raw: unknown;
  const toUpgrades = (list: Array<{ kubernetesVersion?: string; isPreview?: boolean }> | null | undefined) =>
    (list ?? []).filter((u) => u.kubernetesVersion).map((u) => ({ kubernetesVersion: u.kubernetesVersion!, isPreview: u.isPreview === true }));
  try {
    const profile = await client.managedClusters.getUpgradeProfile(resourceGroup, name, { onResponse: (response) => (raw = response.parsedBody) });
    return { controlPlaneVersion: profile.controlPlaneProfile?.kubernetesVersion, upgrades: toUpgrades(profile.controlPlaneProfile?.upgrades) };
  } catch (error) {
    if (!(error instanceof TypeError) || raw === undefined) throw error;
    const body = raw as { properties?: { controlPlaneProfile?: { kubernetesVersion?: string; upgrades?: Array<{ kubernetesVersion?: string; isPreview?: boolean }> | null } } };
    const controlPlane = body.properties?.controlPlaneProfile;
    return {
      controlPlaneVersion: controlPlane?.kubernetesVersion,
      upgrades: toUpgrades(controlPlane?.upgrades),
      note: "the cluster upgrade profile had no agentPoolProfiles (the SDK cannot deserialize it); read its control plane part directly and each pool's own upgrade profile",
    };
  }
}

async function readMaintenance(client: ContainerServiceClient, resourceGroup: string, name: string): Promise<ClusterFacts["maintenance"]> {
  const configs = await collect(client.maintenanceConfigurations.listByManagedCluster(resourceGroup, name));
  const result: ClusterFacts["maintenance"] = {};
  for (const config of configs) {
    const schedule = fromSdk(config);
    if (!schedule) continue;
    if (config.name === "default") result.default = schedule;
    else if (config.name === "aksManagedAutoUpgradeSchedule") result.autoUpgrade = schedule;
    else if (config.name === "aksManagedNodeOSUpgradeSchedule") result.nodeOS = schedule;
  }
  return result;
}
