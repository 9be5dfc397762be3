import type { ClusterApi, EvictionResult, KubeNode, KubePdb, KubePod, KubePodOnNode, TaintEffect, TokenReviewResult } from "../../shared/kube/clusterApi";
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
  /** `namespace/name` → the node the pod runs on. */
  podNodes = new Map<string, string>();

  addNode(name: string, overrides: Partial<KubeNode> = {}): KubeNode {
    const node: KubeNode = { name, unschedulable: false, ready: true, bootId: `boot-${name}-1`, labels: {}, annotations: {}, ...overrides };
    this.nodes.set(name, node);
    return node;
  }

  addPod(node: string, name: string, overrides: Partial<KubePod> = {}): void {
    this.pods.push({ node, ...runningPod({ name, ...overrides }) });
  }

  async getNode(name: string): Promise<KubeNode | undefined> {
    const node = this.nodes.get(name);
    return node && structuredClone(node);
  }

  async setUnschedulable(name: string, unschedulable: boolean, annotations: Record<string, string | null>): Promise<void> {
    const node = this.nodes.get(name);
    if (!node) throw Object.assign(new Error(`nodes "${name}" not found`), { code: 404 });
    node.unschedulable = unschedulable;
    for (const [key, value] of Object.entries(annotations)) {
      if (value === null) delete node.annotations[key];
      else node.annotations[key] = value;
    }
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

  async getPodNode(namespace: string, name: string): Promise<string | undefined> {
    return this.podNodes.get(`${namespace}/${name}`) ?? this.pods.find((p) => p.namespace === namespace && p.name === name)?.node;
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

  async setTaint(name: string, key: string, taint: { effect: TaintEffect; value?: string } | null): Promise<void> {
    this.fail("setTaint");
    const node = this.nodes.get(name);
    if (!node) throw Object.assign(new Error(`nodes "${name}" not found`), { code: 404 });
    const others = (node.taints ?? []).filter((t) => t.key !== key);
    node.taints = taint ? [...others, { key, ...taint }] : others;
  }

  async setLabels(name: string, labels: Record<string, string | null>): Promise<void> {
    this.fail("setLabels");
    const node = this.nodes.get(name);
    if (!node) throw Object.assign(new Error(`nodes "${name}" not found`), { code: 404 });
    for (const [key, value] of Object.entries(labels)) {
      if (value === null) delete node.labels[key];
      else node.labels[key] = value;
    }
  }

  /** Terminating pods finish terminating. */
  reapTerminated(): void {
    this.pods = this.pods.filter((p) => !p.deletionTimestamp);
  }
}
