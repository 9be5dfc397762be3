import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PipelinePolicy } from "@azure/core-rest-pipeline";
import type { RunningAzurite } from "../azurite/startAzurite";
import { startSimAgents } from "../demo/simAgents";
import { percentile, TransitionLog } from "../demo/transitions";
import { startFunctionsHost } from "../functionsHost/host";
import { getRollcall } from "../../shared/orchestrator/fromConfig";
import { benchCluster, rolloutSettings } from "./benchCluster";

/**
 * The benchmark's large rollout (issue 15): every node of a simulated cluster marked at once and
 * rolled at concurrency `concurrency` by real node agents (`startSimAgents`, one AgentLoop each)
 * against one in-process functions host and Azurite, with what must stay 0 counted (PDB violations,
 * double reboots, nodes left cordoned) and the run's cost counted per node. It throws, with the
 * figures counted so far, when the rollout does not complete within its bound.
 *
 * Why these settings. The busy interval is the product's default, 2 s, unscaled (`intervalScale` 1:
 * `agentEngaged` measures unscaled intervals, so a scale below 1 only adds load). The agents offer to
 * wait for their answer (`Prefer: wait`), so a queued node's check-in is held until its turn, up to
 * `ROLLCALL_CHECKIN_HOLD_SECONDS` (20 s), and a turn's own check-ins come at the busy interval. Drain
 * 1 s and reboot 3 s keep a round's work short enough for the run to fit the bench, where real
 * clusters take minutes.
 *
 * Measured on the bench machine (2026-12-01), 200 nodes: before the queue's fixes of that day (gates
 * asked for every node ahead, every queued check-in racing for the head node's slot) 13 completed in
 * 156 s; after them 200 in ~110 s; with held check-ins, one hand-over per release and the health
 * gate's last release kept in the lock row, 200 in ~65 s against an ideal of 16 s, with 0 violations;
 * with watched drains and hand-overs from the shared listing, 200 in ~28 s. 1,000 nodes finished at about
 * the bound (all 1,000 in 537 s in one run alone on that machine, 952 within it in the next); with
 * gate-held check-ins woken by budget changes, in 458–503 s; with the queue sorted once per listing
 * (its per-step filter and sort had been a sixth of the CPU), in 532 s. A kept-alive connection pool
 * for the Kubernetes client, tried twice, made this run fail (the full bench's left 177 nodes undone):
 * with it, agents whose requests timed out in the saturated process asked again while their first
 * check-in was still held, and the two holds woke each other in turn, tripling the storage operations
 * per node. With that fixed (2026-12-02), the pool's run alone finished 1,000 in 484 s. Most of the CPU
 * left is the simulator's controllers (a third: each rescans every pod after every write);
 * `addedPerRoundMs`, `transactionConflicts` and `executionMs` show the rest (see the README's figures).
 */

export interface LargeRolloutFigures {
  nodes: number;
  concurrency: number;
  drainMs: number;
  rebootMs: number;
  /** The busy interval the agents were told (`ROLLCALL_CHECKIN_BUSY_SECONDS`), unscaled. */
  busyIntervalMs: number;
  /** From the agents' start until every one had checked in once (its node registered). */
  registrationMs: number;
  /** Nodes back to idle after a confirmed reboot. */
  completed: number;
  wallMs: number;
  /** ceil(nodes / concurrency) rounds of drain + reboot. */
  idealMs: number;
  addedPerRoundMs: number;
  handoffP50Ms?: number;
  handoffP99Ms?: number;
  /** Most nodes unschedulable or NotReady at once, as the simulated API server saw; at most `concurrency`. */
  maxNodesUnavailable: number;
  pdbViolations: number;
  doubleReboots: number;
  nodesLeftCordoned: number;
  /** Check-ins the agents sent during the run, and their mean rate. */
  checkins: number;
  checkinsPerSecond: number;
  /** Mean execution time of the host's functions during the run (almost all check-ins). */
  executionMs: number;
  storageOpsPerNode: number;
  /** Entity-group transactions (lock acquires and releases) per node, and those refused on a stale ETag. */
  transactionsPerNode: number;
  transactionConflicts: number;
  kubeCallsPerNode: number;
  /** Of those: TokenReviews of check-ins (a queued node's check-in is reviewed every time). */
  tokenReviewsPerNode: number;
  /** Errors and warnings the orchestrator logged during the run. */
  orchestratorErrors: number;
  /** The first few of them, so that a run with errors says what they were. */
  orchestratorErrorSamples: string[];
  orchestratorWarnings: number;
  /** Peak resident memory of this process (host, simulated cluster and agents) during the run. */
  peakRssMb: number;
}

