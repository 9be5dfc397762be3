import type { Json, KubeObject, OwnerReference } from "./store";
import { timestamp } from "./store";

/** How controllers read a pod's state, with the definitions the upstream controllers use. */

export function isTerminal(pod: KubeObject): boolean {
  return pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed";
}

export function isTerminating(pod: KubeObject): boolean {
  return pod.metadata.deletionTimestamp !== undefined;
}

/** "Active" as the ReplicaSet controller counts pods: neither finished nor being deleted. */
export function isActive(pod: KubeObject): boolean {
  return !isTerminal(pod) && !isTerminating(pod);
}

export function isReady(pod: KubeObject): boolean {
  return ((pod.status?.conditions ?? []) as Json[]).some((c) => c.type === "Ready" && c.status === "True");
}

export function controllerOf(object: KubeObject): OwnerReference | undefined {
  return object.metadata.ownerReferences?.find((o) => o.controller);
}

/** The status the kubelet reports once the pod's containers run (ready) or have stopped answering probes (not ready). */
export function runningStatus(pod: KubeObject, ready: boolean, podIP: string): Json {
  const now = timestamp();
  const previous = (pod.status?.conditions ?? []) as Json[];
  const condition = (type: string, status: boolean): Json => {
    const value = status ? "True" : "False";
    const before = previous.find((c) => c.type === type);
    return { type, status: value, lastProbeTime: null, lastTransitionTime: before?.status === value ? before.lastTransitionTime : now };
  };
  return {
    ...pod.status,
    phase: "Running",
    conditions: [condition("Initialized", true), condition("Ready", ready), condition("ContainersReady", ready), condition("PodScheduled", true)],
    podIP: pod.status?.podIP ?? podIP,
    podIPs: [{ ip: pod.status?.podIP ?? podIP }],
    startTime: pod.status?.startTime ?? now,
    qosClass: "BestEffort",
  };
}
