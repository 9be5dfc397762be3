import * as http from "node:http";
import * as https from "node:https";
import type * as k8s from "@kubernetes/client-node";
import { ChangeFeed } from "./changeFeed";
import { type ClusterApi, type EvictionResult, type KubeNode, type KubePdb, type KubePod, type KubePodIdentity, type KubePodOnNode, type KubeTaint, type NodeChange, NodeChangedError, type NodeEvent, type TaintEffect, type TokenReviewResult } from "./clusterApi";

type ClientNode = typeof import("@kubernetes/client-node");

/** The server ends a watch after this long if its step never closed it: a feed serves one step's wait, seconds at most. */
const WATCH_TIMEOUT_SECONDS = 60;

/** The `ClusterApi` over the real Kubernetes API, through `@kubernetes/client-node`. */
export class KubeClusterApi implements ClusterApi {
  private readonly core: k8s.CoreV1Api;
  private readonly configuration: k8s.Configuration;

  /** `timeoutMs`: every request is aborted after this long, so that one slow call cannot outlast the step's budget. */
  constructor(
    private readonly lib: ClientNode,
    private readonly config: k8s.KubeConfig,
    timeoutMs: number,
  ) {
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new Error("The kubeconfig names no current cluster");
    // makeApiClient takes no middleware; this is the configuration it builds, plus the per-request timeout.
    this.configuration = lib.createConfiguration({
      baseServer: new lib.ServerConfiguration(cluster.server, {}),
      authMethods: { default: reusingConnections(config) },
      promiseMiddleware: [
        {
          pre: async (request) => {
            request.setSignal(AbortSignal.timeout(timeoutMs));
            return request;
          },
          post: async (response) => response,
        },
      ],
    });
    this.core = new lib.CoreV1Api(this.configuration);
  }

