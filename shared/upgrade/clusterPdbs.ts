import type { ClusterApi } from "../kube/clusterApi";
import type { PdbFacts } from "./armFacts";

/**
 * The PodDisruptionBudgets that would stall an AKS upgrade's drain right now: those that select
 * pods and allow no disruption. The planner warns about pools whose surge/drain settings meet them.
 */
export async function blockingPdbs(kube: ClusterApi): Promise<PdbFacts> {
  const pdbs = await kube.listPodDisruptionBudgets();
  return {
    checked: true,
    blocking: pdbs.filter((pdb) => pdb.expectedPods > 0 && pdb.disruptionsAllowed === 0).map(({ namespace, name }) => ({ namespace, name })),
  };
}
