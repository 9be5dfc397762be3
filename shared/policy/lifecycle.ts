import type { ClusterApi, KubePod } from "../kube/clusterApi";
import type { NodeRecord } from "../node/nodeRecord";
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
 * kured's --pre-reboot-node-labels: the label changes to write with the cordon in `cordoning`. Sets
 * `preReboot` labels and removes the `postReboot` keys that `preReboot` does not set, so one set
 * replaces the other.
 */
export function preRebootLabels(policy: Policy): Record<string, string | null> {
  const { preReboot, postReboot } = policy.nodeLabels ?? { preReboot: {}, postReboot: {} };
  return swapLabels(preReboot, postReboot);
}

/**
 * kured's --post-reboot-node-labels: the label changes to write in `releasing` when the outcome is
 * `completed` (after the reboot was confirmed). Sets `postReboot` labels and removes the `preReboot`
 * keys it does not set.
 */
export function postRebootLabels(policy: Policy): Record<string, string | null> {
  const { preReboot, postReboot } = policy.nodeLabels ?? { preReboot: {}, postReboot: {} };
  return swapLabels(postReboot, preReboot);
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

/** Reboots count as "in a row" when each was needed within this long of the one before. */
export const REBOOT_CHAIN_MS = 24 * 3600_000;

/**
 * The reboot-loop breaker, first half. Call in `rebooted` once the reboot is confirmed (new boot id,
 * Ready), with the agent's report after the boot in `record`: a sentinel that survived the reboot
 * means rebooting does not help, so the node is quarantined (left cordoned) with this reason.
 * An operator's request is never treated as a loop.
 */
export function sentinelSurvivedReason(record: Pick<NodeRecord, "rebootRequired" | "reasons" | "request">): string | undefined {
  if (record.request || !record.rebootRequired) return undefined;
  return `reboot loop: the sentinel is still present after a confirmed reboot (${record.reasons.join(", ") || "sentinel present"}); rebooting again would not help; quarantined`;
}

/**
 * The reboot-loop breaker, second half. Call when an idle node asks for another reboot: after
 * `maxConsecutiveReboots` reboots in a row (each needed within 24 h of the previous), it is held
 * out of rotation (not cordoned: it runs fine, it just keeps asking) until an operator releases it.
 */
export function rebootLoopReason(policy: Policy, record: Pick<NodeRecord, "consecutiveReboots" | "lastRebootAt" | "request">, now: Date): string | undefined {
  const max = policy.rebootLoop?.maxConsecutiveReboots ?? POLICY_DEFAULTS.maxConsecutiveReboots;
  const count = record.consecutiveReboots ?? 0;
  if (record.request || count < max || !record.lastRebootAt) return undefined;
  if (now.getTime() - Date.parse(record.lastRebootAt) >= REBOOT_CHAIN_MS) return undefined;
  return `reboot loop: the node asks for another reboot after ${count} reboots in a row, the last at ${record.lastRebootAt} (rebootLoop.maxConsecutiveReboots is ${max}); held until an operator releases it`;
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
