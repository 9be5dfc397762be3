import type { TableClient, TransactionAction } from "@azure/data-tables";
import { isConflict, isNotFound, rowKeys } from "../storage/table";

/**
 * The per-cluster reboot lock: N slots in one Table Storage row, changed only by ETag
 * compare-and-swap. Acquire and release take the caller's own row writes along in the same
 * entity-group transaction, so a node's state and its slot change together or not at all.
 */

export interface LockHolder {
  node: string;
  leaseId: string;
  acquiredAt: string;
  expiresAt: string;
}

export interface LockView {
  holders: LockHolder[];
  etag?: string;
}

export type AcquireResult = { kind: "acquired" } | { kind: "full"; holders: LockHolder[] } | { kind: "conflict" };
export type ReleaseResult = { kind: "released" } | { kind: "not-held" } | { kind: "conflict" };

export class LeaseNotYoursError extends Error {
  constructor(node: string, holder: LockHolder) {
    super(`Lease ${holder.leaseId} belongs to node ${holder.node}, not ${node}: refusing to release it`);
  }
}

export interface ClusterLock {
  view(cluster: string): Promise<LockView>;
  /**
   * Takes a slot if fewer than `slots` are held. `conflict` means someone else wrote first: re-read and retry.
   * With `seen` (a view read earlier), the slot is taken only if the lock is still as it was then, so a
   * caller whose decision depended on who held a slot gets `conflict` when that changed meanwhile.
   */
  acquire(cluster: string, holder: LockHolder, slots: number, alongWith?: TransactionAction[], seen?: LockView): Promise<AcquireResult>;
  /** Frees the slot of `leaseId`; a lease held by another node is refused with `LeaseNotYoursError`. */
  release(cluster: string, node: string, leaseId: string, alongWith?: TransactionAction[]): Promise<ReleaseResult>;
}

export class TableLock implements ClusterLock {
  constructor(private readonly table: TableClient) {}

  async view(cluster: string): Promise<LockView> {
    try {
      const entity = await this.table.getEntity<{ holders?: string }>(cluster, rowKeys.lock);
      return { holders: JSON.parse(entity.holders ?? "[]") as LockHolder[], etag: entity.etag };
    } catch (error) {
      if (isNotFound(error)) return { holders: [] };
      throw error;
    }
  }

  async acquire(cluster: string, holder: LockHolder, slots: number, alongWith: TransactionAction[] = [], seen?: LockView): Promise<AcquireResult> {
    const current = seen ?? (await this.view(cluster));
    if (current.holders.some((h) => h.leaseId === holder.leaseId)) return { kind: "acquired" };
    if (current.holders.length >= slots) return { kind: "full", holders: current.holders };
    const committed = await this.commit(cluster, current, [...current.holders, holder], alongWith);
    return committed ? { kind: "acquired" } : { kind: "conflict" };
  }

  async release(cluster: string, node: string, leaseId: string, alongWith: TransactionAction[] = []): Promise<ReleaseResult> {
    const current = await this.view(cluster);
    const held = current.holders.find((h) => h.leaseId === leaseId);
    if (held && held.node !== node) throw new LeaseNotYoursError(node, held);
    const remaining = current.holders.filter((h) => h.leaseId !== leaseId);
    if (!held && alongWith.length === 0) return { kind: "not-held" };
    // Even when the slot is already free, the companion writes must land; commit them with an unchanged lock.
    const committed = await this.commit(cluster, current, remaining, alongWith);
    if (!committed) return { kind: "conflict" };
    return held ? { kind: "released" } : { kind: "not-held" };
  }

  private async commit(cluster: string, current: LockView, holders: LockHolder[], alongWith: TransactionAction[]): Promise<boolean> {
    const entity = { partitionKey: cluster, rowKey: rowKeys.lock, holders: JSON.stringify(holders) };
    const lockWrite: TransactionAction = current.etag ? ["update", entity, "Replace", { etag: current.etag }] : ["create", entity];
    try {
      await this.table.submitTransaction([lockWrite, ...alongWith]);
      return true;
    } catch (error) {
      if (isConflict(error) || isNotFound(error)) return false;
      throw error;
    }
  }
}
