import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { NodeRecord } from "../../shared/node/nodeRecord";
import { pendingOrder, placeOf, queueOf, queueOrder } from "../../shared/node/queue";

const pending = (node: string, pendingSince: string, priority?: number): NodeRecord =>
  ({ cluster: "prod", node, state: "pending", since: pendingSince, why: "w", rebootRequired: true, reasons: [], pendingSince, ...(priority !== undefined && { request: { priority } }) }) as NodeRecord;

describe("the turn queue", () => {
  it("orders pending nodes by priority then age, or by age only", () => {
    const a = pending("a", "2026-11-24T01:00:00.000Z");
    const b = pending("b", "2026-11-24T02:00:00.000Z", 5);
    assert.deepEqual([a, b].sort(pendingOrder({})).map((r) => r.node), ["b", "a"]);
    assert.deepEqual([a, b].sort(pendingOrder({ pendingOrder: "oldest-first" })).map((r) => r.node), ["a", "b"]);
  });

  it("breaks a tie in age by node name, in the order of the names as AKS writes them", () => {
    const at = "2026-11-24T01:00:00.000Z";
    const names = ["aks-nodepool1-12345678-vmss00000a", "aks-nodepool1-12345678-vmss000010", "aks-nodepool1-12345678-vmss000009", "aks-system-0-vmss000000"];
    assert.deepEqual(
      names.map((n) => pending(n, at)).sort(queueOrder).map((r) => r.node),
      [...names].sort((x, y) => x.localeCompare(y)),
    );
  });

  it("sorts a listing's pending nodes once, and finds any node's place in it", () => {
    const listed = [pending("c", "2026-11-24T03:00:00.000Z"), { ...pending("idle", "2026-11-24T00:00:00.000Z"), state: "idle" } as NodeRecord, pending("a", "2026-11-24T01:00:00.000Z"), pending("b", "2026-11-24T02:00:00.000Z")];
    const queue = queueOf(listed, queueOrder);
    assert.deepEqual(queue.map((r) => r.node), ["a", "b", "c"], "only pending nodes, oldest first");
    assert.equal(queueOf(listed, queueOrder), queue, "the same listing is not sorted again");
    assert.notEqual(queueOf([...listed], queueOrder), queue, "another listing is");
    assert.equal(placeOf(queue, listed[2]!, queueOrder), 0);
    assert.equal(placeOf(queue, listed[0]!, queueOrder), 2);
    // A node queued since the listing, or not in it at all, still has its place: behind those older than it.
    assert.equal(placeOf(queue, pending("late", "2026-11-24T02:30:00.000Z"), queueOrder), 2);
    assert.equal(placeOf(queue, pending("urgent", "2026-11-24T09:00:00.000Z", 10), queueOrder), 0);
  });
});
