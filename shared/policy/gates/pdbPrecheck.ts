import type { KubePdb, KubePod } from "../../kube/clusterApi";
import { matchesLabelSelector, matchesStructuredSelector } from "../labelSelector";
import type { GateContext, Policy } from "../policy";
import { listShort, type NamedGate } from "./gate";

/** Pods the drain would evict: not mirror pods, not DaemonSet pods, not finished or terminating, matching the drain's pod selector. */
export function podsToEvict(pods: readonly KubePod[], policy: Pick<Policy, "drain">): KubePod[] {
  return pods.filter(
    (p) =>
      !p.mirror &&
      !p.controllerKinds.includes("DaemonSet") &&
      p.phase !== "Succeeded" &&
      p.phase !== "Failed" &&
      !p.deletionTimestamp &&
      (!policy.drain.podSelector || matchesLabelSelector(policy.drain.podSelector, p.labels)),
  );
}

/** The PodDisruptionBudgets of the pod's namespace that select it. */
export function pdbsCovering(pod: Pick<KubePod, "namespace" | "labels">, pdbs: readonly KubePdb[]): KubePdb[] {
  return pdbs.filter((pdb) => pdb.namespace === pod.namespace && matchesStructuredSelector(pdb.selector, pod.labels));
}

/**
 * The PDB pre-check: a node whose pods are covered by a PodDisruptionBudget that allows no
 * disruption right now is not cordoned, because its drain could not progress. Asked before the lock
 * only (on by default; `blockers.pdbPrecheck: false` turns it off).
 */
export function pdbPrecheckGate(): NamedGate {
  return {
    name: "pdb pre-check",
    async holdReason({ policy, record, phase, kube }: GateContext) {
      if (phase !== "before-lock" || policy.blockers?.pdbPrecheck === false) return undefined;
      const api = await kube();
      const pods = podsToEvict(await api.listPods({ nodeName: record.node }), policy);
      if (pods.length === 0) return undefined;
      const pdbs = await api.listPodDisruptionBudgets();
      const blocking = new Map<string, { pdb: KubePdb; pods: string[] }>();
      for (const pod of pods) {
        for (const pdb of pdbsCovering(pod, pdbs)) {
          if (pdb.disruptionsAllowed > 0) continue;
          const key = `${pdb.namespace}/${pdb.name}`;
          const entry = blocking.get(key) ?? { pdb, pods: [] };
          entry.pods.push(`${pod.namespace}/${pod.name}`);
          blocking.set(key, entry);
        }
      }
      if (blocking.size === 0) return undefined;
      const described = [...blocking].map(
        ([key, { pdb, pods: covered }]) =>
          `PodDisruptionBudget ${key} allows no disruption now (${pdb.currentHealthy} healthy, ${pdb.desiredHealthy} required) and covers ${listShort(covered, 2)}`,
      );
      return `not cordoning: ${listShort(described, 2)}`;
    },
  };
}
