import { randomUUID } from "node:crypto";
import type { CheckinRequest, CheckinResponse } from "../protocol/checkin";
import { type KubeNode, NodeChangedError, nodeAnnotations } from "../kube/clusterApi";
import type { ClusterApiFactory } from "../kube/connect";
import type { ClusterLock, LockHolder } from "../lock/tableLock";
import { type NodeRecord, type NodeStore, StaleRecordError, type Versioned } from "../node/nodeRecord";
import { leftoverRepair, slotsTaken, waitsForSlot, LOCK_HOLDING_STATES, NODE_GONE, wantsTurn, nextRecord, type NodeState, onLeaseExpired, inShadow, type StepEvent, STEPS, type StepPorts } from "../node/stateMachine";
import type { Policy, PolicySource, RebootGate } from "../policy/policy";
import { telemetryEvents, telemetryMetrics, type Telemetry } from "../telemetry/names";
import { type AgentVerifier, describeAgent } from "../auth/tokenReview";
import { historyAction, historyEntry } from "../history/history";
import { answerFor } from "./answer";
import { notifyTransition } from "../notify/notifier";
import { pendingOrder } from "../node/queue";
import { type Logger, logTransition } from "./transitionLog";
import { annotatesBeforeStep, tellNode, tellWait } from "./nodeEvents";
import { readOnlyClusterApi } from "../kube/readOnly";
import { HttpError } from "../http/http";
import { HeldCheckins } from "./heldCheckins";

export interface OrchestratorDeps {
  store: NodeStore;
  lock: ClusterLock;
  kube: ClusterApiFactory;
  policy: PolicySource;
  gate: RebootGate;
  telemetry: Telemetry;
  /** How long one invocation may spend advancing one node before it answers. */
  stepBudgetMs: number;
  /** Longest a step waits within an invocation for its event (ROLLCALL_STEP_WAIT_MS); 3 s when not given. */
  stepWaitMs?: number;
  clock?: () => Date;
  newLeaseId?: () => string;
  /** Longest a queued node's check-in is held open for its turn (ROLLCALL_CHECKIN_HOLD_SECONDS); 0 or absent: never held. */
  holdMs?: number;
  /**
   * Whether a node's agent pod, as its last fresh review recorded it, still speaks for the node (see
   * `recordedAgentProblem`); without it (authentication off) every recorded agent is taken as present.
   */
  agentProblem?: (cluster: string, record: NodeRecord) => Promise<string | undefined>;
}

export interface ReconcileReport {
  cluster: string;
  advanced: number;
  expired: string[];
  orphansReleased: string[];
  /** Nodes whose leftover Rollcall cordon or annotations no record accounted for, undone. */
  repaired: string[];
  pending: number;
  stuck: number;
}

/**
 * How stale `lastCheckinAt` may be: a check-in that changes no fact rewrites it only when it is older
 * than this, so an idle fleet costs one storage write per node per period instead of one per check-in
 * (the agent checks in every minute by default). docs/api.md states what the field means.
 */
export const LAST_CHECKIN_GRANULARITY_MS = 5 * 60_000;

function checkinOutdated(record: NodeRecord, now: Date, policy: Policy): boolean {
  // A queued node's check-in is what makes it eligible for a freed slot (`agentEngaged`): kept to the busy interval.
  const queued = record.state === "pending" || (record.state === "idle" && wantsTurn(record));
  const granularityMs = queued ? policy.checkinBusySeconds * 1000 : LAST_CHECKIN_GRANULARITY_MS;
  return record.lastCheckinAt === undefined || now.getTime() - Date.parse(record.lastCheckinAt) >= granularityMs;
}

/** A hold mark this close to the one wanted is left as it is: one write per hold, not per step. */
const HOLD_MARK_SLACK_MS = 5_000;

/** How long a queue listing is reused: 1 ms per record it holds, at most a second (see `recentRecords`). */
const LISTING_REUSE_MS_PER_RECORD = 1;
const LISTING_REUSE_MAX_MS = 1_000;

/** How often an instance holding check-ins reads each cluster's lock row for slots other instances gave. */
const HOLD_POLL_MS = 250;

/** What of the step budget a step's wait always leaves for the writes and the answer. */
const WAIT_RESERVE = 0.4;

/** Queued nodes a release steps beyond those its freed slots may start (see `startNextPending`). */
const HOLD_REFRESH_AFTER_HANDOFF = 10;

