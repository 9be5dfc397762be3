import { type ChangeFeed, pollOrChange, WATCHED_POLL_MS } from "../kube/changeFeed";
import type { DrainSettings } from "../config/config";
import type { ClusterApi, EvictionResult, KubePod } from "../kube/clusterApi";

/**
 * kubectl-drain semantics: a pass lists the node's pods, evicts what may be evicted and reports what
 * is left; `drainFor` repeats passes for a bounded time (a few seconds, well inside one invocation),
 * so that a drain finishes the moment its pods are gone or a budget allows, not at the next check-in.
 * What is still left after the wait is persisted by the caller, who calls again later.
 */

export type DrainOptions = Omit<DrainSettings, "timeoutMs"> & {
  /** Limits which pods are drained (a label selector in policy); pods it rejects are left running. */
  podFilter?: (pod: KubePod) => boolean;
};

export type PodDecision = { action: "evict" } | { action: "skip"; why: string } | { action: "refuse"; why: string };

export function classifyPod(pod: KubePod, options: DrainOptions): PodDecision {
  if (pod.mirror) return { action: "skip", why: "mirror (static) pod" };
  if (pod.phase === "Succeeded" || pod.phase === "Failed") return { action: "skip", why: "finished pod" };
  if (pod.controllerKinds.includes("DaemonSet")) return { action: "skip", why: "DaemonSet pod" };
  if (options.podFilter && !options.podFilter(pod)) return { action: "skip", why: "excluded by the drain pod selector" };
  if (pod.controllerKinds.length === 0 && !options.forceUnmanaged) {
    return { action: "refuse", why: `pod ${pod.namespace}/${pod.name} is not managed by a controller (allow with forceUnmanaged)` };
  }
  if (pod.usesEmptyDir && !options.deleteEmptyDirData) {
    return { action: "refuse", why: `pod ${pod.namespace}/${pod.name} uses emptyDir data (allow with deleteEmptyDirData)` };
  }
  return { action: "evict" };
}

/** A PodDisruptionBudget that refused an eviction, as `namespace/name`. */
export type PdbRef = string;

export type DrainPass =
  | { kind: "done"; evicted: number }
  /**
   * Pods remain; no blind retry earlier than `retryAfterMs` from now (0: look again at the next chance,
   * pods are only terminating). `pdbs`: budgets that refused an eviction (re-read to retry sooner);
   * `serverRetryAfter`: the server said when, so no earlier retry.
   */
  | { kind: "waiting"; evicted: number; remaining: number; blocker: string; retryAfterMs: number; pdbBlocked: boolean; pdbs: PdbRef[]; serverRetryAfter: boolean }
  /** The drain cannot succeed without an operator: unmanaged or emptyDir pods refused, or a PDB misconfiguration. */
  | { kind: "refused"; reason: string };

/**
 * A refusal by a budget is retried blindly after kubectl drain's fixed 5 s ("will retry after 5s",
 * k8s.io/kubectl/pkg/drain/drain.go evictPods), sooner when a re-read of the budget shows a disruption
 * allowed; a real PDB 429 carries no Retry-After (../shared/k8s-captured), only "still being processed" does.
 */
export const BLIND_RETRY_MS = 5_000;
/** How often a bounded wait looks again at terminating pods and refusing budgets: at most ~30 reads in one wait. */
export const DRAIN_POLL_MS = 100;
/** Sleeps between re-reads of the node while evicted pods terminate (see `DrainWait.stillHeld`): one second. */
const HELD_CHECK_SLEEPS = 10;
/** Evictions in flight at once: enough to drain a busy node in one pass without flooding the API server. */
const EVICTION_PARALLELISM = 8;

export async function drainPass(api: ClusterApi, node: string, options: DrainOptions, now: Date): Promise<DrainPass> {
  const pods = await api.listPodsOnNode(node);
  const decided = pods.map((pod) => ({ pod, decision: classifyPod(pod, options) }));
  const refused = decided.flatMap((d) => (d.decision.action === "refuse" ? [d.decision.why] : []));
  if (refused.length > 0) return { kind: "refused", reason: `drain refused: ${refused.join("; ")}` };

  const toEvict = decided.filter((d) => d.decision.action === "evict").map((d) => d.pod);
  const terminating = toEvict.filter((pod) => pod.deletionTimestamp);
  const waitingOnDelete = terminating.filter((pod) => !options.skipWaitForDeleteMs || now.getTime() - pod.deletionTimestamp!.getTime() < options.skipWaitForDeleteMs);
  const candidates = toEvict.filter((pod) => !pod.deletionTimestamp);

  const results = await mapLimited(candidates, EVICTION_PARALLELISM, (pod) => api.evictPod(pod, options.gracePeriodSeconds));
  const misconfigured = results.flatMap((r, i) => (r.kind === "misconfigured" ? [`pod ${describe(candidates[i]!)}: ${r.message}`] : []));
  if (misconfigured.length > 0) return { kind: "refused", reason: `PodDisruptionBudget misconfiguration: ${misconfigured.join("; ")}` };

  const evicted = results.filter((r) => r.kind === "evicted").length;
  const blocked = results.flatMap((r, i) => (r.kind === "blocked" ? [{ pod: candidates[i]!, result: r }] : []));
  const remaining = waitingOnDelete.length + evicted + blocked.length;
  if (remaining === 0) return { kind: "done", evicted };

  if (blocked.length > 0) {
    const first = blocked[0]!;
    const serverHints = blocked.map((b) => b.result.retryAfterSeconds ?? 0).filter((s) => s > 0);
    const retryAfterMs = serverHints.length > 0 ? Math.max(...serverHints) * 1000 : BLIND_RETRY_MS;
    const pdb = first.result.pdb ? `PodDisruptionBudget ${first.pod.namespace}/${first.result.pdb}` : "a PodDisruptionBudget";
    const others = blocked.length > 1 ? ` (and ${blocked.length - 1} more pods)` : "";
    // A few are enough to know when to retry, and keep the node's row small.
    const pdbs = [...new Set(blocked.flatMap((b) => (b.result.pdb ? [`${b.pod.namespace}/${b.result.pdb}`] : [])))].slice(0, 3);
    return {
      kind: "waiting",
      evicted,
      remaining,
      blocker: `pod ${describe(first.pod)} is protected by ${pdb}: ${first.result.message}${others}`,
      retryAfterMs,
      pdbBlocked: true,
      pdbs,
      serverRetryAfter: serverHints.length > 0,
    };
  }
  return {
    kind: "waiting",
    evicted,
    remaining,
    blocker: `waiting for ${remaining} evicted pod(s) to terminate`,
    retryAfterMs: 0,
    pdbBlocked: false,
    pdbs: [],
    serverRetryAfter: false,
  };
}

