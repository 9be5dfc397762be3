import type { NodeRecord } from "../node/nodeRecord";

/** The order pending nodes take free slots in: higher request priority first, then longest waiting. */
export function queueOrder(a: NodeRecord, b: NodeRecord): number {
  return (
    (b.request?.priority ?? 0) - (a.request?.priority ?? 0) ||
    (a.pendingSince ?? "").localeCompare(b.pendingSince ?? "") ||
    a.node.localeCompare(b.node)
  );
}
