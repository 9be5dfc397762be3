import { jsonEqual } from "./json";
import { controllerOf, isReady, isTerminating } from "./podStatus";
import { labelSelectorMatcher } from "./selectors";
import type { Json, KubeObject, OwnerReference } from "./store";
import { timestamp } from "./store";

/**
 * A PodDisruptionBudget's status as the disruption controller (pkg/controller/disruption) computes
 * it. Deviation: the controller ignores pods whose owner it cannot scale; so does this, but it only
 * knows ReplicaSets (scaled by their Deployment) and DaemonSets.
 */

/** How long an eviction's pod is counted as disrupted while waiting for its deletion (DeletionTimeout upstream). */
const DELETION_TIMEOUT_MS = 2 * 60_000;

/** The scale of a pod's controller, or undefined when the sim does not know how to scale it. */
export type ScaleOf = (owner: OwnerReference, namespace: string) => number | undefined;

export function selectedPods(pdb: KubeObject, pods: KubeObject[]): KubeObject[] {
  const matches = labelSelectorMatcher(pdb.spec?.selector);
  return pods.filter((p) => p.metadata.namespace === pdb.metadata.namespace && matches(p.metadata.labels));
}

export function computePdbStatus(pdb: KubeObject, pods: KubeObject[], scaleOf: ScaleOf, now = Date.now()): Json {
  const selected = selectedPods(pdb, pods);
  const disruptedPods: Record<string, string> = {};
  for (const [name, at] of Object.entries((pdb.status?.disruptedPods ?? {}) as Record<string, string>)) {
    const pod = selected.find((p) => p.metadata.name === name);
    if (pod && !isTerminating(pod) && Date.parse(at) + DELETION_TIMEOUT_MS > now) disruptedPods[name] = at;
  }
  const currentHealthy = selected.filter((p) => !isTerminating(p) && !(p.metadata.name in disruptedPods) && isReady(p)).length;
  const { expectedPods, desiredHealthy } = expectation(pdb, selected, scaleOf);
  const disruptionsAllowed = Math.max(0, currentHealthy - desiredHealthy);
  const allowed = disruptionsAllowed > 0 ? "True" : "False";
  const previous = ((pdb.status?.conditions ?? []) as Json[]).find((c) => c.type === "DisruptionAllowed");
  const condition = {
    type: "DisruptionAllowed",
    status: allowed,
    observedGeneration: pdb.metadata.generation,
    lastTransitionTime: previous?.status === allowed ? previous.lastTransitionTime : timestamp(now),
    reason: disruptionsAllowed > 0 ? "SufficientPods" : "InsufficientPods",
    message: "",
  };
  return {
    observedGeneration: pdb.metadata.generation,
    ...(Object.keys(disruptedPods).length ? { disruptedPods } : {}),
    disruptionsAllowed,
    currentHealthy,
    desiredHealthy,
    expectedPods,
    conditions: [condition],
  };
}

export function statusChanged(pdb: KubeObject, status: Json): boolean {
  return !jsonEqual(pdb.status, status);
}

function expectation(pdb: KubeObject, selected: KubeObject[], scaleOf: ScaleOf): { expectedPods: number; desiredHealthy: number } {
  const { minAvailable, maxUnavailable } = pdb.spec ?? {};
  if (maxUnavailable !== undefined && maxUnavailable !== null) {
    const expectedPods = expectedScale(selected, scaleOf);
    return { expectedPods, desiredHealthy: Math.max(0, expectedPods - scaled(maxUnavailable, expectedPods)) };
  }
  if (typeof minAvailable === "number") return { expectedPods: selected.length, desiredHealthy: minAvailable };
  if (typeof minAvailable === "string") {
    const expectedPods = expectedScale(selected, scaleOf);
    return { expectedPods, desiredHealthy: scaled(minAvailable, expectedPods) };
  }
  return { expectedPods: selected.length, desiredHealthy: 0 };
}

/** The sum of the scales of the selected pods' controllers, each counted once. */
function expectedScale(selected: KubeObject[], scaleOf: ScaleOf): number {
  const seen = new Set<string>();
  let total = 0;
  for (const pod of selected) {
    const owner = controllerOf(pod);
    if (!owner || seen.has(owner.uid)) continue;
    seen.add(owner.uid);
    total += scaleOf(owner, pod.metadata.namespace ?? "default") ?? 0;
  }
  return total;
}

/** intstr.GetScaledValueFromIntOrPercent with rounding up, as the disruption controller calls it for both fields. */
function scaled(value: number | string, total: number): number {
  if (typeof value === "number") return value;
  const percent = /^(\d+)%$/.exec(value);
  return percent ? Math.ceil((Number(percent[1]) * total) / 100) : Number.parseInt(value, 10) || 0;
}