/** A safety net against a step that keeps moving without converging; real chains are at most ~8 steps. */
const MAX_STEPS_PER_RUN = 16;

/**
 * Runs the node state machine: the check-in path, the reconcile timer and the operator API all
 * advance nodes through `run`, which applies each step's result by ETag and re-reads on conflict.
 */
export class Orchestrator {
  /** Per cluster, the listing that concurrent queue checks join (`StepPorts.recentRecords`), and when it was started. */
  private readonly listings = new Map<string, Listing>();

  /** Queued check-ins held open on this instance until their node's turn (see `HeldCheckins`). */
  readonly holds: HeldCheckins;

  constructor(private readonly deps: OrchestratorDeps) {
    this.holds = new HeldCheckins(deps.lock, HOLD_POLL_MS, async (cluster) => (await deps.kube(cluster)).watchPodDisruptionBudgets?.());
  }

  /**
   * The cluster's records for ordering the queue, from a listing this instance made moments ago or
   * has in flight: concurrent check-ins share one listing instead of each making their own (1,000
   * queued nodes each listing 1,000 records starved the app), and a finished listing of n records is
   * reused for n ms (at most 1 s), so a large queue costs about one listing a second. Slots are taken
   * on the lock row itself, so a listing that old can only make a node wait its turn a moment longer.
   */
  private recentRecords(cluster: string, fresh = false): Listing & { reused: boolean } {
    const recent = this.listings.get(cluster);
    if (!fresh && recent && performance.now() - recent.startedAt <= recent.reuseMs) return { ...recent, reused: true };
    const records = this.deps.store.list(cluster);
    const entry: Listing = { records, values: records.then((list) => list.map((r) => r.value)), startedAt: performance.now(), reuseMs: Number.POSITIVE_INFINITY };
    this.listings.set(cluster, entry);
    records.then(
      (list) => (entry.reuseMs = performance.now() - entry.startedAt + Math.min(LISTING_REUSE_MAX_MS, list.length * LISTING_REUSE_MS_PER_RECORD)),
      () => void (this.listings.get(cluster) === entry && this.listings.delete(cluster)),
    );
    entry.values.catch(() => undefined);
    return { ...entry, reused: false };
  }

  private now(): Date {
    return this.deps.clock?.() ?? new Date();
  }

  /**
   * An agent's check-in. An idle node with nothing to do costs one storage read and no Kubernetes
   * call; anything else records the reported facts and advances the node as far as it can go now.
   */
  async checkin(cluster: string, node: string, request: CheckinRequest, log: Logger, verify: AgentVerifier = async () => undefined, waitSeconds = 0): Promise<CheckinResponse> {
    let current = await this.deps.store.get(cluster, node);
    const reported = reportedFacts(request);
    // Only a check-in that changes nothing may ride on a remembered review (shared/auth/tokenReview.ts):
    // an idle node's, or a queued one's, whose slot is only taken after a fresh review.
    const unchanged = current !== undefined && !factsChanged(current.value, reported);
    const waiting = current !== undefined && (current.value.state === "pending" || (current.value.state === "idle" && !wantsTurn(current.value)));
    const agent = await verify({ allowCached: unchanged && waiting, known: current !== undefined });
    this.deps.telemetry.metric(telemetryMetrics.checkins, 1, { cluster, node });
    const reportedBy = agent && request.rebootRequired && !(current?.value.rebootRequired && current.value.rebootReportedBy) ? describeAgent(agent) : undefined;
    const facts: ReportedFacts = { ...reported, ...(reportedBy && { rebootReportedBy: reportedBy }), ...(agent && !agent.remembered && { agentPodName: agent.pod.name, agentPodUid: agent.pod.uid }) };
    const holdMs = Math.max(0, Math.min(waitSeconds * 1000, this.deps.holdMs ?? 0));
    if (!current) {
      current = await this.createOrReload(
        { cluster, node, state: "idle", since: this.now().toISOString(), why: "first check-in", ...facts, lastCheckinAt: this.now().toISOString() },
        log,
      );
    } else if (holdMs > 0 && current.value.state === "pending") {
      // The check-in of a queued node that will be held writes once, for its facts and its hold together.
      current = await this.writeFacts(current, { ...facts, checkinHeldUntil: new Date(this.now().getTime() + holdMs).toISOString() });
    } else if (factsChanged(current.value, facts) || checkinOutdated(current.value, this.now(), await this.deps.policy(cluster))) {
      current = await this.writeFacts(current, facts);
    }
    const how: RunOptions = { checkinOf: node, ...(agent?.remembered && { reviewAfresh: () => verify({ allowCached: false, known: true }).then(() => undefined) }) };
    let answer: CheckinResponse;
    ({ current, answer } = await this.answerCheckin(current, log, how));
    const holdEnds = this.now().getTime() + holdMs;
    const busyMs = (await this.deps.policy(cluster)).checkinBusySeconds * 1000;
    // Held while the node stays queued: woken (it took a slot), it is stepped again and, still queued,
    // held again for what is left of the wait the agent offered. A node a gate holds (a window, the
    // health of the last node released, a blocker) is stepped again every busy interval as well: what
    // lifts a gate is no event of Rollcall's, and gate-held nodes waiting out whole holds let free
    // slots sit idle at concurrency 50.
    while (answer.action === "wait" && current.value.state === "pending" && holdEnds - this.now().getTime() > 0) {
      const marked = await this.markHeld(current, new Date(holdEnds).toISOString());
      if (!marked) return answer;
      const left = holdEnds - this.now().getTime();
      const recheck = current.value.heldByGate === true && left > busyMs;
      const ended = await this.holds.hold(cluster, node, recheck ? busyMs : left, { gateHeld: current.value.heldByGate === true });
      // A later check-in of the node holds now: this one's agent stopped waiting for it.
      if (ended === "superseded") return answer;
      if (ended === "expired" && !recheck) {
        // Its time is up with the node still queued: the agent checks in again at once and is held anew.
        return { ...answer, nextCheckinSeconds: 1 };
      }
      const reloaded = await this.deps.store.get(cluster, node);
      if (!reloaded) return answer;
      ({ current, answer } = await this.answerCheckin(reloaded, log, how));
    }
    return answer;
  }

