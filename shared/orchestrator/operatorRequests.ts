import { randomUUID } from "node:crypto";
import type { TransactionAction } from "@azure/data-tables";
import { historyAction, historyEntry } from "../history/history";
import type { ClusterApiFactory } from "../kube/connect";
import { type ManualRequest, type NodeRecord, type NodeStore, StaleRecordError, type Versioned } from "../node/nodeRecord";
import { LOCK_HOLDING_STATES, type NodeState } from "../node/stateMachine";
import type { Logger } from "./transitionLog";
import type { Orchestrator } from "./orchestrator";

/**
 * What operators ask of a node through the API. Each action is a compare-and-swap on the node's
 * record followed by an immediate advance, so it takes effect without waiting for a check-in.
 */

export type RequestInput = Pick<ManualRequest, "reason" | "requestedBy" | "mode" | "priority"> & { notBefore?: string };

export type RequestResult =
  | { kind: "accepted"; request: ManualRequest; state: NodeState }
  /** Asked before: the same request stands (idempotent). */
  | { kind: "existing"; request: ManualRequest; state: NodeState }
  /** A sentinel reboot of this node is already under way and will satisfy the request. */
  | { kind: "in-progress"; state: NodeState; leaseId?: string }
  | { kind: "unknown-node" }
  /** A reboot needs the node's agent, and none has checked in from this node yet. */
  | { kind: "no-agent" };

export type CancelResult =
  | { kind: "cancelled"; request: ManualRequest; state: NodeState }
  | { kind: "nothing-to-cancel" }
  | { kind: "too-late"; state: NodeState; since: string };

export type RetryResult = { kind: "retried"; state: NodeState } | { kind: "not-drain-failed"; state: NodeState } | { kind: "unknown-node" };

export type ReleaseResult = { kind: "released"; state: NodeState } | { kind: "not-releasable"; state: NodeState } | { kind: "unknown-node" };

/** A request may be withdrawn until its drain begins. */
const CANCELLABLE: ReadonlySet<NodeState> = new Set(["idle", "pending", "cordoning", "drain-failed"]);
const RELEASABLE: ReadonlySet<NodeState> = new Set(["maintenance", "stuck", "quarantined"]);

export class OperatorRequests {
  constructor(
    private readonly store: NodeStore,
    private readonly kube: ClusterApiFactory,
    private readonly orchestrator: Orchestrator,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async request(cluster: string, node: string, input: RequestInput, log: Logger): Promise<RequestResult> {
    let current = await this.store.get(cluster, node);
    if (!current) {
      if (!(await (await this.kube(cluster)).getNode(node))) return { kind: "unknown-node" };
      current = await this.createIdle(cluster, node);
    }
    for (;;) {
      const record = current.value;
      if (record.request && !record.request.cancelledBy) return { kind: "existing", request: record.request, state: record.state };
      if (input.mode === "reboot" && !record.bootId) return { kind: "no-agent" };
      if (LOCK_HOLDING_STATES.has(record.state) && input.mode === "reboot") {
        return { kind: "in-progress", state: record.state, leaseId: record.leaseId };
      }
      const request: ManualRequest = { id: randomUUID(), requestedAt: this.clock().toISOString(), ...input };
      const written = await this.tryReplace(current, { ...record, request });
      if (written) {
        log.info(`reboot requested cluster=${cluster} node=${node} mode=${input.mode} by=${JSON.stringify(input.requestedBy)} request=${request.id}`);
        const advanced = await this.orchestrator.advance(cluster, node, log);
        return { kind: "accepted", request, state: advanced?.state ?? record.state };
      }
      current = (await this.store.get(cluster, node))!;
    }
  }

  async cancel(cluster: string, node: string, by: string, log: Logger): Promise<CancelResult> {
    for (;;) {
      const current = await this.store.get(cluster, node);
      const request = current?.value.request;
      if (!current || !request || request.cancelledBy) return { kind: "nothing-to-cancel" };
      if (!CANCELLABLE.has(current.value.state)) return { kind: "too-late", state: current.value.state, since: current.value.since };
      // Once a slot is taken the release writes history: keep the request, marked, so it names who asked and who withdrew.
      // Before that, the history row is written here, with the record that drops the request.
      const holding = LOCK_HOLDING_STATES.has(current.value.state);
      const withdrawn = holding ? { ...request, cancelledBy: by } : undefined;
      const entry = historyEntry(
        { ...current.value, request: { ...request, cancelledBy: by }, why: `cancelled by ${by} before it took a lock slot` },
        this.clock(),
        "cancelled",
      );
      if (await this.tryReplace(current, { ...current.value, request: withdrawn }, holding ? [] : [historyAction(entry)])) {
        log.info(`request cancelled cluster=${cluster} node=${node} request=${request.id} by=${JSON.stringify(by)}`);
        const advanced = await this.orchestrator.advance(cluster, node, log);
        return { kind: "cancelled", request, state: advanced?.state ?? current.value.state };
      }
    }
  }

  async release(cluster: string, node: string, by: string, log: Logger): Promise<ReleaseResult> {
    for (;;) {
      const current = await this.store.get(cluster, node);
      if (!current) return { kind: "unknown-node" };
      if (!RELEASABLE.has(current.value.state)) return { kind: "not-releasable", state: current.value.state };
      if (await this.tryReplace(current, { ...current.value, releaseRequestedBy: by })) {
        log.info(`release requested cluster=${cluster} node=${node} state=${current.value.state} by=${JSON.stringify(by)}`);
        const advanced = await this.orchestrator.advance(cluster, node, log);
        return { kind: "released", state: advanced?.state ?? current.value.state };
      }
    }
  }

  /** Ends a drain-failed node's back-off now: it goes back to pending (the failure count stays, for the drain-failure policy). */
  async retry(cluster: string, node: string, by: string, log: Logger): Promise<RetryResult> {
    for (;;) {
      const current = await this.store.get(cluster, node);
      if (!current) return { kind: "unknown-node" };
      if (current.value.state !== "drain-failed") return { kind: "not-drain-failed", state: current.value.state };
      if (await this.tryReplace(current, { ...current.value, retryRequestedBy: by })) {
        log.info(`retry requested cluster=${cluster} node=${node} retryAt=${current.value.retryAt} failures=${current.value.failures} by=${JSON.stringify(by)}`);
        const advanced = await this.orchestrator.advance(cluster, node, log);
        return { kind: "retried", state: advanced?.state ?? current.value.state };
      }
    }
  }

  private async createIdle(cluster: string, node: string): Promise<Versioned<NodeRecord>> {
    const now = this.clock().toISOString();
    try {
      return await this.store.create({ cluster, node, state: "idle", since: now, why: "known from an operator request", rebootRequired: false, reasons: [] });
    } catch (error) {
      if (!(error instanceof StaleRecordError)) throw error;
      return (await this.store.get(cluster, node))!;
    }
  }

  private async tryReplace(current: Versioned<NodeRecord>, next: NodeRecord, alongWith: TransactionAction[] = []): Promise<boolean> {
    try {
      if (alongWith.length > 0) await this.store.replaceWith(next, current.etag, alongWith);
      else await this.store.replace(next, current.etag);
      return true;
    } catch (error) {
      if (error instanceof StaleRecordError) return false;
      throw error;
    }
  }
}
