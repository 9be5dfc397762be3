import type { ChangeFeed } from "./changeFeed";
/**
 * The slice of the Kubernetes API the orchestrator needs, as a small port. The production
 * implementation is `kubeClusterApi.ts` (client-node); unit tests fake this interface directly.
 */

export interface KubeNode {
  name: string;
  /** Identity of this node object: a node deleted and re-created under the same name (a VMSS reimage) has a new uid. */
  uid: string;
  /** The version that was read; a write conditional on it fails if the node changed since (see `updateNode`). */
  resourceVersion: string;
  unschedulable: boolean;
  ready: boolean;
  bootId: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** `spec.taints`, when the implementation reads them. */
  taints?: KubeTaint[];
}

export interface KubePod {
  namespace: string;
  name: string;
  phase: string;
  /** Kinds of the pod's controller owner references (`DaemonSet`, `ReplicaSet`, …); empty for unmanaged pods. */
  controllerKinds: string[];
  mirror: boolean;
  usesEmptyDir: boolean;
  /** When the pod started terminating, if it has. */
  deletionTimestamp?: Date;
  labels: Record<string, string>;
}

export type EvictionResult =
  | { kind: "evicted" }
  /** The pod no longer exists: it counts as evicted. */
  | { kind: "gone" }
  /** 429: a PodDisruptionBudget allows no disruption now. */
  | { kind: "blocked"; message: string; pdb?: string; retryAfterSeconds?: number }
  /** 500 from the eviction subresource: typically several PDBs select the pod, which only an operator can fix. */
  | { kind: "misconfigured"; message: string };

/** The API server's answer to a TokenReview (`authentication.k8s.io/v1`). */
export interface TokenReviewResult {
  authenticated: boolean;
  /** Of the audiences asked for, those the token is valid for. */
  audiences: string[];
  /** `system:serviceaccount:<namespace>:<name>` for service-account tokens. */
  username?: string;
  /** `authentication.kubernetes.io/pod-name`, `…/pod-uid`, `…/node-name` for pod-bound tokens. */
  extra: Record<string, string[]>;
  /** Why the token was not authenticated, when the API server says. */
  error?: string;
}

/** The facts of a pod that decide whether its token speaks for the Rollcall agent on a node. */
export interface KubePodIdentity {
  uid: string;
  /** `spec.nodeName`; undefined while the pod is not scheduled. */
  nodeName?: string;
  /** `metadata.deletionTimestamp` is set. */
  terminating: boolean;
  /** The owner reference marked `controller: true`, if any. */
  controller?: { kind: string; name: string };
}

/** Annotation values to set, or `null` to remove. */
export type AnnotationChanges = Record<string, string | null>;

/** What one node write changes; absent fields are left as they are. */
export interface NodeChange {
  unschedulable?: boolean;
  annotations?: AnnotationChanges;
  /** Label values to set, or `null` to remove. */
  labels?: Record<string, string | null>;
  /** The whole new taint list (a merge patch replaces the list; the precondition makes that safe). */
  taints?: KubeTaint[];
}

/**
 * A conditional node write found the node changed since it was read (409 Conflict on the
 * resourceVersion precondition) or gone (404). Nothing was written: read again and decide again.
 */
export class NodeChangedError extends Error {
  constructor(
    readonly node: string,
    readonly gone: boolean,
  ) {
    super(gone ? `node ${node} no longer exists` : `node ${node} changed since it was read; nothing was written`);
  }
}

