import type { RunningAzurite } from "../azurite/startAzurite";
import { AGENT_NAMESPACE, AGENT_SERVICE_ACCOUNT, nodeNames } from "../demo/demoCluster";
import { SimCluster } from "../kubeSim";

/**
 * The benchmark's rollout cluster: `nodes` nodes, `podsPerNode` pods of one PDB-protected app on each
 * (two: evicting both at once meets the budget's natural 429), the agent DaemonSet. Like a real
 * kube-apiserver, the budget's 429 carries no Retry-After (../shared/k8s-captured/README.md).
 */
export async function benchCluster(o: { nodes: number; concurrency: number; drainMs: number; podsPerNode?: number }): Promise<{ sim: SimCluster; names: string[] }> {
  const sim = await SimCluster.start({ terminationDelayMs: o.drainMs, podStartDelayMs: 100 });
  const names = nodeNames(o.nodes);
  names.forEach((n) => sim.addNode(n));
  sim.addDeployment("bench", "web", { replicas: o.nodes * (o.podsPerNode ?? 1), pdb: { maxUnavailable: o.concurrency }, terminationGracePeriodSeconds: 30 });
  sim.addDaemonSet(AGENT_NAMESPACE, AGENT_SERVICE_ACCOUNT, { labels: { "app.kubernetes.io/name": "rollcall-agent" } });
  return { sim, names };
}

/** The app settings of a rollout of cluster "bench" at `kubeconfig`, with authenticated agents. */
export function rolloutSettings(azurite: RunningAzurite, kubeconfig: string, table: string, concurrency: number): Record<string, string> {
  return {
    ROLLCALL_STORAGE_CONNECTION: azurite.connectionString,
    ROLLCALL_TABLE: table,
    ROLLCALL_CLUSTERS: JSON.stringify([{ name: "bench", kubeconfig }]),
    ROLLCALL_CONCURRENCY: String(concurrency),
    ROLLCALL_CHECKIN_IDLE_SECONDS: "10",
    ROLLCALL_CHECKIN_BUSY_SECONDS: "1",
    ROLLCALL_LOCK_TTL_MINUTES: "30",
    ROLLCALL_DRAIN_TIMEOUT_MINUTES: "10",
    ROLLCALL_AGENT_AUTH: "tokenreview",
    ROLLCALL_AGENT_AUDIENCE: "rollcall",
  };
}