export async function largeRollout(
  azurite: RunningAzurite,
  o: { nodes: number; concurrency: number; table: string; settings: (s: Record<string, string>) => () => void; drainMs?: number; rebootMs?: number },
): Promise<LargeRolloutFigures> {
  const drainMs = o.drainMs ?? 1_000;
  const rebootMs = o.rebootMs ?? 3_000;
  const busySeconds = 2;
  const { sim, names } = await benchCluster({ nodes: o.nodes, concurrency: o.concurrency, drainMs });
  const restore = o.settings({ ...rolloutSettings(azurite, sim.kubeconfig, o.table, o.concurrency), ROLLCALL_CHECKIN_BUSY_SECONDS: String(busySeconds) });
  const transitions = new TransitionLog();
  let errors = 0;
  const errorSamples: string[] = [];
  let warnings = 0;
  const host = await startFunctionsHost({
    port: 0,
    timers: false,
    log: (line, level) => {
      if (transitions.addLine(line)) return;
      if (level === "error" || level === "critical") {
        if (errors < ERROR_SAMPLES) errorSamples.push(line.slice(0, 300));
        errors++;
      }
      else if (level === "warning") warnings++;
    },
  });
  const root = await mkdtemp(join(tmpdir(), "rollcall-large-"));
  // A real kubelet reports Ready about 1 s after the new boot id: a tenth of the reboot here.
  const readyAfterBootMs = Math.round(rebootMs / 10);
  const agents = await startSimAgents({ sim, nodes: names, cluster: "bench", url: host.url, functionKey: host.key, root, downMs: rebootMs - readyAfterBootMs, readyAfterBootMs, intervalScale: 1 });
  const counted = { ops: 0, transactions: 0, conflicts: 0 };
  const counter: PipelinePolicy = {
    name: "benchLargeRolloutCounter",
    async sendRequest(request, next) {
      counted.ops++;
      const response = await next(request);
      if (request.url.includes("$batch")) {
        counted.transactions++;
        // A refused transaction answers 202 with the failed operation's status inside the batch body.
        if (/HTTP\/1\.1 (409|412)/.test(response.bodyAsText ?? "")) counted.conflicts++;
      }
      return response;
    },
  };
  const rss = { peak: 0 };
  const sampleRss = () => (rss.peak = Math.max(rss.peak, process.memoryUsage.rss()));
  try {
    const started = Date.now();
    agents.start();
    // Registration first (a first check-in per node), so that the measured rollout starts from a settled fleet.
    await within(() => transitions.transitions.length === 0 && agents.registered.size === o.nodes, 60_000 + o.nodes * 100, () => `every agent registered (${agents.registered.size} of ${o.nodes})`);
    const registrationMs = Date.now() - started;
    (await getRollcall()).table.pipeline.addPolicy(counter);
    const checkinsBefore = totalCheckins(agents.agents);
    const executionsBefore = { ...host.executions };
    const kubeCallsBefore = sim.requestLog.length;
    const rounds = Math.ceil(o.nodes / o.concurrency);
    const idealMs = rounds * (drainMs + rebootMs);
    const t0 = Date.now();
    await Promise.all(names.map((n) => agents.markRebootRequired(n)));
    const completedRuns = () => transitions.nodeRuns().filter((r) => r.completed);
    const figures = (): LargeRolloutFigures => {
      const runs = completedRuns();
      const wallMs = (runs.length >= o.nodes ? Math.max(...runs.map((r) => r.idleAt ?? t0)) : Date.now()) - t0;
      const checkins = totalCheckins(agents.agents) - checkinsBefore;
      const executions = host.executions.count - executionsBefore.count;
      const kubeCalls = sim.requestLog.slice(kubeCallsBefore);
      const handoffs = transitions.handoffs();
      return {
        nodes: o.nodes,
        concurrency: o.concurrency,
        drainMs,
        rebootMs,
        busyIntervalMs: busySeconds * 1000,
        registrationMs,
        completed: runs.length,
        wallMs,
        idealMs,
        addedPerRoundMs: Math.round((wallMs - idealMs) / rounds),
        handoffP50Ms: percentile(handoffs, 50),
        handoffP99Ms: percentile(handoffs, 99),
        maxNodesUnavailable: sim.maxNodesUnavailable,
        pdbViolations: sim.pdbViolations,
        doubleReboots: agents.agents.reduce((sum, a) => sum + Math.max(0, a.reboots - 1), 0),
        nodesLeftCordoned: names.filter((n) => sim.getNode(n)?.spec?.unschedulable).length,
        checkins,
        checkinsPerSecond: Math.round(checkins / (wallMs / 1000)),
        executionMs: Math.round((host.executions.ms - executionsBefore.ms) / Math.max(1, executions)),
        storageOpsPerNode: round(counted.ops / o.nodes),
        transactionsPerNode: round(counted.transactions / o.nodes),
        transactionConflicts: counted.conflicts,
        kubeCallsPerNode: round(kubeCalls.length / o.nodes),
        tokenReviewsPerNode: round(kubeCalls.filter((r) => r.path.endsWith("/tokenreviews")).length / o.nodes),
        orchestratorErrors: errors,
        orchestratorErrorSamples: errorSamples,
        orchestratorWarnings: warnings,
        peakRssMb: Math.round(rss.peak / 2 ** 20),
      };
    };
    // Generous but finite: ten busy intervals per round on top of the work.
    const boundMs = 60_000 + idealMs + rounds * 10 * busySeconds * 1000;
    await within(() => (sampleRss(), completedRuns().length >= o.nodes), boundMs, () => `all ${o.nodes} nodes rebooted and back in service; figures so far ${JSON.stringify(figures())}`);
    return figures();
  } finally {
    (await getRollcall()).table.pipeline.removePolicy({ name: counter.name });
    await agents.stop();
    await host.stop();
    await sim.stop();
    await rm(root, { recursive: true, force: true });
    restore();
  }
}

function totalCheckins(agents: { agent: { checkins: number } }[]): number {
  return agents.reduce((sum, a) => sum + a.agent.checkins, 0);
}

/** How many orchestrator error lines the figures quote. */
const ERROR_SAMPLES = 3;

/** Polls `predicate` until it holds; past `boundMs` the run fails, saying what it waited for. */
async function within(predicate: () => boolean, boundMs: number, goal: () => string): Promise<void> {
  const end = Date.now() + boundMs;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`the large rollout did not reach its goal within ${Math.round(boundMs / 1000)} s: ${goal()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
