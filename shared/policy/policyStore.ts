import type { TableClient, TransactionAction } from "@azure/data-tables";
import { TableLock } from "../lock/tableLock";
import { assertStorable, isNotFound, readText, textProperties } from "../storage/table";
import type { Policy, PolicySource } from "./policy";
import { parsePolicyDocument, PolicyValidationError, resolvePolicy, type PolicyDocument } from "./policySchema";

/** Row key of a cluster's policy row (PartitionKey = cluster), beside `lock` and `node:…`. */
export const POLICY_ROW_KEY = "policy";

/** How long a process trusts the policy it read; afterwards it serves the old one while it re-reads. */
export const POLICY_CACHE_MS = 60_000;

export interface StoredPolicy {
  /** The document as the operator wrote it (validated; defaults not filled in). */
  document: unknown;
  updatedAt: string;
  updatedBy: string;
  etag: string;
  version: number;
}

/**
 * The row: the document as JSON in up to three string parts (`document`, `document_1`, …: a body of
 * `MAX_POLICY_BYTES`, 64 KiB, is at most 65,536 characters of JSON), who wrote it and its `version`,
 * which the same transaction writes into the lock row. A removed policy leaves the row without a
 * document, so its version still counts up.
 */
interface PolicyRow {
  document?: string;
  updatedAt?: string;
  updatedBy?: string;
  version?: number;
}

interface CacheEntry {
  policy: Promise<Policy>;
  readAt: number;
  refreshing?: Promise<void>;
}

/**
 * A cluster's policy row in Table Storage, merged over the app-setting defaults, and the
 * `PolicySource` the orchestrator asks on every check-in. The source caches per cluster for
 * `POLICY_CACHE_MS` and, once that has passed, answers from the cache while it re-reads in the
 * background, so an idle check-in never waits for a storage read of the policy after the first one.
 * Writes are validated first: an invalid policy throws `PolicyValidationError` and the stored row is
 * left as it was.
 */
export class PolicyStore {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly lock: TableLock;

  constructor(
    private readonly table: TableClient,
    /** The app-setting defaults (`policyFromConfig(config)`). */
    private readonly defaults: Policy,
    private readonly clock: () => number = Date.now,
    private readonly cacheMs = POLICY_CACHE_MS,
  ) {
    this.lock = new TableLock(table);
  }

  private async readRow(cluster: string): Promise<{ stored?: StoredPolicy; version: number }> {
    try {
      const entity = await this.table.getEntity<Record<string, unknown>>(cluster, POLICY_ROW_KEY);
      const row = entity as PolicyRow;
      const version = Number(row.version ?? 0);
      const document = readText(entity, "document");
      if (document === undefined) return { version };
      return { stored: { document: JSON.parse(document) as unknown, updatedAt: String(row.updatedAt), updatedBy: String(row.updatedBy), etag: entity.etag, version }, version };
    } catch (error) {
      if (isNotFound(error)) return { version: 0 };
      throw error;
    }
  }

  /** The stored row, or undefined when the cluster runs on the app-setting defaults. */
  async read(cluster: string): Promise<StoredPolicy | undefined> {
    return (await this.readRow(cluster)).stored;
  }

  /** The effective policy, read now (no cache). A stored row that no longer validates falls back to the defaults, loudly. */
  async load(cluster: string): Promise<Policy> {
    const { stored, version } = await this.readRow(cluster);
    return { ...resolvePolicy(this.defaults, stored ? parsePolicyDocument(stored.document) : {}), version };
  }

  /**
   * Commits the policy row with a new version, written into the lock row in the same transaction:
   * an acquire that read an older version conflicts, so a lower concurrency binds at once.
   */
  private async commit(cluster: string, row: (version: number) => PolicyRow): Promise<number> {
    return this.lock.withPolicyVersion(cluster, (version): TransactionAction[] => {
      const entity = { partitionKey: cluster, rowKey: POLICY_ROW_KEY, ...row(version) };
      assertStorable(entity);
      return [["upsert", entity, "Replace"]];
    });
  }

