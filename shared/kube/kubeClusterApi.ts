import type * as k8s from "@kubernetes/client-node";
import type { AnnotationChanges, ClusterApi, EvictionResult, KubeNode, KubePdb, KubePod, KubePodOnNode, KubeTaint, TaintEffect, TokenReviewResult } from "./clusterApi";

type ClientNode = typeof import("@kubernetes/client-node");

/** The `ClusterApi` over the real Kubernetes API, through `@kubernetes/client-node`. */
export class KubeClusterApi implements ClusterApi {
  private readonly core: k8s.CoreV1Api;

  constructor(
    private readonly lib: ClientNode,
    private readonly config: k8s.KubeConfig,
  ) {
    this.core = config.makeApiClient(lib.CoreV1Api);
  }

  async getNode(name: string): Promise<KubeNode | undefined> {
    try {
      return toNode(await this.core.readNode({ name }));
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async setUnschedulable(name: string, unschedulable: boolean, annotations: AnnotationChanges): Promise<void> {
    const body = { spec: { unschedulable: unschedulable || null }, metadata: { annotations } };
    await this.core.patchNode({ name, body }, this.lib.setHeaderOptions("Content-Type", this.lib.PatchStrategy.MergePatch));
  }

  async listPodsOnNode(name: string): Promise<KubePod[]> {
    const list = await this.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${name}` });
    return list.items.map(toPod);
  }

  async evictPod(pod: Pick<KubePod, "namespace" | "name">, gracePeriodSeconds?: number): Promise<EvictionResult> {
    const body: k8s.V1Eviction = {
      apiVersion: "policy/v1",
      kind: "Eviction",
      metadata: { name: pod.name, namespace: pod.namespace },
      ...(gracePeriodSeconds === undefined ? {} : { deleteOptions: { gracePeriodSeconds } }),
    };
    try {
      await this.core.createNamespacedPodEviction({ name: pod.name, namespace: pod.namespace, body });
      return { kind: "evicted" };
    } catch (error) {
      const status = statusOf(error);
      const detail = statusBody(error);
      if (status === 404) return { kind: "gone" };
      if (status === 429) {
        const cause = detail?.details?.causes?.find((c) => c.reason === "DisruptionBudget");
        return {
          kind: "blocked",
          message: cause?.message ?? detail?.message ?? "the eviction was refused with 429",
          pdb: cause?.message?.match(/disruption budget (\S+)/)?.[1],
          retryAfterSeconds: retryAfter(error, detail),
        };
      }
      if (status === 500) return { kind: "misconfigured", message: detail?.message ?? "the eviction subresource answered 500" };
      throw error;
    }
  }

  private authentication?: k8s.AuthenticationV1Api;

  async reviewToken(token: string, audiences: string[]): Promise<TokenReviewResult> {
    this.authentication ??= this.config.makeApiClient(this.lib.AuthenticationV1Api);
    const review = await this.authentication.createTokenReview({
      body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token, audiences } },
    });
    const status = review.status ?? {};
    return {
      authenticated: status.authenticated === true,
      audiences: status.audiences ?? [],
      username: status.user?.username,
      extra: status.user?.extra ?? {},
      error: status.error,
    };
  }

  /** Lists with a name selector rather than reading the pod: Rollcall's ClusterRole has `list` on pods, not `get`. */
  async getPodNode(namespace: string, name: string): Promise<string | undefined> {
    const list = await this.core.listNamespacedPod({ namespace, fieldSelector: `metadata.name=${name}` });
    return list.items.find((p) => p.metadata?.name === name)?.spec?.nodeName || undefined;
  }

  async listNodeNames(): Promise<string[]> {
    const names: string[] = [];
    let _continue: string | undefined;
    do {
      const page = await this.core.listNode({ limit: 500, _continue });
      names.push(...page.items.map((n) => n.metadata?.name ?? "").filter(Boolean));
      _continue = page.metadata?._continue || undefined;
    } while (_continue);
    return names;
  }

  async listNodes(): Promise<KubeNode[]> {
    const nodes: KubeNode[] = [];
    let _continue: string | undefined;
    do {
      const page = await this.core.listNode({ limit: 500, _continue });
      nodes.push(...page.items.map(toNode));
      _continue = page.metadata?._continue || undefined;
    } while (_continue);
    return nodes;
  }

  async listPods(options: { labelSelector?: string; nodeName?: string }): Promise<KubePodOnNode[]> {
    const pods: KubePodOnNode[] = [];
    let _continue: string | undefined;
    do {
      const page = await this.core.listPodForAllNamespaces({
        labelSelector: options.labelSelector || undefined,
        fieldSelector: options.nodeName ? `spec.nodeName=${options.nodeName}` : undefined,
        limit: 500,
        _continue,
      });
      pods.push(...page.items.map((pod) => ({ ...toPod(pod), nodeName: pod.spec?.nodeName ?? "" })));
      _continue = page.metadata?._continue || undefined;
    } while (_continue);
    return pods;
  }

  private policyApi?: k8s.PolicyV1Api;

  async listPodDisruptionBudgets(): Promise<KubePdb[]> {
    this.policyApi ??= this.config.makeApiClient(this.lib.PolicyV1Api);
    const list = await this.policyApi.listPodDisruptionBudgetForAllNamespaces({});
    return list.items.map((pdb) => ({
      namespace: pdb.metadata?.namespace ?? "default",
      name: pdb.metadata?.name ?? "",
      selector: pdb.spec?.selector as KubePdb["selector"],
      disruptionsAllowed: pdb.status?.disruptionsAllowed ?? 0,
      currentHealthy: pdb.status?.currentHealthy ?? 0,
      desiredHealthy: pdb.status?.desiredHealthy ?? 0,
      expectedPods: pdb.status?.expectedPods ?? 0,
    }));
  }

  async setTaint(node: string, key: string, taint: { effect: TaintEffect; value?: string } | null): Promise<void> {
    // A merge patch replaces the whole taint list; resourceVersion makes it fail (409) rather than
    // overwrite a concurrent change, and we read again and retry.
    for (let attempt = 0; ; attempt++) {
      const current = await this.core.readNode({ name: node });
      const taints = (current.spec?.taints ?? []) as KubeTaint[];
      const others = taints.filter((t) => t.key !== key);
      const wanted: KubeTaint[] = taint ? [...others, { key, effect: taint.effect, ...(taint.value !== undefined && { value: taint.value }) }] : others;
      const unchanged = taint
        ? taints.length === wanted.length && taints.some((t) => t.key === key && t.effect === taint.effect && (t.value ?? undefined) === taint.value)
        : others.length === taints.length;
      if (unchanged) return;
      const body = { metadata: { resourceVersion: current.metadata?.resourceVersion }, spec: { taints: wanted } };
      try {
        await this.core.patchNode({ name: node, body }, this.lib.setHeaderOptions("Content-Type", this.lib.PatchStrategy.MergePatch));
        return;
      } catch (error) {
        if (statusOf(error) !== 409 || attempt >= 4) throw error;
      }
    }
  }

  async setLabels(node: string, labels: Record<string, string | null>): Promise<void> {
    if (Object.keys(labels).length === 0) return;
    const body = { metadata: { labels } };
    await this.core.patchNode({ name: node, body }, this.lib.setHeaderOptions("Content-Type", this.lib.PatchStrategy.MergePatch));
  }
}

function toNode(node: k8s.V1Node): KubeNode {
  const ready = node.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
  return {
    name: node.metadata?.name ?? "",
    unschedulable: node.spec?.unschedulable === true,
    ready,
    bootId: node.status?.nodeInfo?.bootID ?? "",
    labels: node.metadata?.labels ?? {},
    annotations: node.metadata?.annotations ?? {},
    taints: (node.spec?.taints ?? []).map((t) => ({ key: t.key, effect: t.effect as TaintEffect, ...(t.value !== undefined && { value: t.value }) })),
  };
}

function toPod(pod: k8s.V1Pod): KubePod {
  const deletion = pod.metadata?.deletionTimestamp;
  return {
    namespace: pod.metadata?.namespace ?? "default",
    name: pod.metadata?.name ?? "",
    phase: pod.status?.phase ?? "Unknown",
    controllerKinds: (pod.metadata?.ownerReferences ?? []).filter((o) => o.controller).map((o) => o.kind),
    mirror: pod.metadata?.annotations?.["kubernetes.io/config.mirror"] !== undefined,
    usesEmptyDir: (pod.spec?.volumes ?? []).some((v) => v.emptyDir !== undefined),
    deletionTimestamp: deletion ? new Date(deletion) : undefined,
    labels: pod.metadata?.labels ?? {},
  };
}

interface StatusBody {
  message?: string;
  details?: { causes?: { reason?: string; message?: string }[]; retryAfterSeconds?: number };
}

function statusOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown }).code;
  return typeof code === "number" ? code : undefined;
}

/** client-node 1.x keeps the response body of an ApiException as a raw JSON string. */
function statusBody(error: unknown): StatusBody | undefined {
  const body = (error as { body?: unknown }).body;
  if (typeof body === "object" && body !== null) return body as StatusBody;
  if (typeof body !== "string") return undefined;
  try {
    return JSON.parse(body) as StatusBody;
  } catch {
    return { message: body };
  }
}

function retryAfter(error: unknown, body: StatusBody | undefined): number | undefined {
  const headers = (error as { headers?: Record<string, string> }).headers ?? {};
  const header = Number(headers["retry-after"] ?? headers["Retry-After"]);
  if (Number.isFinite(header) && header > 0) return header;
  const fromBody = body?.details?.retryAfterSeconds;
  return fromBody && fromBody > 0 ? fromBody : undefined;
}
