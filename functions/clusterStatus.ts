import { app, type HttpRequest, type InvocationContext } from "@azure/functions";
import { authorizeOperator } from "../shared/auth/operator";
import { armClientFactory } from "../shared/azure/arm";
import { nodeOsWithin } from "../shared/azure/nodeOsChannel";
import { getConfig } from "../shared/config/config";
import { httpHandler, json, parseRoute } from "../shared/http/http";
import type { NodeRecord } from "../shared/node/nodeRecord";
import { getRollcall } from "../shared/orchestrator/fromConfig";
import { gateFailure } from "../shared/policy/gates/composite";
import { pendingOrder } from "../shared/node/queue";
import { clusterRoute } from "../shared/protocol/names";
import { requireConfiguredCluster } from "./checkin";
import { nodeStatusUrl } from "./rebootRequest";

/**
 * GET /api/clusters/{cluster}/status — the cluster at a glance: lock slots and who holds them until
 * when, every node's state and since when, the queue in the order it will be served and what holds
 * each waiting node back, and the Kubernetes nodes Rollcall does not know yet (no agent, no request).
 */

/** The cluster listing is a bonus: the status must answer even when the cluster API does not. */
const KUBERNETES_TIMEOUT_MS = 3000;

export const clusterStatus = httpHandler(async (request: HttpRequest, context: InvocationContext) => {
  authorizeOperator(request, "Rollcall.Read");
  const { cluster } = parseRoute(request, clusterRoute);
  requireConfiguredCluster(cluster);
  const { store, lock, policy, kube, rejections } = await getRollcall();
  const now = new Date();
  const [records, view, rules, kubernetes, refused, nodeOs] = await Promise.all([
    store.list(cluster),
    lock.view(cluster),
    policy(cluster),
    kubernetesNodes(() => kube(cluster), context),
    rejections.list(cluster),
    // Whether this cluster needs Rollcall at all: AKS's node OS upgrade channel (only Unmanaged leaves reboots to us).
    nodeOsWithin(getConfig().clusters.find((c) => c.name === cluster)!, armClientFactory(getConfig()), KUBERNETES_TIMEOUT_MS),
  ]);
  const nodes = records.map((r) => r.value).sort((a, b) => a.node.localeCompare(b.node));
  const queue = nodes.filter((n) => n.state === "pending").sort(pendingOrder(rules));
  const known = new Set(nodes.map((n) => n.node));
  return json(200, {
    cluster,
    generatedAt: now.toISOString(),
    lock: {
      slots: rules.concurrency,
      free: Math.max(0, rules.concurrency - view.holders.length),
      holders: view.holders.map((h) => ({ ...h, expired: Date.parse(h.expiresAt) <= now.getTime() })),
    },
    counts: countByState(nodes),
    nodes: nodes.map(nodeSummary),
    queue: queue.map((n, i) => ({
      position: i + 1,
      node: n.node,
      pendingSince: n.pendingSince ?? n.since,
      priority: n.request?.priority ?? 0,
      requestId: n.request?.id,
      requestedBy: n.request?.requestedBy ?? (n.rebootReportedBy ? `agent ${n.rebootReportedBy}` : "sentinel"),
      notBefore: n.request?.notBefore,
      holdReason: n.holdReason ?? "waiting for the next check-in or reconcile tick",
      gateError: gateFailure(n.holdReason),
    })),
    // A gate that cannot be asked (Prometheus unreachable or refused by the outbound rules) holds every
    // node it is asked for, for as long as it fails: an error for the operator, not an ordinary hold.
    gateErrors: gateErrors(nodes),
    // Check-ins of known nodes refused by authentication in the last day (a broken token mount, or forgery).
    checkinRejections: refused,
    // The warning applies once agents report sentinels here: AKS reimages NodeImage/SecurityPatch nodes itself.
    nodeOs: nodes.length > 0 ? nodeOs : { ...nodeOs, warning: undefined },
    kubernetes:
      kubernetes.kind === "answered"
        ? { reachable: true, nodes: kubernetes.names.length, unknownNodes: kubernetes.names.filter((name) => !known.has(name)).sort() }
        : { reachable: false, error: kubernetes.error },
  });
});

export function nodeSummary(n: NodeRecord) {
  return {
    node: n.node,
    state: n.state,
    since: n.since,
    why: n.why,
    holdReason: n.holdReason,
    gateError: gateFailure(n.holdReason),
    drainBlocker: n.drainBlocker,
    rebootRequired: n.rebootRequired,
    reasons: n.reasons,
    leaseId: n.leaseId,
    lastCheckinAt: n.lastCheckinAt,
    agentVersion: n.agentVersion,
    request: n.request,
    statusUrl: nodeStatusUrl(n.cluster, n.node),
  };
}

/** Each failing gate with its latest error and the nodes it holds. */
function gateErrors(nodes: NodeRecord[]): { gate: string; error: string; nodes: string[] }[] {
  const byGate = new Map<string, { gate: string; error: string; nodes: string[] }>();
  for (const n of nodes) {
    const failure = gateFailure(n.holdReason);
    if (!failure) continue;
    const entry = byGate.get(failure.gate) ?? { ...failure, nodes: [] };
    entry.nodes.push(n.node);
    byGate.set(failure.gate, entry);
  }
  return [...byGate.values()];
}

function countByState(nodes: NodeRecord[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of nodes) counts[n.state] = (counts[n.state] ?? 0) + 1;
  return counts;
}

type Listing = { kind: "answered"; names: string[] } | { kind: "failed"; error: string };

async function kubernetesNodes(api: () => Promise<{ listNodeNames(): Promise<string[]> }>, context: InvocationContext): Promise<Listing> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${KUBERNETES_TIMEOUT_MS} ms`)), KUBERNETES_TIMEOUT_MS);
    timer.unref();
  });
  try {
    return { kind: "answered", names: await Promise.race([api().then((a) => a.listNodeNames()), timeout]) };
  } catch (error) {
    context.warn(`status: listing the cluster's nodes failed: ${(error as Error).message}`);
    return { kind: "failed", error: `the cluster API did not answer: ${(error as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}

app.http("clusterStatus", {
  route: "clusters/{cluster}/status",
  methods: ["GET"],
  authLevel: "function",
  handler: clusterStatus,
});
