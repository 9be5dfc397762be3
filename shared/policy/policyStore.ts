import type { TableClient } from "@azure/data-tables";
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

  constructor(
    private readonly table: TableClient,
    /** The app-setting defaults (`policyFromConfig(config)`). */
    private readonly defaults: Policy,
    private readonly clock: () => number = Date.now,
    private readonly cacheMs = POLICY_CACHE_MS,
  ) {}

  /** The stored row, or undefined when the cluster runs on the app-setting defaults. */
  async read(cluster: string): Promise<StoredPolicy | undefined> {
    try {
      const entity = await this.table.getEntity<{ document: string; updatedAt: string; updatedBy: string }>(cluster, POLICY_ROW_KEY);
      return { document: JSON.parse(entity.document) as unknown, updatedAt: entity.updatedAt, updatedBy: entity.updatedBy, etag: entity.etag };
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined;
      throw error;
    }
  }

  /** The effective policy, read now (no cache). A stored row that no longer validates falls back to the defaults, loudly. */
  async load(cluster: string): Promise<Policy> {
    const stored = await this.read(cluster);
    return stored ? resolvePolicy(this.defaults, parsePolicyDocument(stored.document)) : resolvePolicy(this.defaults, {});
  }

  /**
   * For the check-in path: a stored row that no longer validates (e.g. the app-setting defaults it is
   * merged over changed) must not stop reboots from being coordinated, so the defaults apply and the
   * problem is logged on every read until an operator fixes the row (GET …/policy shows it).
   */
  private async loadForCheckins(cluster: string): Promise<Policy> {
    try {
      return await this.load(cluster);
    } catch (error) {
      if (!(error instanceof PolicyValidationError)) throw error;
      console.error(`policy cluster=${cluster} invalid stored policy, using the app-setting defaults: ${error.message}`);
      return resolvePolicy(this.defaults, {});
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
    await this.table.upsertEntity({ partitionKey: cluster, rowKey: POLICY_ROW_KEY, document: JSON.stringify(input), updatedAt, updatedBy }, "Replace");
    this.cache.set(cluster, { policy: Promise.resolve(policy), readAt: this.clock() });
    return { document, policy, updatedAt };
  }

  /** Removes the cluster's row: it runs on the app-setting defaults again. */
  async remove(cluster: string): Promise<void> {
    try {
      await this.table.deleteEntity(cluster, POLICY_ROW_KEY);
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) throw error;
    }
    this.cache.delete(cluster);
  }

  /**
   * The `PolicySource` for `OrchestratorDeps.policy`: the cached effective policy of a cluster. The
   * first call per cluster and process reads storage; later ones are answered from memory.
   */
  readonly source: PolicySource = (cluster) => {
    const entry = this.cache.get(cluster);
    const now = this.clock();
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