  /** Advances the checking-in node as far as it goes now and derives the agent's answer. */
  private async answerCheckin(start: Versioned<NodeRecord>, log: Logger, how: RunOptions): Promise<{ current: Versioned<NodeRecord>; answer: CheckinResponse }> {
    let current = start;
    if (current.value.state !== "idle" || wantsTurn(current.value)) {
      current = await this.run(current, this.deadline(), log, how);
    }
    const policy = await this.deps.policy(current.value.cluster);
    const answer = answerFor(current.value, policy, this.now());
    // The reboot order goes out only after its step re-checked the node (same object, cordoned under
    // this lease); when that check could not run (the API server timed out), the agent asks again.
    if (answer.action === "reboot" && how.failedIn === "reboot-ordered") {
      return { current, answer: { action: "wait", state: current.value.state, reason: "could not re-check the node before repeating the reboot order; asking again shortly", nextCheckinSeconds: policy.checkinBusySeconds } };
    }
    return { current, answer };
  }

  /**
   * Records that the agent's check-in is held until `until` (so the agent counts as engaged, see
   * `agentEngaged`), unless the record already says so; undefined when the record changed meanwhile:
   * then the check-in is answered at once and the agent asks again.
   */
  private async markHeld(current: Versioned<NodeRecord>, until: string): Promise<Versioned<NodeRecord> | undefined> {
    const recorded = current.value.checkinHeldUntil ? Date.parse(current.value.checkinHeldUntil) : 0;
    if (Date.parse(until) - recorded < HOLD_MARK_SLACK_MS) return current;
    try {
      return await this.deps.store.replace({ ...current.value, checkinHeldUntil: until, lastCheckinAt: this.now().toISOString() }, current.etag);
    } catch (error) {
      if (error instanceof StaleRecordError) return undefined;
      throw error;
    }
  }

  /** Advances one node as far as it can go now, e.g. after an operator's request. */
  async advance(cluster: string, node: string, log: Logger): Promise<NodeRecord | undefined> {
    const current = await this.deps.store.get(cluster, node);
    return current && (await this.run(current, this.deadline(), log)).value;
  }

