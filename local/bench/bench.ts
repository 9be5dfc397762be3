import { spawn } from "node:child_process";
import { mkdtemp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { PipelinePolicy } from "@azure/core-rest-pipeline";
import { TableClient } from "@azure/data-tables";
import { type RunningAzurite, startAzurite } from "../azurite/startAzurite";
import { AGENT_NAMESPACE, AGENT_SERVICE_ACCOUNT, agentToken, nodeNames } from "../demo/demoCluster";
import { bootIdOf, startSimAgents } from "../demo/simAgents";
import { percentile, TransitionLog } from "../demo/transitions";
import { startFunctionsHost } from "../functionsHost/host";
import { SimCluster } from "../kubeSim";
import { getRollcall, resetForTests } from "../../shared/orchestrator/fromConfig";
import { checkinPath } from "../../shared/protocol/checkin";
import { benchCluster, rolloutSettings } from "./benchCluster";
import { faultRun, type FaultFigures } from "./faultRun";
import { kuredRolloutMs } from "./kuredModel";

/**
 * `npm run bench [-- --quick] [--json FILE] [--nodes N]`: how fast Rollcall is, measured on this
 * machine in one run — rollouts of a simulated cluster against the ideal and against a model of
 * kured, check-in throughput against Azurite, cold start of the function app, the agent's idle RSS.
 * Loopback only; every loop is bounded.
 */

const ROOT = resolve(__dirname, "../..");

interface RolloutFigures {
  nodes: number;
  concurrency: number;
  drainMs: number;
  rebootMs: number;
  wallMs: number;
  idealMs: number;
  overhead: number;
  handoffP50Ms?: number;
  handoffP99Ms?: number;
  handoffs: number;
  maxNodesUnavailable: number;
  pdbViolations: number;
  completed: number;
  /** Mean time a node held the lock (lock taken → back in service), and its drain and reboot phases. */
  holdMs: number;
  drainPhaseMs: number;
  rebootPhaseMs: number;
  kuredPeriodMs: number;
  kuredMs: number;
  speedupVsKured: number;
}

interface ThroughputFigures {
  nodes: number;
  concurrency: number;
  checkins: number;
  checkinsPerSecond: number;
  storageOpsPerCheckin: number;
  /** Calls to the API server per idle check-in (TokenReview and pod read included): 0 while the review is remembered. */
  kubeCallsPerCheckin: number;
  azuritePointReadsPerSecond: number;
  ratioToPointReads: number;
}

interface ColdStartFigures {
  runs: number;
  requireMsMedian: number;
  processMsMedian: number;
  rssMb: number;
  heavyModulesLoaded: string[];
  functionsRegistered: number;
}

interface Results {
  machine: { node: string; platform: string; cpus: number };
  quick: boolean;
  rollouts: RolloutFigures[];
  /** The rollout under host kills and a delayed instance: the counts after `rolloutsFinished` must be 0. */
  faults: FaultFigures;
  throughput: ThroughputFigures;
  coldStart: ColdStartFigures;
  agentIdleRssMb: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { quick: { type: "boolean", default: false }, json: { type: "string" }, nodes: { type: "string" } },
    strict: true,
  });
  const quick = values.quick ?? false;
  const nodes = values.nodes ? Number(values.nodes) : quick ? 12 : 50;
  if (!Number.isInteger(nodes) || nodes < 2 || nodes > 200) throw new Error("--nodes must be an integer from 2 to 200");
  const log = (text: string) => process.stderr.write(`${text}\n`);
  const azurite = await startAzurite();
  try {
    const rollouts: RolloutFigures[] = [];
    for (const concurrency of [1, 5]) {
      log(`rollout: ${nodes} nodes, concurrency ${concurrency}…`);
      rollouts.push(await rollout(azurite, { nodes, concurrency, drainMs: 200, rebootMs: 500 }));
    }
    log("fault run: host kills and a delayed instance during a rollout…");
    const faults = await faultRun(azurite, { nodes: quick ? 6 : 10, concurrency: 2, table: tableName("f"), settings: useSettings });
    log("check-in throughput…");
    const throughput = await checkinThroughput(azurite, { nodes: quick ? 20 : 50, checkins: quick ? 1000 : 3000, concurrency: 16 });
    log("cold start…");
    const coldStart = await coldStartFigures(quick ? 3 : 5);
    log("agent idle RSS…");
    const agentIdleRssMb = await agentIdleRss(azurite);
    const results: Results = {
      machine: { node: process.version, platform: `${process.platform}-${process.arch}`, cpus: (await import("node:os")).cpus().length },
      quick,
      rollouts,
      faults,
      throughput,
      coldStart,
      agentIdleRssMb,
    };
    process.stdout.write(`${formatTable(results)}\n`);
    if (values.json) {
      await writeFile(values.json, `${JSON.stringify(results, null, 2)}\n`);
      log(`wrote ${values.json}`);
    }
    const violated = faults.rolloutsFinished !== 1 || faults.nodesLeftCordoned + faults.doubleReboots + faults.undrainedReboots + faults.pdbViolations > 0;
    if (violated) throw new Error(`the fault run broke a safety invariant: ${JSON.stringify(faults)}`);
  } finally {
    resetForTests();
    await azurite.stop();
  }
}