  async getNode(name: string): Promise<KubeNode | undefined> {
    try {
      return toNode(await this.core.readNode({ name }));
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async updateNode(seen: Pick<KubeNode, "name" | "resourceVersion">, change: NodeChange): Promise<KubeNode> {
    // A merge patch carrying metadata.resourceVersion is a precondition: kube-apiserver answers 409
    // Conflict when the stored object has another version (kubernetes/kubernetes#63104). A node
    // re-created under the same name always has another version, so this also pins the uid.
    const metadata: Record<string, unknown> = { resourceVersion: seen.resourceVersion };
    if (change.annotations && Object.keys(change.annotations).length > 0) metadata.annotations = change.annotations;
    if (change.labels && Object.keys(change.labels).length > 0) metadata.labels = change.labels;
    const spec: Record<string, unknown> = {};
    if (change.unschedulable !== undefined) spec.unschedulable = change.unschedulable || null;
    if (change.taints !== undefined) spec.taints = change.taints;
    try {
      const written = await this.core.patchNode({ name: seen.name, body: { metadata, spec } }, this.lib.setHeaderOptions("Content-Type", this.lib.PatchStrategy.MergePatch));
      return toNode(written);
    } catch (error) {
      const status = statusOf(error);
      if (status === 409 || status === 404) throw new NodeChangedError(seen.name, status === 404);
      throw error;
    }
  }

  async listPodsOnNode(name: string): Promise<KubePod[]> {
    const list = await this.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${name}` });
    return list.items.map(toPod);
  }

  watchPodDeletions(node: string): ChangeFeed {
    return openWatch(this.lib, this.config, "/api/v1/pods", { fieldSelector: `spec.nodeName=${node}` }, (type) => type === "DELETED");
  }

  watchNode(name: string, resourceVersion: string): ChangeFeed {
    return openWatch(this.lib, this.config, "/api/v1/nodes", { fieldSelector: `metadata.name=${name}`, resourceVersion }, (type) => type === "MODIFIED" || type === "DELETED");
  }

  watchPodDisruptionBudgets(): ChangeFeed {
    // The disruption controller writes status whenever a covered pod's health changes: only a budget
    // that now allows a disruption can lift a hold, so the rest of a rollout's status churn wakes nothing.
    const allows = (pdb: k8s.V1PodDisruptionBudget) => (pdb.status?.disruptionsAllowed ?? 0) > 0;
    return openWatch(this.lib, this.config, "/apis/policy/v1/poddisruptionbudgets", {}, (type, pdb) => type === "DELETED" || (type === "MODIFIED" && allows(pdb as k8s.V1PodDisruptionBudget)));
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
    this.authentication ??= new this.lib.AuthenticationV1Api(this.configuration);
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
  async getPodIdentity(namespace: string, name: string): Promise<KubePodIdentity | undefined> {
    const list = await this.core.listNamespacedPod({ namespace, fieldSelector: `metadata.name=${name}` });
    const pod = list.items.find((p) => p.metadata?.name === name);
    if (!pod?.metadata?.uid) return undefined;
    const controller = pod.metadata.ownerReferences?.find((o) => o.controller === true);
    return {
      uid: pod.metadata.uid,
      nodeName: pod.spec?.nodeName || undefined,
      terminating: Boolean(pod.metadata.deletionTimestamp),
      ...(controller ? { controller: { kind: controller.kind, name: controller.name } } : {}),
    };
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
    this.policyApi ??= new this.lib.PolicyV1Api(this.configuration);
    const list = await this.policyApi.listPodDisruptionBudgetForAllNamespaces({});
    return list.items.map(toPdb);
  }

  async getPodDisruptionBudget(namespace: string, name: string): Promise<KubePdb | undefined> {
    this.policyApi ??= new this.lib.PolicyV1Api(this.configuration);
    try {
      return toPdb(await this.policyApi.readNamespacedPodDisruptionBudget({ namespace, name }));
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
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

  /** The events this instance wrote, by what makes a repeat (client-go's eventLogger cache, per process as there). */
  private readonly eventSeries = new Map<string, { name: string; count: number; lastAt: number }>();

  async recordEvent(event: NodeEvent, now = new Date()): Promise<void> {
    const key = JSON.stringify([event.node.name, event.node.uid, event.type, event.reason, event.message]);
    const seen = this.eventSeries.get(key);
    if (seen && now.getTime() - seen.lastAt < EVENT_TTL_MS) {
      try {
        const body = { count: seen.count + 1, lastTimestamp: now.toISOString() };
        await this.core.patchNamespacedEvent({ name: seen.name, namespace: EVENT_NAMESPACE, body }, this.lib.setHeaderOptions("Content-Type", this.lib.PatchStrategy.MergePatch));
        this.eventSeries.delete(key);
        this.eventSeries.set(key, { ...seen, count: seen.count + 1, lastAt: now.getTime() });
        return;
      } catch (error) {
        // The API server let it expire (--event-ttl): start a new one, as the correlator does.
        if (statusOf(error) !== 404) throw error;
      }
    }
    // client-go's makeEvent: named <object>.<unix nanoseconds, hex>; a cluster-scoped object's events go in "default".
    const name = `${event.node.name}.${(BigInt(now.getTime()) * 1_000_000n + BigInt(Math.floor(Math.random() * 1_000_000))).toString(16)}`;
    await this.core.createNamespacedEvent({
      namespace: EVENT_NAMESPACE,
      body: {
        metadata: { name, namespace: EVENT_NAMESPACE },
        involvedObject: { apiVersion: "v1", kind: "Node", name: event.node.name, uid: event.node.uid },
        type: event.type,
        reason: event.reason,
        message: event.message,
        count: 1,
        firstTimestamp: now,
        lastTimestamp: now,
        source: { component: EVENT_COMPONENT },
        reportingComponent: EVENT_COMPONENT,
        reportingInstance: EVENT_COMPONENT,
      },
    });
    this.eventSeries.set(key, { name, count: 1, lastAt: now.getTime() });
    // A bounded cache, like the correlator's LRU: the oldest entries go first (Map keeps insertion order).
    for (const oldest of this.eventSeries.keys()) {
      if (this.eventSeries.size <= EVENT_CACHE_ENTRIES) break;
      this.eventSeries.delete(oldest);
    }
  }
}

/** Events of cluster-scoped objects live in "default" (client-go tools/record makeEvent; kubelet's node events too). */
const EVENT_NAMESPACE = "default";
/** `source.component` / `reportingComponent`: what `kubectl describe node` shows in its From column. */
const EVENT_COMPONENT = "rollcall";
/** kube-apiserver's default --event-ttl: an older event is gone, so a repeat starts a new one. */
const EVENT_TTL_MS = 60 * 60_000;
/** client-go's maxLruCacheEntries. */
const EVENT_CACHE_ENTRIES = 4096;

function toNode(node: k8s.V1Node): KubeNode {
  const ready = node.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
  return {
    name: node.metadata?.name ?? "",
    uid: node.metadata?.uid ?? "",
    resourceVersion: node.metadata?.resourceVersion ?? "",
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

function toPdb(pdb: k8s.V1PodDisruptionBudget): KubePdb {
  return {
    namespace: pdb.metadata?.namespace ?? "default",
    name: pdb.metadata?.name ?? "",
    selector: pdb.spec?.selector as KubePdb["selector"],
    disruptionsAllowed: pdb.status?.disruptionsAllowed ?? 0,
    currentHealthy: pdb.status?.currentHealthy ?? 0,
    desiredHealthy: pdb.status?.desiredHealthy ?? 0,
    expectedPods: pdb.status?.expectedPods ?? 0,
    generation: pdb.metadata?.generation,
    observedGeneration: pdb.status?.observedGeneration,
  };
}

/** How long a kept-alive connection may sit unused: well inside the 4 minutes after which an Azure load balancer drops an idle flow without a word. */
const IDLE_CONNECTION_MS = 30_000;

/**
 * The kubeconfig's authentication, with one pool of kept-alive connections per client: client-node
 * 1.4 builds a new `https.Agent` for every request (`KubeConfig.applySecurityAuthentication`), so each
 * call paid a TCP and a TLS handshake with the API server. The pool is built again only when the TLS
 * options it came from change (a client certificate rotated in the kubeconfig); a proxy's agent is
 * left as client-node made it.
 */
function reusingConnections(config: k8s.KubeConfig): k8s.SecurityAuthentication {
  let pool: { key: string; agent: http.Agent } | undefined;
  return {
    getName: () => "kubeconfig, connections kept alive",
    async applySecurityAuthentication(context) {
      await config.applySecurityAuthentication(context);
      const made = context.getAgent();
      if (!made || (made.constructor !== https.Agent && made.constructor !== http.Agent)) return;
      const options = (made as https.Agent).options;
      const key = JSON.stringify([made.constructor === https.Agent, options.ca, options.cert, options.key, options.pfx, options.passphrase, options.rejectUnauthorized, options.servername].map((v) => (v === undefined ? null : String(v))));
      if (pool?.key !== key) {
        pool?.agent.destroy();
        const Agent = made.constructor as typeof https.Agent;
        pool = { key, agent: new Agent({ ...options, keepAlive: true, timeout: IDLE_CONNECTION_MS }) };
      }
      context.setAgent(pool.agent);
    },
  };
}

/**
 * A watch whose `wakes` events signal the feed. Opened without a resourceVersion, kube-apiserver
 * first sends an ADDED for every object that matches: an ADDED never counts as a change. A failed
 * watch (or an ERROR event, such as 410 for a compacted resourceVersion) just never signals.
 */
function openWatch(lib: ClientNode, config: k8s.KubeConfig, path: string, query: Record<string, string>, wakes: (type: string, object: unknown) => boolean): ChangeFeed {
  const feed = new ChangeFeed();
  const end = () => feed.opened(false);
  new lib.Watch(config)
    .watch(path, { ...query, timeoutSeconds: WATCH_TIMEOUT_SECONDS }, (type, object) => (type === "ERROR" ? end() : wakes(type, object) && feed.signal()), end)
    .then(
      // client-node answers a watch it could not open (a 403 without the RBAC verb) by calling `end`
      // first: the feed, ended, then stays so.
      (request) => {
        feed.opened(true);
        feed.onClose(() => request.abort());
      },
      end,
    );
  return feed;
}
