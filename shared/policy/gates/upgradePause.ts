import type { TableClient } from "@azure/data-tables";
import { rebootPauseReason } from "../../upgrade/pauses";
import { poolOf } from "./concurrency";
import type { NamedGate } from "./gate";

/** While AKS upgrades a node pool, sentinel reboots there wait: the upgrade replaces those nodes anyway. */
export function upgradePauseGate(table: TableClient): NamedGate {
  return {
    name: "upgrade pause",
    async holdReason({ record, kube, phase }) {
      if (phase !== "before-lock" || record.request) return undefined;
      const pool = poolOf(await (await kube()).getNode(record.node));
      return pool ? rebootPauseReason(table, record.cluster, pool) : undefined;
    },
  };
}
