import type * as k8s from "@kubernetes/client-node";
import type { AnnotationChanges, ClusterApi, EvictionResult, KubeNode, KubePod, TokenReviewResult } from "./clusterApi";

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

  async getPodNode(namespace: string, name: string): Promise<string | undefined> {
    try {
      return (await this.core.readNamespacedPod({ namespace, name })).spec?.nodeName || undefined;
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
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
