import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { TableClient } from "@azure/data-tables";
import { startArmSim } from "./armSim/armSim";
import { demoAksState } from "./armSim/demoAks";
import { type RunningAzurite, startAzurite } from "./azurite/startAzurite";
import { useLocalArm } from "../shared/azure/arm";
import { AGENT_NAMESPACE, buildDemoCluster } from "./demo/demoCluster";
import { type SimAgents, startSimAgents } from "./demo/simAgents";
import { mean, PHASES, type Phase, percentile, TransitionLog } from "./demo/transitions";
import { LiveView, type NodeRow, seconds } from "./demo/view";
import { type FunctionsHost, startFunctionsHost } from "./functionsHost/host";
import { SimCluster } from "./kubeSim";
import { NodeStore, type NodeRecord } from "../shared/node/nodeRecord";
import { resetForTests as resetRollcall } from "../shared/orchestrator/fromConfig";
import { formatLine } from "../node-agent/log";

/**
 * `npm start`: Rollcall on the embedded defaults. Azurite (in memory), the function app's real
 * handlers behind the local Functions host on 127.0.0.1:7071, and — unless a kubeconfig is given —
 * a simulated AKS cluster with one real node agent per node, some of them marked reboot-required,
 * rolled one node at a time, with a live view and a summary.
 *
 *   npm start                         simulated 5-node cluster, keeps serving after the rollout
 *   npm start -- --once               roll, print the summary, exit (non-zero if a node was missed or an invariant broke)
 *   npm start -- --nodes 8 --reboot 3 --concurrency 2
 *   npm start -- --kubeconfig ~/.kube/config [--cluster NAME]   orchestrate a real cluster (no simulation)
 */

export interface StartOptions {
  argv?: string[];
  out?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Redraw a live table (default: whether `out` is a terminal). */
  tty?: boolean;
  /** Stops a run that keeps serving (what Ctrl-C does in `main`). */
  signal?: AbortSignal;
}

export interface StartSummary {
  mode: "simulation" | "cluster";
  nodes: number;
  marked: string[];
  rebooted: string[];
  notRebooted: string[];
  /** Nodes rebooted more than once, or not marked but rebooted. */
  extraReboots: string[];
  totalMs: number;
  phases: Record<Phase, { mean?: number; max?: number; count: number }>;
  handoffs: { count: number; p50?: number; p99?: number };
  maxNodesUnavailable?: number;
  pdbViolations?: number;
  concurrency: number;
  ok: boolean;
  problems: string[];
}

export interface StartResult {
  exitCode: number;
  summary?: StartSummary;
  url?: string;
  key?: string;
}

interface Args {
  once: boolean;
  nodes: number;
  reboot: number;
  port: number;
  concurrency: number;
  downMs: number;
  kubeconfig?: string;
  cluster: string;
  storage?: string;
  verbose: boolean;
  deadlineMs?: number;
  help: boolean;
}

const USAGE = `Usage: npm start -- [options]
  --once               roll the simulated cluster to the end, print the summary and exit
  --nodes N            simulated nodes (default 5)
  --reboot N           nodes marked reboot-required (default all but one)
  --concurrency C      nodes rebooted at once (ROLLCALL_CONCURRENCY, default 1)
  --down-ms MS         how long a simulated reboot keeps a node down (default 2000)
  --port P             Functions host port (default PORT or 7071; 0 picks a free one)
  --kubeconfig PATH    orchestrate a real cluster instead (or ROLLCALL_KUBECONFIG); no simulation, no agents
  --cluster NAME       the cluster's name in ROLLCALL_CLUSTERS (default sim, or local with --kubeconfig)
  --storage DIR        keep Azurite's data in DIR instead of in memory
  --verbose            print every log line of the functions and the agents
  --deadline-s S       with --once: give up after S seconds (default 60 + 30 per marked node)`;