  /**
   * The timer's pass over one cluster: expires leases past their TTL (loudly), frees slots no
   * record owns, and advances every node that is not waiting on its agent or an operator.
   */
  async reconcile(cluster: string, log: Logger, budgetMs = 4 * this.deps.stepBudgetMs): Promise<ReconcileReport> {
    const deadline = new Date(this.now().getTime() + budgetMs);
    const report: ReconcileReport = { cluster, advanced: 0, expired: [], orphansReleased: [], repaired: [], pending: 0, stuck: 0 };
    await this.expireLeases(cluster, report, log);

    const records = await this.deps.store.list(cluster);
    for (const record of orderForReconcile(records, pendingOrder(await this.deps.policy(cluster)))) {
      if (this.now() >= deadline) break;
      // No step waits here: the timer serves every node in one bounded pass.
      await this.run(record, deadline, log, { wait: false });
      report.advanced++;
    }
    // Shadow mode writes nothing, repairs included: beside kured, a cordon is kured's business.
    if ((await this.deps.policy(cluster)).mode !== "shadow") {
      await this.repairLeftovers(cluster, report, log).catch((error: Error) => log.warn(`leftover repair failed cluster=${cluster}, retried next tick: ${error.message}`));
    }
    const after = await this.deps.store.list(cluster);
    report.pending = after.filter((r) => r.value.state === "pending").length;
    report.stuck = after.filter((r) => r.value.state === "stuck").length;
    this.deps.telemetry.metric(telemetryMetrics.nodesPending, report.pending, { cluster });
    this.deps.telemetry.metric(telemetryMetrics.nodesStuck, report.stuck, { cluster });
    return report;
  }

  private deadline(): Date {
    return new Date(this.now().getTime() + this.deps.stepBudgetMs);
  }

  /**
   * Advances one node. Its Events are written in order behind its steps, not between them: each cost
   * the next step two API round trips (~50 ms a transition at concurrency 5 in the bench). The run
   * still waits for them before it returns, so no invocation ends with its Events unwritten.
   */
  private async run(start: Versioned<NodeRecord>, deadline: Date, log: Logger, how: RunOptions = {}): Promise<Versioned<NodeRecord>> {
    let telling: Promise<void> = Promise.resolve();
    const behind = (write: () => Promise<void>) => (telling = telling.then(write));
    try {
      return await this.runSteps(start, deadline, log, how, behind);
    } finally {
      await telling;
    }
  }

  private async runSteps(start: Versioned<NodeRecord>, deadline: Date, log: Logger, how: RunOptions, behind: (write: () => Promise<void>) => Promise<void>): Promise<Versioned<NodeRecord>> {
    const { cluster, node } = start.value;
    let policy = await this.deps.policy(cluster);
    let current = start;
    let freedSlot = false;
    let yielded = false;
    // A node served in another's stead that someone else moved on meanwhile is theirs to advance: going
    // on with it here repeated its drain pass in every release that listed it as pending.
    const takenOver = (reloaded: Versioned<NodeRecord>) => how.handOff === true && reloaded.value.state !== start.value.state;
    // The node as the last step left it, for the next step only (see `StepPorts.knownNode`).
    let knownNode: KubeNode | undefined;
    for (let i = 0; i < MAX_STEPS_PER_RUN && this.now() < deadline; i++) {
      const from = current.value.state;
      const ports = { ...this.ports(cluster, node, policy, deadline, how), knownNode };
      knownNode = undefined;
      // Shadow mode decides a new turn from reads alone; a lease an active turn began still finishes.
      const shadow = inShadow(policy, current.value);
      if (shadow) ports.kube = () => this.deps.kube(cluster).then(readOnlyClusterApi);
      let result;
      try {
        result = await STEPS[from](current.value, current.etag, ports);
      } catch (error) {
        // The checking-in agent's fresh review refused it (or could not run): that is the check-in's answer.
        if (error instanceof HttpError) throw error;
        if (error instanceof NodeChangedError) {
          // The node changed between the step's read and its write, so nothing was written: decide again.
          log.info(`node changed under the step cluster=${cluster} node=${node} state=${from}: ${error.message}`);
          const reloaded = await this.deps.store.get(cluster, node);
          if (!reloaded || takenOver(reloaded)) break;
          current = reloaded;
          continue;
        }
        log.error(`step failed cluster=${cluster} node=${node} state=${from}: ${(error as Error).message}`);
        if (how.checkinOf === node) how.failedIn = from;
        this.deps.telemetry.exception(error, { cluster, node, state: from });
        this.deps.telemetry.metric(telemetryMetrics.errors, 1, { cluster, node, state: from });
        break;
      }
      if (result.kind === "wait") {
        current = await this.recordWait(current, result.why, result.set);
        // The node's check-in may be held here for the wait it had before (behind others in the queue):
        // a gate holds it now, so the gate lifting must wake it.
        this.holds.gateHeld(cluster, node, current.value.heldByGate === true);
        const { event } = result;
        const waiting = current.value;
        // In line behind the transitions' Events, so that `kubectl describe node` lists them in order.
        if (event && !shadow) void behind(() => tellWait(ports.kube, waiting, event, log));
        if (result.yieldTo && !yielded) {
          // Serve the node ahead in the queue now, then look again: a slot may be left for this one too.
          yielded = true;
          const ahead = await this.deps.store.get(cluster, result.yieldTo);
          if (ahead) await this.run(ahead, deadline, log, { wait: how.wait, handOff: true });
          current = (await this.deps.store.get(cluster, node)) ?? current;
          continue;
        }
        break;
      }
      if (result.kind === "conflict") {
        if (result.policyVersion !== undefined) policy = await this.deps.policy(cluster, { atLeastVersion: result.policyVersion });
        const reloaded = await this.deps.store.get(cluster, node);
        if (!reloaded || takenOver(reloaded)) break;
        current = reloaded;
        continue;
      }
      const next = result.kind === "move" ? nextRecord(current.value, result.to, result.why, ports.now, { ...result.set, holdReason: undefined, heldByGate: undefined }) : result.record;
      try {
        if (result.kind === "move") current = await this.deps.store.replace(next, current.etag);
        else current = result.etag ? { value: next, etag: result.etag } : ((await this.deps.store.get(cluster, node)) ?? current);
      } catch (error) {
        if (!(error instanceof StaleRecordError)) throw error;
        const reloaded = await this.deps.store.get(cluster, node);
        if (!reloaded || takenOver(reloaded)) break;
        current = reloaded;
        continue;
      }
      // A state whose annotation is written before its step changes the node first: the step reads it.
      knownNode = annotatesBeforeStep(next.state) ? undefined : result.node;
      const handedToHeld = await this.recordTransition(from, next, ports.now, log, policy, { event: result.kind === "committed" ? result.event : undefined, quiet: shadow, behind });
      if (from === "releasing") freedSlot = true;
      if (from === "pending" && next.state === "cordoning") how.tookSlot = true;
      // The node's own check-in, held here, goes on with its turn (and waits for its drain): stepping it
      // here too only raced it.
      if (how.handOff && handedToHeld) break;
    }
    if (freedSlot) await this.startNextPending(cluster, deadline, log, how.wait);
    return current;
  }

