import type { CheckinResponse } from "../protocol/checkin";
import type { NodeRecord } from "../node/nodeRecord";
import type { Policy } from "../policy/policy";

const REBOOTED_RECHECK_SECONDS = 1;

/** What the agent is told after a check-in, derived from the node's state alone. */
export function answerFor(record: NodeRecord, policy: Policy, now: Date): CheckinResponse {
  const busy = policy.checkinBusySeconds;
  const reason = record.holdReason ?? record.why;
  switch (record.state) {
    case "idle":
      return { action: "none", state: record.state, reason: record.why, nextCheckinSeconds: policy.checkinIdleSeconds };
    case "quarantined":
      return { action: "none", state: record.state, reason, nextCheckinSeconds: policy.checkinIdleSeconds };
    case "reboot-ordered":
      // Only an agent still on the boot it had when the order was given is told to reboot.
      if (record.bootId === record.orderBootId && record.leaseId) {
        return { action: "reboot", leaseId: record.leaseId, state: record.state, reason: record.why, nextCheckinSeconds: busy };
      }
      return { action: "wait", state: record.state, reason, nextCheckinSeconds: busy };
    case "drain-failed": {
      const untilRetry = record.retryAt ? Math.ceil((Date.parse(record.retryAt) - now.getTime()) / 1000) : busy;
      return { action: "wait", state: record.state, reason, nextCheckinSeconds: clamp(untilRetry, busy, policy.checkinIdleSeconds) };
    }
    case "rebooted":
      // Back from its reboot, the node reports Ready about 1 s after its new boot id: look again then.
      return { action: "wait", state: record.state, reason, nextCheckinSeconds: Math.min(busy, REBOOTED_RECHECK_SECONDS) };
    default:
      return { action: "wait", state: record.state, reason, nextCheckinSeconds: busy };
  }
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value));
}
