import type { ClusterApi, KubePod } from "../kube/clusterApi";
import type { NodeRecord } from "../node/nodeRecord";
import { queueOrder } from "../orchestrator/queue";
import { matchesLabelSelector } from "./labelSelector";
import { POLICY_DEFAULTS, type Policy } from "./policy";

/**
 * Small policy decisions for the state machine, each a pure function or one idempotent Kubernetes
 * call. The doc comment of each says where in the lifecycle it belongs.
 */

/**
 * Sets or removes the `PreferNoSchedule` taint of a node waiting for its turn (kured's
 * --prefer-no-schedule-taint). Call with `waiting = true` when a node enters `pending` (and on each
 * `pending` step, it is idempotent), and with `false` when it leaves `pending` for `idle`, and in
 * `releasing` (a node that took its turn is done). Does nothing when the option is off, except that
 * `waiting = false` still removes a taint left from when it was on.
 */
export async function applyPendingTaint(kube: ClusterApi, policy: Policy, node: string, waiting: boolean): Promise<void> {
  const taint = policy.preferNoScheduleTaint ?? { enabled: false, key: POLICY_DEFAULTS.preferNoScheduleTaintKey };
  if (waiting && taint.enabled) await kube.setTaint(node, taint.key, { effect: "PreferNoSchedule" });
  else if (!waiting) await kube.setTaint(node, taint.key, null);
}

/**
 * kured's --pre-reboot-node-labels: call in `cordoning`, before cordoning. Sets `preReboot` labels
 * and removes the `postReboot` keys that `preReboot` does not set, so one set replaces the other.
 */
export async function applyPreRebootLabels(kube: ClusterApi, policy: Policy, node: string): Promise<void> {
  const { preReboot, postReboot } = policy.nodeLabels ?? { preReboot: {}, postReboot: {} };
  await kube.setLabels(node, swapLabels(preReboot, postReboot));
}

/**
 * kured's --post-reboot-node-labels: call in `releasing` when the outcome is `completed` (after the
 * reboot was confirmed). Sets `postReboot` labels and removes the `preReboot` keys it does not set.
 */
export async function applyPostRebootLabels(kube: ClusterApi, policy: Policy, node: string): Promise<void> {
  const { preReboot, postReboot } = policy.nodeLabels ?? { preReboot: {}, postReboot: {} };
  await kube.setLabels(node, swapLabels(postReboot, preReboot));
}

function swapLabels(set: Record<string, string>, remove: Record<string, string>): Record<string, string | null> {
  const changes: Record<string, string | null> = {};
  for (const key of Object.keys(remove)) if (!(key in set)) changes[key] = null;
  return { ...changes, ...set };
}

/** What the drain-failure policy says to do after a failed drain. */
export type DrainFailureDecision =
  | { action: "retry"; retryAt: Date; why: string }
  | { action: "quarantine"; label: string; why: string }
  | { action: "force-reboot"; why: string };

/**
 * Call when a drain failed (timeout or refusal), in `releasing` with outcome `drain-failed` (or in
 * `draining`, for `force-after`). `failures` is the number of consecutive failed drains including
 * this one; `firstFailureAt` when the first of them happened. Never silent: every decision has a why.
 * - retry: back-off `backoffMs`, doubling per consecutive failure, at most `maxBackoffMs`.
 * - quarantine: leave the node cordoned, set the label (`<label>=drain-failed`), move to `quarantined`.
 * - force-after: retry with the base back-off until `deadlineMs` after the first failure, then reboot
 *   without a complete drain.
 */