  /**
   * Hands a freed slot to the longest-waiting pending node at once, instead of at its next check-in.
   * The queue comes from the listing queued check-ins share: fifty releases at once each listing every
   * pending record (1,000 of them) was most of the storage's and the app's work at 1,000 nodes. A
   * listing up to a second old may miss a node queued since: when it left the slot free, a fresh one is made.
   */
  private async startNextPending(cluster: string, deadline: Date, log: Logger, wait?: boolean): Promise<void> {
    const shared = this.recentRecords(cluster);
    const slotLeft = await this.handOver(cluster, shared.records, deadline, log, wait);
    if (slotLeft && shared.reused) await this.handOver(cluster, this.recentRecords(cluster, true).records, deadline, log, wait);
  }

  /** Steps the queued nodes of `listing` until one takes a freed slot or the lock is full; answers whether a slot was left free. */
  private async handOver(cluster: string, listing: Promise<Versioned<NodeRecord>[]>, deadline: Date, log: Logger, wait?: boolean): Promise<boolean> {
    // The lock is read while the listing is in flight: one round trip less before the slot is handed on.
    const [listed, view, policy] = await Promise.all([listing, this.deps.lock.view(cluster), this.deps.policy(cluster)]);
    const order = pendingOrder(policy);
    // A node the lock row shows holding a slot took it since the listing was made: it is not queued.
    const holding = new Set(view.holders.map((h) => h.node));
    const queued = listed.filter((r) => r.value.state === "pending" && !holding.has(r.value.node)).sort((a, b) => order(a.value, b.value));
    // The first `free` nodes all take a slot in this round, in whatever order: releases at once each
    // begin at another of them, where all beginning at the first made them race for one node each.
    const free = policy.concurrency - view.holders.length;
    const begin = Math.floor(Math.random() * Math.max(1, Math.min(free, queued.length)));
    const waiting = [...queued.slice(begin, Math.max(begin, free)), ...queued.slice(0, begin), ...queued.slice(Math.max(begin, free))];
    // Candidates step in queue order until one takes the freed slot or the lock is full. Then the next few only have their
    // "waiting for a free lock slot (held by …)" rewritten from that one lock read (a write each, only
    // if it changed), so that no reason names the node just released; the rest of a long queue refresh
    // theirs at their own check-ins, or a release would cost O(queue) and, at concurrency 5, stepped
    // every queued node in each of five releases at once.
    let full: LockHolder[] | undefined;
    let served = 0;
    for (const candidate of waiting) {
      if (this.now() >= deadline || served++ >= policy.concurrency + HOLD_REFRESH_AFTER_HANDOFF) return false;
      if (full) {
        await this.refreshSlotWait(candidate, full);
        continue;
      }
      // Read again: the listing may be a moment old, and a candidate someone else started is passed over.
      const current = await this.deps.store.get(cluster, candidate.value.node);
      if (current?.value.state !== "pending") continue;
      const handOff: RunOptions = { wait, handOff: true, queuedAhead: queued.indexOf(candidate) };
      await this.run(current, deadline, log, handOff);
      const { holders } = await this.deps.lock.view(cluster);
      if (holders.length >= policy.concurrency) full = holders;
      // This release handed the slot it freed to a node: any other free slot is another release's to
      // hand over, or the next check-in's. Filling every free slot from each of fifty releases at once
      // made them all race for the same nodes.
      else if (handOff.tookSlot) return false;
    }
    return full === undefined;
  }

