import type { AnnotationChanges, ClusterApi, KubeNode, KubePod } from "../kube/clusterApi";
import { nodeAnnotations } from "../kube/clusterApi";
import type { ClusterLock } from "../lock/tableLock";
import { drainPass } from "../drain/drainer";
import { historyAction, historyEntry } from "../history/history";
import {
  applyPendingTaint,
  applyPostRebootLabels,
  applyPreRebootLabels,
  delayBeforeRebootReason,
  pendingOrder,
  drainFailureDecision,
  drainSelects,
  onDrainTimeout,
  REBOOT_CHAIN_MS,
  rebootLoopReason,
  sentinelSurvivedReason,
} from "../policy/lifecycle";
import type { GateContext, Policy, RebootGate } from "../policy/policy";
import type { NodeRecord, NodeStore } from "./nodeRecord";

/**
 * The node lifecycle: every state, every allowed transition, and the step each state takes.
 *
 *   idle → pending → cordoning → draining → reboot-ordered → rebooted → releasing → idle
 *
 * A step reads the record, performs its side effects in Kubernetes (each idempotent: cordon, evict,
 * label, uncordon) and names the next state. The runner (`orchestrator.ts`) writes the new state by
 * ETag; if it dies between a side effect and the write, the next check-in or timer tick runs the
 * same step again with the same result. Steps that take or free a lock slot commit the new state
 * themselves, in one transaction with the lock.
 */

export const NODE_STATES = [
  "idle",
  "pending",
  "cordoning",
  "draining",
  "reboot-ordered",
  "rebooted",
  "releasing",
  "drain-failed",
  "stuck",
  "maintenance",
  "quarantined",
] as const;
export type NodeState = (typeof NODE_STATES)[number];

export const TRANSITIONS: Readonly<Record<NodeState, readonly NodeState[]>> = {
  idle: ["pending", "quarantined"],
  pending: ["idle", "cordoning"],
  cordoning: ["draining", "releasing"],
  draining: ["reboot-ordered", "maintenance", "releasing"],
  "reboot-ordered": ["rebooted", "releasing", "stuck"],
  rebooted: ["releasing", "stuck"],
  releasing: ["idle", "drain-failed", "quarantined"],
  "drain-failed": ["pending", "idle"],
  stuck: ["rebooted", "releasing"],
  maintenance: ["releasing"],
  quarantined: ["releasing"],
};

/** States in which the node owns a lock slot (its `leaseId` is in the lock row). */
export const LOCK_HOLDING_STATES: ReadonlySet<NodeState> = new Set(["cordoning", "draining", "reboot-ordered", "rebooted", "releasing", "maintenance"]);

