import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Controllers, nodeIsReady } from "./controllers";
import { controllerOf } from "./podStatus";
import { resources } from "./resources";
import { apiServer, type RequestRecord } from "./server";
import { type Change, type Json, type KubeObject, type OwnerReference, randomSuffix, Store, timestamp } from "./store";
import { Timers } from "./timers";
import { type ServiceAccountTokenOptions, TokenAuthority } from "./tokens";

/**
 * A simulated AKS cluster behind a kube-apiserver-compatible HTTP endpoint on 127.0.0.1, for
 * tests, `npm start` and the benchmark. Tests arrange the cluster through this facade and let
 * Rollcall reach it only through `kubeconfig` and the real client-node.
 */

export interface SimClusterOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** How long a gracefully deleted pod takes to disappear (capped by its grace period). Default 300. */
  terminationDelayMs?: number;
  /** How long a scheduled pod takes to become Running and Ready. Default 200. */
  podStartDelayMs?: number;
  /** Retry-After seconds to send with eviction 429s; kube-apiserver sends none (the default). */
  evictionRetryAfterSeconds?: number;
  /** Audiences the API server accepts for TokenReviews that name none. */
  apiAudiences?: string[];
  /** How many recent changes a watch can replay from an older resourceVersion (older: 410 Expired). Default 5,000. */
  watchHistory?: number;
}

export interface SimNodeOptions {
  zone?: string;
  pool?: string;
  ready?: boolean;
  unschedulable?: boolean;
  labels?: Record<string, string>;
}

export interface PdbSpec {
  minAvailable?: number | string;
  maxUnavailable?: number | string;
}

export interface SimDeploymentOptions {
  replicas: number;
  /** The pods' labels and the Deployment's selector; default `{ app: <name> }`. */
  labels?: Record<string, string>;
  /** Adds a PDB named after the deployment that selects its pods. */
  pdb?: PdbSpec;
  emptyDir?: boolean;
  /** Restricts the pods (and their replacements) to these nodes, through required node affinity on the hostname. */
  nodes?: string[];
  terminationGracePeriodSeconds?: number;
}

export interface SimPodOptions {
  /** Unset: the scheduler places the pod. */
  node?: string;
  labels?: Record<string, string>;
  emptyDir?: boolean;
  /** A static pod's mirror: annotated `kubernetes.io/config.mirror` and owned by its Node. */
  mirror?: boolean;
  /** Default Running (and Ready); Succeeded/Failed pods stay listed until deleted. */
  phase?: "Pending" | "Running" | "Succeeded" | "Failed";
  /** A controller owner the sim does not run (StatefulSet, Job, …), so no replacement is ever made. */
  ownerKind?: string;
  terminationGracePeriodSeconds?: number;
}

export interface SimPdbOptions extends PdbSpec {
  /** `matchLabels` of the PDB's selector. */
  selector: Record<string, string>;
  unhealthyPodEvictionPolicy?: "IfHealthyBudget" | "AlwaysAllow";
}

export type NodeChangeKind = "added" | "deleted" | "cordoned" | "uncordoned" | "ready" | "notReady" | "rebooted" | "annotated";

export interface NodeChange {
  at: number;
  node: string;
  change: NodeChangeKind;
  bootId?: string;
  /** For `annotated`: the node's annotations after the change. */
  annotations?: Record<string, string>;
}

const { nodes: NODE, pods: POD, poddisruptionbudgets: PDB, deployments: DEPLOYMENT, replicasets: RS, daemonsets: DS } = resources;
const PAUSE_IMAGE = "mcr.microsoft.com/oss/kubernetes/pause:3.9";

export class SimCluster {
  readonly url: string;
  /** A kubeconfig as JSON (which client-node's `loadFromString` reads) with the admin token. */
  readonly kubeconfig: string;
  readonly nodeChanges: NodeChange[] = [];
  /** Retry-After seconds sent with eviction 429s; undefined sends none, like kube-apiserver. */
  evictionRetryAfterSeconds: number | undefined;
  private maxUnavailable = 0;
  private readonly nodeListeners = new Set<(change: NodeChange) => void>();
  private nodeCount = 0;
  private stopped: Promise<void> | undefined;
  private connectionCount = 0;