  /** Rewrites a slot wait's holder names from a fresh lock read; a record changed since it was listed is left to its own step. */
  private async refreshSlotWait(candidate: Versioned<NodeRecord>, holders: LockHolder[]): Promise<void> {
    const holdReason = slotsTaken(holders);
    if (!waitsForSlot(candidate.value) || candidate.value.holdReason === holdReason) return;
    try {
      await this.deps.store.replace({ ...candidate.value, holdReason }, candidate.etag);
    } catch (error) {
      if (!(error instanceof StaleRecordError)) throw error;
    }
  }

  /** Undoes what lost or late node writes left behind (see `leftoverRepair`), each write conditional on the node as listed. */
  private async repairLeftovers(cluster: string, report: ReconcileReport, log: Logger): Promise<void> {
    const kube = await this.deps.kube(cluster);
    const marked = (await kube.listNodes()).filter((n) => n.annotations[nodeAnnotations.cordonedBy] !== undefined || n.annotations[nodeAnnotations.state] !== undefined);
    for (const node of marked) {
      const change = leftoverRepair(node, (await this.deps.store.get(cluster, node.name))?.value);
      if (!change) continue;
      try {
        await kube.updateNode(node, change);
      } catch (error) {
        // Changed since it was listed (e.g. a lease just cordoned it): not a leftover, or the next tick's.
        // Any other failure (a timeout) is the next tick's too; the rest of the pass goes on.
        if (!(error instanceof NodeChangedError)) log.warn(`repair of node cluster=${cluster} node=${node.name} failed, retried next tick: ${(error as Error).message}`);
        continue;
      }
      report.repaired.push(node.name);
      const lease = node.annotations[nodeAnnotations.cordonedBy];
      const what = change.unschedulable === false ? `uncordoned it (cordon of lease ${lease})` : "removed Rollcall's annotations";
      log.warn(`repaired node cluster=${cluster} node=${node.name}: ${what}; no node record accounts for it (a lost or late write)`);
    }
  }

  private async expireLeases(cluster: string, report: ReconcileReport, log: Logger): Promise<void> {
    const now = this.now();
    const { holders } = await this.deps.lock.view(cluster);
    for (const holder of holders.filter((h) => Date.parse(h.expiresAt) <= now.getTime())) {
      const current = await this.deps.store.get(cluster, holder.node);
      const owned = current && current.value.leaseId === holder.leaseId && LOCK_HOLDING_STATES.has(current.value.state);
      if (!owned) {
        await this.deps.lock.release(cluster, holder.node, holder.leaseId);
        report.orphansReleased.push(holder.node);
        log.warn(`released an orphaned lock slot cluster=${cluster} node=${holder.node} lease=${holder.leaseId}: no node record owns it`);
        continue;
      }
      const expiry = onLeaseExpired(current.value);
      if (!expiry) continue;
      const next = nextRecord(current.value, expiry.to, expiry.why, now, expiry.set);
      report.expired.push(holder.node);
      if (expiry.to === "stuck") {
        // The episode goes into history as it starts, in the transaction that frees the slot: it may never end.
        const episode = historyAction(historyEntry({ ...current.value, why: expiry.why }, now, "stuck"));
        const released = await this.deps.lock.release(cluster, holder.node, holder.leaseId, [this.deps.store.replaceAction(next, current.etag), episode]);
        if (released.kind === "conflict") continue;
        this.deps.telemetry.event(telemetryEvents.stuck, { cluster, node: holder.node, state: current.value.state, why: expiry.why });
      } else {
        try {
          await this.deps.store.replace(next, current.etag);
        } catch (error) {
          if (error instanceof StaleRecordError) continue;
          throw error;
        }
      }
      log.error(`STUCK NODE cluster=${cluster} node=${holder.node} state=${current.value.state} lease=${holder.leaseId}: ${expiry.why}`);
      await this.recordTransition(current.value.state, next, now, log, await this.deps.policy(cluster));
    }
  }

