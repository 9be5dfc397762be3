import type { KubeNode } from "../../kube/clusterApi";
import { LOCK_HOLDING_STATES } from "../../node/stateMachine";
import type { GateContext } from "../policy";
import { listShort, type NamedGate } from "./gate";

export const ZONE_LABEL = "topology.kubernetes.io/zone";
export const POOL_LABELS = ["kubernetes.azure.com/agentpool", "agentpool"] as const;

export function zoneOf(node: KubeNode | undefined): string | undefined {
  return node?.labels[ZONE_LABEL] || undefined;
}

export function poolOf(node: KubeNode | undefined): string | undefined {
  for (const label of POOL_LABELS) if (node?.labels[label]) return node.labels[label];
  return undefined;
}

/** `3` → 3; `"25%"` of 10 nodes → 2 (rounded down, at least 1). */
export function unavailableLimit(spec: number | string, totalNodes: number): number {
  if (typeof spec === "number") return spec;
  const percent = Number(spec.replace("%", ""));
  return Math.max(1, Math.floor((totalNodes * percent) / 100));
}

/**
 * Concurrency caps beyond the lock's slots: at most `maxPerZone` nodes of one availability zone and
 * `maxPerPool` of one node pool out at once (a node is "out" while its record holds a lock slot), and
 * at most `maxUnavailable` nodes of the cluster unavailable: NotReady, unschedulable, or held by
 * Rollcall. Asked before the lock only; one `listNodes` call per ask when any cap is set.
 */
export function concurrencyGate(): NamedGate {
  return {
    name: "concurrency",
    async holdReason({ policy, record, phase, kube, records }: GateContext) {
      if (phase !== "before-lock") return undefined;
      const { maxPerZone, maxPerPool, maxUnavailable } = policy;
      if (maxPerZone === undefined && maxPerPool === undefined && maxUnavailable === undefined) return undefined;
      const holders = (await records()).filter((r) => r.node !== record.node && LOCK_HOLDING_STATES.has(r.state)).map((r) => r.node);
      const nodes = await (await kube()).listNodes();
      const byName = new Map(nodes.map((n) => [n.name, n]));
      const me = byName.get(record.node);
      if (!me) return undefined;

      const capBy = (what: string, option: string, max: number | undefined, keyOf: (n: KubeNode | undefined) => string | undefined) => {
        const mine = keyOf(me);
        if (max === undefined || mine === undefined) return undefined;
        const out = holders.filter((h) => keyOf(byName.get(h)) === mine);
        if (out.length < max) return undefined;
        return `${what} ${mine} already has ${out.length} node${out.length === 1 ? "" : "s"} out (${listShort(out)}); ${option} is ${max}`;
      };
      const zone = capBy("zone", "maxPerZone", maxPerZone, zoneOf);
      if (zone) return zone;
      const pool = capBy("node pool", "maxPerPool", maxPerPool, poolOf);
      if (pool) return pool;

      if (maxUnavailable !== undefined) {
        const limit = unavailableLimit(maxUnavailable, nodes.length);
        const unavailable = new Set(holders.filter((h) => byName.has(h)));
        for (const n of nodes) if (n.name !== record.node && (!n.ready || n.unschedulable)) unavailable.add(n.name);
        if (unavailable.size + 1 > limit) {
          const spec = typeof maxUnavailable === "number" ? `${maxUnavailable}` : `${maxUnavailable} (${limit} of ${nodes.length} nodes)`;
          return `${unavailable.size} of ${nodes.length} nodes are unavailable (${listShort([...unavailable].sort())}); maxUnavailable is ${spec}`;
        }
      }
      return undefined;
    },
  };
}
