import { basename } from "node:path";
import type { CheckinRequest, CheckinResponse } from "../shared/protocol/checkin";
import { backoffDelay, withJitter } from "./backoff";
import { boundAnswer } from "./bounds";
import type { BootIdReader } from "./bootId";
import type { Checker } from "./checker";
import { RejectedError, UnavailableError, type OrchestratorClient } from "./client";
import { type FileWatch, watchFileChanges } from "./fileWatch";
import { isoTime } from "./isoTime";
import { type ActedLease, DamagedLeaseError, type LeaseStore } from "./leaseFile";
import type { AgentLog } from "./log";
import type { Rebooter } from "./rebooter";

export interface AgentLoopSettings {
  agentVersion: string;
  jitter: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Multiplies answered intervals (simulation only; 1 in production). */
  intervalScale: number;
  /** The files whose changes start a check-in at once; undefined waits out the intervals. */
  watch?: {
    /** Undefined when a command decides. */
    sentinelFile?: string;
    bootIdFile?: string;
    /** How often a file that cannot be watched is read instead (`ROLLCALL_WATCH_POLL_SECONDS`). */
    pollMs: number;
  };
}

export interface AgentParts {
  checker: Checker;
  rebooter: Rebooter;
  bootId: BootIdReader;
  client: OrchestratorClient;
  leases: LeaseStore;
  log: AgentLog;
  random?: () => number;
}

/** What one check-in cycle did, for the simulation's view and for tests. */
export type CycleOutcome =
  | { kind: "answered"; answer: CheckinResponse; request: CheckinRequest; rebooted: boolean; nextMs: number }
  | { kind: "failed"; error: string; unavailable: boolean; nextMs: number };

/**
 * The agent's loop. It never decides to reboot on its own: it reports the node's facts, and reboots
 * only on a `reboot` answer carrying a lease it has not rebooted for before (the lease is written
 * to disk before the reboot command runs, so a restart cannot reboot twice for one lease).
 */
export class AgentLoop {
  private timer?: NodeJS.Timeout;
  private watches: FileWatch[] = [];
  private running?: Promise<void>;
  private again = false;
  private stopped = true;
  private failures = 0;
  private lastRequired?: boolean;
  private lastBootId?: string;
  private readonly random: () => number;
  readonly listeners = new Set<(outcome: CycleOutcome) => void>();
  /** How many times the reboot was started, for tests and the simulation. */
  reboots = 0;
  checkins = 0;

  constructor(
    private readonly settings: AgentLoopSettings,
    private readonly parts: AgentParts,
  ) {
    this.random = parts.random ?? Math.random;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.startWatch();
    this.schedule(0);
  }

  /** Stops timers and the watch and waits for a check-in in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const watch of this.watches) watch.close();
    this.watches = [];
    await this.running;
  }

  /** Check in as soon as possible (coalesced with one in flight). Ignored while backing off. */
  checkInNow(): void {
    if (this.stopped || this.failures > 0) return;
    if (this.running) this.again = true;
    else this.schedule(0);
  }

