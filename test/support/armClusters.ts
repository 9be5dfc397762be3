import type { SimCluster } from "../../local/armSim/armSim";

export const NODE_IMAGE = "AKSUbuntu-2204gen2containerd-202602.10.0";

/** An AKS cluster whose control plane is at 1.31.3 and whose pools are one patch behind: its plan is pool version steps. */
export function poolsOnePatchBehind(subscriptionId: string, name: string, pools: string[], extra: Partial<SimCluster> = {}): SimCluster {
  const pool = (n: string) => ({ name: n, orchestratorVersion: "1.31.1", currentOrchestratorVersion: "1.31.1", nodeImageVersion: NODE_IMAGE, latestNodeImageVersion: NODE_IMAGE });
  return {
    subscriptionId,
    resourceGroup: "rg",
    name,
    location: "westeurope",
    kubernetesVersion: "1.31.3",
    currentKubernetesVersion: "1.31.3",
    pools: pools.map(pool),
    ...extra,
  };
}