export function canTransition(from: NodeState, to: NodeState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** The node wants a turn under the lock: its agent reports the sentinel, or an operator asked. */
export function wantsTurn(record: NodeRecord): boolean {
  return record.rebootRequired || (record.request !== undefined && record.request.cancelledBy === undefined);
}

/** How many transitions a record keeps for the node API. */
const RECENT_TRANSITIONS = 10;

export interface StepPorts {
  now: Date;
  policy: Policy;
  kube(): Promise<ClusterApi>;
  lock: ClusterLock;
  store: NodeStore;
  gate: RebootGate;
  newLeaseId(): string;
}

export type StepResult =
  /** Change state; the runner writes `set` with it (fields set to undefined are removed). */
  | { kind: "move"; to: NodeState; why: string; set?: Partial<NodeRecord> }
  /** The step already wrote `record` itself, atomically with the lock. */
  | { kind: "committed"; record: NodeRecord }
  /** Someone else changed the record or the lock first: re-read and step again. */
  | { kind: "conflict" }
  /**
   * Nothing more to do now; `set` records progress without changing state. `yieldTo` names a node
   * ahead in the queue that may go now: the runner advances it in this node's stead.
   */
  | { kind: "wait"; why: string; set?: Partial<NodeRecord>; yieldTo?: string };

/** The record after a transition: the single place where `state`, `since` and `why` change. */
export function nextRecord(record: NodeRecord, to: NodeState, why: string, now: Date, set: Partial<NodeRecord> = {}): NodeRecord {
  if (!canTransition(record.state, to)) throw new Error(`Illegal transition of node ${record.node}: ${record.state} → ${to}`);
  const recent = [...(record.recent ?? []), { at: now.toISOString(), from: record.state, to, why }].slice(-RECENT_TRANSITIONS);
  const next: NodeRecord = { ...record, ...set, state: to, since: now.toISOString(), why, recent };
  for (const key of Object.keys(next) as (keyof NodeRecord)[]) if (next[key] === undefined) delete next[key];
  return next;
}

/** Everything a finished lease leaves behind, cleared when the node returns to idle or backs off. */
const LEASE_FIELDS: Partial<NodeRecord> = {
  leaseId: undefined,
  wasUnschedulable: undefined,
  acquiredAt: undefined,
  drainStartedAt: undefined,
  drainBlocker: undefined,
  drainRetryAt: undefined,
  drainAttempts: undefined,
  drainedAt: undefined,
  rebootOrderedAt: undefined,
  orderBootId: undefined,
  orderNodeBootId: undefined,
  rebootedAt: undefined,
  outcome: undefined,
};

const iso = (date: Date) => date.toISOString();
const minutes = (ms: number) => `${Math.round(ms / 60_000)} min`;

type Step = (record: NodeRecord, etag: string, ports: StepPorts) => Promise<StepResult>;

export const STEPS: Readonly<Record<NodeState, Step>> = {
  async idle(record, _etag, ports) {
    const { now } = ports;
    if (!wantsTurn(record)) return { kind: "wait", why: "no reboot required" };
    const loop = rebootLoopReason(ports.policy, record, now);
    if (loop) {
      await (await ports.kube()).setLabels(record.node, { [QUARANTINE_LABEL]: "true" });
      return { kind: "move", to: "quarantined", why: loop, set: { quarantineLabel: QUARANTINE_LABEL } };
    }
    const why = record.request ? `${record.request.mode} requested by ${record.request.requestedBy}: ${record.request.reason}` : `reboot required: ${describeReasons(record)}`;
    return { kind: "move", to: "pending", why, set: { pendingSince: iso(now) } };
  },

  async pending(record, etag, ports) {
    if (!wantsTurn(record)) {
      // Also when the option is off now: the node may carry the taint from when it was on.
      await applyPendingTaint(await ports.kube(), ports.policy, record.node, false);
      return { kind: "move", to: "idle", why: "reboot no longer required", set: { pendingSince: undefined } };
    }
    const notBefore = record.request?.notBefore;
    if (notBefore && !record.rebootRequired && Date.parse(notBefore) > ports.now.getTime()) {
      return waitInQueue(record, ports, `requested for no earlier than ${notBefore}`);
    }
    // A full lock is the common answer and costs one storage read; the policy gates may cost API calls.
    const seen = await ports.lock.view(record.cluster);
    const { holders } = seen;
    if (holders.length >= ports.policy.concurrency) return waitInQueue(record, ports, slotsTaken(holders));
    const context = gateContext(record, ports, "before-lock");
    const hold = await ports.gate.holdReason(context);
    if (hold) return waitInQueue(record, ports, hold);
    // Whoever checks in first when a hold lifts must not jump the queue: a node ahead that may go, goes first.
    const ahead = await eligibleAhead(record, ports, context.records);
    if (ahead) return { ...(await waitInQueue(record, ports, `waiting behind ${ahead}, which is ahead in the queue`)), yieldTo: ahead };
    const node = await (await ports.kube()).getNode(record.node);
    if (!node) return { kind: "move", to: "idle", why: "the node no longer exists in the cluster", set: { pendingSince: undefined } };

    const leaseId = ports.newLeaseId();
    const holder = {
      node: record.node,
      leaseId,
      acquiredAt: iso(ports.now),
      expiresAt: iso(new Date(ports.now.getTime() + ports.policy.lockTtlMs)),
    };
    // A node someone else cordoned stays cordoned afterwards; one carrying our own annotation was ours.
    const wasUnschedulable = node.unschedulable && node.annotations[nodeAnnotations.cordonedBy] === undefined;
    const next = nextRecord(record, "cordoning", `took a lock slot (lease ${leaseId})`, ports.now, {
      leaseId,
      acquiredAt: holder.acquiredAt,
      wasUnschedulable,
    });
    // The gates decided on the cluster as it was when the lock was read (maxPerZone, maxPerPool, …): if a
    // slot was taken or freed since, the lock's ETag changed and this is a conflict, so the gates run again.
    const result = await ports.lock.acquire(record.cluster, holder, ports.policy.concurrency, [ports.store.replaceAction(next, etag)], seen);
    if (result.kind === "acquired") return { kind: "committed", record: next };
    if (result.kind === "conflict") return { kind: "conflict" };
    return waitInQueue(record, ports, slotsTaken(result.holders));
  },

  async cordoning(record, _etag, ports) {
    const kube = await ports.kube();
    if (!(await kube.getNode(record.node))) return release("node-deleted", "the node no longer exists in the cluster");
    if (!wantsTurn(record)) return release("cancelled", "reboot no longer required");
    if (hasNodeLabels(ports.policy)) await applyPreRebootLabels(kube, ports.policy, record.node);
    const annotations: AnnotationChanges = record.wasUnschedulable
      ? { [nodeAnnotations.state]: "draining" }
      : { [nodeAnnotations.cordonedBy]: record.leaseId!, [nodeAnnotations.state]: "draining" };
    await kube.setUnschedulable(record.node, true, annotations);
    const why = record.wasUnschedulable ? "already cordoned by someone else; left as it was" : "cordoned";
    return { kind: "move", to: "draining", why, set: { drainStartedAt: iso(ports.now), drainAttempts: 0 } };
  },

  async draining(record, _etag, ports) {
    if (!wantsTurn(record)) return release("cancelled", "reboot no longer required");
    const kube = await ports.kube();
    const node = await kube.getNode(record.node);
    if (!node) return release("node-deleted", "the node no longer exists in the cluster");
    const started = Date.parse(record.drainStartedAt ?? iso(ports.now));
    if (ports.now.getTime() - started > ports.policy.drain.timeoutMs) {
      const why = `drain timed out after ${minutes(ports.policy.drain.timeoutMs)}: ${record.drainBlocker ?? "pods remained"}`;
      if (onDrainTimeout(ports.policy) === "force-reboot") return orderReboot(record, node, ports, `${why}; rebooting anyway (drain.forceRebootAfterTimeout)`);
      return drainFailed(record, node, ports, why);
    }
    if (record.drainRetryAt && Date.parse(record.drainRetryAt) > ports.now.getTime()) {
      return { kind: "wait", why: record.drainBlocker ?? "draining" };
    }
    const attempts = record.drainAttempts ?? 0;
    const options = ports.policy.drain.podSelector ? { ...ports.policy.drain, podFilter: (pod: KubePod) => drainSelects(ports.policy, pod) } : ports.policy.drain;
    const pass = await drainPass(kube, record.node, options, ports.now, attempts);
    if (pass.kind === "refused") return drainFailed(record, node, ports, pass.reason);
    if (pass.kind === "waiting") {
      return {
        kind: "wait",
        why: pass.blocker,
        set: {
          drainBlocker: pass.blocker,
          drainRetryAt: iso(new Date(ports.now.getTime() + pass.retryAfterMs)),
          // The back-off grows with consecutive refusals by a budget, not with passes that made progress.
          drainAttempts: pass.pdbBlocked ? attempts + 1 : 0,
        },
      };
    }
    if (record.request?.mode === "drain-only" && !record.rebootRequired) {
      return {
        kind: "move",
        to: "maintenance",
        why: `drained for maintenance requested by ${record.request.requestedBy}; end it with POST …/release`,
        set: { drainBlocker: undefined, drainRetryAt: undefined },
      };
    }
    const drainedAt = record.drainedAt ?? iso(ports.now);
    const delay = delayBeforeRebootReason(ports.policy, new Date(drainedAt), ports.now);
    if (delay) return { kind: "wait", why: delay, set: { drainedAt, drainBlocker: undefined, drainRetryAt: undefined } };
    const hold = await ports.gate.holdReason(gateContext(record, ports, "before-reboot"));
    if (hold) return { kind: "wait", why: `drained; reboot held: ${hold}`, set: { drainedAt } };
    return orderReboot(record, node, ports, "drained; reboot ordered");
  },

  async "reboot-ordered"(record, _etag, ports) {
    if (record.bootId && record.orderBootId && record.bootId !== record.orderBootId) {
      return { kind: "move", to: "rebooted", why: `the agent reports a new boot id ${record.bootId}`, set: { rebootedAt: iso(ports.now) } };
    }
    if (!(await (await ports.kube()).getNode(record.node))) return release("node-deleted", "the node no longer exists in the cluster");
    return { kind: "wait", why: "waiting for the agent to reboot the node and check in with a new boot id" };
  },

  async rebooted(record, _etag, ports) {
    const node = await (await ports.kube()).getNode(record.node);
    if (!node) return release("node-deleted", "the node no longer exists in the cluster");
    if (node.bootId === record.orderNodeBootId) return { kind: "wait", why: "waiting for the node object to report the new boot id" };
    if (!node.ready) return { kind: "wait", why: "waiting for the node to be Ready" };
    const neededAt = Date.parse(record.pendingSince ?? iso(ports.now));
    const chained = record.lastRebootAt !== undefined && neededAt - Date.parse(record.lastRebootAt) < REBOOT_CHAIN_MS;
    const consecutiveReboots = chained ? (record.consecutiveReboots ?? 0) + 1 : 1;
    const survived = sentinelSurvivedReason(record);
    if (survived) return { kind: "move", to: "releasing", why: survived, set: { outcome: "quarantined", consecutiveReboots, quarantineLabel: QUARANTINE_LABEL } };
    return { kind: "move", to: "releasing", why: "reboot confirmed: new boot id and Ready", set: { outcome: "completed", consecutiveReboots } };
  },

  async releasing(record, etag, ports) {
    const kube = await ports.kube();
    const node = await kube.getNode(record.node);
    if (node && record.outcome === "quarantined") {
      // Quarantine leaves the node cordoned and labelled until an operator releases it.
      await kube.setLabels(record.node, { [record.quarantineLabel ?? QUARANTINE_LABEL]: "true" });
      await kube.setUnschedulable(record.node, node.unschedulable, { [nodeAnnotations.state]: "quarantined" });
    } else if (node) {
      await restoreNode(kube, node, record, ports.policy);
    }
    const next = afterRelease(record, ports);
    const history = historyAction(historyEntry(record, ports.now));
    const result = await ports.lock.release(record.cluster, record.node, record.leaseId ?? "", [ports.store.replaceAction(next, etag), history]);
    return result.kind === "conflict" ? { kind: "conflict" } : { kind: "committed", record: next };
  },

  async "drain-failed"(record, _etag, { now }) {
    if (!wantsTurn(record)) return { kind: "move", to: "idle", why: "reboot no longer required", set: { retryAt: undefined, pendingSince: undefined } };
    if (record.retryAt && Date.parse(record.retryAt) > now.getTime()) return { kind: "wait", why: record.why };
    return { kind: "move", to: "pending", why: "retrying after the drain-failure back-off", set: { retryAt: undefined } };
  },

  async stuck(record, _etag, ports) {
    if (record.orderBootId && record.bootId && record.bootId !== record.orderBootId) {
      return { kind: "move", to: "rebooted", why: `came back after being stuck: new boot id ${record.bootId}`, set: { rebootedAt: iso(ports.now) } };
    }
    return waitForOperatorRelease(record);
  },

  maintenance: waitForOperatorRelease,
  quarantined: waitForOperatorRelease,
};

/** Maintenance, stuck and quarantined nodes stay as they are until an operator releases them. */
async function waitForOperatorRelease(record: NodeRecord): Promise<StepResult> {
  if (record.releaseRequestedBy) return release("operator-released", `released by ${record.releaseRequestedBy}`);
  return { kind: "wait", why: record.why };
}

function gateContext(record: NodeRecord, ports: StepPorts, phase: GateContext["phase"], records?: GateContext["records"]): GateContext {
  let listed: Promise<NodeRecord[]> | undefined;
  return {
    record,
    policy: ports.policy,
    now: ports.now,
    phase,
    kube: ports.kube,
    records: records ?? (() => (listed ??= ports.store.list(record.cluster).then((list) => list.map((r) => r.value)))),
  };
}

/** The first pending node ahead of `record` in the policy's queue order that nothing holds back now. */
async function eligibleAhead(record: NodeRecord, ports: StepPorts, records: GateContext["records"]): Promise<string | undefined> {
  const order = pendingOrder(ports.policy);
  const ahead = (await records())
    .filter((other) => other.state === "pending" && other.node !== record.node && wantsTurn(other) && order(other, record) < 0)
    .filter((other) => !other.request?.notBefore || other.rebootRequired || Date.parse(other.request.notBefore) <= ports.now.getTime())
    .sort(order);
  for (const other of ahead) {
    if (!(await ports.gate.holdReason(gateContext(other, ports, "before-lock", records)))) return other.node;
  }
  return undefined;
}

function release(outcome: NonNullable<NodeRecord["outcome"]>, why: string): StepResult {
  return { kind: "move", to: "releasing", why, set: { outcome } };
}

function afterRelease(record: NodeRecord, { now, policy }: StepPorts): NodeRecord {
  // A failed drain keeps the operator's request so that it is tried again; every other end fulfils it.
  const done = { ...LEASE_FIELDS, pendingSince: undefined, request: undefined, releaseRequestedBy: undefined, quarantineLabel: undefined };
  switch (record.outcome) {
    case "drain-failed":
      return nextRecord(record, "drain-failed", record.why, now, {
        ...LEASE_FIELDS,
        retryAt: record.retryAt ?? iso(new Date(now.getTime() + policy.drainFailureBackoffMs)),
        failures: record.failures ?? 1,
      });
    case "quarantined":
      // The lease stays recorded: it is what marks the cordon as Rollcall's when an operator releases the node.
      return nextRecord(record, "quarantined", record.why, now, { ...LEASE_FIELDS, leaseId: record.leaseId, wasUnschedulable: record.wasUnschedulable });
    case "completed":
      return nextRecord(record, "idle", "rebooted and back in service", now, {
        ...done,
        failures: undefined,
        firstDrainFailureAt: undefined,
        lastRebootAt: iso(now),
      });
    case "node-deleted":
      // The machine is gone; a node that later takes its name (VMSS reuses names) reports its own facts.
      return nextRecord(record, "idle", record.why, now, {
        ...done,
        rebootRequired: false,
        reasons: [],
        bootId: undefined,
        failures: undefined,
        firstDrainFailureAt: undefined,
        consecutiveReboots: undefined,
      });
    default:
      // An operator's release or a cancel starts the counters afresh.
      return nextRecord(record, "idle", record.why, now, { ...done, failures: undefined, firstDrainFailureAt: undefined, consecutiveReboots: undefined });
  }
}

/** The label a quarantined node carries, so that `kubectl get nodes -l rollcall.io/quarantined` finds it. */
const QUARANTINE_LABEL = "rollcall.io/quarantined";

/** Undoes what Rollcall did to a node: its own cordon, its state annotation, the waiting taint, and sets post-reboot labels. */
async function restoreNode(kube: ClusterApi, node: KubeNode, record: NodeRecord, policy: Policy): Promise<void> {
  // Only a cordon carrying our own lease is undone: a node cordoned by someone else stays cordoned.
  const ours = record.leaseId !== undefined && node.annotations[nodeAnnotations.cordonedBy] === record.leaseId;
  if (ours) {
    await kube.setUnschedulable(record.node, false, { [nodeAnnotations.cordonedBy]: null, [nodeAnnotations.state]: null });
  } else if (node.annotations[nodeAnnotations.state] !== undefined) {
    await kube.setUnschedulable(record.node, node.unschedulable, { [nodeAnnotations.state]: null });
  }
  const taintKey = policy.preferNoScheduleTaint?.key;
  if (taintKey && node.taints?.some((t) => t.key === taintKey)) await applyPendingTaint(kube, policy, record.node, false);
  const labels: Record<string, string | null> = {};
  if (record.quarantineLabel && node.labels[record.quarantineLabel] !== undefined) labels[record.quarantineLabel] = null;
  if (Object.keys(labels).length > 0) await kube.setLabels(record.node, labels);
  if (record.outcome === "completed" && hasNodeLabels(policy)) await applyPostRebootLabels(kube, policy, record.node);
}

function hasNodeLabels(policy: Policy): boolean {
  const labels = policy.nodeLabels;
  return labels !== undefined && Object.keys(labels.preReboot).length + Object.keys(labels.postReboot).length > 0;
}

/** A pending node keeps waiting; with the option on, it carries the PreferNoSchedule taint meanwhile. */
async function waitInQueue(record: NodeRecord, ports: StepPorts, why: string): Promise<StepResult> {
  if (ports.policy.preferNoScheduleTaint?.enabled) await applyPendingTaint(await ports.kube(), ports.policy, record.node, true);
  return { kind: "wait", why };
}

function slotsTaken(holders: { node: string }[]): string {
  return `waiting for a free lock slot (held by ${holders.map((h) => h.node).join(", ")})`;
}

function orderReboot(record: NodeRecord, node: KubeNode, ports: StepPorts, why: string, extra: Partial<NodeRecord> = {}): StepResult {
  return {
    kind: "move",
    to: "reboot-ordered",
    why,
    set: {
      ...extra,
      drainBlocker: undefined,
      drainRetryAt: undefined,
      drainedAt: undefined,
      rebootOrderedAt: iso(ports.now),
      orderBootId: record.bootId,
      orderNodeBootId: node.bootId,
    },
  };
}

/** A failed drain, decided by the drain-failure policy: back off and retry, quarantine, or reboot anyway. */
function drainFailed(record: NodeRecord, node: KubeNode, ports: StepPorts, why: string): StepResult {
  const failures = (record.failures ?? 0) + 1;
  const firstAt = record.firstDrainFailureAt ? new Date(record.firstDrainFailureAt) : ports.now;
  const decision = drainFailureDecision(ports.policy, failures, ports.now, firstAt);
  const failure = { failures, firstDrainFailureAt: iso(firstAt) };
  switch (decision.action) {
    case "force-reboot":
      return orderReboot(record, node, ports, `${why}; ${decision.why}`, failure);
    case "quarantine":
      return { kind: "move", to: "releasing", why: `${why}; ${decision.why}`, set: { outcome: "quarantined", quarantineLabel: decision.label, ...failure } };
    case "retry":
      return { kind: "move", to: "releasing", why: `${why}; ${decision.why}`, set: { outcome: "drain-failed", retryAt: iso(decision.retryAt), ...failure } };
  }
}

/**
 * What to do with a node whose lease outlived the lock TTL. A drain can still be abandoned cleanly;
 * a node that was told to reboot and never came back is marked stuck and its slot freed, loudly.
 */
export function onLeaseExpired(record: NodeRecord): { to: NodeState; why: string; set?: Partial<NodeRecord> } | undefined {
  const why = `lock TTL expired in state ${record.state} (held since ${record.acquiredAt})`;
  switch (record.state) {
    case "cordoning":
    case "draining":
      return { to: "releasing", why, set: { outcome: "drain-failed" } };
    case "reboot-ordered":
    case "rebooted":
      return { to: "stuck", why: `${why}: the node did not come back; it stays cordoned until it checks in with a new boot id` };
    default:
      return undefined;
  }
}

export function describeReasons(record: NodeRecord): string {
  if (record.reasons.length === 0) return "sentinel present";
  const shown = record.reasons.slice(0, 5).join(", ");
  return record.reasons.length > 5 ? `${shown} and ${record.reasons.length - 5} more` : shown;
}
