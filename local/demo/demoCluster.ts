import type { SimCluster } from "../kubeSim";

/**
 * The simulated cluster `npm start` and the benchmark roll: AKS-like node names, Deployments with
 * PodDisruptionBudgets spread over the nodes, and DaemonSets (kube-proxy and the Rollcall agent,
 * whose pods the agents' tokens are bound to).
 */
export interface DemoClusterOptions {
  nodes: number;
  /** Pods per node of the PDB-protected web Deployment (default 2). */
  podsPerNode?: number;
}

export const AGENT_NAMESPACE = "rollcall";
export const AGENT_SERVICE_ACCOUNT = "rollcall-agent";

export function nodeNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `aks-nodepool1-12345678-vmss${String(i).padStart(6, "0")}`);
}

export function buildDemoCluster(sim: SimCluster, options: DemoClusterOptions): string[] {
  const names = nodeNames(options.nodes);
  names.forEach((name, i) => sim.addNode(name, { zone: `eastus-${(i % 3) + 1}` }));
  const perNode = options.podsPerNode ?? 2;
  // A web tier that tolerates one pod down at a time, and an API that must keep all but one running.
  sim.addDeployment("shop", "web", { replicas: Math.max(2, options.nodes * perNode - 1), pdb: { maxUnavailable: 1 } });
  sim.addDeployment("shop", "api", { replicas: Math.max(2, options.nodes), pdb: { minAvailable: Math.max(1, options.nodes - 1) } });
  sim.addDeployment("shop", "worker", { replicas: Math.max(1, Math.floor(options.nodes / 2)) });
  sim.addDaemonSet("kube-system", "kube-proxy", { labels: { component: "kube-proxy" } });
  sim.addDaemonSet(AGENT_NAMESPACE, AGENT_SERVICE_ACCOUNT, { labels: { "app.kubernetes.io/name": "rollcall-agent" } });
  return names;
}

/** A projected-token equivalent for the agent pod on `node`: audience `rollcall`, bound to the pod. */
export function agentToken(sim: SimCluster, node: string, audience: string): string {
  const pod = sim.pods({ namespace: AGENT_NAMESPACE, node }).find((p) => !p.metadata.deletionTimestamp);
  if (!pod) throw new Error(`No Rollcall agent pod on node ${node}`);
  return sim.issueServiceAccountToken({ namespace: AGENT_NAMESPACE, serviceAccount: AGENT_SERVICE_ACCOUNT, pod: pod.metadata.name, audiences: [audience], expiresInSeconds: 3600 });
}