  onCycle(listener: (outcome: CycleOutcome) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), ms);
  }

  private async tick(): Promise<void> {
    if (this.running || this.stopped) return;
    let next = 0;
    this.running = this.cycle().then((outcome) => {
      next = outcome.nextMs;
      for (const listener of this.listeners) listener(outcome);
    });
    try {
      await this.running;
    } finally {
      this.running = undefined;
    }
    if (this.again && this.failures === 0) {
      this.again = false;
      next = 0;
    }
    this.schedule(next);
  }

  /** One check-in: read the facts, report them, act on the answer. Never throws. */
  async cycle(): Promise<CycleOutcome> {
    const { log } = this.parts;
    let request: CheckinRequest;
    try {
      request = await this.facts();
    } catch (error) {
      return this.failed(`cannot read the node's facts: ${(error as Error).message}`, false);
    }
    let answer: CheckinResponse;
    let askedSeconds: number | undefined;
    try {
      this.checkins++;
      ({ answer, askedSeconds } = boundAnswer(await this.parts.client.checkin(request)));
    } catch (error) {
      const unavailable = error instanceof UnavailableError;
      const status = error instanceof RejectedError && error.status ? ` (HTTP ${error.status})` : "";
      return this.failed(`${(error as Error).message}${status}`, unavailable);
    }
    this.failures = 0;
    const nextMs = withJitter(answer.nextCheckinSeconds * 1000 * this.settings.intervalScale, this.settings.jitter, this.random);
    const fields = {
      action: answer.action,
      state: answer.state,
      lease: answer.leaseId,
      rebootRequired: request.rebootRequired,
      bootId: request.bootId,
      next: `${(nextMs / 1000).toFixed(1)}s`,
      reason: answer.reason,
    };
    if (askedSeconds !== undefined) log("warn", "the orchestrator asked for an interval longer than the agent allows: waiting the longest allowed", { asked: `${askedSeconds}s`, next: fields.next });
    if (answer.action !== "reboot") {
      log("info", answer.action === "none" ? "checked in: nothing to do" : "checked in: waiting for the orchestrator", fields);
      return { kind: "answered", answer, request, rebooted: false, nextMs };
    }
    const rebooted = await this.rebootFor(answer, request, fields);
    return { kind: "answered", answer, request, rebooted, nextMs };
  }

  private async facts(): Promise<CheckinRequest> {
    const [bootId, status] = await Promise.all([this.parts.bootId.read(), this.parts.checker.check()]);
    this.lastRequired = status.required;
    this.lastBootId = bootId;
    const request: CheckinRequest = { bootId, rebootRequired: status.required, reasons: status.reasons, agentVersion: this.settings.agentVersion };
    let acted: ActedLease | undefined;
    try {
      acted = await this.actedLease(bootId);
    } catch (error) {
      // Checking in anyway is what lets the orchestrator confirm a reboot (it compares boot ids);
      // only the reboot itself needs the record, and rebootFor() refuses without it.
      this.parts.log("error", "cannot read the lease state: checking in without it", { error: (error as Error).message });
    }
    if (acted?.leaseId) request.leaseId = acted.leaseId;
    return request;
  }

  /**
   * The lease record, replacing a damaged one so that the agent never goes silent over it, while
   * keeping "at most one reboot per lease". The orchestrator orders a reboot only to an agent still
   * on the boot it had when the order was given (shared/orchestrator/answer.ts), so a record written
   * before this boot cannot stand for an order still open: it is put aside. One written during this
   * boot may be the lease the node is already rebooting for: it is replaced by a record bound to this
   * boot whose lease is unknown, and rebootFor() takes the next lease ordered during this boot to be it.
   */
  private async actedLease(bootId: string): Promise<ActedLease | undefined> {
    const { leases, log } = this.parts;
    try {
      return await leases.read();
    } catch (error) {
      if (!(error instanceof DamagedLeaseError)) throw error;
      const duringThisBoot = error.writtenAt.getTime() >= this.parts.bootId.bootedAt().getTime();
      await leases.putAside();
      const guard: ActedLease | undefined = duringThisBoot ? { bootId, rebootedAt: isoTime(error.writtenAt) } : undefined;
      if (guard) await leases.write(guard);
      log("error", `the lease record ${error.message}, so it is damaged: put aside and ${guard ? "replaced by one that refuses the next lease ordered during this boot (it may be the one already rebooted for)" : "dropped (written before this boot, it holds no order still open)"}`, {
        writtenAt: isoTime(error.writtenAt),
      });
      return guard;
    }
  }

  private async rebootFor(answer: CheckinResponse, request: CheckinRequest, fields: Record<string, string | number | boolean | undefined>): Promise<boolean> {
    const { log, leases, rebooter } = this.parts;
    if (!answer.leaseId) {
      log("warn", "reboot answer without a lease: not rebooting", fields);
      return false;
    }
    let acted;
    try {
      acted = await this.actedLease(request.bootId);
    } catch (error) {
      log("error", `cannot read the lease state, so a reboot could repeat: not rebooting (${(error as Error).message})`, fields);
      return false;
    }
    if (acted?.leaseId === answer.leaseId) {
      log("info", "already rebooted for this lease: not rebooting again", { ...fields, rebootedAt: acted.rebootedAt, previousBootId: acted.bootId });
      return false;
    }
    if (acted && acted.leaseId === undefined && acted.bootId === request.bootId) {
      try {
        await leases.write({ ...acted, leaseId: answer.leaseId });
      } catch (error) {
        log("error", `cannot record the lease: not rebooting (${(error as Error).message})`, fields);
        return false;
      }
      log("error", "the lease record was damaged during this boot, so this lease may be the one already rebooted for: recording it without rebooting (if the node did not reboot, the orchestrator marks it stuck when the lease expires; the next lease reboots)", fields);
      return false;
    }
    try {
      await leases.write({ leaseId: answer.leaseId, bootId: request.bootId, rebootedAt: isoTime(new Date()) });
    } catch (error) {
      log("error", `cannot record the lease before rebooting: not rebooting (${(error as Error).message})`, fields);
      return false;
    }
    log("info", `rebooting with ${rebooter.describe}`, fields);
    this.reboots++;
    try {
      await rebooter.reboot(answer.leaseId);
    } catch (error) {
      log("error", `the reboot failed; not retrying for this lease (the orchestrator marks the node stuck when the lease expires): ${(error as Error).message}`, fields);
    }
    return true;
  }

  private failed(error: string, unavailable: boolean): CycleOutcome {
    const nextMs = backoffDelay(this.failures, this.settings.backoffBaseMs, this.settings.backoffMaxMs, this.random);
    this.failures++;
    this.parts.log(unavailable ? "warn" : "error", unavailable ? "orchestrator unavailable: backing off" : "check-in failed: backing off", {
      error,
      attempt: this.failures,
      next: `${(nextMs / 1000).toFixed(1)}s`,
    });
    return { kind: "failed", error, unavailable, nextMs };
  }

  /** Starts the watches on the sentinel and the boot id; a file that cannot be watched is polled (fileWatch.ts). */
  private startWatch(): void {
    const watch = this.settings.watch;
    if (!watch) return;
    const { sentinelFile, bootIdFile, pollMs } = watch;
    const onPolling = (what: string) => (reason: string, error?: Error) =>
      this.parts.log(error ? "warn" : "info", `${reason}: reading the ${what} every ${pollMs / 1000} s instead`, error ? { error: error.message } : {});
    if (sentinelFile) {
      this.watches.push(watchFileChanges(sentinelFile, () => void this.onSentinelEvent(), { pollMs, alsoNames: [`${basename(sentinelFile)}.pkgs`], onPolling: onPolling("sentinel") }));
    }
    if (bootIdFile) this.watches.push(watchFileChanges(bootIdFile, () => void this.onBootIdEvent(), { pollMs, onPolling: onPolling("boot id") }));
  }

  private async onSentinelEvent(): Promise<void> {
    if (this.stopped) return;
    let required: boolean;
    try {
      required = (await this.parts.checker.check()).required;
    } catch {
      return;
    }
    if (required === this.lastRequired) return;
    this.lastRequired = required;
    this.parts.log("info", required ? "sentinel appeared: checking in now" : "sentinel removed: checking in now", { file: this.settings.watch?.sentinelFile });
    this.checkInNow();
  }

  private async onBootIdEvent(): Promise<void> {
    if (this.stopped) return;
    let bootId: string;
    try {
      bootId = await this.parts.bootId.read();
    } catch {
      return;
    }
    if (bootId === this.lastBootId) return;
    this.lastBootId = bootId;
    this.parts.log("info", "the boot id changed: checking in now", { bootId });
    this.checkInNow();
  }
}