export function parseStartArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      once: { type: "boolean", default: false },
      nodes: { type: "string" },
      reboot: { type: "string" },
      port: { type: "string" },
      concurrency: { type: "string" },
      "down-ms": { type: "string" },
      kubeconfig: { type: "string" },
      cluster: { type: "string" },
      storage: { type: "string" },
      verbose: { type: "boolean", default: false },
      "deadline-s": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  const int = (name: string, raw: string | undefined, fallback: number, min: number, max: number) => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max} (got ${raw})`);
    return n;
  };
  const nodes = int("nodes", values.nodes, 5, 1, 500);
  const kubeconfig = values.kubeconfig ?? (env.ROLLCALL_KUBECONFIG || undefined);
  if (kubeconfig && values.once) throw new Error("--once rolls the simulated cluster; it cannot be combined with --kubeconfig");
  return {
    once: values.once ?? false,
    nodes,
    reboot: int("reboot", values.reboot, Math.max(1, nodes - 1), 0, nodes),
    port: int("port", values.port, env.PORT ? Number(env.PORT) : 7071, 0, 65535),
    concurrency: int("concurrency", values.concurrency, env.ROLLCALL_CONCURRENCY ? Number(env.ROLLCALL_CONCURRENCY) : 1, 1, 100),
    downMs: int("down-ms", values["down-ms"], 2000, 0, 600_000),
    kubeconfig: kubeconfig ? resolve(kubeconfig) : undefined,
    cluster: values.cluster ?? (kubeconfig ? "local" : "sim"),
    storage: values.storage,
    verbose: values.verbose ?? false,
    deadlineMs: values["deadline-s"] === undefined ? undefined : int("deadline-s", values["deadline-s"], 0, 1, 86_400) * 1000,
    help: values.help ?? false,
  };
}

/** Runs `npm start` in this process; resolves when the run ends (`--once`, the signal, or a failure). */
export async function runStart(options: StartOptions = {}): Promise<StartResult> {
  const out = options.out ?? process.stdout;
  let args: Args;
  try {
    args = parseStartArgs(options.argv ?? process.argv.slice(2));
  } catch (error) {
    out.write(`${(error as Error).message}\n${USAGE}\n`);
    return { exitCode: 2 };
  }
  if (args.help) {
    out.write(`${USAGE}\n`);
    return { exitCode: 0 };
  }
  const started = Date.now();
  const cleanup: (() => Promise<void>)[] = [];
  const savedEnv = new Map<string, string | undefined>();
  const setEnv = (name: string, value: string) => {
    if (!savedEnv.has(name)) savedEnv.set(name, process.env[name]);
    process.env[name] = value;
  };
  const transitions = new TransitionLog();
  const tty = options.tty ?? Boolean(out.isTTY);
  let view: LiveView | undefined;
  const say = (text: string) => (view ? view.line(text) : out.write(`${text}\n`));
  const elapsed = () => `+${((Date.now() - started) / 1000).toFixed(1)}s`;

  try {
    // 1. Storage.
    const azurite: RunningAzurite = await startAzurite(args.storage ? { location: resolve(args.storage) } : {});
    cleanup.push(() => azurite.stop());
    out.write(`Azurite (table service) on 127.0.0.1:${azurite.port}${args.storage ? `, data in ${args.storage}` : ", in memory"}\n`);

    // 2. The cluster: simulated unless a kubeconfig is given.
    let sim: SimCluster | undefined;
    let nodes: string[] = [];
    if (!args.kubeconfig) {
      // Evictions refused by a PDB carry Retry-After: 1 here so that the demo moves along (kube-apiserver sends none).
      sim = await SimCluster.start({ terminationDelayMs: 300, podStartDelayMs: 200, evictionRetryAfterSeconds: 1 });
      cleanup.push(() => sim!.stop());
      nodes = buildDemoCluster(sim, { nodes: args.nodes });
      out.write(`Simulated cluster "${args.cluster}" at ${sim.url}: ${nodes.length} nodes, ${sim.pods().length} pods, PodDisruptionBudgets on shop/web and shop/api\n`);
    }
    // The simulated cluster is an AKS cluster of a simulated ARM, so that the upgrade planner has facts to plan from.
    let aksResourceId: string | undefined;
    if (sim) {
      const demo = demoAksState(args.cluster, sim.kubeconfig);
      const arm = await startArmSim(demo.state);
      cleanup.push(() => arm.stop());
      aksResourceId = demo.aksResourceId;
      setEnv("ROLLCALL_ARM_ENDPOINT", arm.endpoint);
      useLocalArm({ credential: { getToken: async () => ({ token: "local", expiresOnTimestamp: Date.now() + 3_600_000 }) }, ca: arm.ca });
      cleanup.push(async () => useLocalArm(undefined));
      out.write(`Simulated ARM at ${arm.endpoint}: "${args.cluster}" is ${aksResourceId}\n`);
    }

    // 3. App settings for the handlers, then the function app itself.
    setEnv("ROLLCALL_STORAGE_CONNECTION", azurite.connectionString);
    setEnv(
      "ROLLCALL_CLUSTERS",
      JSON.stringify([args.kubeconfig ? { name: args.cluster, kubeconfigFile: args.kubeconfig } : { name: args.cluster, aksResourceId, aksAuth: "credentials" }]),
    );
    setEnv("ROLLCALL_CONCURRENCY", String(args.concurrency));
    if (sim) {
      // Short intervals so that the demo takes a minute, not a night.
      setEnv("ROLLCALL_CHECKIN_IDLE_SECONDS", "10");
      setEnv("ROLLCALL_CHECKIN_BUSY_SECONDS", "1");
      setEnv("ROLLCALL_LOCK_TTL_MINUTES", "10");
      setEnv("ROLLCALL_DRAIN_TIMEOUT_MINUTES", "5");
      setEnv("ROLLCALL_DRAIN_FAILURE_BACKOFF_MINUTES", "1");
    }
    setEnv("ROLLCALL_AGENT_AUTH", "tokenreview");
    setEnv("ROLLCALL_AGENT_AUDIENCE", "rollcall");
    resetRollcall();
    cleanup.push(async () => resetRollcall());

    const host: FunctionsHost = await startFunctionsHost({
      port: args.port,
      key: process.env.ROLLCALL_LOCAL_FUNCTION_KEY || undefined,
      log: (line, level) => {
        const t = transitions.addLine(line);
        if (t && !args.verbose) say(`${elapsed()} ${t.node} ${t.from} → ${t.to}: ${t.why}`);
        else if (args.verbose || level === "warning" || level === "error" || level === "critical") say(line);
      },
    });
    cleanup.push(() => host.stop());
    out.write(`Functions host on ${host.url} — function key: ${host.key}\n`);
    for (const r of host.registrations) {
      if (args.verbose) out.write(r.route !== undefined ? `  ${r.name}: [${r.methods?.join(",")}] /${host.routePrefix}/${r.route}\n` : `  ${r.name}: timer ${r.schedule}\n`);
    }
    out.write(`  check-in: POST ${host.url}/${host.routePrefix}/clusters/${args.cluster}/nodes/{node}/checkin   status: GET ${host.url}/${host.routePrefix}/clusters/${args.cluster}/status?code=${host.key}\n`);
    if (aksResourceId) out.write(`  upgrade plan: POST ${host.url}/${host.routePrefix}/clusters/${args.cluster}/upgrade-plan?code=${host.key} (then GET it)\n`);

    const table = TableClient.fromConnectionString(azurite.connectionString, process.env.ROLLCALL_TABLE || "rollcall", { allowInsecureConnection: true });
    await table.createTable();
    const store = new NodeStore(table);

    // 4. The agents (simulation only) and the marked nodes.
    let agents: SimAgents | undefined;
    const marked = nodes.slice(0, args.reboot);
    if (sim) {
      const root = await mkdtemp(join(tmpdir(), "rollcall-start-"));
      cleanup.push(() => rm(root, { recursive: true, force: true }));
      agents = await startSimAgents({
        sim,
        nodes,
        cluster: args.cluster,
        url: host.url,
        functionKey: host.key,
        root,
        downMs: args.downMs,
        intervalScale: 0.5,
        log: (node) => (level, msg, fields) => {
          if (args.verbose || level !== "info") say(`${node.slice(-6)} ${formatLine(level, msg, fields)}`);
          else if (msg.startsWith("rebooting")) say(`${elapsed()} ${node} agent: ${msg} (lease ${fields?.lease})`);
        },
      });
      cleanup.push(() => agents!.stop());
      for (const node of marked) await agents.markRebootRequired(node);
      out.write(`Marked ${marked.length} of ${nodes.length} nodes reboot-required (/var/run/reboot-required in each agent's folder); starting ${nodes.length} agents\n\n`);
      agents.start();
    } else {
      out.write(
        `\nOrchestrating the cluster in ${args.kubeconfig}. Point the agents at this host (they need to reach ${host.url}) with ROLLCALL_CLUSTER=${args.cluster} and the key above.\n\n`,
      );
    }

    // 5. Watch, show, and (with --once) wait for the end.
    view = new LiveView(out, tty, () => `Rollcall — ${sim ? `simulated cluster "${args.cluster}"` : `cluster "${args.cluster}"`}, concurrency ${args.concurrency}, ${elapsed()}${args.once ? "" : "   (Ctrl-C to stop)"}`);
    const deadline = started + (args.deadlineMs ?? 60_000 + 30_000 * marked.length);
    let records: NodeRecord[] = [];
    const rows = (): NodeRow[] => {
      const names = sim ? nodes : [...new Set(records.map((r) => r.node))].sort();
      return names.map((node) => {
        const k8s = sim?.getNode(node);
        return {
          node,
          record: records.find((r) => r.node === node),
          ready: k8s ? ((k8s.status?.conditions ?? []) as { type: string; status: string }[]).some((c) => c.type === "Ready" && c.status === "True") : undefined,
          cordoned: k8s ? Boolean(k8s.spec?.unschedulable) : undefined,
          pods: sim ? sim.pods({ node }).filter((p) => !p.metadata.deletionTimestamp).length : undefined,
          bootId: k8s?.status?.nodeInfo?.bootID,
          reboots: agents?.agents.find((a) => a.node === node)?.reboots,
          marked: marked.includes(node),
        };
      });
    };
    const done = (): boolean => {
      if (!sim || !agents) return false;
      return nodes.every((node) => {
        const record = records.find((r) => r.node === node);
        const k8s = sim.getNode(node);
        const ready = ((k8s?.status?.conditions ?? []) as { type: string; status: string }[]).some((c) => c.type === "Ready" && c.status === "True");
        const rebooted = (agents.agents.find((a) => a.node === node)?.reboots ?? 0) >= 1;
        const settled = record?.state === "idle" && !record.rebootRequired && ready && !k8s?.spec?.unschedulable;
        return settled && (!marked.includes(node) || rebooted);
      });
    };

    let finished = false;
    await new Promise<void>((resolveWait) => {
      let ended = false;
      let timer: NodeJS.Timeout | undefined;
      const stop = () => {
        ended = true;
        clearTimeout(timer);
        resolveWait();
      };
      if (options.signal?.aborted) return stop();
      options.signal?.addEventListener("abort", stop, { once: true });
      let announced = false;
      const tick = async () => {
        try {
          records = (await store.list(args.cluster)).map((r) => r.value);
        } catch {
          // Azurite is going away (shutdown); keep the last view.
        }
        if (ended) return;
        view!.render(rows());
        if (!finished && done()) {
          finished = true;
          if (args.once) return stop();
          if (!announced) {
            announced = true;
            const s = summarize();
            view!.line(`Rollout complete in ${seconds(s.totalMs)}: ${s.rebooted.length} of ${s.marked.length} marked nodes rebooted. Still serving; Ctrl-C to stop.`);
          }
        }
        if (args.once && Date.now() > deadline) return stop();
        timer = setTimeout(() => void tick(), tty ? 250 : 500);
      };
      timer = setTimeout(() => void tick(), 0);
    });
    view.render(rows());
    view.close();

    function summarize(): StartSummary {
      const phases = transitions.phaseDurations();
      const handoffs = transitions.handoffs();
      const rebootCounts = new Map((agents?.agents ?? []).map((a) => [a.node, a.reboots]));
      const rebooted = marked.filter((n) => (rebootCounts.get(n) ?? 0) >= 1);
      const extraReboots = [...rebootCounts].filter(([n, count]) => count > 1 || (count > 0 && !marked.includes(n))).map(([n]) => n);
      const problems: string[] = [];
      const notRebooted = marked.filter((n) => !rebooted.includes(n));
      if (sim) {
        if (notRebooted.length > 0) problems.push(`not rebooted: ${notRebooted.join(", ")}`);
        if (extraReboots.length > 0) problems.push(`rebooted more than once or without being marked: ${extraReboots.join(", ")}`);
        if (sim.pdbViolations > 0) problems.push(`${sim.pdbViolations} PodDisruptionBudget violation(s)`);
        if (sim.maxNodesUnavailable > args.concurrency) problems.push(`${sim.maxNodesUnavailable} nodes were unavailable at once (concurrency ${args.concurrency})`);
      }
      const lastIdle = Math.max(started, ...transitions.nodeRuns().map((r) => r.idleAt ?? 0));
      return {
        mode: sim ? "simulation" : "cluster",
        nodes: sim ? nodes.length : records.length,
        marked,
        rebooted,
        notRebooted,
        extraReboots,
        totalMs: (finished ? lastIdle : Date.now()) - started,
        phases: Object.fromEntries(PHASES.map((p) => [p, { mean: mean(phases[p]), max: phases[p].length ? Math.max(...phases[p]) : undefined, count: phases[p].length }])) as StartSummary["phases"],
        handoffs: { count: handoffs.length, p50: percentile(handoffs, 50), p99: percentile(handoffs, 99) },
        maxNodesUnavailable: sim?.maxNodesUnavailable,
        pdbViolations: sim?.pdbViolations,
        concurrency: args.concurrency,
        ok: problems.length === 0 && (!args.once || finished),
        problems: args.once && !finished ? [`the rollout did not finish within ${seconds(deadline - started)}`, ...problems] : problems,
      };
    }

    const summary = summarize();
    out.write(`\n${formatSummary(summary)}\n`);
    return { exitCode: args.once ? (summary.ok ? 0 : 1) : 0, summary, url: host.url, key: host.key };
  } catch (error) {
    view?.close();
    out.write(`npm start failed: ${(error as Error).stack ?? String(error)}\n`);
    return { exitCode: 1 };
  } finally {
    for (const step of cleanup.reverse()) await step().catch(() => {});
    for (const [name, value] of savedEnv) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

export function formatSummary(s: StartSummary): string {
  const lines = [
    s.mode === "simulation"
      ? `Summary: ${s.rebooted.length} of ${s.marked.length} marked nodes rebooted (${s.nodes} nodes) in ${seconds(s.totalMs)}`
      : `Summary: ${s.nodes} nodes seen, served for ${seconds(s.totalMs)}`,
    "  phase     mean      max    nodes",
    ...PHASES.map((p) => `  ${p.padEnd(8)} ${seconds(s.phases[p].mean).padStart(7)}  ${seconds(s.phases[p].max).padStart(7)}  ${String(s.phases[p].count).padStart(5)}`),
    `  lock handoffs: ${s.handoffs.count}${s.handoffs.count ? ` (release → next cordon p50 ${ms(s.handoffs.p50)}, p99 ${ms(s.handoffs.p99)})` : ""}`,
  ];
  if (s.maxNodesUnavailable !== undefined) lines.push(`  max nodes unavailable at once: ${s.maxNodesUnavailable} (concurrency ${s.concurrency})`);
  if (s.pdbViolations !== undefined) lines.push(`  PDB violations: ${s.pdbViolations}`);
  lines.push(s.problems.length === 0 ? "  OK: every invariant held" : `  FAILED: ${s.problems.join("; ")}`);
  return lines.join("\n");
}

function ms(value: number | undefined): string {
  return value === undefined ? "-" : `${Math.round(value)} ms`;
}

async function main(): Promise<void> {
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (signal: string) => {
    signals++;
    if (signals > 1) process.exit(130);
    process.stdout.write(`\n${signal}: stopping everything this run started…\n`);
    controller.abort();
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  const result = await runStart({ signal: controller.signal });
  process.exit(result.exitCode);
}

if (require.main === module) void main();

export { AGENT_NAMESPACE };