  private ports(cluster: string, node: string, policy: Policy, deadline: Date, how: RunOptions): StepPorts {
    const now = this.now();
    const left = deadline.getTime() - now.getTime() - WAIT_RESERVE * this.deps.stepBudgetMs;
    // Only the answer to the node's own agent is worth waiting for: it carries what the wait was for
    // (the reboot order); a node served in another's stead (a freed slot) waits at its own check-in.
    const waits = how.wait !== false && how.checkinOf === node;
    return {
      now,
      waitMs: waits ? Math.max(0, Math.min(this.deps.stepWaitMs ?? 3_000, left)) : 0,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      clock: () => this.now(),
      checkinOf: how.checkinOf,
      recentRecords: (c) => this.recentRecords(c).values,
      ...(how.queuedAhead !== undefined && { queuedAhead: how.queuedAhead }),
      agentProblem: async (record) => {
        if (record.node !== how.checkinOf) return this.deps.agentProblem?.(cluster, record);
        const review = how.reviewAfresh;
        how.reviewAfresh = undefined;
        await review?.();
        return undefined;
      },
      policy,
      kube: () => this.deps.kube(cluster),
      lock: this.deps.lock,
      store: this.deps.store,
      gate: this.deps.gate,
      newLeaseId: this.deps.newLeaseId ?? randomUUID,
    };
  }

  /** Keeps the latest reason a node is held (for the status API), written only when it changes. */
  private async recordWait(current: Versioned<NodeRecord>, why: string, set: Partial<NodeRecord> = {}): Promise<Versioned<NodeRecord>> {
    const holdReason = current.value.state === "idle" ? undefined : why;
    const changes = { ...set, holdReason };
    if (!differs(current.value, changes)) return current;
    try {
      return await this.deps.store.replace({ ...current.value, ...changes }, current.etag);
    } catch (error) {
      if (error instanceof StaleRecordError) return (await this.deps.store.get(current.value.cluster, current.value.node)) ?? current;
      throw error;
    }
  }

  private async createOrReload(record: NodeRecord, log: Logger): Promise<Versioned<NodeRecord>> {
    try {
      const created = await this.deps.store.create(record);
      log.info(`node registered cluster=${record.cluster} node=${record.node} bootId=${record.bootId} agent=${record.agentVersion}`);
      return created;
    } catch (error) {
      if (!(error instanceof StaleRecordError)) throw error;
      const existing = await this.deps.store.get(record.cluster, record.node);
      if (!existing) throw error;
      return existing;
    }
  }

  private async writeFacts(current: Versioned<NodeRecord>, facts: ReportedFacts): Promise<Versioned<NodeRecord>> {
    for (;;) {
      try {
        return await this.deps.store.replace({ ...current.value, ...facts, ...registered(current.value, facts), lastCheckinAt: this.now().toISOString() }, current.etag);
      } catch (error) {
        if (!(error instanceof StaleRecordError)) throw error;
        const reloaded = await this.deps.store.get(current.value.cluster, current.value.node);
        if (!reloaded) throw error;
        current = reloaded;
      }
    }
  }

