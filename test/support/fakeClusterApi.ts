import { type ClusterApi, type EvictionResult, type KubeNode, type KubePdb, type KubePod, type KubePodIdentity, type KubePodOnNode, type NodeChange, NodeChangedError, type NodeEvent, type TaintEffect, type TokenReviewResult } from "../../shared/kube/clusterApi";
import { matchesLabelSelector } from "../../shared/policy/labelSelector";
import { runningPod } from "./fixtures";

/** A scripted ClusterApi for unit tests of the domain; integration tests use the simulated API server instead. */
export class FakeClusterApi implements ClusterApi {
  nodes = new Map<string, KubeNode>();
  pods: (KubePod & { node: string })[] = [];
  evictions: string[] = [];
  /** Per pod (`ns/name`): the answers its evictions get, in order; the last one repeats. */
  evictionScript = new Map<string, EvictionResult[]>();
  /** Token → what a TokenReview of it answers; unknown tokens are not authenticated. */
  tokenReviews = new Map<string, TokenReviewResult>();
  tokenReviewCalls = 0;
  /** `<namespace>/<pod>` → what reading that pod answers. */
  podIdentities = new Map<string, KubePodIdentity>();

  addNode(name: string, overrides: Partial<KubeNode> = {}): KubeNode {
    const node: KubeNode = { name, uid: `uid-${name}`, resourceVersion: "1", unschedulable: false, ready: true, bootId: `boot-${name}-1`, labels: {}, annotations: {}, ...overrides };
    this.nodes.set(name, node);
    return node;
  }

  addPod(node: string, name: string, overrides: Partial<KubePod> = {}): void {
    this.pods.push({ node, ...runningPod({ name, ...overrides }) });
  }

  async getNode(name: string): Promise<KubeNode | undefined> {
    this.fail("getNode");
    const node = this.nodes.get(name);
    return node && structuredClone(node);
  }

  /** Like kube-apiserver with a resourceVersion precondition: a node changed by this fake since `seen` is a conflict. */
  async updateNode(seen: Pick<KubeNode, "name" | "resourceVersion">, change: NodeChange): Promise<KubeNode> {
    this.fail("updateNode");
    const node = this.nodes.get(seen.name);
    if (!node) throw new NodeChangedError(seen.name, true);
    if (node.resourceVersion !== seen.resourceVersion) throw new NodeChangedError(seen.name, false);
    if (change.unschedulable !== undefined) node.unschedulable = change.unschedulable;
    for (const [map, changes] of [
      [node.annotations, change.annotations],
      [node.labels, change.labels],
    ] as const) {
      for (const [key, value] of Object.entries(changes ?? {})) {
        if (value === null) delete map[key];
        else map[key] = value;
      }
    }
    if (change.taints) node.taints = structuredClone(change.taints);
    node.resourceVersion = String(Number(node.resourceVersion) + 1);
    return structuredClone(node);
  }

  async listPodsOnNode(name: string): Promise<KubePod[]> {
    return this.pods.filter((p) => p.node === name).map(({ node: _node, ...pod }) => structuredClone(pod));
  }

  async evictPod(pod: Pick<KubePod, "namespace" | "name">): Promise<EvictionResult> {
    const key = `${pod.namespace}/${pod.name}`;
    this.evictions.push(key);
    const script = this.evictionScript.get(key);
    const result = script && script.length > 1 ? script.shift()! : (script?.[0] ?? { kind: "evicted" });
    if (result.kind === "evicted") {
      const target = this.pods.find((p) => p.namespace === pod.namespace && p.name === pod.name);
      if (target) target.deletionTimestamp = new Date();
    }
    return result;
  }

  async reviewToken(token: string, audiences: string[]): Promise<TokenReviewResult> {
    this.tokenReviewCalls++;
    const review = this.tokenReviews.get(token);
    if (!review) return { authenticated: false, audiences: [], extra: {}, error: "invalid bearer token" };
    const valid = review.audiences.filter((a) => audiences.includes(a));
    if (valid.length === 0) return { authenticated: false, audiences: [], extra: {}, error: "token audiences are invalid for the target audiences" };
    return structuredClone({ ...review, audiences: valid });
  }

  async getPodIdentity(namespace: string, name: string): Promise<KubePodIdentity | undefined> {
    return structuredClone(this.podIdentities.get(`${namespace}/${name}`));
  }

  async listNodeNames(): Promise<string[]> {
    return [...this.nodes.keys()];
  }

  /** PodDisruptionBudgets `listPodDisruptionBudgets` answers. */
  pdbs: KubePdb[] = [];
  /** Method name → the error its next calls throw (for blocker-error tests). */
  failures = new Map<string, Error>();

  addPdb(namespace: string, name: string, matchLabels: Record<string, string>, overrides: Partial<KubePdb> = {}): KubePdb {
    const pdb: KubePdb = { namespace, name, selector: { matchLabels }, disruptionsAllowed: 1, currentHealthy: 2, desiredHealthy: 1, expectedPods: 2, ...overrides };
    this.pdbs.push(pdb);
    return pdb;
  }

  private fail(method: string): void {
    const error = this.failures.get(method);
    if (error) throw error;
  }

  async listNodes(): Promise<KubeNode[]> {
    this.fail("listNodes");
    return [...this.nodes.values()].map((n) => structuredClone(n));
  }

  async listPods(options: { labelSelector?: string; nodeName?: string }): Promise<KubePodOnNode[]> {
    this.fail("listPods");
    return this.pods
      .filter((p) => (options.nodeName === undefined || p.node === options.nodeName) && (!options.labelSelector || matchesLabelSelector(options.labelSelector, p.labels)))
      .map(({ node, ...pod }) => ({ ...structuredClone(pod), nodeName: node }));
  }

  async listPodDisruptionBudgets(): Promise<KubePdb[]> {
    this.fail("listPodDisruptionBudgets");
    return structuredClone(this.pdbs);
  }

  pdbReads = 0;

  async getPodDisruptionBudget(namespace: string, name: string): Promise<KubePdb | undefined> {
    this.pdbReads++;
    return structuredClone(this.pdbs.find((p) => p.namespace === namespace && p.name === name));
  }

  events: NodeEvent[] = [];

  async recordEvent(event: NodeEvent): Promise<void> {
    this.fail("recordEvent");
    this.events.push(structuredClone(event));
  }

  async setTaint(name: string, key: string, taint: { effect: TaintEffect; value?: string } | null): Promise<void> {
    this.fail("setTaint");
    const node = this.nodes.get(name);
    if (!node) throw Object.assign(new Error(`nodes "${name}" not found`), { code: 404 });
    const others = (node.taints ?? []).filter((t) => t.key !== key);
    node.taints = taint ? [...others, { key, ...taint }] : others;
    node.resourceVersion = String(Number(node.resourceVersion) + 1);
  }

  /** Terminating pods finish terminating. */
  reapTerminated(): void {
    this.pods = this.pods.filter((p) => !p.deletionTimestamp);
  }
}
