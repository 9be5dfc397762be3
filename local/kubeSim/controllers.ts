import { jsonEqual } from "./json";
import { computePdbStatus, type ScaleOf, selectedPods, statusChanged } from "./pdbStatus";
import { controllerOf, isActive, isReady, isTerminal, isTerminating, runningStatus } from "./podStatus";
import { type Resource, resources } from "./resources";
import { labelSelectorMatcher } from "./selectors";
import { ApiError } from "./status";
import { type Json, type KubeObject, type OwnerReference, randomSuffix, type Store, timestamp } from "./store";
import type { Timers } from "./timers";

/**
 * What the control plane and the kubelets do after API writes: graceful pod deletion, the
 * scheduler, the kubelet starting pods and reporting readiness, the ReplicaSet, Deployment and
 * DaemonSet controllers, and the disruption (PDB status) controller. They run synchronously
 * (`settle()`) after every request and timer, so each response reflects a settled cluster.
 */

export interface ControllerTimings {
  /** How long a gracefully deleted pod takes to terminate (capped by its grace period). */
  terminationDelayMs: number;
  /** How long a scheduled pod takes to become Running and Ready. */
  podStartDelayMs: number;
}

const { pods: POD, nodes: NODE, replicasets: RS, deployments: DEPLOYMENT, daemonsets: DS, poddisruptionbudgets: PDB } = resources;

/** A rough bound on settling rounds: each round may only create what the previous one made necessary. */
const MAX_SETTLE_ROUNDS = 20;

export function nodeIsReady(node: KubeObject): boolean {
  return ((node.status?.conditions ?? []) as Json[]).some((c) => c.type === "Ready" && c.status === "True");
}