function useSettings(settings: Record<string, string>): () => void {
  const saved = new Map(Object.keys(settings).map((k) => [k, process.env[k]]));
  Object.assign(process.env, settings);
  resetForTests();
  return () => {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    resetForTests();
  };
}

let tableCounter = 0;
const tableName = (what: string) => `bench${what}${Date.now().toString(36)}${tableCounter++}`;

/** A cluster with one PDB-protected pod per node and the agent DaemonSet; every node marked at once. */
async function rollout(azurite: RunningAzurite, o: { nodes: number; concurrency: number; drainMs: number; rebootMs: number }): Promise<RolloutFigures> {
  const { sim, names } = await benchCluster(o);
  const restore = useSettings(rolloutSettings(azurite, sim.kubeconfig, tableName(`r${o.concurrency}`), o.concurrency));
  const transitions = new TransitionLog();
  // No timers: the rollout is driven by the agents' check-ins alone.
  const host = await startFunctionsHost({ port: 0, timers: false, log: (line) => void transitions.addLine(line) });
  const root = await mkdtemp(join(tmpdir(), "rollcall-bench-"));
  const agents = await startSimAgents({ sim, nodes: names, cluster: "bench", url: host.url, functionKey: host.key, root, downMs: o.rebootMs, intervalScale: 0.5 });
  try {
    agents.start();
    // Let every agent register first, so that the measured rollout starts from a settled, idle fleet.
    await until(() => transitions.transitions.length === 0 && agents.agents.every((a) => a.agent.checkins > 0), 60_000);
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    await Promise.all(names.map((n) => agents.markRebootRequired(n)));
    const bound = 120_000 + o.nodes * 20_000;
    await until(() => transitions.nodeRuns().filter((r) => r.completed).length >= o.nodes, bound);
    const runs = transitions.nodeRuns().filter((r) => r.completed);
    const end = Math.max(...runs.map((r) => r.idleAt ?? t0));
    const handoffs = transitions.handoffs();
    const idealMs = Math.ceil(o.nodes / o.concurrency) * (o.drainMs + o.rebootMs);
    const holdMs = mean(runs.map((r) => (r.idleAt ?? 0) - (r.lockedAt ?? 0)));
    const phases = transitions.phaseDurations();
    // kured's 1 h period scaled like the reboot (500 ms for a ~3 min real reboot: ×1/360), and the same
    // per-node work as Rollcall measured here: the comparison isolates how the lock passes between nodes.
    const kuredPeriodMs = 10_000;
    const kuredMs = Math.round(
      median([1, 2, 3, 4, 5].map((seed) => kuredRolloutMs({ nodes: o.nodes, concurrency: o.concurrency, periodMs: kuredPeriodMs, drainMs: holdMs, rebootMs: 0, seed }))),
    );
    const wallMs = end - t0;
    return {
      ...o,
      wallMs,
      idealMs,
      overhead: round(wallMs / idealMs, 2),
      handoffs: handoffs.length,
      handoffP50Ms: percentile(handoffs, 50),
      handoffP99Ms: percentile(handoffs, 99),
      maxNodesUnavailable: sim.maxNodesUnavailable,
      pdbViolations: sim.pdbViolations,
      completed: runs.length,
      holdMs: Math.round(holdMs),
      drainPhaseMs: Math.round(mean(phases.drain)),
      rebootPhaseMs: Math.round(mean(phases.reboot)),
      kuredPeriodMs,
      kuredMs,
      speedupVsKured: round(kuredMs / wallMs, 2),
    };
  } finally {
    await agents.stop();
    await host.stop();
    await sim.stop();
    await rm(root, { recursive: true, force: true });
    restore();
  }
}

