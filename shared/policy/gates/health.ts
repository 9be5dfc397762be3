import type { KubePdb } from "../../kube/clusterApi";
import type { GateContext } from "../policy";
import { listShort, type NamedGate } from "./gate";

/** A PDB whose workload is not back: it allows no disruption and has fewer healthy pods than expected. */
export function isShortOfPods(pdb: KubePdb): boolean {
  return pdb.disruptionsAllowed < 1 && pdb.currentHealthy < pdb.expectedPods;
}

export interface HealthGateDeps {
  /**
   * The PodDisruptionBudgets (`namespace/name`) the last node's drain touched, when recorded.
   * Without it, every PDB of the cluster that is short of pods holds the next node.
   */
  touchedPdbs?: (node: string) => readonly string[] | undefined;
}

/**
 * The health gate between nodes: the next node does not take the lock until `lockReleaseDelay` has
 * passed since the last release (kured's --lock-release-delay) and, with `waitForHealthy`, the last
 * node released is Ready and its evicted workloads are back (no PodDisruptionBudget it touched is
 * short of pods). Asked before the lock only.
 */
export function healthGate(deps: HealthGateDeps = {}): NamedGate {
  return {
    name: "health",
    async holdReason({ policy, now, phase, lastRelease, kube }: GateContext) {
      if (phase !== "before-lock") return undefined;
      const health = policy.health ?? { waitForHealthy: true, lockReleaseDelayMs: 0 };
      if (!health.waitForHealthy && health.lockReleaseDelayMs <= 0) return undefined;
      const last = await lastRelease();
      if (!last) return undefined;
      const since = now.getTime() - last.at.getTime();
      if (since < health.lockReleaseDelayMs) {
        const left = Math.ceil((health.lockReleaseDelayMs - since) / 1000);
        return `waiting ${left} s more after node ${last.node} was released at ${last.at.toISOString()} (lockReleaseDelaySeconds is ${health.lockReleaseDelayMs / 1000})`;
      }
      if (!health.waitForHealthy) return undefined;
      const api = await kube();
      const node = await api.getNode(last.node);
      if (node && !node.ready) return `waiting for node ${last.node}, the last one released, to be Ready`;
      const touched = deps.touchedPdbs?.(last.node);
      const short = (await api.listPodDisruptionBudgets())
        .filter((pdb) => !touched || touched.includes(`${pdb.namespace}/${pdb.name}`))
        .filter(isShortOfPods)
        .map((pdb) => `${pdb.namespace}/${pdb.name} (${pdb.currentHealthy} of ${pdb.expectedPods} healthy)`);
      if (short.length) return `waiting for workloads to come back after node ${last.node}: PodDisruptionBudget ${listShort(short)} allows no disruption yet`;
      return undefined;
    },
  };
}
