import { pollOrChange, WATCHED_POLL_MS } from "../kube/changeFeed";
import type { AnnotationChanges, ClusterApi, KubeNode, KubePod, NodeChange, NodeEvent } from "../kube/clusterApi";
import { kuredAnnotations, nodeAnnotations } from "../kube/clusterApi";
import type { ClusterLock, LockHolder, LockView } from "../lock/tableLock";
import { classifyPod, drainFor, untilBudgetAllows } from "../drain/drainer";
import { historyAction, historyEntry } from "../history/history";
import {
  applyPendingTaint,
  postRebootLabels,
  preRebootLabels,
  delayBeforeRebootReason,
  drainFailureDecision,
  drainSelects,
  onDrainTimeout,
  REBOOT_CHAIN_MS,
  rebootLoopReason,
  sentinelSurvivedReason,
} from "../policy/lifecycle";
import type { GateContext, Policy, RebootGate } from "../policy/policy";
import { listShort } from "../policy/gates/gate";
import { pdbsCovering, podsToEvict } from "../policy/gates/pdbPrecheck";
import type { NodeRecord, NodeStore } from "./nodeRecord";
import { pendingOrder, placeOf, queueOf } from "./queue";

/**
 * The node lifecycle: every state, every allowed transition, and the step each state takes.
 *
 *   idle → pending → cordoning → draining → reboot-ordered → rebooted → releasing → idle
 *
 * A step reads the record, performs its side effects in Kubernetes (each idempotent: cordon, evict,
 * label, uncordon) and names the next state. Every node write is conditional on the node as the step
 * read it (resourceVersion precondition; a `NodeChangedError` makes the runner read and step again),
 * and while a lease holds the node, every step first checks that it is still the same node object,
 * cordoned under this lease: if not, the lease stops there and hands its turn back. The runner (`orchestrator.ts`) writes the new state by
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
  draining: ["reboot-ordered", "rebooted", "maintenance", "releasing"],
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

/** States whose record accounts for a lease's cordon on the node: stuck and quarantined nodes stay cordoned on purpose. */
const CORDON_KEEPING_STATES: ReadonlySet<NodeState> = new Set<NodeState>([...LOCK_HOLDING_STATES, "stuck", "quarantined"]);

/**
 * What the reconcile timer undoes on a node that carries Rollcall's annotations while no record
 * accounts for them: a lost or late write (a slow instance, a crash) can leave a lease's cordon on a
 * node whose record has moved on. Only a cordon carrying a lease annotation is Rollcall's to undo;
 * an administrator's cordon stays, only the state annotation goes.
 */
export function leftoverRepair(node: KubeNode, record: NodeRecord | undefined): NodeChange | undefined {
  const lease = node.annotations[nodeAnnotations.cordonedBy];
  if (lease === undefined && node.annotations[nodeAnnotations.state] === undefined) return undefined;
  const accounted = record !== undefined && CORDON_KEEPING_STATES.has(record.state) && (lease === undefined || record.leaseId === lease);
  if (accounted) return undefined;
  return {
    ...(lease !== undefined && node.unschedulable && { unschedulable: false }),
    annotations: { [nodeAnnotations.cordonedBy]: null, [nodeAnnotations.state]: null },
  };
}

export function canTransition(from: NodeState, to: NodeState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** States in which a node holds nothing an active turn did to it: what shadow mode decides without writing. */
const SHADOW_STATES: ReadonlySet<NodeState> = new Set<NodeState>(["idle", "pending", "cordoning"]);

/**
 * Whether this record's step runs in shadow (policy `mode: shadow`): a new turn, or the release of a
 * shadow one. A lease that an active turn began before the switch still finishes with its writes, so
 * no node is left cordoned or half-drained by switching to shadow.
 */
export function inShadow(policy: Policy, record: NodeRecord): boolean {
  return policy.mode === "shadow" && (SHADOW_STATES.has(record.state) || record.outcome === "shadow");
}

/** The node wants a turn under the lock: its agent reports the sentinel, or an operator asked. */
export function wantsTurn(record: NodeRecord): boolean {
  return record.rebootRequired || (record.request !== undefined && record.request.cancelledBy === undefined);
}

/**
 * Whether the node's agent is there to take a reboot order: it checked in within the busy interval
 * (twice it, for one late or jittered check-in), its check-in is held open for the turn (and was
 * until as recently), or this invocation is its check-in. A drain-only request needs no agent. See
 * docs: "Never cordon a node whose agent is not engaged" (issue 15).
 */
export function agentEngaged(record: NodeRecord, ports: Pick<StepPorts, "checkinOf" | "now" | "policy">): boolean {
  if (!needsAgent(record)) return true;
  if (ports.checkinOf === record.node) return true;
  const heard = [record.lastCheckinAt, record.checkinHeldUntil].filter((at) => at !== undefined).map((at) => Date.parse(at));
  return heard.some((at) => ports.now.getTime() - at <= ENGAGED_INTERVALS * ports.policy.checkinBusySeconds * 1000);
}

const ENGAGED_INTERVALS = 2;

/** A drain-only request's turn ends drained, with no reboot order for an agent to take. */
function needsAgent(record: NodeRecord): boolean {
  return !(record.request?.mode === "drain-only" && !record.rebootRequired);
}

/** The `why` of a node whose object is gone; the check-in of a node that later takes its name replaces it. */
export const NODE_GONE = "the node no longer exists in the cluster";

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
  /**
   * How long a step may wait within this invocation for what it waits on (evicted pods, a budget, the
   * node's Ready) before it answers; 0 on the reconcile timer, which serves many nodes in one pass.
   */
  waitMs: number;
  sleep(ms: number): Promise<void>;
  /** The time now, for what a step records after it waited (`now` is when the step started). */
  clock(): Date;
  /** The node whose agent's check-in this invocation answers, if any. */
  checkinOf?: string;
  /**
   * Asked just before a node that needs its agent takes a slot: why its agent cannot be trusted to be
   * there (its pod is gone), or undefined. Its own check-in is then reviewed afresh if a remembered
   * review let it in; a refusal there is thrown and answers that check-in.
   */
  agentProblem(record: NodeRecord): Promise<string | undefined>;
  /** The cluster's records, joining a listing this instance has in flight (see `eligibleAhead`); undefined: always list. */
  recentRecords?(cluster: string): Promise<NodeRecord[]>;
  /**
   * How many queued nodes were ahead of this one in a listing its caller (a release handing over its
   * slot) has just made: when fewer than the free slots, nothing ahead can fill them, so the queue
   * check needs no listing of its own.
   */
  queuedAhead?: number;
  /**
   * The node as the step before, in this invocation, last read or wrote it (its result's `node`): the
   * steps that would read it first take it instead. Their writes are conditional on its
   * resourceVersion, so a node changed since fails the write and the step runs again on a fresh read.
   */
  knownNode?: KubeNode;
}

