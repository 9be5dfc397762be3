import type { GateContext } from "../policy";
import { listShort, type NamedGate } from "./gate";

const FINISHED = new Set(["Succeeded", "Failed"]);

/**
 * Blocking pods (kured's --blocking-pod-selector): while a pod matching one of the policy's
 * selectors runs on the node (scope `node`) or anywhere in the cluster (scope `cluster`), the node
 * does not start its turn and, once drained, is not rebooted. Asked in both phases.
 */
export function podBlockerGate(): NamedGate {
  return {
    name: "pod blockers",
    async holdReason({ policy, record, kube }: GateContext) {
      const selectors = policy.blockers?.podSelectors ?? [];
      if (selectors.length === 0) return undefined;
      const api = await kube();
      for (const { selector, scope } of selectors) {
        const pods = await api.listPods({ labelSelector: selector, nodeName: scope === "node" ? record.node : undefined });
        const running = pods.filter((p) => !FINISHED.has(p.phase));
        if (running.length === 0) continue;
        const names = running.map((p) => (scope === "node" ? `${p.namespace}/${p.name}` : `${p.namespace}/${p.name} on ${p.nodeName || "no node"}`));
        const where = scope === "node" ? `on node ${record.node}` : "in the cluster";
        return `blocking pod${running.length === 1 ? "" : "s"} ${listShort(names)} ${where} match${running.length === 1 ? "es" : ""} "${selector}"`;
      }
      return undefined;
    },
  };
}