export function drainFailureDecision(policy: Policy, failures: number, now: Date, firstFailureAt: Date = now): DrainFailureDecision {
  const mode = policy.drainFailure ?? { mode: "retry", backoffMs: policy.drainFailureBackoffMs, maxBackoffMs: POLICY_DEFAULTS.maxBackoffMs };
  const minutes = (ms: number) => `${Math.round(ms / 60_000)} min`;
  switch (mode.mode) {
    case "quarantine":
      return { action: "quarantine", label: mode.label, why: `drain failed; quarantined by the drain-failure policy (label ${mode.label}), release it with POST …/release` };
    case "force-after": {
      const deadline = firstFailureAt.getTime() + mode.deadlineMs;
      if (now.getTime() >= deadline) return { action: "force-reboot", why: `drain still failing ${minutes(mode.deadlineMs)} after the first failure: rebooting without a complete drain (force-after)` };
      const retryAt = new Date(Math.min(now.getTime() + policy.drainFailureBackoffMs, deadline));
      return { action: "retry", retryAt, why: `drain failed (${failures} in a row); retrying at ${retryAt.toISOString()}, forced after ${new Date(deadline).toISOString()}` };
    }
    default: {
      const delay = Math.min(mode.backoffMs * 2 ** Math.max(0, failures - 1), Math.max(mode.maxBackoffMs, mode.backoffMs));
      const retryAt = new Date(now.getTime() + delay);
      return { action: "retry", retryAt, why: `drain failed (${failures} in a row); retrying after ${minutes(delay)} at ${retryAt.toISOString()}` };
    }
  }
}

/**
 * The reboot-loop breaker. Call in `rebooted` once the reboot is confirmed (new boot id, Ready),
 * with the agent's latest report in `record` and `consecutiveReboots` counting this one: returns a
 * reason to quarantine the node instead of completing, or undefined. Trips when the sentinel is still
 * reported after a confirmed reboot and the count reached `maxConsecutiveReboots`, or the count
 * exceeds it. Reset the count when a node goes idle with no reboot required.
 */
export function rebootLoopReason(policy: Policy, record: Pick<NodeRecord, "rebootRequired" | "reasons" | "request">, consecutiveReboots: number): string | undefined {
  const max = policy.rebootLoop?.maxConsecutiveReboots ?? POLICY_DEFAULTS.maxConsecutiveReboots;
  if (record.request) return undefined;
  if (record.rebootRequired && consecutiveReboots >= max) {
    return `reboot loop: the node still reports a required reboot (${record.reasons.join(", ") || "sentinel present"}) after ${consecutiveReboots} reboots in a row (rebootLoop.maxConsecutiveReboots is ${max}); quarantined`;
  }
  return undefined;
}

/**
 * The order pending nodes take free slots in, per `pendingOrder`. Use instead of `queueOrder` when
 * sorting pending nodes.
 */
export function pendingOrder(policy: Policy): (a: NodeRecord, b: NodeRecord) => number {
  if (policy.pendingOrder === "oldest-first") {
    return (a, b) => (a.pendingSince ?? "").localeCompare(b.pendingSince ?? "") || a.node.localeCompare(b.node);
  }
  return queueOrder;
}

/** The drain's pod selector (kured's --drain-pod-selector): call in the drainer to skip pods it does not select. */
export function drainSelects(policy: Policy, pod: Pick<KubePod, "labels">): boolean {
  return !policy.drain.podSelector || matchesLabelSelector(policy.drain.podSelector, pod.labels);
}

/**
 * kured's --drain-delay / --reboot-delay: call in `draining` once drained, before the before-reboot
 * gate; `drainedAt` is when the drain finished. Returns the reason to wait, or undefined.
 */
export function delayBeforeRebootReason(policy: Policy, drainedAt: Date, now: Date): string | undefined {
  const delay = policy.drain.delayBeforeRebootMs ?? 0;
  const left = drainedAt.getTime() + delay - now.getTime();
  return left > 0 ? `drained; waiting ${Math.ceil(left / 1000)} s more before ordering the reboot (drain.delayBeforeRebootSeconds)` : undefined;
}

/**
 * kured's --force-reboot: call in `draining` when the drain timeout has passed. `force-reboot`
 * (opt-in, `drain.forceRebootAfterTimeout`) orders the reboot with pods still on the node; otherwise
 * the drain has failed and the drain-failure policy decides.
 */
export function onDrainTimeout(policy: Policy): "force-reboot" | "drain-failed" {
  return policy.drain.forceRebootAfterTimeout ? "force-reboot" : "drain-failed";
}