export type StepResult =
  /** Change state; the runner writes `set` with it (fields set to undefined are removed). */
  | { kind: "move"; to: NodeState; why: string; set?: Partial<NodeRecord>; node?: KubeNode }
  /** The step already wrote `record` itself, atomically with the lock; `etag`, when the write answered it, spares the runner a read. */
  | { kind: "committed"; record: NodeRecord; etag?: string; event?: StepEvent; node?: KubeNode }
  /**
   * Someone else changed the record or the lock first: re-read and step again. `policyVersion`: the
   * lock row names a newer policy than the step decided on; the runner reads it before stepping again.
   */
  | { kind: "conflict"; policyVersion?: number }
  /**
   * Nothing more to do now; `set` records progress without changing state. `yieldTo` names a node
   * ahead in the queue that may go now: the runner advances it in this node's stead.
   */
  | { kind: "wait"; why: string; set?: Partial<NodeRecord>; yieldTo?: string; event?: StepEvent };

/**
 * A Kubernetes Event a step asks for, which the runner writes on the node once the result is stored:
 * what only the step knows (a refused eviction, whether the release uncordoned the node).
 */
export type StepEvent = Pick<NodeEvent, "type" | "reason" | "message">;

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
  nodeUid: undefined,
  leaseBootId: undefined,
  leaseNodeBootId: undefined,
  acquiredAt: undefined,
  drainStartedAt: undefined,
  drainBlocker: undefined,
  drainRetryAt: undefined,
  drainAttempts: undefined,
  drainBlockedBy: undefined,
  drainRetryHinted: undefined,
  drainedAt: undefined,
  rebootOrderedAt: undefined,
  orderBootId: undefined,
  orderNodeBootId: undefined,
  rebootedAt: undefined,
  outcome: undefined,
  turnReasons: undefined,
  retriedBy: undefined,
};

/** What a drain that waits records about its blocker, cleared once it stops waiting. */
const DRAIN_WAIT_CLEARED: Partial<NodeRecord> = { drainBlocker: undefined, drainRetryAt: undefined, drainBlockedBy: undefined, drainRetryHinted: undefined };

/** How often a step that waits for the node's Ready reads the node again. */
const READY_POLL_MS = 100;

const iso = (date: Date) => date.toISOString();
const minutes = (ms: number) => `${Math.round(ms / 60_000)} min`;

type Step = (record: NodeRecord, etag: string, ports: StepPorts) => Promise<StepResult>;