/** How long a drain may wait within one invocation, and how it sleeps (tests pass a fake). */
export interface DrainWait {
  waitMs: number;
  sleep(ms: number): Promise<void>;
  now(): Date;
  /**
   * Asked before a further pass that retries refused evictions, and at least every second while
   * evicted pods terminate: whether the node is still the one the lease cordoned, cordoned under it.
   * If not, no more evictions: the wait ends and the caller's next step stops the lease.
   */
  stillHeld?(): Promise<boolean>;
}

/**
 * Passes until the drain is done or refused, or `wait.waitMs` is spent: waits for evicted pods to
 * finish, and after a budget's refusal re-reads the budget and evicts again as soon as it allows a
 * disruption. A server's Retry-After is honoured: no eviction before it, so the wait ends there.
 */
export async function drainFor(api: ClusterApi, node: string, options: DrainOptions, wait: DrainWait): Promise<DrainPass> {
  let pass = await drainPass(api, node, options, wait.now());
  // Budgeted in 100 ms polls: a watched sleep counts the polls it lasted, and each sleep counts at
  // least one, so a test's fixed clock cannot make the wait endless.
  let left = Math.floor(wait.waitMs / DRAIN_POLL_MS);
  let sinceHeldCheck = 0;
  // Opened once the drain has something to wait for: a pod deleted from the node ends the sleep at
  // once, where the poll found it 50 ms later on average; with the watch open the poll is only a
  // fallback, once a second instead of ten times (fifty drains at once polled the API server 500 times a second).
  let deletions: ChangeFeed | undefined;
  try {
    while (pass.kind === "waiting" && left > 0 && !pass.serverRetryAfter) {
      const retriesEvictions = pass.pdbBlocked;
      if (pass.pdbBlocked) {
        const spent = await untilBudgetAllows(api, pass.pdbs, { ...wait, waitMs: left * DRAIN_POLL_MS });
        left -= spent.sleeps;
        if (!spent.allowed) break;
      } else {
        deletions ??= api.watchPodDeletions?.(node);
        const polls = await pollOrChange(deletions, wait.sleep, wait.now, DRAIN_POLL_MS, WATCHED_POLL_MS);
        left -= polls;
        sinceHeldCheck += polls;
      }
      // A pass that only finds its evicted pods still terminating evicts nothing: re-reading the node
      // before each of those (every 100 ms) was most of a drain's API calls.
      if (wait.stillHeld && (retriesEvictions || sinceHeldCheck >= HELD_CHECK_SLEEPS)) {
        sinceHeldCheck = 0;
        if (!(await wait.stillHeld())) break;
      }
      pass = await drainPass(api, node, options, wait.now());
    }
  } finally {
    deletions?.close();
  }
  return pass;
}

/**
 * Re-reads the refusing budgets until one allows a disruption (`status.disruptionsAllowed` > 0,
 * computed for the budget's current spec: `status.observedGeneration` ≥ `metadata.generation`) or
 * `wait.waitMs` is spent. A budget that is gone no longer refuses. Unknown budgets: wait it out.
 */
export async function untilBudgetAllows(api: ClusterApi, pdbs: PdbRef[], wait: DrainWait): Promise<{ allowed: boolean; sleeps: number }> {
  if (pdbs.length === 0) return { allowed: false, sleeps: 0 };
  const max = Math.floor(wait.waitMs / DRAIN_POLL_MS);
  for (let sleeps = 0; ; sleeps++) {
    // The first budget that allows a disruption is enough to try the evictions again.
    for (const ref of pdbs) {
      const [namespace, name] = ref.split("/") as [string, string];
      const pdb = await api.getPodDisruptionBudget(namespace, name);
      if (!pdb || (pdb.disruptionsAllowed > 0 && (pdb.observedGeneration ?? 0) >= (pdb.generation ?? 0))) return { allowed: true, sleeps };
    }
    if (sleeps >= max) return { allowed: false, sleeps };
    await wait.sleep(DRAIN_POLL_MS);
  }
}

function describe(pod: Pick<KubePod, "namespace" | "name">): string {
  return `${pod.namespace}/${pod.name}`;
}

async function mapLimited<T>(items: T[], limit: number, work: (item: T) => Promise<EvictionResult>): Promise<EvictionResult[]> {
  const results: EvictionResult[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  });
  await Promise.all(workers);
  return results;
}