export interface ClusterApi {
  /** The node, or undefined when it no longer exists. */
  getNode(name: string): Promise<KubeNode | undefined>;
  /**
   * Changes the node only if it is still exactly the object `seen` (same resourceVersion, hence the
   * same uid), in one patch; answers the node as written. Throws `NodeChangedError` otherwise, so a
   * write decided on an old view (a slow instance, a delayed request) never lands on a newer node.
   */
  updateNode(seen: Pick<KubeNode, "name" | "resourceVersion">, change: NodeChange): Promise<KubeNode>;
  listPodsOnNode(name: string): Promise<KubePod[]>;
  /**
   * Watches that wake a step waiting on the cluster at once instead of at its next poll: pods
   * deleted from the node (evicted pods finishing), and any change to the node object after the
   * resourceVersion it was read at (the kubelet posting Ready), and any PodDisruptionBudget of the
   * cluster that comes to allow a disruption or goes away (what lifts a gate holding a queued node).
   * Absent (a fake cluster): the step polls.
   */
  watchPodDeletions?(node: string): ChangeFeed;
  watchNode?(name: string, resourceVersion: string): ChangeFeed;
  watchPodDisruptionBudgets?(): ChangeFeed;
  evictPod(pod: Pick<KubePod, "namespace" | "name">, gracePeriodSeconds?: number): Promise<EvictionResult>;
  /** Who a bearer token belongs to, validated for `audiences` by the API server (TokenReview). */
  reviewToken(token: string, audiences: string[]): Promise<TokenReviewResult>;
  /** What check-in authentication checks of the pod a token is bound to, or undefined when no such pod exists. */
  getPodIdentity(namespace: string, name: string): Promise<KubePodIdentity | undefined>;
  /** The names of every node in the cluster. */
  listNodeNames(): Promise<string[]>;

  // ---- For the reboot-policy gates, the taint and the node labels (issue 6).

  /** Every node of the cluster. */
  listNodes(): Promise<KubeNode[]>;
  /** Pods in every namespace, optionally only those matching a label selector and/or on one node. */
  listPods(options: { labelSelector?: string; nodeName?: string }): Promise<KubePodOnNode[]>;
  /** Every PodDisruptionBudget (`policy/v1`) of the cluster. */
  listPodDisruptionBudgets(): Promise<KubePdb[]>;
  /** One PodDisruptionBudget, or undefined when it no longer exists (a drain re-reads a budget that refused). */
  getPodDisruptionBudget(namespace: string, name: string): Promise<KubePdb | undefined>;
  /** Adds or replaces the taint with this key (`taint`), or removes every taint with this key (`null`). */
  setTaint(node: string, key: string, taint: { effect: TaintEffect; value?: string } | null): Promise<void>;

  /**
   * Records a Kubernetes Event about the node (`kubectl describe node`). A repeat of the same type,
   * reason and message is counted on the event already written (count, lastTimestamp), as client-go's
   * event correlator does, instead of writing a new one.
   */
  recordEvent(event: NodeEvent): Promise<void>;
}

/** One Event about a node: what happened (`reason`, CamelCase), in words (`message`), and whether it needs attention. */
export interface NodeEvent {
  node: Pick<KubeNode, "name" | "uid">;
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

export type TaintEffect = "NoSchedule" | "PreferNoSchedule" | "NoExecute";

export interface KubeTaint {
  key: string;
  value?: string;
  effect: TaintEffect;
}

export interface KubePodOnNode extends KubePod {
  /** `spec.nodeName`; empty for an unscheduled pod. */
  nodeName: string;
}

/** A PodDisruptionBudget and its status. */
export interface KubePdb {
  namespace: string;
  name: string;
  /** `spec.selector`; `{}` selects every pod of the namespace, undefined none. */
  selector?: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };
  disruptionsAllowed: number;
  currentHealthy: number;
  desiredHealthy: number;
  expectedPods: number;
  /** `metadata.generation` and `status.observedGeneration`: the status only counts once it observed the current spec. */
  generation?: number;
  observedGeneration?: number;
}

/** Annotations Rollcall writes on the node object, so that `kubectl describe node` tells the story. */
export const nodeAnnotations = {
  /** Present while Rollcall holds the node cordoned; its value is the lease. Rollcall only uncordons nodes carrying it. */
  cordonedBy: "rollcall.io/cordoned-by-lease",
  state: "rollcall.io/state",
} as const;

/** kured's node annotations (cmd/kured/main.go), written when the policy's `kuredAnnotations` is on. */
export const kuredAnnotations = {
  rebootInProgress: "weave.works/kured-reboot-in-progress",
  mostRecentRebootNeeded: "weave.works/kured-most-recent-reboot-needed",
} as const;