  /**
   * For the check-in path: a stored row that no longer validates (e.g. the app-setting defaults it is
   * merged over changed) must not stop reboots from being coordinated, so the defaults apply and the
   * problem is logged on every read until an operator fixes the row (GET …/policy shows it).
   */
  private async loadForCheckins(cluster: string): Promise<Policy> {
    const { stored, version } = await this.readRow(cluster);
    try {
      return { ...resolvePolicy(this.defaults, stored ? parsePolicyDocument(stored.document) : {}), version };
    } catch (error) {
      if (!(error instanceof PolicyValidationError)) throw error;
      console.error(`policy cluster=${cluster} invalid stored policy, using the app-setting defaults: ${error.message}`);
      return { ...resolvePolicy(this.defaults, {}), version };
    }
  }

  /**
   * Validates `input` against the schema and against the defaults it is merged over, then replaces
   * the cluster's row. Throws `PolicyValidationError` (row unchanged) when it is invalid.
   */
  async write(cluster: string, input: unknown, updatedBy: string, now = new Date()): Promise<{ document: PolicyDocument; policy: Policy; updatedAt: string }> {
    const document = parsePolicyDocument(input);
    const policy = resolvePolicy(this.defaults, document);
    const updatedAt = now.toISOString();
    const version = await this.commit(cluster, (v) => ({ ...textProperties("document", JSON.stringify(input)), updatedAt, updatedBy, version: v }));
    const versioned = { ...policy, version };
    this.cache.set(cluster, { policy: Promise.resolve(versioned), readAt: this.clock() });
    return { document, policy: versioned, updatedAt };
  }

  /** Removes the cluster's document: it runs on the app-setting defaults again (under a new version). */
  async remove(cluster: string, now = new Date()): Promise<void> {
    await this.commit(cluster, (version) => ({ updatedAt: now.toISOString(), version }));
    this.cache.delete(cluster);
  }

  /**
   * The `PolicySource` for `OrchestratorDeps.policy`: the cached effective policy of a cluster. The
   * first call per cluster and process reads storage; later ones are answered from memory.
   */
  readonly source: PolicySource = (cluster, options) => {
    const entry = this.cache.get(cluster);
    const now = this.clock();
    if (options?.atLeastVersion !== undefined) return this.atLeast(cluster, options.atLeastVersion, entry);
    if (!entry) {
      const fresh: CacheEntry = { policy: this.loadForCheckins(cluster), readAt: now };
      fresh.policy.catch(() => this.cache.get(cluster) === fresh && this.cache.delete(cluster));
      this.cache.set(cluster, fresh);
      return fresh.policy;
    }
    if (now - entry.readAt >= this.cacheMs && !entry.refreshing) {
      entry.refreshing = this.loadForCheckins(cluster).then(
        (policy) => {
          this.cache.set(cluster, { policy: Promise.resolve(policy), readAt: this.clock() });
        },
        () => {
          // Keep serving the last good policy; try again after another cache period.
          entry.readAt = this.clock();
          entry.refreshing = undefined;
        },
      );
    }
    return entry.policy;
  };

  /** The cached policy if it is as new as `version`, else one read now (and cached). */
  private async atLeast(cluster: string, version: number, entry: CacheEntry | undefined): Promise<Policy> {
    const cached = entry && (await entry.policy.catch(() => undefined));
    if (cached && (cached.version ?? 0) >= version) return cached;
    const fresh = await this.loadForCheckins(cluster);
    this.cache.set(cluster, { policy: Promise.resolve(fresh), readAt: this.clock() });
    return fresh;
  }

  /** Forgets cached policies (tests). */
  clearCache(): void {
    this.cache.clear();
  }
}

const stores = new WeakMap<TableClient, PolicyStore>();

/**
 * One store per table client in the process, so that the orchestrator's `PolicySource` and the
 * policy API share the cache and a `PUT` is seen at once by the same instance.
 * Composition root: `policy: policyStoreFor(table, policyFromConfig(config)).source`.
 */
export function policyStoreFor(table: TableClient, defaults: Policy): PolicyStore {
  let store = stores.get(table);
  if (!store) {
    store = new PolicyStore(table, defaults);
    stores.set(table, store);
  }
  return store;
}