  private constructor(
    private readonly server: Server,
    private readonly store: Store,
    private readonly controllers: Controllers,
    private readonly timers: Timers,
    private readonly tokens: TokenAuthority,
    readonly adminToken: string,
    /** Every HTTP request in arrival order, for assertions such as "no Kubernetes call was made". */
    readonly requestLog: RequestRecord[],
    options: SimClusterOptions,
  ) {
    const { port } = server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
    this.kubeconfig = JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      // client-node 1.4 refuses plain http unless TLS verification is explicitly skipped.
      clusters: [{ name: "kube-sim", cluster: { server: this.url, "insecure-skip-tls-verify": true } }],
      users: [{ name: "kube-sim-admin", user: { token: adminToken } }],
      contexts: [{ name: "kube-sim", context: { cluster: "kube-sim", user: "kube-sim-admin" } }],
      "current-context": "kube-sim",
    });
    this.evictionRetryAfterSeconds = options.evictionRetryAfterSeconds;
    server.on("connection", () => this.connectionCount++);
    store.onChange((change) => this.observeNode(change));
  }

  static async start(options: SimClusterOptions = {}): Promise<SimCluster> {
    const store = new Store(options.watchHistory);
    const adminToken = randomBytes(24).toString("base64url");
    let controllers: Controllers | undefined;
    const timers = new Timers(() => controllers?.settle());
    controllers = new Controllers(store, timers, {
      terminationDelayMs: options.terminationDelayMs ?? 300,
      podStartDelayMs: options.podStartDelayMs ?? 200,
    });
    const tokens = new TokenAuthority(store, options.apiAudiences ?? ["https://kubernetes.default.svc.cluster.local"]);
    const requestLog: RequestRecord[] = [];
    let sim: SimCluster | undefined;
    const retryAfterSeconds = () => sim?.evictionRetryAfterSeconds;
    const server = createServer(apiServer({ store, controllers, tokens, adminToken, retryAfterSeconds, requestLog }));
    // kube-apiserver keeps an idle connection open 90 s (IdleTimeout in k8s.io/apiserver's
    // SecureServingInfo.Serve); Node's own default of 5 s closed kept-alive clients' connections under them.
    server.keepAliveTimeout = 90_000;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
    });
    sim = new SimCluster(server, store, controllers, timers, tokens, adminToken, requestLog, options);
    return sim;
  }

  /** Closes the server and clears every timer, so that the process can exit. */
  stop(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      this.timers.clear();
      this.controllers.clearTimers();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.stopped;
  }

  // --- Arranging the cluster ---

  addNode(name: string, options: SimNodeOptions = {}): KubeObject {
    const pool = options.pool ?? "nodepool1";
    const zone = options.zone ?? "eastus-1";
    const index = this.nodeCount++;
    const node = this.store.create(NODE, {
      metadata: {
        name,
        labels: {
          "kubernetes.io/hostname": name,
          "kubernetes.io/os": "linux",
          "kubernetes.io/arch": "amd64",
          "topology.kubernetes.io/zone": zone,
          "kubernetes.azure.com/agentpool": pool,
          agentpool: pool,
          ...options.labels,
        },
        annotations: { "node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true" },
      },
      spec: {
        podCIDR: `10.244.${index % 250}.0/24`,
        providerID: `azure:///subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mc_sim/providers/Microsoft.Compute/virtualMachineScaleSets/aks-${pool}-vmss/virtualMachines/${index}`,
        ...(options.unschedulable ? { unschedulable: true } : {}),
      },
      status: {
        conditions: nodeConditions(options.ready ?? true, undefined),
        addresses: [
          { type: "InternalIP", address: `10.224.${Math.floor(index / 250) % 250}.${(index % 250) + 4}` },
          { type: "Hostname", address: name },
        ],
        capacity: { cpu: "4", memory: "16374564Ki", pods: "110" },
        allocatable: { cpu: "3860m", memory: "12880164Ki", pods: "110" },
        nodeInfo: {
          machineID: randomBytes(16).toString("hex"),
          systemUUID: randomUUID(),
          bootID: randomUUID(),
          kernelVersion: "5.15.0-1079-azure",
          osImage: "Ubuntu 22.04.5 LTS",
          containerRuntimeVersion: "containerd://1.7.27-1",
          kubeletVersion: "v1.32.6",
          kubeProxyVersion: "v1.32.6",
          operatingSystem: "linux",
          architecture: "amd64",
        },
      },
    });
    this.controllers.settle();
    this.startPendingPods();
    return node;
  }

  /** The node object goes; pods bound to it are removed at once, as the pod garbage collector does. */
  deleteNode(name: string): void {
    this.store.remove(NODE, undefined, name);
    this.controllers.settle();
  }

  /** Deletes a pod at once, as `kubectl delete pod --force --grace-period=0` does (its controller may replace it). */
  deletePod(namespace: string, name: string): void {
    this.store.remove(POD, namespace, name);
    this.controllers.settle();
    this.startPendingPods();
  }

  /** `kubectl cordon` / `kubectl uncordon` by an administrator: only `spec.unschedulable` changes; annotations stay. */
  setUnschedulable(name: string, unschedulable: boolean): void {
    const node = this.store.require(NODE, undefined, name);
    const spec = { ...node.spec };
    if (unschedulable) spec.unschedulable = true;
    else delete spec.unschedulable;
    this.store.update(NODE, { ...node, spec });
    this.controllers.settle();
    this.startPendingPods();
  }

  /** Sets the Ready condition, as the kubelet (or the node lifecycle controller) would. */
  setNodeReady(name: string, ready: boolean): void {
    const node = this.store.require(NODE, undefined, name);
    this.store.update(NODE, { ...node, status: { ...node.status, conditions: nodeConditions(ready, node.status?.conditions) } });
    this.controllers.settle();
  }

  /**
   * Reboots a node: NotReady (`KubeletNotReady`) for `downMs`, then a new boot id, which the returned
   * promise resolves to. As a real kubelet does, the new boot id is posted while the node is still
   * NotReady and Ready follows `readyAfterBootMs` later (about 1 s on a real cluster,
   * ../shared/k8s-captured/README.md); 0 posts both at once. Pods are not deleted, as on a real
   * reboot: their containers restart, so they are NotReady while the node is down and Ready again
   * `podStartDelayMs` after it is back. Drain a node first to move its pods elsewhere.
   */
  rebootNode(name: string, { downMs, readyAfterBootMs = 0 }: { downMs: number; readyAfterBootMs?: number }): Promise<string> {
    this.setNodeReady(name, false);
    return new Promise((resolve) => {
      this.timers.after(downMs, () => {
        const node = this.store.get(NODE, undefined, name);
        if (!node) return;
        const bootID = randomUUID();
        const ready = readyAfterBootMs === 0;
        this.store.update(NODE, {
          ...node,
          status: { ...node.status, conditions: nodeConditions(ready, node.status?.conditions), nodeInfo: { ...node.status?.nodeInfo, bootID } },
        });
        if (!ready) this.timers.after(readyAfterBootMs, () => this.store.get(NODE, undefined, name) && this.setNodeReady(name, true));
        resolve(bootID);
      });
    });
  }

  /** A Deployment, its ReplicaSet and Running, Ready pods spread over schedulable Ready nodes; optionally a PDB over them. */
  addDeployment(namespace: string, name: string, options: SimDeploymentOptions): { deployment: KubeObject; replicaSet: KubeObject; pods: KubeObject[] } {
    const labels = options.labels ?? { app: name };
    const hash = randomSuffix(10);
    const podSpec: Json = {
      containers: [{ name: "app", image: PAUSE_IMAGE }],
      restartPolicy: "Always",
      terminationGracePeriodSeconds: options.terminationGracePeriodSeconds ?? 30,
      schedulerName: "default-scheduler",
      ...(options.emptyDir ? { volumes: [{ name: "scratch", emptyDir: {} }] } : {}),
      ...(options.nodes
        ? {
            affinity: {
              nodeAffinity: {
                requiredDuringSchedulingIgnoredDuringExecution: {
                  nodeSelectorTerms: [{ matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: options.nodes }] }],
                },
              },
            },
          }
        : {}),
    };
    const deployment = this.store.create(DEPLOYMENT, {
      metadata: { name, namespace, labels },
      spec: {
        replicas: options.replicas,
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: podSpec },
        strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "25%", maxSurge: "25%" } },
      },
      status: {},
    });
    const rsLabels = { ...labels, "pod-template-hash": hash };
    const replicaSet = this.store.create(RS, {
      metadata: { name: `${name}-${hash}`, namespace, labels: rsLabels, ownerReferences: [ownerReference(deployment)] },
      spec: { replicas: options.replicas, selector: { matchLabels: rsLabels }, template: { metadata: { labels: rsLabels }, spec: podSpec } },
      status: {},
    });
    if (options.pdb) this.addPdb(namespace, name, { selector: labels, ...options.pdb });
    this.controllers.settle();
    this.startPendingPods();
    return {
      deployment: this.store.require(DEPLOYMENT, namespace, name),
      replicaSet: this.store.require(RS, namespace, replicaSet.metadata.name),
      pods: this.store
        .peek(POD, namespace)
        .filter((p) => controllerOf(p)?.uid === replicaSet.metadata.uid)
        .map((p) => structuredClone(p)),
    };
  }

  /** A DaemonSet with one Running, Ready pod per Ready node (recreated on a node once it is Ready again). */
  addDaemonSet(namespace: string, name: string, options: { labels?: Record<string, string> } = {}): KubeObject {
    const labels = options.labels ?? { app: name };
    this.store.create(DS, {
      metadata: { name, namespace, labels },
      spec: {
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: { containers: [{ name: "agent", image: PAUSE_IMAGE }], restartPolicy: "Always", terminationGracePeriodSeconds: 30, tolerations: [{ operator: "Exists" }] },
        },
        updateStrategy: { type: "RollingUpdate" },
      },
      status: {},
    });
    this.controllers.settle();
    this.startPendingPods();
    return this.store.require(DS, namespace, name);
  }

  /** An unmanaged, mirror, finished or foreign-owned pod; Running and Ready unless `phase` says otherwise. */
  addPod(namespace: string, name: string, options: SimPodOptions = {}): KubeObject {
    const node = options.node === undefined ? undefined : this.store.require(NODE, undefined, options.node);
    const ownerReferences: OwnerReference[] = [];
    if (options.mirror && node) ownerReferences.push({ apiVersion: "v1", kind: "Node", name: node.metadata.name, uid: node.metadata.uid, controller: true });
    if (options.ownerKind) {
      const apiVersion = options.ownerKind === "Job" ? "batch/v1" : "apps/v1";
      ownerReferences.push({ apiVersion, kind: options.ownerKind, name: `${name}-owner`, uid: randomUUID(), controller: true, blockOwnerDeletion: true });
    }
    const phase = options.phase ?? "Running";
    const terminal = phase === "Succeeded" || phase === "Failed";
    this.store.create(POD, {
      metadata: {
        name,
        namespace,
        labels: options.labels ?? {},
        ...(options.mirror ? { annotations: { "kubernetes.io/config.mirror": randomBytes(16).toString("hex"), "kubernetes.io/config.source": "file" } } : {}),
        ...(ownerReferences.length ? { ownerReferences } : {}),
      },
      spec: {
        ...(node ? { nodeName: node.metadata.name } : {}),
        containers: [{ name: "main", image: PAUSE_IMAGE }],
        restartPolicy: terminal ? "Never" : "Always",
        terminationGracePeriodSeconds: options.terminationGracePeriodSeconds ?? 30,
        schedulerName: "default-scheduler",
        ...(options.emptyDir ? { volumes: [{ name: "scratch", emptyDir: {} }] } : {}),
      },
      status: terminal
        ? { phase, conditions: [{ type: "Ready", status: "False", reason: "PodCompleted", lastProbeTime: null, lastTransitionTime: timestamp() }] }
        : { phase: "Pending", qosClass: "BestEffort" },
    });
    this.controllers.settle();
    if (phase === "Running") this.controllers.startPodNow(namespace, name);
    this.controllers.settle();
    return this.store.require(POD, namespace, name);
  }

  addPdb(namespace: string, name: string, options: SimPdbOptions): KubeObject {
    this.store.create(PDB, {
      metadata: { name, namespace },
      spec: {
        selector: { matchLabels: options.selector },
        ...(options.minAvailable !== undefined ? { minAvailable: options.minAvailable } : {}),
        ...(options.maxUnavailable !== undefined ? { maxUnavailable: options.maxUnavailable } : {}),
        ...(options.unhealthyPodEvictionPolicy ? { unhealthyPodEvictionPolicy: options.unhealthyPodEvictionPolicy } : {}),
      },
      status: {},
    });
    this.controllers.settle();
    return this.store.require(PDB, namespace, name);
  }

  /**
   * Changes a budget's spec while the disruption controller lags behind (`status.observedGeneration`
   * below `metadata.generation`), until `catchUp` is called: evictions then get the API server's
   * "still being processed" 429.
   */
  lagPdbStatus(namespace: string, name: string, spec: PdbSpec): { catchUp: () => void } {
    const key = `${namespace}/${name}`;
    this.controllers.stalePdbs.add(key);
    const pdb = this.store.require(PDB, namespace, name);
    const { minAvailable: _min, maxUnavailable: _max, ...rest } = pdb.spec ?? {};
    this.store.update(PDB, { ...pdb, spec: { ...rest, ...spec } });
    return {
      catchUp: () => {
        this.controllers.stalePdbs.delete(key);
        this.controllers.invalidate();
        this.controllers.settle();
      },
    };
  }

  /** A bound service account token that TokenReview accepts (see `TokenAuthority`). */
  issueServiceAccountToken(options: ServiceAccountTokenOptions): string {
    return this.tokens.issue(options);
  }

  /** How long the API server keeps accepting a token after its pod is gone (its authentication cache; ~10 s on kube-apiserver). */
  set tokenAuthenticationCacheMs(ms: number) {
    this.tokens.authenticationCacheMs = ms;
  }

  // --- Observing the cluster ---

  getNode(name: string): KubeObject | undefined {
    return this.store.get(NODE, undefined, name);
  }

  getPod(namespace: string, name: string): KubeObject | undefined {
    return this.store.get(POD, namespace, name);
  }

  pods(filter: { node?: string; namespace?: string } = {}): KubeObject[] {
    // Filtered before the copies are made: a bench of 1,000 nodes asks for each node's agent pod.
    return this.store.list(POD, filter.namespace, (p) => filter.node === undefined || p.spec?.nodeName === filter.node);
  }

  pdbs(namespace?: string): KubeObject[] {
    return this.store.list(PDB, namespace);
  }

  /** How many TCP connections clients opened to the server. */
  get connections(): number {
    return this.connectionCount;
  }

  /** Times a PDB fell below its desired healthy count because of a deletion or eviction the API allowed; should stay 0. */
  get pdbViolations(): number {
    return this.controllers.pdbViolations;
  }

  /** The most nodes that were unschedulable or not Ready at the same moment. */
  get maxNodesUnavailable(): number {
    return this.maxUnavailable;
  }

  /** Calls `listener` on every node change; returns the unsubscribe function. */
  onNodeChange(listener: (change: NodeChange) => void): () => void {
    this.nodeListeners.add(listener);
    return () => this.nodeListeners.delete(listener);
  }

  /** Initial pods of things the facade adds start at once, so tests begin from a settled, healthy cluster. */
  private startPendingPods(): void {
    const readyNodes = new Set(this.store.peek(NODE).filter(nodeIsReady).map((n) => n.metadata.name));
    const starting = this.store.peek(POD).filter((p) => readyNodes.has(p.spec?.nodeName) && p.status?.phase === "Pending" && !p.metadata.deletionTimestamp);
    for (const pod of starting) this.controllers.startPodNow(pod.metadata.namespace!, pod.metadata.name);
    this.controllers.settle();
  }

  private observeNode({ resource, before, after }: Change): void {
    if (resource !== NODE) return;
    const node = (after ?? before)!.metadata.name;
    const changes: NodeChangeKind[] = [];
    if (!before) changes.push("added");
    else if (!after) changes.push("deleted");
    else {
      if (!before.spec?.unschedulable !== !after.spec?.unschedulable) changes.push(after.spec?.unschedulable ? "cordoned" : "uncordoned");
      if (nodeIsReady(before) !== nodeIsReady(after)) changes.push(nodeIsReady(after) ? "ready" : "notReady");
      if (before.status?.nodeInfo?.bootID !== after.status?.nodeInfo?.bootID) changes.push("rebooted");
      if (JSON.stringify(before.metadata.annotations ?? {}) !== JSON.stringify(after.metadata.annotations ?? {})) changes.push("annotated");
    }
    const unavailable = this.store.peek(NODE).filter((n) => n.spec?.unschedulable || !nodeIsReady(n)).length;
    this.maxUnavailable = Math.max(this.maxUnavailable, unavailable);
    const at = Date.now();
    for (const change of changes) {
      const event: NodeChange = { at, node, change, bootId: (after ?? before)!.status?.nodeInfo?.bootID, ...(change === "annotated" && { annotations: { ...after!.metadata.annotations } }) };
      this.nodeChanges.push(event);
      for (const listener of this.nodeListeners) listener(event);
    }
  }
}

function ownerReference(owner: KubeObject): OwnerReference {
  return { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.metadata.name, uid: owner.metadata.uid, controller: true, blockOwnerDeletion: true };
}

/** A node's conditions with Ready set as the kubelet reports it, keeping transition times of unchanged conditions. */
function nodeConditions(ready: boolean, previous: Json[] | undefined): Json[] {
  const now = timestamp();
  const condition = (type: string, status: string, reason: string, message: string): Json => {
    const before = previous?.find((c) => c.type === type);
    return { type, status, lastHeartbeatTime: now, lastTransitionTime: before?.status === status ? before.lastTransitionTime : now, reason, message };
  };
  return [
    condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ready
      ? condition("Ready", "True", "KubeletReady", "kubelet is posting ready status")
      : condition("Ready", "False", "KubeletNotReady", "container runtime is down"),
  ];
}
