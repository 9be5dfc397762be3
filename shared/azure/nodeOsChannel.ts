import type { ClusterConnection } from "../config/config";
import { type ArmClientFactory, parseAksResourceId } from "./arm";

/**
 * "Does this cluster need Rollcall?" AKS's node OS upgrade channel decides who reboots nodes:
 * only `Unmanaged` applies OS patches in place (unattended-upgrades) and leaves the reboot to the
 * operator — kured's, and Rollcall's, job. `NodeImage` and `SecurityPatch` reimage nodes to a
 * patched image themselves, in the cluster's maintenance window; `None` applies nothing.
 * https://learn.microsoft.com/azure/aks/auto-upgrade-node-os-image#channels-for-node-os-image-upgrades
 */
export interface NodeOsReport {
  /** `autoUpgradeProfile.nodeOSUpgradeChannel` as ARM reports it; absent for non-AKS clusters or when ARM did not answer. */
  nodeOSUpgradeChannel?: string;
  /** Whether sentinel reboots are the operator's to orchestrate: true only for `Unmanaged`. */
  rebootsLeftToOperator?: boolean;
  note: string;
  /** Set when Rollcall's sentinel reboots would duplicate what AKS does itself. */
  warning?: string;
}

export async function nodeOsReport(connection: ClusterConnection, arm: ArmClientFactory): Promise<NodeOsReport> {
  if (!connection.aksResourceId) {
    return { note: "not configured by aksResourceId: Rollcall cannot read the node OS upgrade channel; it reboots nodes whose sentinel appears" };
  }
  const id = parseAksResourceId(connection.aksResourceId);
  let channel: string | undefined;
  try {
    const cluster = await (await arm(id.subscriptionId)).managedClusters.get(id.resourceGroup, id.name);
    // An absent channel is AKS's default for the cluster's API version; new clusters get NodeImage.
    channel = cluster.autoUpgradeProfile?.nodeOSUpgradeChannel ?? "NodeImage";
  } catch (error) {
    return { note: `could not read the cluster from Azure (${String((error as Error).message ?? error).split("\n")[0]!.slice(0, 200)}): the app identity needs managedClusters/read (infra/modules/aks-access.bicep)` };
  }
  switch (channel) {
    case "Unmanaged":
      return { nodeOSUpgradeChannel: channel, rebootsLeftToOperator: true, note: "Unmanaged: nodes patch themselves and leave the reboot to you; Rollcall orchestrates it" };
    case "NodeImage":
    case "SecurityPatch":
      return {
        nodeOSUpgradeChannel: channel,
        rebootsLeftToOperator: false,
        note: `${channel}: AKS reimages the nodes itself in its maintenance window`,
        warning: `sentinel reboots are configured for this cluster but its node OS upgrade channel is ${channel}: AKS reimages these nodes itself, so Rollcall's reboots only add disruption. Set nodeOSUpgradeChannel Unmanaged (az aks update --node-os-upgrade-channel Unmanaged) or remove the cluster from ROLLCALL_CLUSTERS and its agents`,
      };
    default:
      return { nodeOSUpgradeChannel: channel, rebootsLeftToOperator: false, note: `${channel}: AKS applies no OS updates; nothing will ask for a reboot unless you patch the nodes yourself` };
  }
}

/** The report within `timeoutMs`: health and status answer even when ARM does not. */
export async function nodeOsWithin(connection: ClusterConnection, arm: ArmClientFactory, timeoutMs: number): Promise<NodeOsReport> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<NodeOsReport>((resolve) => {
    timer = setTimeout(() => resolve({ note: `Azure did not answer within ${timeoutMs} ms` }), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([nodeOsReport(connection, arm), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
