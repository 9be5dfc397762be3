import type { DrainSettings } from "../config/config";
import type { ClusterApi, EvictionResult, KubePod } from "../kube/clusterApi";

/**
 * kubectl-drain semantics, one pass at a time: every call lists the node's pods, evicts what may be
 * evicted and reports what is left. The caller persists the result and calls again later, so no
 * invocation ever waits for a drain to finish.
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

export type DrainPass =
  | { kind: "done"; evicted: number }
  /** Pods remain; try again no earlier than `retryAfterMs` from now. `pdbBlocked`: a budget refused an eviction. */
  | { kind: "waiting"; evicted: number; remaining: number; blocker: string; retryAfterMs: number; pdbBlocked: boolean }
  /** The drain cannot succeed without an operator: unmanaged or emptyDir pods refused, or a PDB misconfiguration. */
  | { kind: "refused"; reason: string };

/** Pods still terminating are checked again soon; PDB refusals back off exponentially unless the server says when. */
const TERMINATING_RECHECK_MS = 1_000;
const BLOCKED_BASE_MS = 5_000;
const BLOCKED_MAX_MS = 60_000;
/** Evictions in flight at once: enough to drain a busy node in one pass without flooding the API server. */
const EVICTION_PARALLELISM = 8;

export function blockedBackoffMs(attempt: number): number {
  return Math.min(BLOCKED_MAX_MS, BLOCKED_BASE_MS * 2 ** Math.max(0, attempt));
}

export async function drainPass(api: ClusterApi, node: string, options: DrainOptions, now: Date, attempt: number): Promise<DrainPass> {
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
    const retryAfterMs = serverHints.length > 0 ? Math.max(...serverHints) * 1000 : blockedBackoffMs(attempt);
    const pdb = first.result.pdb ? `PodDisruptionBudget ${first.pod.namespace}/${first.result.pdb}` : "a PodDisruptionBudget";
    const others = blocked.length > 1 ? ` (and ${blocked.length - 1} more pods)` : "";
    return {
      kind: "waiting",
      evicted,
      remaining,
      blocker: `pod ${describe(first.pod)} is protected by ${pdb}: ${first.result.message}${others}`,
      retryAfterMs,
      pdbBlocked: true,
    };
  }
  return {
    kind: "waiting",
    evicted,
    remaining,
    blocker: `waiting for ${remaining} evicted pod(s) to terminate`,
    retryAfterMs: TERMINATING_RECHECK_MS,
    pdbBlocked: false,
  };
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
