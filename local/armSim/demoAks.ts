import type { SimState } from "./armSim";

/**
 * The AKS identity of `npm start`'s simulated cluster in the simulated ARM: one pool behind on its
 * version and node image, the region's versions one minor ahead, an auto-upgrade window, so that the
 * upgrade-plan routes have something to plan. The user kubeconfig ARM hands out is the simulated API
 * server's.
 */

export const DEMO_SUBSCRIPTION = "00000000-0000-0000-0000-00000000cafe";

export function demoAksState(cluster: string, kubeconfig: string): { state: SimState; aksResourceId: string } {
  const image = (release: string) => `AKSUbuntu-2204gen2containerd-${release}`;
  return {
    aksResourceId: `/subscriptions/${DEMO_SUBSCRIPTION}/resourceGroups/rollcall-local/providers/Microsoft.ContainerService/managedClusters/${cluster}`,
    state: {
      clusters: [
        {
          subscriptionId: DEMO_SUBSCRIPTION,
          resourceGroup: "rollcall-local",
          name: cluster,
          location: "eastus",
          kubernetesVersion: "1.30",
          currentKubernetesVersion: "1.30.4",
          pools: [
            {
              name: "nodepool1",
              mode: "System",
              orchestratorVersion: "1.30",
              currentOrchestratorVersion: "1.30.4",
              nodeImageVersion: image("202601.05.0"),
              latestNodeImageVersion: image("202602.10.0"),
            },
          ],
          maintenance: {
            aksManagedAutoUpgradeSchedule: {
              maintenanceWindow: { schedule: { weekly: { intervalWeeks: 1, dayOfWeek: "Sunday" } }, durationHours: 4, utcOffset: "+00:00", startTime: "02:00" },
            },
          },
          userKubeconfig: kubeconfig,
        },
      ],
      versions: {
        eastus: [
          { version: "1.30", supportPlan: ["KubernetesOfficial"], patches: ["1.30.4", "1.30.6"] },
          { version: "1.31", isDefault: true, patches: ["1.31.3"] },
          { version: "1.32", patches: ["1.32.2"] },
          { version: "1.33", isPreview: true, patches: ["1.33.0"] },
        ],
      },
    },
  };
}
