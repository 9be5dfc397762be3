/**
 * Reads the orchestrator's transition log lines (`transition cluster=… node=… from=… to=…`, one per
 * state change, see shared/orchestrator/transitionLog.ts) into per-node timelines, phase durations
 * and lock hand-offs: the same figures for the simulated and for a real cluster.
 */
export interface Transition {
  at: number;
  cluster: string;
  node: string;
  from: string;
  to: string;
  lease?: string;
  why: string;
}

const LINE = /transition cluster=(\S+) node=(\S+) from=(\S+) to=(\S+)(?: lease=(\S+))? why=("(?:[^"\\]|\\.)*")/;

export function parseTransition(line: string, at = Date.now()): Transition | undefined {
  const m = line.match(LINE);
  if (!m) return undefined;
  let why = m[6]!;
  try {
    why = JSON.parse(why) as string;
  } catch {
    // keep the raw text
  }
  return { at, cluster: m[1]!, node: m[2]!, from: m[3]!, to: m[4]!, lease: m[5], why };
}

export const PHASES = ["wait", "cordon", "drain", "reboot", "return"] as const;
export type Phase = (typeof PHASES)[number];

/** One node's trip through the lock: when it entered each state. */
export interface NodeRun {
  node: string;
  pendingAt?: number;
  lockedAt?: number;
  drainingAt?: number;
  rebootOrderedAt?: number;
  rebootedAt?: number;
  releasingAt?: number;
  idleAt?: number;
  /** Completed (back to idle after a confirmed reboot). */
  completed: boolean;
}

export class TransitionLog {
  readonly transitions: Transition[] = [];
  private readonly runs = new Map<string, NodeRun[]>();

  add(t: Transition): void {
    this.transitions.push(t);
    let runs = this.runs.get(t.node);
    if (!runs) this.runs.set(t.node, (runs = []));
    let run = runs.at(-1);
    if (!run || (run.idleAt !== undefined && t.to === "pending") || (!run.pendingAt && t.to === "pending" && run.lockedAt)) {
      run = { node: t.node, completed: false };
      runs.push(run);
    }
    switch (t.to) {
      case "pending":
        run.pendingAt ??= t.at;
        break;
      case "cordoning":
        run.lockedAt = t.at;
        break;
      case "draining":
        run.drainingAt = t.at;
        break;
      case "reboot-ordered":
        run.rebootOrderedAt = t.at;
        break;
      case "rebooted":
        run.rebootedAt = t.at;
        break;
      case "releasing":
        run.releasingAt = t.at;
        break;
      case "idle":
        run.idleAt = t.at;
        run.completed = run.rebootedAt !== undefined;
        break;
    }
  }

  addLine(line: string, at = Date.now()): Transition | undefined {
    const t = parseTransition(line, at);
    if (t) this.add(t);
    return t;
  }

  nodeRuns(): NodeRun[] {
    return [...this.runs.values()].flat();
  }

  /**
   * Phase durations of completed runs (ms): wait = pending → lock taken, cordon = lock → cordoned,
   * drain = cordoned → reboot ordered, reboot = ordered → new boot id reported, return = new boot id → back in service.
   */
  phaseDurations(): Record<Phase, number[]> {
    const out: Record<Phase, number[]> = { wait: [], cordon: [], drain: [], reboot: [], return: [] };
    for (const r of this.nodeRuns().filter((run) => run.completed)) {
      push(out.wait, r.pendingAt, r.lockedAt);
      push(out.cordon, r.lockedAt, r.drainingAt);
      push(out.drain, r.drainingAt, r.rebootOrderedAt);
      push(out.reboot, r.rebootOrderedAt, r.rebootedAt);
      push(out.return, r.rebootedAt, r.idleAt);
    }
    return out;
  }

  /**
   * Lock hand-offs: each slot freed by a node (releasing → idle) paired with the next cordon
   * (cordoning → draining) of another node that was already waiting (pending) when the slot was
   * freed. A node that asked only later starts a separate rollout: the gap is no hand-off.
   * Returns each hand-off's latency in ms.
   */
  handoffs(): number[] {
    const releases = this.transitions.filter((t) => t.from === "releasing" && t.to === "idle");
    const cordons = this.transitions.filter((t) => t.from === "cordoning" && t.to === "draining");
    const latencies: number[] = [];
    const used = new Set<Transition>();
    for (const release of releases) {
      const next = cordons.find((c) => !used.has(c) && c.at >= release.at && c.node !== release.node && this.waitingAt(c, release.at));
      if (!next) continue;
      used.add(next);
      latencies.push(next.at - release.at);
    }
    return latencies;
  }

  /** Whether the run that `cordon` belongs to was pending already at `at`. */
  private waitingAt(cordon: Transition, at: number): boolean {
    const run = this.runs.get(cordon.node)?.find((r) => r.drainingAt === cordon.at || (r.lockedAt !== undefined && r.lockedAt <= cordon.at && (r.drainingAt ?? Infinity) >= cordon.at));
    return run?.pendingAt !== undefined && run.pendingAt <= at;
  }
}

function push(list: number[], from: number | undefined, to: number | undefined): void {
  if (from !== undefined && to !== undefined) list.push(to - from);
}

export function percentile(values: number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index];
}

export function mean(values: number[]): number | undefined {
  return values.length === 0 ? undefined : values.reduce((a, b) => a + b, 0) / values.length;
}