/** Idle check-ins over HTTP from many nodes at once, against one orchestrator process and Azurite. */
async function checkinThroughput(azurite: RunningAzurite, o: { nodes: number; checkins: number; concurrency: number }): Promise<ThroughputFigures> {
  const sim = await SimCluster.start();
  const names = nodeNames(o.nodes);
  names.forEach((n) => sim.addNode(n));
  sim.addDaemonSet(AGENT_NAMESPACE, AGENT_SERVICE_ACCOUNT);
  const table = tableName("t");
  const restore = useSettings({
    ROLLCALL_STORAGE_CONNECTION: azurite.connectionString,
    ROLLCALL_TABLE: table,
    ROLLCALL_CLUSTERS: JSON.stringify([{ name: "bench", kubeconfig: sim.kubeconfig }]),
    ROLLCALL_AGENT_AUTH: "tokenreview",
    ROLLCALL_AGENT_AUDIENCE: "rollcall",
  });
  const host = await startFunctionsHost({ port: 0, timers: false, log: () => {} });
  try {
    const tokens = new Map(names.map((n) => [n, agentToken(sim, n, "rollcall")]));
    const send = async (node: string) => {
      const response = await fetch(`${host.url}${checkinPath("bench", node)}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-functions-key": host.key, authorization: `Bearer ${tokens.get(node)}` },
        body: JSON.stringify({ bootId: bootIdOf(sim, node), rebootRequired: false, reasons: [], agentVersion: "0.1.0" }),
      });
      if (response.status !== 200) throw new Error(`check-in answered ${response.status}: ${await response.text()}`);
      await response.arrayBuffer();
    };
    // Registration and warm-up (records created, tokens reviewed and cached, clients connected).
    for (const n of names) await send(n);
    for (const n of names) await send(n);
    const rollcall = await getRollcall();
    let storageOps = 0;
    const counter: PipelinePolicy = { name: "benchCounter", sendRequest: (request, next) => (storageOps++, next(request)) };
    rollcall.table.pipeline.addPolicy(counter);
    const kubeCallsBefore = sim.requestLog.length;
    const started = performance.now();
    await pool(o.checkins, o.concurrency, (i) => send(names[i % names.length]!));
    const seconds = (performance.now() - started) / 1000;
    const kubeCalls = sim.requestLog.length - kubeCallsBefore;
    rollcall.table.pipeline.removePolicy({ name: "benchCounter" });
    const checkinsPerSecond = o.checkins / seconds;

    // Azurite's own point-read rate, same concurrency, same process: the practical ceiling.
    const client = TableClient.fromConnectionString(azurite.connectionString, table, { allowInsecureConnection: true });
    const reads = o.checkins;
    const rStart = performance.now();
    await pool(reads, o.concurrency, (i) => client.getEntity("bench", `node:${names[i % names.length]}`).then(() => undefined));
    const pointReadsPerSecond = reads / ((performance.now() - rStart) / 1000);
    return {
      nodes: o.nodes,
      concurrency: o.concurrency,
      checkins: o.checkins,
      checkinsPerSecond: round(checkinsPerSecond, 0),
      storageOpsPerCheckin: round(storageOps / o.checkins, 2),
      kubeCallsPerCheckin: round(kubeCalls / o.checkins, 2),
      azuritePointReadsPerSecond: round(pointReadsPerSecond, 0),
      ratioToPointReads: round(checkinsPerSecond / pointReadsPerSecond, 2),
    };
  } finally {
    await host.stop();
    await sim.stop();
    restore();
  }
}

/** Loads the function app's entry modules, compiled to CommonJS as Azure runs them, in fresh processes. */
async function coldStartFigures(runs: number): Promise<ColdStartFigures> {
  const out = join(ROOT, "dist", ".bench-coldstart");
  await rm(out, { recursive: true, force: true });
  const { build } = await import("esbuild");
  const sources = ["functions", "shared", "local/functionsHost"].flatMap((dir) => listTs(join(ROOT, dir)));
  await build({ entryPoints: sources, outdir: out, outbase: ROOT, bundle: false, platform: "node", format: "cjs", target: "node22", logLevel: "error" });
  const probe = join(out, "probe.js");
  await writeFile(
    probe,
    `const start = performance.now();
require("./local/functionsHost/coreShim.js").installCoreShim();
const { shimState } = require("./local/functionsHost/coreShim.js");
const sink = []; shimState.sink = sink;
const dir = require("node:path").join(__dirname, "functions");
for (const f of require("node:fs").readdirSync(dir).filter((f) => f.endsWith(".js")).sort()) require(require("node:path").join(dir, f));
const requireMs = performance.now() - start;
const heavy = ["@kubernetes/client-node", "@azure/identity", "@azure/arm-containerservice", "@azure/monitor-opentelemetry-exporter", "@opentelemetry/sdk-metrics", "applicationinsights"]
  .filter((m) => Object.keys(require.cache).some((k) => k.includes("/node_modules/" + m + "/")));
process.stdout.write(JSON.stringify({ requireMs, processMs: performance.now(), rss: process.memoryUsage().rss, heavy, registered: sink.length }));
`,
  );
  const samples: { requireMs: number; processMs: number; rss: number; heavy: string[]; registered: number }[] = [];
  for (let i = 0; i < runs; i++) {
    const text = await new Promise<string>((resolveRun, reject) => {
      const child = spawn(process.execPath, [probe], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NODE_OPTIONS: "" } });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      child.on("error", reject);
      child.on("close", (code) => (code === 0 ? resolveRun(stdout) : reject(new Error(`cold-start probe exited ${code}: ${stderr}`))));
    });
    samples.push(JSON.parse(text) as (typeof samples)[number]);
  }
  await rm(out, { recursive: true, force: true });
  return {
    runs,
    requireMsMedian: round(median(samples.map((s) => s.requireMs)), 0),
    processMsMedian: round(median(samples.map((s) => s.processMs)), 0),
    rssMb: round(median(samples.map((s) => s.rss)) / 2 ** 20, 1),
    heavyModulesLoaded: [...new Set(samples.flatMap((s) => s.heavy))],
    functionsRegistered: samples[0]?.registered ?? 0,
  };
}

/** The bundled agent (as in the image), idle against a running orchestrator: its resident memory. */
async function agentIdleRss(azurite: RunningAzurite): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), "rollcall-agent-rss-"));
  const bundle = join(dir, "rollcall-agent.js");
  const { build } = await import("esbuild");
  await build({ entryPoints: [join(ROOT, "node-agent", "agent.ts")], outfile: bundle, bundle: true, platform: "node", format: "cjs", target: "node22", minify: true, logLevel: "error" });
  const sim = await SimCluster.start();
  const [node] = nodeNames(1);
  sim.addNode(node!);
  sim.addDaemonSet(AGENT_NAMESPACE, AGENT_SERVICE_ACCOUNT);
  const restore = useSettings({
    ROLLCALL_STORAGE_CONNECTION: azurite.connectionString,
    ROLLCALL_TABLE: tableName("a"),
    ROLLCALL_CLUSTERS: JSON.stringify([{ name: "bench", kubeconfig: sim.kubeconfig }]),
    ROLLCALL_CHECKIN_IDLE_SECONDS: "1",
  });
  const host = await startFunctionsHost({ port: 0, timers: false, log: () => {} });
  await mkdir(join(dir, "state"));
  await writeFile(join(dir, "boot_id"), bootIdOf(sim, node!));
  await writeFile(join(dir, "token"), agentToken(sim, node!, "rollcall"));
  // The image's entrypoint flags (node-agent/Dockerfile).
  const child = spawn(process.execPath, ["--max-old-space-size=32", bundle], {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      PATH: process.env.PATH,
      ROLLCALL_URL: host.url,
      ROLLCALL_FUNCTION_KEY: host.key,
      ROLLCALL_CLUSTER: "bench",
      NODE_NAME: node!,
      ROLLCALL_TOKEN_FILE: join(dir, "token"),
      ROLLCALL_SENTINEL_FILE: join(dir, "reboot-required"),
      ROLLCALL_BOOT_ID_FILE: join(dir, "boot_id"),
      ROLLCALL_STATE_DIR: join(dir, "state"),
      ROLLCALL_REBOOT_COMMAND: "false",
    },
  });
  let lines = 0;
  child.stdout.on("data", (c: Buffer) => (lines += c.toString().split("\n").filter((l) => l.includes("checked in")).length));
  try {
    await until(() => lines >= 3, 30_000);
    await new Promise((r) => setTimeout(r, 2000));
    const status = await readFile(`/proc/${child.pid}/status`, "utf8");
    const kb = Number(status.match(/VmRSS:\s+(\d+) kB/)?.[1] ?? NaN);
    return round(kb / 1024, 1);
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("close", r));
    await host.stop();
    await sim.stop();
    restore();
    await rm(dir, { recursive: true, force: true });
  }
}

function formatTable(r: Results): string {
  const lines: string[] = [];
  const s = (ms: number | undefined) => (ms === undefined ? "-" : `${(ms / 1000).toFixed(1)} s`);
  const msText = (ms: number | undefined) => (ms === undefined ? "-" : `${Math.round(ms)} ms`);
  lines.push(`Rollcall benchmark (${r.machine.node}, ${r.machine.platform}, ${r.machine.cpus} CPUs${r.quick ? ", --quick" : ""})`, "");
  lines.push("Rollout of a simulated cluster (drain ≈ 200 ms pod termination, reboot 500 ms; every node marked at once)");
  lines.push("  nodes  conc   wall      ideal    overhead  handoff p50  handoff p99  max unavail  PDB viol  kured model  speed-up");
  for (const x of r.rollouts) {
    lines.push(
      `  ${String(x.nodes).padStart(5)}  ${String(x.concurrency).padStart(4)}  ${s(x.wallMs).padStart(7)}  ${s(x.idealMs).padStart(7)}  ${`${x.overhead}×`.padStart(8)}  ${msText(x.handoffP50Ms).padStart(11)}  ${msText(x.handoffP99Ms).padStart(11)}  ${String(x.maxNodesUnavailable).padStart(11)}  ${String(x.pdbViolations).padStart(8)}  ${s(x.kuredMs).padStart(11)}  ${`${x.speedupVsKured}×`.padStart(8)}`,
    );
  }
  for (const x of r.rollouts) {
    lines.push(`  conc ${x.concurrency}: per node the lock was held ${s(x.holdMs)} (drain phase ${s(x.drainPhaseMs)}, reboot phase ${s(x.rebootPhaseMs)})`);
  }
  lines.push(
    `  kured model: every node checks every ${s(r.rollouts[0]?.kuredPeriodMs)} (kured's 1 h scaled like the reboot) and takes the lock at its next tick after a release;`,
    "  same per-node work as Rollcall's measured lock-hold time, so the speed-up is the lock hand-off alone",
    "",
  );
  const f = r.faults;
  lines.push(`Fault run: ${f.nodes} nodes, concurrency ${f.concurrency}, ${f.hosts} host processes behind a random load balancer`);
  lines.push(`  ${f.hostKills} hosts killed (SIGKILL) and restarted, ${f.heldWrites} API-server writes of the slow host held 0.5-2.5 s`);
  lines.push(
    `  rollouts finished ${f.rolloutsFinished}/1 (${f.nodesCompleted} nodes in ${s(f.wallMs)}); nodes left cordoned ${f.nodesLeftCordoned}, double reboots ${f.doubleReboots}, undrained reboots ${f.undrainedReboots}, PDB violations ${f.pdbViolations}`,
    "",
  );
  const t = r.throughput;
  lines.push(`Idle check-ins, one orchestrator process, Azurite in memory (${t.nodes} nodes, ${t.concurrency} in flight, ${t.checkins} check-ins)`);
  lines.push(`  ${t.checkinsPerSecond} check-ins/s, ${t.storageOpsPerCheckin} storage operations and ${t.kubeCallsPerCheckin} Kubernetes calls each (authenticated agents); Azurite point reads ${t.azuritePointReadsPerSecond}/s; ratio ${t.ratioToPointReads}`, "");
  const c = r.coldStart;
  lines.push(`Cold start (require of functions/*.js compiled to CommonJS, fresh process, median of ${c.runs})`);
  lines.push(`  entry modules ${c.requireMsMedian} ms (process ${c.processMsMedian} ms), RSS ${c.rssMb} MB, ${c.functionsRegistered} functions registered, heavy SDKs loaded: ${c.heavyModulesLoaded.length ? c.heavyModulesLoaded.join(", ") : "none"}`, "");
  lines.push(`Agent idle RSS (bundled agent, idle check-ins): ${r.agentIdleRssMb} MB (a bare Node 22 process is ~43 MB on this machine)`);
  return lines.join("\n");
}

function listTs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listTs(join(dir, e.name)) : e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [join(dir, e.name)] : [],
  );
}

async function pool(count: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

async function until(predicate: () => boolean, boundMs: number): Promise<void> {
  const end = Date.now() + boundMs;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`the benchmark did not reach its goal within ${boundMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function mean(values: number[]): number {
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
