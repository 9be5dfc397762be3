import { type ClusterApi, type KubeNode, NodeChangedError, nodeAnnotations } from "../kube/clusterApi";
import type { NodeRecord } from "../node/nodeRecord";
import type { NodeState, StepEvent } from "../node/stateMachine";
import type { Logger } from "./transitionLog";

/**
 * What `kubectl describe node` and `kubectl get events --field-selector involvedObject.name=N` show
 * of Rollcall: one Kubernetes Event per transition (reasons in docs/monitoring.md, "Kubernetes
 * Events"), and the `rollcall.io/state` annotation following the state while Rollcall has the node.
 * Both are written after the state was stored and are best effort: a failed write is logged and the
 * rollout goes on, as an event recorder's failures never stop kubelet.
 */

/** Every reason Rollcall writes, so docs and tests name the same list. */
export const EVENT_REASONS = [
  "RollcallPending",
  "RollcallLockAcquired",
  "RollcallCordon",
  "RollcallDrainBlocked",
  "RollcallRebootOrdered",
  "RollcallRebooted",
  "RollcallRebootConfirmed",
  "RollcallUncordon",
  "RollcallMaintenance",
  "RollcallCancelled",
  "RollcallReleased",
  "RollcallInterrupted",
  "RollcallDrainFailed",
  "RollcallRetry",
  "RollcallStuck",
  "RollcallQuarantined",
] as const;
export type EventReason = (typeof EVENT_REASONS)[number];

/** The event of a transition, or undefined for a transition that only prepares the next one. */
export function transitionEvent(from: NodeState, next: NodeRecord): StepEvent | undefined {
  const normal = (reason: EventReason): StepEvent => ({ type: "Normal", reason, message: next.why });
  const warning = (reason: EventReason): StepEvent => ({ type: "Warning", reason, message: next.why });
  switch (next.state) {
    case "pending":
      return from === "drain-failed" ? normal("RollcallRetry") : normal("RollcallPending");
    case "cordoning":
      return normal("RollcallLockAcquired");
    case "draining":
      return normal("RollcallCordon");
    case "reboot-ordered":
      return normal("RollcallRebootOrdered");
    case "rebooted":
      return normal("RollcallRebooted");
    case "maintenance":
      return normal("RollcallMaintenance");
    case "stuck":
      return warning("RollcallStuck");
    case "drain-failed":
      return warning("RollcallDrainFailed");
    case "quarantined":
      return warning("RollcallQuarantined");
    case "idle":
      // After a release, the releasing step tells whether it uncordoned the node (RollcallUncordon).
      return from === "releasing" ? undefined : normal("RollcallCancelled");
    case "releasing":
      switch (next.outcome) {
        case "completed":
          return normal("RollcallRebootConfirmed");
        case "cancelled":
          return normal("RollcallCancelled");
        case "operator-released":
          return normal("RollcallReleased");
        case "interrupted":
          return warning("RollcallInterrupted");
        default:
          // A failed drain or a quarantine is told by the state the release leads to; a deleted or
          // replaced node has no object of this lease to tell it on.
          return undefined;
      }
  }
}

/**
 * States entered without a node write of their own: the annotation is brought along in one more
 * write. Draining and quarantined are written by the step's own node patch, and the release removes it.
 */
const ANNOTATED_LATER: ReadonlySet<NodeState> = new Set<NodeState>(["reboot-ordered", "rebooted", "stuck", "maintenance"]);

/** Whether telling this state may write the node object (its state annotation), not only Events. */
export function annotatesNode(state: NodeState): boolean {
  return ANNOTATED_LATER.has(state);
}

/**
 * Whether the state's annotation must land before its step runs: a step that may patch the node would
 * race it (node patches carry a resourceVersion precondition). The reboot order's step only reads the
 * node, so its annotation is written alongside: the order's answer waited ~15 ms longer for it.
 */
export function annotatesBeforeStep(state: NodeState): boolean {
  return annotatesNode(state) && state !== "reboot-ordered";
}

/**
 * Writes the event the step named (`told`: what it did, such as an uncordon), then the transition's,
 * and, where the step wrote no node patch, the state annotation; never throws.
 */
export async function tellNode(kube: () => Promise<ClusterApi>, from: NodeState, next: NodeRecord, log: Logger, told?: StepEvent): Promise<void> {
  const events = [told, transitionEvent(from, next)].filter((e): e is StepEvent => e !== undefined);
  const annotate = annotatesNode(next.state);
  if (events.length === 0 && !annotate) return;
  // An Event needs only the node's name and uid, and a lease records the uid: only an annotation
  // needs the node read (for its resourceVersion). Reading it for every Event was 7 of a turn's ~17 node reads.
  const known = annotate || !next.nodeUid ? undefined : { name: next.node, uid: next.nodeUid };
  await onOwnNode(kube, next, log, known, async (api, node) => {
    // `known` is undefined when annotating, so the node here was read.
    if (annotate && "annotations" in node && node.annotations[nodeAnnotations.state] !== undefined && node.annotations[nodeAnnotations.state] !== next.state) {
      try {
        await api.updateNode(node, { annotations: { [nodeAnnotations.state]: next.state } });
      } catch (error) {
        // The node changed since it was read: its next transition writes the annotation again.
        if (!(error instanceof NodeChangedError)) throw error;
      }
    }
    for (const event of events) await api.recordEvent({ node, ...event });
  });
}

/** An event a waiting step asked for (a drain a budget refuses); never throws. */
export async function tellWait(kube: () => Promise<ClusterApi>, record: NodeRecord, event: StepEvent, log: Logger): Promise<void> {
  const known = record.nodeUid ? { name: record.node, uid: record.nodeUid } : undefined;
  await onOwnNode(kube, record, log, known, (api, node) => api.recordEvent({ node, ...event }));
}

/** How long the answer to a check-in waits for its events; a slower write goes on, and may still land, without it. */
const TELL_BUDGET_MS = 2_000;

async function onOwnNode<N extends Pick<KubeNode, "name" | "uid">>(
  kube: () => Promise<ClusterApi>,
  record: NodeRecord,
  log: Logger,
  known: N | undefined,
  work: (api: ClusterApi, node: N | KubeNode) => Promise<void>,
): Promise<void> {
  const told = (async () => {
    const api = await kube();
    const node = known ?? (await api.getNode(record.node));
    // A node re-created under the name is another machine: this story is not its own.
    if (!node || (record.nodeUid && node.uid !== record.nodeUid)) return;
    await work(api, node);
  })().catch((error: unknown) => log.warn(`node event not written cluster=${record.cluster} node=${record.node} state=${record.state}: ${(error as Error).message}`));
  let timer: NodeJS.Timeout | undefined;
  const budget = new Promise<void>((resolve) => (timer = setTimeout(resolve, TELL_BUDGET_MS)));
  await Promise.race([told, budget]);
  clearTimeout(timer);
}