export const STEPS: Readonly<Record<NodeState, Step>> = {
  async idle(record, _etag, ports) {
    const { now } = ports;
    if (!wantsTurn(record)) return { kind: "wait", why: "no reboot required" };
    const shadow = ports.policy.mode === "shadow";
    if (shadow && !record.request && record.shadowBootId !== undefined && record.shadowBootId === record.bootId) {
      return { kind: "wait", why: `shadow mode: this boot's turn was decided (see history); waiting for the node to be rebooted by someone else (kured)` };
    }
    const loop = rebootLoopReason(ports.policy, record, now);
    if (loop) {
      const kube = await ports.kube();
      const node = await kube.getNode(record.node);
      if (node && !shadow) await kube.updateNode(node, { labels: { [QUARANTINE_LABEL]: "true" } });
      return { kind: "move", to: "quarantined", why: loop, set: { quarantineLabel: QUARANTINE_LABEL } };
    }
    const why = record.request ? `${record.request.mode} requested by ${record.request.requestedBy}: ${record.request.reason}` : `reboot required: ${describeReasons(record)}`;
    return { kind: "move", to: "pending", why, set: { pendingSince: iso(now) } };
  },

  async pending(record, etag, ports) {
    if (!wantsTurn(record)) {
      // Also when the option is off now: the node may carry the taint from when it was on.
      if (ports.policy.mode !== "shadow") await applyPendingTaint(await ports.kube(), ports.policy, record.node, false);
      return { kind: "move", to: "idle", why: "reboot no longer required", set: { pendingSince: undefined, retriedBy: undefined } };
    }
    const notBefore = record.request?.notBefore;
    if (notBefore && !record.rebootRequired && Date.parse(notBefore) > ports.now.getTime()) {
      return waitInQueue(record, ports, `requested for no earlier than ${notBefore}`);
    }
    // A full lock is the common answer and costs one storage read; the policy gates may cost API calls.
    let seen = await ports.lock.view(record.cluster);
    // A policy written since this instance cached its own binds at once (a lower concurrency, a closed
    // window): its version is in the lock row, and the acquire below commits against that very row.
    if ((seen.policyVersion ?? 0) > (ports.policy.version ?? 0)) return { kind: "conflict", policyVersion: seen.policyVersion };
    const { holders } = seen;
    if (holders.length >= ports.policy.concurrency) return waitInQueue(record, ports, slotsTaken(holders));
    // Whoever checks in first when a hold lifts must not jump the queue: the nodes ahead that may go
    // take the free slots first, and this one waits only if they fill them all. Asked before this
    // node's own gates, so that a node far back in a queue costs no gate at all.
    const context = gateContext(record, ports, "before-lock", undefined, seen);
    const free = ports.policy.concurrency - holders.length;
    const { eligible: ahead, engaged } = await eligibleAhead(record, ports, context, free, holders);
    if (ahead.length >= free) {
      const waiting = await waitInQueue(record, ports, `waiting behind ${listShort(ahead)}, ahead in the queue`);
      // Only the node right behind those that fill the slots serves the first of them in its stead:
      // every queued check-in doing so made a long queue race for one node's slot.
      return engaged === free ? { ...waiting, yieldTo: ahead[0] } : waiting;
    }
    const hold = await ports.gate.holdReason(context);
    if (hold) return waitInQueue(record, ports, hold, { heldByGate: true });
    // A node is only cordoned when its agent is there to take the reboot order; the turn then starts
    // in the answer to the agent's next check-in, so a drained node never sits waiting for one.
    if (!agentEngaged(record, ports)) return waitInQueue(record, ports, `waiting for the node's agent to check in (within ${ports.policy.checkinIdleSeconds} s); the node stays uncordoned until then`);
    // The agent is checked while the node is read: one round trip less before the slot. Its outcome is
    // always awaited when the read fails, so a refusal of the agent is never lost with the step.
    const agentChecked = needsAgent(record) ? ports.agentProblem(record) : Promise.resolve(undefined);
    let node: KubeNode | undefined;
    try {
      node = await (await ports.kube()).getNode(record.node);
    } catch (error) {
      await agentChecked;
      throw error;
    }
    if (!node) {
      agentChecked.catch(() => undefined);
      return { kind: "move", to: "idle", why: NODE_GONE, set: { pendingSince: undefined } };
    }
    const absent = await agentChecked;
    if (absent) return waitInQueue(record, ports, `waiting for the node's agent: ${absent}; the node stays uncordoned until it checks in`);

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
      nodeUid: node.uid,
      // The post-boot check-in replaces `reasons` before the release writes history: keep what caused this turn.
      turnReasons: record.reasons,
    });
    // The acquire commits against the lock row as read (its ETag). When another node's acquire or
    // release changed it meanwhile, the slot is tried again on the row as it is now, unless a decision
    // above depended on who holds the slots (maxPerZone, maxPerPool, maxUnavailable): then the whole
    // step runs again. Re-running it for every lost race made 50 contenders livelock on the row.
    // The transaction fails as well when the record changed (another invocation stepped the node on):
    // the record is read with the row, and a changed one ends the retries at once, where each retry
    // failed again and kept a release from handing over its slot for ~100 ms.
    let result = await ports.lock.acquire(record.cluster, holder, ports.policy.concurrency, [ports.store.replaceAction(next, etag)], seen);
    for (let retry = 0; result.kind === "conflict" && retry < ACQUIRE_RETRIES && !dependsOnHolders(ports.policy); retry++) {
      const [view, latest] = await Promise.all([ports.lock.view(record.cluster), ports.store.get(record.cluster, record.node)]);
      if (latest?.etag !== etag) return { kind: "conflict" };
      seen = view;
      if ((seen.policyVersion ?? 0) > (ports.policy.version ?? 0)) return { kind: "conflict", policyVersion: seen.policyVersion };
      // Those ahead that took slots since are holders now, not ahead.
      const stillAhead = ahead.filter((other) => !seen.holders.some((h) => h.node === other)).length;
      if (stillAhead >= ports.policy.concurrency - seen.holders.length) return { kind: "conflict" };
      result = await ports.lock.acquire(record.cluster, holder, ports.policy.concurrency, [ports.store.replaceAction(next, etag)], seen);
    }
    if (result.kind === "acquired") return { kind: "committed", record: next, etag: result.etags?.[0], node };
    if (result.kind === "conflict") return { kind: "conflict" };
    return waitInQueue(record, ports, slotsTaken(result.holders));
  },

  async cordoning(record, _etag, ports) {
    const kube = await ports.kube();
    const node = ports.knownNode ?? (await kube.getNode(record.node));
    if (!node) return release("node-deleted", NODE_GONE);
    if (!wantsTurn(record)) return release("cancelled", "reboot no longer required");
    if (ports.policy.mode === "shadow") return shadowTurn(kube, record, ports);
    // Decided again on the node as it is now: an administrator may have cordoned it since the slot was
    // taken, and that cordon must outlive the lease. A cordon carrying any lease annotation is Rollcall's.
    const wasUnschedulable = node.unschedulable && node.annotations[nodeAnnotations.cordonedBy] === undefined;
    const annotations: AnnotationChanges = wasUnschedulable
      ? { [nodeAnnotations.state]: "draining" }
      : { [nodeAnnotations.cordonedBy]: record.leaseId!, [nodeAnnotations.state]: "draining" };
    // One write, conditional on the node read above, with kured's pre-reboot labels.
    const written = await kube.updateNode(node, {
      unschedulable: true,
      annotations: { ...annotations, ...kuredTurnAnnotations(ports.policy, ports.now) },
      ...(hasNodeLabels(ports.policy) && { labels: preRebootLabels(ports.policy) }),
    });
    const why = wasUnschedulable ? "already cordoned by someone else; left as it was" : "cordoned";
    const lease = { wasUnschedulable, nodeUid: written.uid, leaseBootId: record.bootId, leaseNodeBootId: node.bootId };
    return { kind: "move", to: "draining", why, set: { drainStartedAt: iso(ports.now), drainAttempts: 0, ...lease }, node: written };
  },

  async draining(record, _etag, ports) {
    const kube = await ports.kube();
    const node = ports.knownNode ?? (await kube.getNode(record.node));
    if (!node) return release("node-deleted", NODE_GONE);
    // Before any eviction: is this still our node, cordoned under this lease? Has it rebooted by itself?
    const lost = leaseLost(record, node);
    if (lost) return lost;
    const rebooted = rebootedDuringLease(record, node, ports);
    if (rebooted) return rebooted;
    if (!wantsTurn(record)) return release("cancelled", "reboot no longer required");
    // Shadow mode orders no reboot: a drain an active turn began ends here, and the release uncordons.
    if (ports.policy.mode === "shadow") return release("cancelled", "the policy switched to shadow mode: turn ended without a reboot");
    const started = Date.parse(record.drainStartedAt ?? iso(ports.now));
    if (ports.now.getTime() - started > ports.policy.drain.timeoutMs) {
      const why = `drain timed out after ${minutes(ports.policy.drain.timeoutMs)}: ${record.drainBlocker ?? "pods remained"}`;
      if (onDrainTimeout(ports.policy) === "force-reboot") return orderReboot(record, node, ports, `${why}; rebooting anyway (drain.forceRebootAfterTimeout)`);
      return drainFailed(record, node, ports, why);
    }
    // Every further pass within this invocation first checks that the lease still holds the node.
    const stillHeld = async () => {
      const current = await kube.getNode(record.node);
      return current !== undefined && leaseLost(record, current) === undefined;
    };
    const wait = { waitMs: ports.waitMs, sleep: ports.sleep, now: ports.clock, stillHeld };
    if (record.drainRetryAt && Date.parse(record.drainRetryAt) > ports.now.getTime()) {
      // Before the blind retry, only a budget that allows a disruption again is a reason to evict
      // sooner; a server's Retry-After is honoured as it stands.
      const allowed = !record.drainRetryHinted && (await untilBudgetAllows(kube, record.drainBlockedBy ?? [], wait)).allowed;
      // That wait may have taken seconds: the node is looked at again before evicting.
      if (!allowed || !(await stillHeld())) return { kind: "wait", why: record.drainBlocker ?? "draining" };
    }
    const attempts = record.drainAttempts ?? 0;
    const options = ports.policy.drain.podSelector ? { ...ports.policy.drain, podFilter: (pod: KubePod) => drainSelects(ports.policy, pod) } : ports.policy.drain;
    const pass = await drainFor(kube, record.node, options, wait);
    if (pass.kind === "refused") return drainFailed(record, node, ports, pass.reason);
    if (pass.kind === "waiting") {
      return {
        kind: "wait",
        why: pass.blocker,
        set: {
          drainBlocker: pass.blocker,
          // Terminating pods are looked at again by the next check-in; only a refusal backs off.
          drainRetryAt: pass.retryAfterMs > 0 ? iso(new Date(ports.clock().getTime() + pass.retryAfterMs)) : undefined,
          drainBlockedBy: pass.pdbs.length > 0 ? pass.pdbs : undefined,
          drainRetryHinted: pass.serverRetryAfter || undefined,
          // Consecutive refusals by a budget, not passes that made progress (shown in the node's status).
          drainAttempts: pass.pdbBlocked ? attempts + 1 : 0,
        },
        // Each refusal is told; the same pod and budget again counts on the same Event (series).
        ...(pass.pdbBlocked && { event: { type: "Warning" as const, reason: "RollcallDrainBlocked", message: pass.blocker } }),
      };
    }
    if (record.request?.mode === "drain-only" && !record.rebootRequired) {
      return {
        kind: "move",
        to: "maintenance",
        why: `drained for maintenance requested by ${record.request.requestedBy}; end it with POST …/release`,
        set: DRAIN_WAIT_CLEARED,
      };
    }
    const drainedAt = record.drainedAt ?? iso(ports.now);
    const delay = delayBeforeRebootReason(ports.policy, new Date(drainedAt), ports.now);
    if (delay) return { kind: "wait", why: delay, set: { drainedAt, ...DRAIN_WAIT_CLEARED } };
    const hold = await ports.gate.holdReason(gateContext(record, ports, "before-reboot"));
    if (hold) return { kind: "wait", why: `drained; reboot held: ${hold}`, set: { drainedAt } };
    return orderReboot(record, node, ports, "drained; reboot ordered");
  },

  async "reboot-ordered"(record, _etag, ports) {
    const node = await (await ports.kube()).getNode(record.node);
    // A machine re-created under the node's name reports a new boot id too; that is not this reboot.
    if (node && record.nodeUid && node.uid !== record.nodeUid) return release("node-deleted", replacedWhy(record, node));
    if (record.bootId && record.orderBootId && record.bootId !== record.orderBootId) {
      return { kind: "move", to: "rebooted", why: `the agent reports a new boot id ${record.bootId}`, set: { rebootedAt: iso(ports.now) } };
    }
    if (!node) return release("node-deleted", NODE_GONE);
    // Checked before every answer that carries the order, so the agent is never told to reboot a node that is not ours.
    const lost = leaseLost(record, node);
    if (lost) return lost;
    return { kind: "wait", why: "waiting for the agent to reboot the node and check in with a new boot id" };
  },

  async rebooted(record, _etag, ports) {
    const kube = await ports.kube();
    let node = await kube.getNode(record.node);
    if (!node) return release("node-deleted", NODE_GONE);
    if (node.bootId === record.orderNodeBootId) return { kind: "wait", why: "waiting for the node object to report the new boot id" };
    // After a reboot the node noticed first, the agent's facts (the sentinel) are only current once it checked in again.
    if (record.orderBootId && record.bootId === record.orderBootId) return { kind: "wait", why: "waiting for the agent to check in after the reboot" };
    // The kubelet posts the new boot id while still NotReady and Ready about 1 s later
    // (../shared/k8s-captured/README.md): waited out here, not until the next check-in.
    // A watch from the node as read ends each sleep as soon as the node changes (its Ready posted).
    const changes = !node.ready && ports.waitMs >= READY_POLL_MS ? kube.watchNode?.(record.node, node.resourceVersion) : undefined;
    try {
      for (let left = Math.floor(ports.waitMs / READY_POLL_MS); node && !node.ready && left > 0; ) {
        left -= await pollOrChange(changes, ports.sleep, ports.clock, READY_POLL_MS, WATCHED_POLL_MS);
        node = await kube.getNode(record.node);
      }
    } finally {
      changes?.close();
    }
    if (!node) return release("node-deleted", NODE_GONE);
    if (!node.ready) return { kind: "wait", why: "waiting for the node to be Ready" };
    const neededAt = Date.parse(record.pendingSince ?? iso(ports.now));
    const chained = record.lastRebootAt !== undefined && neededAt - Date.parse(record.lastRebootAt) < REBOOT_CHAIN_MS;
    const consecutiveReboots = chained ? (record.consecutiveReboots ?? 0) + 1 : 1;
    const survived = sentinelSurvivedReason(record);
    if (survived) return { kind: "move", to: "releasing", why: survived, set: { outcome: "quarantined", consecutiveReboots, quarantineLabel: QUARANTINE_LABEL }, node };
    return { kind: "move", to: "releasing", why: "reboot confirmed: new boot id and Ready", set: { outcome: "completed", consecutiveReboots }, node };
  },

  async releasing(record, etag, ports) {
    const kube = await ports.kube();
    const found = ports.knownNode ?? (await kube.getNode(record.node));
    // A node object re-created under the same name is another machine: nothing of this lease is on it.
    const node = found && (!record.nodeUid || found.uid === record.nodeUid) && record.outcome !== "shadow" ? found : undefined;
    if (node && record.outcome === "quarantined") {
      // Quarantine leaves the node cordoned and labelled until an operator releases it.
      const annotations = { [nodeAnnotations.state]: "quarantined", ...kuredTurnEnded(ports.policy, node) };
      await kube.updateNode(node, { labels: { [record.quarantineLabel ?? QUARANTINE_LABEL]: "true" }, annotations });
    }
    const uncordoned = node !== undefined && record.outcome !== "quarantined" && (await restoreNode(kube, node, record, ports.policy));
    const next = afterRelease(record, ports);
    const history = historyAction(historyEntry(record, ports.now));
    const result = await ports.lock.release(record.cluster, record.node, record.leaseId ?? "", [ports.store.replaceAction(next, etag), history], ports.now);
    if (result.kind === "conflict") return { kind: "conflict" };
    return { kind: "committed", record: next, etag: result.etags?.[0], ...(uncordoned && { event: { type: "Normal", reason: "RollcallUncordon", message: `uncordoned: ${next.why}` } }) };
  },

  async "drain-failed"(record, _etag, { now }) {
    if (!wantsTurn(record)) return { kind: "move", to: "idle", why: "reboot no longer required", set: { retryAt: undefined, retryRequestedBy: undefined, pendingSince: undefined } };
    if (record.retryRequestedBy) {
      const skipped = record.retryAt ? ` (back-off until ${record.retryAt} skipped)` : "";
      const set = { retryAt: undefined, retryRequestedBy: undefined, retriedBy: record.retryRequestedBy };
      return { kind: "move", to: "pending", why: `retry requested by ${record.retryRequestedBy}${skipped}`, set };
    }
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

/**
 * `seen`: the lock row as the step read it, which carries the last release (the health gate's
 * question). A row written before it kept one has none until the next release: the records are not
 * listed for it instead, or every queued node's step would list the whole cluster until then.
 */
function gateContext(record: NodeRecord, ports: StepPorts, phase: GateContext["phase"], shared?: Pick<GateContext, "records" | "kube" | "lastRelease">, seen?: LockView): GateContext {
  let listed: Promise<NodeRecord[]> | undefined;
  const records = shared?.records ?? (() => (listed ??= ports.store.list(record.cluster).then((list) => list.map((r) => r.value))));
  const lastRelease = async () => {
    const { lastRelease: last } = seen ?? (await ports.lock.view(record.cluster));
    return last && { node: last.node, at: new Date(last.at) };
  };
  // The gates of one step share their whole-cluster reads: the health and PDB gates both listed the budgets.
  return { record, policy: ports.policy, now: ports.now, phase, kube: shared?.kube ?? memoizedReads(ports.kube), records, lastRelease: shared?.lastRelease ?? lastRelease };
}

/** Lost races on the lock row a pending step retries on the row as it is now, before it runs again. */
const ACQUIRE_RETRIES = 8;

/** Whether the decision to take a slot depends on which nodes hold the others (a cap beyond the slot count). */
function dependsOnHolders(policy: Policy): boolean {
  return policy.maxPerZone !== undefined || policy.maxPerPool !== undefined || policy.maxUnavailable !== undefined;
}

/** The most nodes ahead whose gates one step asks; the rest of a long queue count as ready to go (see `eligibleAhead`). */
const GATED_AHEAD_MAX = 10;

/**
 * Up to `enough` pending nodes ahead of `record` in the policy's queue order that nothing holds back
 * now, first first. When fewer engaged nodes are ahead than `enough`, no gate is asked at all: even if
 * all of them may go, a slot is left. A node ahead whose own last step no gate held (`heldByGate`)
 * counts as ready to go; only for those a gate held are the gates asked again (the hold may have
 * lifted), for at most GATED_AHEAD_MAX of them, on one set of reads (the budgets and nodes are read
 * once per step), and any further one counts as ready to go. So a queued check-in costs a bounded
 * number of API calls, usually none, at the price of waiting behind a node a gate holds until that
 * node's own next check-in records it (within the busy interval). `engaged`: how many engaged nodes
 * are ahead, counted only as far as `enough + GATED_AHEAD_MAX + 1`. `holders`: the lock row as this
 * step read it; a node holding a slot is not ahead, whatever the listing says.
 */
async function eligibleAhead(record: NodeRecord, ports: StepPorts, context: GateContext, enough: number, holders: readonly LockHolder[]): Promise<{ eligible: string[]; engaged: number }> {
  if (ports.queuedAhead !== undefined && ports.queuedAhead < enough) return { eligible: [], engaged: ports.queuedAhead };
  const order = pendingOrder(ports.policy);
  // Who is ahead only orders the queue: concurrent queued check-ins share one listing (1,000 queued
  // nodes each listing 1,000 records starved the app), sorted once. The gates decide on a listing of their own.
  const listed = ports.recentRecords ? await ports.recentRecords(record.cluster) : await context.records();
  const queue = queueOf(listed, order);
  const place = placeOf(queue, record, order);
  // The listing may be a second old: the nodes that took slots since would hold this one back behind
  // them, with their slots counted as taken too, until something woke it (~0.5 s a round at concurrency 5).
  const holding = new Set(holders.map((h) => h.node));
  const ready = (other: NodeRecord) =>
    other.node !== record.node && !holding.has(other.node) && wantsTurn(other) && agentEngaged(other, ports) && (!other.request?.notBefore || other.rebootRequired || Date.parse(other.request.notBefore) <= ports.now.getTime());
  // Only the first few ready nodes ahead matter: those that take the free slots, the gate-held ones
  // asked again, and one more to tell whether they fill the slots exactly.
  const needed = enough + GATED_AHEAD_MAX + 1;
  const ahead: NodeRecord[] = [];
  for (let i = 0; i < place && ahead.length < needed; i++) if (ready(queue[i]!)) ahead.push(queue[i]!);
  if (ahead.length < enough) return { eligible: ahead.map((other) => other.node), engaged: ahead.length };
  const eligible: string[] = [];
  let asked = 0;
  for (const other of ahead) {
    if (eligible.length >= enough) break;
    if (!other.heldByGate || asked++ >= GATED_AHEAD_MAX) {
      eligible.push(other.node);
      continue;
    }
    if (!(await ports.gate.holdReason(gateContext(other, ports, "before-lock", { records: context.records, kube: context.kube, lastRelease: context.lastRelease })))) eligible.push(other.node);
  }
  return { eligible, engaged: ahead.length };
}

/** The cluster API with its whole-cluster reads made once: the gates of several nodes ask the same questions. */
function memoizedReads(kube: StepPorts["kube"]): StepPorts["kube"] {
  const once = new Map<string, Promise<unknown>>();
  const memo = <T>(key: string, read: () => Promise<T>): Promise<T> => {
    if (!once.has(key)) once.set(key, read());
    return once.get(key) as Promise<T>;
  };
  return async () => {
    const api = await kube();
    return Object.assign(Object.create(api) as ClusterApi, {
      listPodDisruptionBudgets: () => memo("pdbs", () => api.listPodDisruptionBudgets()),
      listNodes: () => memo("nodes", () => api.listNodes()),
      getNode: (name: string) => memo(`node/${name}`, () => api.getNode(name)),
    });
  };
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
    case "interrupted":
      // Not a failed drain (the node was taken from us), so the failure count stays; the back-off keeps
      // Rollcall from cordoning straight back a node an administrator just uncordoned.
      return nextRecord(record, "drain-failed", record.why, now, {
        ...LEASE_FIELDS,
        retryAt: iso(new Date(now.getTime() + policy.drainFailureBackoffMs)),
      });
    case "shadow":
      return nextRecord(record, "idle", record.why, now, { ...done, shadowBootId: record.bootId });
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

/**
 * Undoes what Rollcall did to a node: its own cordon, its state annotation, the waiting taint, and
 * sets post-reboot labels. Answers whether it uncordoned the node.
 */
async function restoreNode(kube: ClusterApi, node: KubeNode, record: NodeRecord, policy: Policy): Promise<boolean> {
  // One write, conditional on the node as read: a delayed uncordon can never land on a later lease's cordon.
  const change: NodeChange = {};
  // Only a cordon carrying our own lease is undone: a node cordoned by someone else stays cordoned.
  const ours = record.leaseId !== undefined && node.annotations[nodeAnnotations.cordonedBy] === record.leaseId;
  if (ours) {
    change.unschedulable = false;
    change.annotations = { [nodeAnnotations.cordonedBy]: null, [nodeAnnotations.state]: null };
  } else if (node.annotations[nodeAnnotations.state] !== undefined) {
    change.annotations = { [nodeAnnotations.state]: null };
  }
  const kured = kuredTurnEnded(policy, node);
  if (Object.keys(kured).length > 0) change.annotations = { ...change.annotations, ...kured };
  const taintKey = policy.preferNoScheduleTaint?.key;
  if (taintKey && node.taints?.some((t) => t.key === taintKey)) change.taints = node.taints.filter((t) => t.key !== taintKey);
  const labels: Record<string, string | null> = record.outcome === "completed" && hasNodeLabels(policy) ? postRebootLabels(policy) : {};
  if (record.quarantineLabel && node.labels[record.quarantineLabel] !== undefined) labels[record.quarantineLabel] = null;
  if (Object.keys(labels).length > 0) change.labels = labels;
  if (Object.keys(change).length > 0) await kube.updateNode(node, change);
  return ours;
}

/**
 * A turn in shadow mode (policy `mode: shadow`), taken under the lock like a real one so that status
 * and history show who would go and when, then released at once: what the drain would evict and what
 * would refuse or block it, and whether the reboot would be held, read from the cluster; nothing
 * written to it. The node then waits for a new boot id (kured's reboot) before it asks again.
 */
async function shadowTurn(kube: ClusterApi, record: NodeRecord, ports: StepPorts): Promise<StepResult> {
  const pods = await kube.listPodsOnNode(record.node);
  const options = ports.policy.drain.podSelector ? { ...ports.policy.drain, podFilter: (pod: KubePod) => drainSelects(ports.policy, pod) } : ports.policy.drain;
  const refused = pods.flatMap((pod) => {
    const decision = classifyPod(pod, options);
    return decision.action === "refuse" ? [decision.why] : [];
  });
  const evict = podsToEvict(pods, ports.policy);
  const pdbs = evict.length > 0 ? await kube.listPodDisruptionBudgets() : [];
  const blocked = evict.flatMap((pod) => pdbsCovering(pod, pdbs).filter((pdb) => pdb.disruptionsAllowed < 1).map((pdb) => `${pod.namespace}/${pod.name} by PodDisruptionBudget ${pdb.namespace}/${pdb.name}`));
  const hold = await ports.gate.holdReason(gateContext(record, ports, "before-reboot"));
  const parts = [
    `would cordon and evict ${evict.length} pod(s)${evict.length ? ` (${listShort(evict.map((p) => `${p.namespace}/${p.name}`), 5)})` : ""}`,
    refused.length ? `the drain would be refused: ${listShort(refused, 2)}` : undefined,
    blocked.length ? `evictions would be blocked: ${listShort(blocked, 3)}` : undefined,
    hold ? `the reboot would be held: ${hold}` : "then order the reboot",
  ];
  return release("shadow", `shadow mode, nothing done: ${parts.filter(Boolean).join("; ")}`);
}

/**
 * kured's node annotations (policy `kuredAnnotations`), as kured's rebootAsRequired writes them: both
 * set to the same RFC 3339 time (seconds) when the node's turn starts; `…-reboot-in-progress` is
 * removed when the turn ends, `…-most-recent-reboot-needed` stays (cmd/kured/main.go).
 */
function kuredTurnAnnotations(policy: Policy, now: Date): AnnotationChanges {
  if (!policy.kuredAnnotations) return {};
  const at = now.toISOString().replace(/\.\d{3}Z$/, "Z");
  return { [kuredAnnotations.rebootInProgress]: at, [kuredAnnotations.mostRecentRebootNeeded]: at };
}

function kuredTurnEnded(policy: Policy, node: KubeNode): AnnotationChanges {
  return policy.kuredAnnotations && node.annotations[kuredAnnotations.rebootInProgress] !== undefined ? { [kuredAnnotations.rebootInProgress]: null } : {};
}

/**
 * Whether the lease still has the node: the same node object it cordoned (uid), still cordoned, under
 * this lease's annotation (or by the administrator whose cordon it found). If not, an administrator
 * uncordoned it, someone else re-cordoned it, or a new machine took its name: stop here, evict and
 * reboot nothing, and hand the turn back.
 */
function leaseLost(record: NodeRecord, node: KubeNode): StepResult | undefined {
  if (record.nodeUid && node.uid !== record.nodeUid) return release("node-deleted", replacedWhy(record, node));
  if (!node.unschedulable) {
    return release("interrupted", `the node was uncordoned by someone else during lease ${record.leaseId}; stopped without evicting or rebooting, turn handed back`);
  }
  const holder = node.annotations[nodeAnnotations.cordonedBy];
  if (!record.wasUnschedulable && holder !== record.leaseId) {
    const by = holder ? `lease ${holder}` : "someone else";
    return release("interrupted", `the node's cordon now belongs to ${by}, not lease ${record.leaseId}; stopped without evicting or rebooting, turn handed back`);
  }
  return undefined;
}

function replacedWhy(record: NodeRecord, node: KubeNode): string {
  return `the node object was replaced (uid ${record.nodeUid} → ${node.uid}): a new machine under the same name; nothing of this lease is done to it`;
}

/**
 * A node that rebooted by itself while its lease held it (kernel panic, platform maintenance) has
 * rebooted: confirm that reboot instead of ordering another, measured against the boot ids the lease
 * saw when it cordoned the node.
 */
function rebootedDuringLease(record: NodeRecord, node: KubeNode, ports: StepPorts): StepResult | undefined {
  const agentRebooted = record.leaseBootId !== undefined && record.bootId !== undefined && record.bootId !== record.leaseBootId;
  const nodeRebooted = record.leaseNodeBootId !== undefined && node.bootId !== "" && node.bootId !== record.leaseNodeBootId;
  if (!agentRebooted && !nodeRebooted) return undefined;
  const seen = agentRebooted ? `the agent reports boot id ${record.bootId}` : `the node object reports boot id ${node.bootId}`;
  return {
    kind: "move",
    to: "rebooted",
    why: `the node rebooted by itself during its drain (${seen}); confirming that reboot instead of ordering another`,
    set: {
      ...DRAIN_WAIT_CLEARED,
      drainedAt: undefined,
      orderBootId: record.leaseBootId,
      orderNodeBootId: record.leaseNodeBootId,
      rebootedAt: iso(ports.now),
    },
  };
}

function hasNodeLabels(policy: Policy): boolean {
  const labels = policy.nodeLabels;
  return labels !== undefined && Object.keys(labels.preReboot).length + Object.keys(labels.postReboot).length > 0;
}

/** A pending node keeps waiting; with the option on, it carries the PreferNoSchedule taint meanwhile. */
async function waitInQueue(record: NodeRecord, ports: StepPorts, why: string, held: { heldByGate?: true } = {}): Promise<StepResult> {
  if (ports.policy.preferNoScheduleTaint?.enabled && ports.policy.mode !== "shadow") await applyPendingTaint(await ports.kube(), ports.policy, record.node, true);
  // Whether a gate held it (not the queue or the slots) is what the nodes behind it ask (`eligibleAhead`).
  return { kind: "wait", why, set: { heldByGate: held.heldByGate } };
}

const SLOT_WAIT = "waiting for a free lock slot";

/** Names a few holders only: with 1,000 slots the full list would be ~250,000 characters in every answer. */
export function slotsTaken(holders: { node: string }[]): string {
  return `${SLOT_WAIT} (held by ${listShort(holders.map((h) => h.node))})`;
}

/** Whether a pending node's hold reason is the full lock (and so names holders, which a release makes stale). */
export function waitsForSlot(record: NodeRecord): boolean {
  return record.state === "pending" && (record.holdReason?.startsWith(SLOT_WAIT) ?? false);
}

function orderReboot(record: NodeRecord, node: KubeNode, ports: StepPorts, why: string, extra: Partial<NodeRecord> = {}): StepResult {
  return {
    kind: "move",
    to: "reboot-ordered",
    why,
    set: {
      ...extra,
      ...DRAIN_WAIT_CLEARED,
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
