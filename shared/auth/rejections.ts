import type { TableClient } from "@azure/data-tables";
import type { Logger } from "../orchestrator/transitionLog";
import { isConflict, isNotFound, readText, textProperties } from "../storage/table";

/**
 * Refused check-ins of known nodes, per cluster, for the status route: a node whose agent keeps
 * being refused (a broken token mount, or someone forging check-ins) shows up where operators look.
 *
 * One row per cluster (`checkin-rejections`) keeps the latest MAX_NODES nodes. Writes are rate-limited
 * per instance (at most one per node per WRITE_INTERVAL_MS, counting the refusals in between), so a
 * flood of forged check-ins costs storage little, and only nodes Rollcall already knows are kept.
 */

export const REJECTIONS_ROW_KEY = "checkin-rejections";
const MAX_NODES = 50;
const MAX_CLAIMED_LENGTH = 300;
const WRITE_INTERVAL_MS = 30_000;
/** Rejections older than this are dropped from the row and from the status. */
const KEEP_MS = 24 * 3600_000;

export interface CheckinRejection {
  node: string;
  /** The rule that failed last (`wrong_service_account`, `wrong_pod`, …). */
  code: string;
  /** Who the last refused credential claimed to be. */
  claimed: string;
  count: number;
  firstAt: string;
  lastAt: string;
}

interface Unwritten {
  count: number;
  code: string;
  claimed: string;
  lastAt: string;
}

export class RejectionLog {
  private readonly lastWrite = new Map<string, number>();
  private readonly unwritten = new Map<string, Unwritten>();

  constructor(
    private readonly table: TableClient,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async record(cluster: string, node: string, code: string, claimed: string, log: Pick<Logger, "warn">): Promise<void> {
    const key = `${cluster}/${node}`;
    const now = this.clock();
    const pending = this.unwritten.get(key);
    this.unwritten.set(key, { count: (pending?.count ?? 0) + 1, code, claimed: claimed.slice(0, MAX_CLAIMED_LENGTH), lastAt: now.toISOString() });
    if (now.getTime() - (this.lastWrite.get(key) ?? Number.NEGATIVE_INFINITY) < WRITE_INTERVAL_MS) return;
    this.lastWrite.set(key, now.getTime());
    const update = this.unwritten.get(key)!;
    this.unwritten.delete(key);
    try {
      await this.merge(cluster, node, update, now);
    } catch (error) {
      // Bookkeeping of a refusal must never turn the refusal into a 500.
      log.warn(`could not record the refused check-in cluster=${cluster} node=${node}: ${(error as Error).message}`);
    }
  }

  /** The cluster's recent rejections, most recent first. */
  async list(cluster: string): Promise<CheckinRejection[]> {
    const { entries } = await this.read(cluster);
    return fresh(entries, this.clock());
  }

  private async merge(cluster: string, node: string, update: Unwritten, now: Date): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const { entries, etag } = await this.read(cluster);
      const previous = entries.find((e) => e.node === node);
      const entry: CheckinRejection = {
        node,
        code: update.code,
        claimed: update.claimed,
        count: (previous?.count ?? 0) + update.count,
        firstAt: previous?.firstAt ?? update.lastAt,
        lastAt: update.lastAt,
      };
      const kept = fresh([entry, ...entries.filter((e) => e.node !== node)], now).slice(0, MAX_NODES);
      // 50 entries of a 253-character node and a 300-character claim are over one string property's 32K characters.
      const entity = { partitionKey: cluster, rowKey: REJECTIONS_ROW_KEY, ...textProperties("entries", JSON.stringify(kept)) };
      try {
        if (etag) await this.table.updateEntity(entity, "Replace", { etag });
        else await this.table.createEntity(entity);
        return;
      } catch (error) {
        if (!isConflict(error)) throw error;
      }
    }
  }

  private async read(cluster: string): Promise<{ entries: CheckinRejection[]; etag?: string }> {
    try {
      const entity = await this.table.getEntity<Record<string, unknown>>(cluster, REJECTIONS_ROW_KEY);
      const parsed: unknown = JSON.parse(readText(entity, "entries") ?? "[]");
      return { entries: Array.isArray(parsed) ? (parsed as CheckinRejection[]) : [], etag: entity.etag };
    } catch (error) {
      if (isNotFound(error)) return { entries: [] };
      throw error;
    }
  }
}

function fresh(entries: CheckinRejection[], now: Date): CheckinRejection[] {
  return entries.filter((e) => now.getTime() - Date.parse(e.lastAt) < KEEP_MS).sort((a, b) => b.lastAt.localeCompare(a.lastAt));
}
