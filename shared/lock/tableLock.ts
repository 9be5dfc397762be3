import type { TableClient, TransactionAction } from "@azure/data-tables";
import { assertStorable, isConflict, isNotFound, readText, rowKeys, textProperties } from "../storage/table";

/**
 * The per-cluster reboot lock: N slots in one Table Storage row, changed only by ETag
 * compare-and-swap. Acquire and release take the caller's own row writes along in the same
 * entity-group transaction, so a node's state and its slot change together or not at all.
 *
 * The row also carries the cluster's policy version: a policy write bumps it in the same transaction
 * that writes the policy row, so an acquire that commits against the lock row it read also commits
 * against the policy version that row named (see `withPolicyVersion`).
 */

/**
 * The most slots the row holds. The holders list is JSON split across string properties
 * (`holders`, `holders_1`, …); its longest holder (a 253-character node name, a UUID lease and two
 * ISO times) takes 393 characters with its comma, so 1,000 take 393,000 characters in 13 parts, about
 * 790 KB of the entity's 1 MiB (UTF-16). In one string property, as before, only 83 such holders fitted.
 */
export const MAX_SLOTS = 1000;

export interface LockHolder {
  node: string;
  leaseId: string;
  acquiredAt: string;
  expiresAt: string;
}

export interface LockView {
  holders: LockHolder[];
  etag?: string;
  /** The version of the last policy written for the cluster (absent or 0: none since versions were kept). */
  policyVersion?: number;
  /** The slot freed last, and when: the health gate's "last node released", read with the row instead of from every record. */
  lastRelease?: { node: string; at: string };
}

/**
 * `etags`: the new ETags of the `alongWith` rows, in their order, when this call committed them (a
 * caller then needs no read to write the row again); absent when nothing was written.
 */
export type AcquireResult = { kind: "acquired"; etags?: (string | undefined)[] } | { kind: "full"; holders: LockHolder[] } | { kind: "conflict" };
export type ReleaseResult = { kind: "released" | "not-held"; etags?: (string | undefined)[] } | { kind: "conflict" };

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
  /**
   * Frees the slot of `leaseId`; a lease held by another node is refused with `LeaseNotYoursError`.
   * `releasedAt`: the node's turn ended at that time (not a lease expiry), recorded as the last release.
   */
  release(cluster: string, node: string, leaseId: string, alongWith?: TransactionAction[], releasedAt?: Date): Promise<ReleaseResult>;
}

export class TableLock implements ClusterLock {
  constructor(private readonly table: TableClient) {}

  async view(cluster: string): Promise<LockView> {
    try {
      const entity = await this.table.getEntity<Record<string, unknown>>(cluster, rowKeys.lock);
      const lastRelease = typeof entity.lastReleaseNode === "string" && typeof entity.lastReleaseAt === "string" ? { node: entity.lastReleaseNode, at: entity.lastReleaseAt } : undefined;
      return { holders: JSON.parse(readText(entity, "holders") ?? "[]") as LockHolder[], etag: entity.etag, policyVersion: Number(entity.policyVersion ?? 0), ...(lastRelease && { lastRelease }) };
    } catch (error) {
      if (isNotFound(error)) return { holders: [], policyVersion: 0 };
      throw error;
    }
  }

  /**
   * Commits `writes(version)` (the policy row) with the lock row's policy version raised to `version`,
   * in one transaction; retried on a concurrent lock write. Returns the new version.
   */
  async withPolicyVersion(cluster: string, writes: (version: number) => TransactionAction[]): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const current = await this.view(cluster);
      const version = (current.policyVersion ?? 0) + 1;
      if (await this.commit(cluster, current, current.holders, writes(version), version)) return version;
      if (attempt >= 20) throw new Error(`The lock row of cluster ${cluster} kept changing; the policy was not written`);
    }
  }

  async acquire(cluster: string, holder: LockHolder, slots: number, alongWith: TransactionAction[] = [], seen?: LockView): Promise<AcquireResult> {
    const current = seen ?? (await this.view(cluster));
    if (current.holders.some((h) => h.leaseId === holder.leaseId)) return { kind: "acquired" };
    if (current.holders.length >= slots) return { kind: "full", holders: current.holders };
    const etags = await this.commit(cluster, current, [...current.holders, holder], alongWith);
    return etags ? { kind: "acquired", etags } : { kind: "conflict" };
  }

  async release(cluster: string, node: string, leaseId: string, alongWith: TransactionAction[] = [], releasedAt?: Date): Promise<ReleaseResult> {
    const current = await this.view(cluster);
    const held = current.holders.find((h) => h.leaseId === leaseId);
    if (held && held.node !== node) throw new LeaseNotYoursError(node, held);
    const remaining = current.holders.filter((h) => h.leaseId !== leaseId);
    if (!held && alongWith.length === 0) return { kind: "not-held" };
    // Even when the slot is already free, the companion writes must land; commit them with an unchanged lock.
    const etags = await this.commit(cluster, current, remaining, alongWith, current.policyVersion ?? 0, held && releasedAt ? { node, at: releasedAt.toISOString() } : current.lastRelease);
    if (!etags) return { kind: "conflict" };
    return { kind: held ? "released" : "not-held", etags };
  }

  /** Commits the lock row with `alongWith`; answers the ETags of the `alongWith` rows, or undefined when another write came first. */
  private async commit(cluster: string, current: LockView, holders: LockHolder[], alongWith: TransactionAction[], policyVersion = current.policyVersion ?? 0, lastRelease = current.lastRelease): Promise<(string | undefined)[] | undefined> {
    // Replace writes the whole row: what a commit does not change is written as it was read.
    const released = lastRelease ? { lastReleaseNode: lastRelease.node, lastReleaseAt: lastRelease.at } : {};
    const entity = { partitionKey: cluster, rowKey: rowKeys.lock, ...textProperties("holders", JSON.stringify(holders)), policyVersion, ...released };
    assertStorable(entity);
    const lockWrite: TransactionAction = current.etag ? ["update", entity, "Replace", { etag: current.etag }] : ["create", entity];
    try {
      const response = await this.table.submitTransaction([lockWrite, ...alongWith]);
      return alongWith.map((_, i) => response.subResponses[i + 1]?.etag);
    } catch (error) {
      if (isConflict(error) || isNotFound(error)) return undefined;
      throw error;
    }
  }
}