export class Controllers {
  /** Moments a PDB dropped below its desired healthy count because of a pod deletion or eviction the API allowed. */
  pdbViolations = 0;
  private readonly startTimers = new Map<string, NodeJS.Timeout>();
  private readonly removalTimers = new Map<string, NodeJS.Timeout>();
  private nextPodIp = 0;
  private settling = false;
  /** The state version (`Store.stateVersion`) the cluster last settled at: settling again before another write would find nothing to do. */
  private settledAt = "";
  /** Per controller, the revision of its inputs when it last ran (see `whenChanged`). */
  private readonly ranAt = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly timers: Timers,
    private readonly timings: ControllerTimings,
  ) {}

  /**
   * Deletes a pod as the apiserver and kubelet do: at once when it never ran on a node or has
   * finished (CheckGracefulDelete), otherwise by marking it terminating and removing it after the
   * simulated termination time. Returns the pod as the DELETE response shows it.
   */
  deletePod(namespace: string, name: string, gracePeriodSeconds?: number): KubeObject {
    const pod = this.store.require(POD, namespace, name);
    const healthyBefore = new Map(this.pdbsSelecting(pod).map((p) => [p.metadata.uid, p.status?.currentHealthy as number | undefined]));
    const result = this.deleteWithoutAccounting(pod, gracePeriodSeconds);
    this.settle();
    for (const pdb of this.pdbsSelecting(pod)) {
      const before = healthyBefore.get(pdb.metadata.uid);
      const { currentHealthy, desiredHealthy } = pdb.status ?? {};
      if (before !== undefined && currentHealthy < before && currentHealthy < desiredHealthy) this.pdbViolations++;
    }
    return result;
  }

  /** Runs every controller until none has anything left to change. */
  settle(): void {
    if (this.settling || this.store.stateVersion === this.settledAt) return;
    this.settling = true;
    try {
      for (let round = 0; round < MAX_SETTLE_ROUNDS; round++) {
        const before = this.store.stateVersion;
        this.whenChanged("replicasets", [POD, RS], () => this.runReplicaSets());
        this.whenChanged("daemonsets", [POD, NODE, DS], () => this.runDaemonSets());
        this.whenChanged("scheduler", [POD, NODE], () => this.schedule());
        this.whenChanged("kubelets", [POD, NODE], () => this.runKubelets());
        this.whenChanged("workload statuses", [POD, NODE, RS, DEPLOYMENT, DS], () => this.updateWorkloadStatuses());
        this.whenChanged("disruption", [POD, PDB, RS, DEPLOYMENT, DS], () => this.updatePdbs());
        if (this.store.stateVersion === before) break;
      }
    } finally {
      this.settledAt = this.store.stateVersion;
      this.settling = false;
    }
  }

  /**
   * Runs a controller only if an object of a kind it reads was written since it last ran: each pass
   * reads every pod, and a node's cordon re-ran the ReplicaSet and disruption controllers over all of
   * them (the 1,000-node bench spent a third of its CPU settling). The revision is taken before the
   * run, so the controller's own writes make it run once more, as before.
   */
  private whenChanged(name: string, inputs: readonly Resource[], run: () => void): void {
    const revision = Math.max(...inputs.map((r) => this.store.revisionOf(r)));
    if (this.ranAt.get(name) === revision) return;
    this.ranAt.set(name, revision);
    run();
  }

  /** Forgets what the controllers saw, so that the next settle runs each of them (a budget's status caught up, `SimCluster.lagPdbStatus`). */
  invalidate(): void {
    this.ranAt.clear();
    this.settledAt = "";
  }

  /** Brings a pod to Running and Ready now, as if its containers had started (used for a deployment's initial pods). */
  startPodNow(namespace: string, name: string): void {
    const pod = this.store.get(POD, namespace, name);
    if (pod) this.store.update(POD, { ...pod, status: runningStatus(pod, true, this.allocatePodIp()) });
  }

  clearTimers(): void {
    this.startTimers.clear();
    this.removalTimers.clear();
  }

  private deleteWithoutAccounting(pod: KubeObject, gracePeriodSeconds?: number): KubeObject {
    const { namespace = "default", name } = pod.metadata;
    const requested = gracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
    const grace = !pod.spec?.nodeName || isTerminal(pod) ? 0 : requested;
    if (grace === 0) return this.removePod(pod);
    if (isTerminating(pod)) return pod;
    const marked = this.store.markDeleting(POD, namespace, name, timestamp(Date.now() + grace * 1000), grace);
    this.scheduleRemoval(marked, Math.min(this.timings.terminationDelayMs, grace * 1000));
    return marked;
  }

  private scheduleRemoval(pod: KubeObject, delayMs: number): void {
    const uid = pod.metadata.uid;
    if (this.removalTimers.has(uid)) return;
    const timer = this.timers.after(delayMs, () => {
      this.removalTimers.delete(uid);
      const current = this.store.get(POD, pod.metadata.namespace, pod.metadata.name);
      if (current?.metadata.uid === uid) this.removePod(current);
    });
    this.removalTimers.set(uid, timer);
  }

  private removePod(pod: KubeObject): KubeObject {
    this.timers.cancel(this.startTimers.get(pod.metadata.uid));
    this.startTimers.delete(pod.metadata.uid);
    this.timers.cancel(this.removalTimers.get(pod.metadata.uid));
    this.removalTimers.delete(pod.metadata.uid);
    return this.store.remove(POD, pod.metadata.namespace, pod.metadata.name) ?? pod;
  }

  private pdbsSelecting(pod: KubeObject): KubeObject[] {
    return this.store.list(PDB, pod.metadata.namespace).filter((pdb) => selectedPods(pdb, [pod]).length > 0);
  }

  /** Active pods by the uid of their controller. */
  private activePodsByOwner(): Map<string, KubeObject[]> {
    const owned = new Map<string, KubeObject[]>();
    for (const pod of this.store.peek(POD)) {
      const owner = controllerOf(pod)?.uid;
      if (!owner || !isActive(pod)) continue;
      const list = owned.get(owner);
      if (list) list.push(pod);
      else owned.set(owner, [pod]);
    }
    return owned;
  }

  private runReplicaSets(): void {
    const owned = this.activePodsByOwner();
    for (const rs of this.store.peek(RS)) {
      const active = owned.get(rs.metadata.uid)?.length ?? 0;
      for (let i = active; i < (rs.spec?.replicas ?? 0); i++) this.createOwnedPod(rs, rs.spec.template);
    }
  }

  private runDaemonSets(): void {
    const owned = this.activePodsByOwner();
    const readyNodes = this.store.peek(NODE).filter(nodeIsReady);
    for (const ds of this.store.peek(DS)) {
      const covered = new Set((owned.get(ds.metadata.uid) ?? []).map((p) => p.spec?.nodeName));
      for (const node of readyNodes) {
        if (!covered.has(node.metadata.name)) this.createOwnedPod(ds, ds.spec.template, node.metadata.name);
      }
    }
  }

  private createOwnedPod(owner: KubeObject, template: Json, nodeName?: string): void {
    const ownerReference: OwnerReference = {
      apiVersion: owner.apiVersion,
      kind: owner.kind,
      name: owner.metadata.name,
      uid: owner.metadata.uid,
      controller: true,
      blockOwnerDeletion: true,
    };
    // Five random characters collide about once in 14 runs of 2,000 pods; the API server answers 409
    // and the real controller tries another name, so this one does too.
    for (let attempt = 0; ; attempt++) {
      try {
        this.store.create(POD, {
          metadata: {
            name: `${owner.metadata.name}-${randomSuffix()}`,
            namespace: owner.metadata.namespace,
            labels: { ...template?.metadata?.labels },
            ownerReferences: [ownerReference],
          },
          spec: { ...structuredClone(template?.spec), ...(nodeName ? { nodeName } : {}) },
          status: { phase: "Pending", qosClass: "BestEffort" },
        });
        return;
      } catch (error) {
        if (attempt >= 4 || !(error instanceof ApiError && error.reason === "AlreadyExists")) throw error;
      }
    }
  }

  /** The default scheduler, reduced to what placement tests need: readiness, cordons, selectors, taints, spreading. */
  private schedule(): void {
    const allNodes = this.store.peek(NODE);
    const nodes = allNodes.filter((n) => nodeIsReady(n) && !n.spec?.unschedulable);
    const pods = this.store.peek(POD);
    const load = new Map<string, KubeObject[]>();
    const place = (node: string, pod: KubeObject) => {
      const list = load.get(node);
      if (list) list.push(pod);
      else load.set(node, [pod]);
    };
    for (const pod of pods) if (pod.spec?.nodeName && isActive(pod)) place(pod.spec.nodeName, pod);
    for (const pod of pods.filter((p) => !p.spec?.nodeName && isActive(p))) {
      const owner = controllerOf(pod)?.uid;
      const [chosen] = nodes
        .filter((n) => fits(pod, n))
        .map((node) => {
          const placed = load.get(node.metadata.name) ?? [];
          return { node, siblings: owner ? placed.filter((p) => controllerOf(p)?.uid === owner).length : 0, total: placed.length };
        })
        .sort((a, b) => a.siblings - b.siblings || a.total - b.total)
        .map((c) => c.node);
      if (!chosen) {
        const unschedulable = { type: "PodScheduled", status: "False", reason: "Unschedulable", message: `0/${allNodes.length} nodes are available.`, lastProbeTime: null };
        const conditions = [unschedulable];
        if (!jsonEqual(pod.status?.conditions?.map(({ lastTransitionTime: _, ...c }: Json) => c), conditions)) {
          this.store.update(POD, { ...pod, status: { ...pod.status, conditions: [{ ...unschedulable, lastTransitionTime: timestamp() }] } });
        }
        continue;
      }
      const name = chosen.metadata.name;
      const hostIP = (chosen.status?.addresses ?? []).find((a: Json) => a.type === "InternalIP")?.address;
      const bound = this.store.update(POD, {
        ...pod,
        spec: { ...pod.spec, nodeName: name },
        status: { ...pod.status, hostIP, conditions: [{ type: "PodScheduled", status: "True", lastProbeTime: null, lastTransitionTime: timestamp() }] },
      });
      place(name, bound);
    }
  }

  /** Each node's kubelet: starts pods bound to it, reports readiness with the node's, and lets pods of vanished nodes go (pod GC). */
  private runKubelets(): void {
    const nodes = new Map(this.store.peek(NODE).map((n) => [n.metadata.name, n]));
    for (const pod of this.store.peek(POD)) {
      if (!pod.spec?.nodeName) continue;
      const node = nodes.get(pod.spec.nodeName);
      if (!node) {
        this.removePod(pod);
        continue;
      }
      if (isTerminating(pod)) {
        this.scheduleRemoval(pod, this.timings.terminationDelayMs);
        continue;
      }
      if (isTerminal(pod)) continue;
      if (!nodeIsReady(node)) {
        this.timers.cancel(this.startTimers.get(pod.metadata.uid));
        this.startTimers.delete(pod.metadata.uid);
        if (isReady(pod)) this.store.update(POD, { ...pod, status: runningStatus(pod, false, this.allocatePodIp()) });
        continue;
      }
      if (pod.status?.phase === "Pending" || !isReady(pod)) this.startPod(pod);
    }
  }

  private startPod(pod: KubeObject): void {
    const uid = pod.metadata.uid;
    if (this.timings.podStartDelayMs <= 0) {
      this.store.update(POD, { ...pod, status: runningStatus(pod, true, this.allocatePodIp()) });
      return;
    }
    if (this.startTimers.has(uid)) return;
    const timer = this.timers.after(this.timings.podStartDelayMs, () => {
      this.startTimers.delete(uid);
      const current = this.store.get(POD, pod.metadata.namespace, pod.metadata.name);
      const node = current?.spec?.nodeName && this.store.get(NODE, undefined, current.spec.nodeName);
      if (current?.metadata.uid === uid && isActive(current) && node && nodeIsReady(node)) {
        this.store.update(POD, { ...current, status: runningStatus(current, true, this.allocatePodIp()) });
      }
    });
    this.startTimers.set(uid, timer);
  }

  private allocatePodIp(): string {
    this.nextPodIp += 1;
    return `10.244.${Math.floor(this.nextPodIp / 250) % 250}.${(this.nextPodIp % 250) + 2}`;
  }

  private updateWorkloadStatuses(): void {
    const byOwner = this.activePodsByOwner();
    const owned = (owner: KubeObject) => byOwner.get(owner.metadata.uid) ?? [];
    const replicaSets = this.store.peek(RS);
    for (const rs of replicaSets) {
      const mine = owned(rs);
      const ready = mine.filter(isReady).length;
      this.writeStatus(RS, rs, { replicas: mine.length, fullyLabeledReplicas: mine.length, readyReplicas: ready, availableReplicas: ready, observedGeneration: rs.metadata.generation });
    }
    for (const deployment of this.store.peek(DEPLOYMENT)) {
      const mine = replicaSets.filter((rs) => controllerOf(rs)?.uid === deployment.metadata.uid).flatMap(owned);
      const ready = mine.filter(isReady).length;
      const replicas = deployment.spec?.replicas ?? 0;
      this.writeStatus(DEPLOYMENT, deployment, {
        observedGeneration: deployment.metadata.generation,
        replicas: mine.length,
        updatedReplicas: mine.length,
        readyReplicas: ready,
        availableReplicas: ready,
        ...(replicas > ready ? { unavailableReplicas: replicas - ready } : {}),
      });
    }
    const nodeCount = this.store.peek(NODE).length;
    for (const ds of this.store.peek(DS)) {
      const mine = owned(ds);
      const ready = mine.filter(isReady).length;
      this.writeStatus(DS, ds, {
        currentNumberScheduled: mine.length,
        desiredNumberScheduled: nodeCount,
        numberMisscheduled: 0,
        numberReady: ready,
        numberAvailable: ready,
        updatedNumberScheduled: mine.length,
        observedGeneration: ds.metadata.generation,
      });
    }
  }

  private writeStatus(resource: typeof RS | typeof DEPLOYMENT | typeof DS, object: KubeObject, status: Json): void {
    if (!jsonEqual(object.status, status)) this.store.update(resource, { ...object, status });
  }

  /** Budgets (`ns/name`) whose status the disruption controller has not caught up with yet (`SimCluster.lagPdbStatus`). */
  readonly stalePdbs = new Set<string>();

  private updatePdbs(): void {
    const pdbs = this.store.peek(PDB);
    if (pdbs.length === 0) return;
    // Candidates by namespace and by one `matchLabels` pair: matching every budget against every pod was the sim's hot spot.
    const byLabel = new Map<string, KubeObject[]>();
    const byNamespace = new Map<string, KubeObject[]>();
    const index = (key: string, pod: KubeObject, into: Map<string, KubeObject[]>) => {
      const list = into.get(key);
      if (list) list.push(pod);
      else into.set(key, [pod]);
    };
    for (const pod of this.store.peek(POD)) {
      const namespace = pod.metadata.namespace ?? "default";
      index(namespace, pod, byNamespace);
      for (const [key, value] of Object.entries(pod.metadata.labels ?? {})) index(`${namespace}/${key}=${value}`, pod, byLabel);
    }
    const scaleOf = this.scaleLookup();
    for (const pdb of pdbs) {
      const namespace = pdb.metadata.namespace ?? "default";
      if (this.stalePdbs.has(`${namespace}/${pdb.metadata.name}`)) continue;
      const [pair] = Object.entries((pdb.spec?.selector?.matchLabels ?? {}) as Record<string, string>);
      const candidates = pair ? (byLabel.get(`${namespace}/${pair[0]}=${pair[1]}`) ?? []) : (byNamespace.get(namespace) ?? []);
      const status = computePdbStatus(pdb, candidates, scaleOf);
      if (statusChanged(pdb, status)) this.store.update(PDB, { ...pdb, status });
    }
  }

  /** The scale of a pod's controller as the disruption controller reads it: a Deployment's for its ReplicaSets. */
  private scaleLookup(): ScaleOf {
    const byName = (resource: typeof RS | typeof DEPLOYMENT | typeof DS) =>
      new Map(this.store.peek(resource).map((o) => [`${o.metadata.namespace}/${o.metadata.name}`, o]));
    const replicaSets = byName(RS);
    const deployments = byName(DEPLOYMENT);
    const daemonSets = byName(DS);
    return (owner, namespace) => {
      if (owner.kind === "ReplicaSet") {
        const rs = replicaSets.get(`${namespace}/${owner.name}`);
        const deploymentRef = rs && controllerOf(rs);
        const deployment = deploymentRef?.kind === "Deployment" ? deployments.get(`${namespace}/${deploymentRef.name}`) : undefined;
        return (deployment ?? rs)?.spec?.replicas;
      }
      if (owner.kind === "DaemonSet") return daemonSets.get(`${namespace}/${owner.name}`)?.status?.desiredNumberScheduled;
      return undefined;
    };
  }
}

/** Node selector, required node affinity, and NoSchedule/NoExecute taints against tolerations. */
function fits(pod: KubeObject, node: KubeObject): boolean {
  const labels = node.metadata.labels ?? {};
  const selector = (pod.spec?.nodeSelector ?? {}) as Record<string, string>;
  if (!Object.entries(selector).every(([k, v]) => labels[k] === v)) return false;
  const terms = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms as Json[] | undefined;
  if (terms && !terms.some((term) => labelSelectorMatcher({ matchExpressions: term.matchExpressions ?? [] })(labels))) return false;
  const tolerations = (pod.spec?.tolerations ?? []) as Json[];
  return ((node.spec?.taints ?? []) as Json[])
    .filter((t) => t.effect === "NoSchedule" || t.effect === "NoExecute")
    .every((taint) =>
      tolerations.some(
        (t) =>
          (!t.effect || t.effect === taint.effect) &&
          (t.operator === "Exists" ? !t.key || t.key === taint.key : t.key === taint.key && (t.value ?? "") === (taint.value ?? "")),
      ),
    );
}