  /**
   * The log line, telemetry and notification of one transition, after it was written. `tell.event`: the Event the step named; `tell.quiet`: a shadow-mode transition, told to no one in
   * the cluster; `tell.behind`: the run's queue of Event writes, which this one joins without waiting
   * unless it writes the node object too (an annotation racing the next step's node write made that
   * step read and write again). Returns whether the transition woke the node's check-in held on this instance.
   */
  private async recordTransition(from: NodeState, next: NodeRecord, now: Date, log: Logger, policy: Policy, tell: { event?: StepEvent; quiet?: boolean; behind?: (write: () => Promise<void>) => Promise<void> } = {}): Promise<boolean> {
    logTransition(log, from, next);
    const { cluster, node } = next;
    const woke = this.holds.wake(cluster, node);
    if (!tell.quiet) {
      const write = () => tellNode(() => this.deps.kube(cluster), from, next, log, tell.event);
      if (!tell.behind) await write();
      else if (annotatesBeforeStep(next.state)) await tell.behind(write);
      else void tell.behind(write);
    }
    this.deps.telemetry.event(telemetryEvents.transition, { cluster, node, from, to: next.state, why: next.why, leaseId: next.leaseId });
    const since = (field: string | undefined) => (field ? (now.getTime() - Date.parse(field)) / 1000 : undefined);
    const phase: [string, number | undefined] | undefined =
      from === "pending" && next.state === "cordoning"
        ? [telemetryMetrics.lockWaitSeconds, since(next.pendingSince)]
        : next.state === "reboot-ordered"
          ? [telemetryMetrics.drainSeconds, since(next.drainStartedAt)]
          : next.state === "rebooted"
            ? [telemetryMetrics.rebootSeconds, since(next.rebootOrderedAt)]
            : from === "rebooted" && next.outcome === "completed"
              ? [telemetryMetrics.returnSeconds, since(next.rebootedAt)]
              : undefined;
    if (phase && phase[1] !== undefined) this.deps.telemetry.metric(phase[0], phase[1], { cluster, node });
    await notifyTransition(policy, from, next, log);
    return woke;
  }
}

/** A listing of a cluster's records that queue checks share (see `recentRecords`); `values` derived once, not per check. */
interface Listing {
  records: Promise<Versioned<NodeRecord>[]>;
  values: Promise<NodeRecord[]>;
  startedAt: number;
  reuseMs: number;
}

interface RunOptions {
  /** The node whose agent's check-in this run answers. */
  checkinOf?: string;
  /** `false`: no step waits within this run (the reconcile timer); otherwise only the node whose check-in it answers waits. */
  wait?: boolean;
  /** Set by the run: the state whose step failed for the checking-in node, if one did. */
  failedIn?: NodeState;
  /** The node is served in another's stead (a freed slot, a yield): stop when a reload shows someone else moved it on. */
  handOff?: boolean;
  /** A remembered review let the checking-in agent in: review it afresh before its node takes a slot (throws a refusal). */
  reviewAfresh?: () => Promise<void>;
  /** Set by the run: it took a lock slot for the node. */
  tookSlot?: boolean;
  /** The node's place in the queue as the release serving it listed it (see `StepPorts.queuedAhead`). */
  queuedAhead?: number;
}

type ReportedFacts = Pick<NodeRecord, "bootId" | "rebootRequired" | "reasons" | "agentVersion" | "rebootReportedBy" | "agentPodName" | "agentPodUid" | "checkinHeldUntil">;

function reportedFacts(request: CheckinRequest): ReportedFacts {
  return { bootId: request.bootId, rebootRequired: request.rebootRequired, reasons: request.reasons, agentVersion: request.agentVersion };
}

/**
 * An idle record without a boot id was known only from an operator request, or its machine left the
 * cluster (a release forgets the boot id; a pending node found gone keeps it): its `why` says so until
 * an agent checks in from the node with a boot id of its own.
 */
function registered(record: NodeRecord, facts: ReportedFacts): Partial<NodeRecord> {
  if (record.state !== "idle" || facts.bootId === undefined || facts.bootId === record.bootId) return {};
  if (record.bootId !== undefined && record.why !== NODE_GONE) return {};
  return { why: `the agent on this node checked in (boot id ${facts.bootId})` };
}

function factsChanged(record: NodeRecord, facts: ReportedFacts): boolean {
  return differs(record, facts);
}

function differs(record: NodeRecord, changes: Partial<NodeRecord>): boolean {
  return Object.entries(changes).some(([key, value]) => JSON.stringify(record[key as keyof NodeRecord]) !== JSON.stringify(value));
}

/** Lock holders first (they block everyone), then pending nodes in queue order, then the rest. */
function orderForReconcile(records: Versioned<NodeRecord>[], queue: (a: NodeRecord, b: NodeRecord) => number): Versioned<NodeRecord>[] {
  const rank = (r: NodeRecord) => (LOCK_HOLDING_STATES.has(r.state) ? 0 : r.state === "pending" ? 1 : 2);
  return records
    .filter((r) => r.value.state !== "quarantined" && (r.value.state !== "idle" || wantsTurn(r.value)))
    .sort((a, b) => rank(a.value) - rank(b.value) || queue(a.value, b.value));
}
