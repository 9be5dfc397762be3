import type { TableClient } from "@azure/data-tables";
import { pausedPools, pauseReasonFor } from "../../upgrade/pauses";
import { poolOf } from "./concurrency";
import type { NamedGate } from "./gate";

/** While AKS upgrades a node pool, sentinel reboots there wait: the upgrade replaces those nodes anyway. */
export function upgradePauseGate(table: TableClient): NamedGate {
  return {
    name: "upgrade pause",
    async holdReason({ record, kube, phase }) {
      if (phase !== "before-lock" || record.request) return undefined;
      // The pauses first (one storage read, almost always none): the node is read for its pool only then.
      const paused = await pausedPools(table, record.cluster);
      if (paused.length === 0) return undefined;
      const pool = poolOf(await (await kube()).getNode(record.node));
      return pool ? pauseReasonFor(pool, paused) : undefined;
    },
  };
}
