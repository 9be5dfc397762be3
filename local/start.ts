import { existsSync } from "node:fs";
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
import { readHistory } from "../shared/history/history";
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
  /** Simulation: (total − ideal) / rounds, the ideal round being pod termination + the reboot's down time. */
  addedPerRoundMs?: number;
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
  storageConnection?: string;
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
  --storage-connection CONN   use this Table Storage account (a connection string) instead of Azurite
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
      "storage-connection": { type: "string" },
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
  if (values.storage && values["storage-connection"]) throw new Error("--storage keeps Azurite's data; it cannot be combined with --storage-connection");
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
    storageConnection: values["storage-connection"],
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

  if (args.kubeconfig && !existsSync(args.kubeconfig)) {
    out.write(`npm start: the kubeconfig ${args.kubeconfig} does not exist: pass --kubeconfig PATH (or ROLLCALL_KUBECONFIG) naming an existing file, or leave both out for the simulated cluster\n`);
    return { exitCode: 2 };
  }
  try {
    // 1. Storage: Azurite, unless an account is given.
    let connectionString: string;
    if (args.storageConnection) {
      const endpoint = tableEndpoint(args.storageConnection);
      await reachable(endpoint);
      connectionString = args.storageConnection;
      out.write(`Table Storage at ${endpoint}\n`);
    } else {
      const azurite: RunningAzurite = await startAzurite(args.storage ? { location: resolve(args.storage) } : {});
      cleanup.push(() => azurite.stop());
      connectionString = azurite.connectionString;
      out.write(`Azurite (table service) on 127.0.0.1:${azurite.port}${args.storage ? `, data in ${args.storage}` : ", in memory"}\n`);
    }

    // 2. The cluster: simulated unless a kubeconfig is given.
    let sim: SimCluster | undefined;
    let nodes: string[] = [];
    if (!args.kubeconfig) {
      // Evictions refused by a PDB carry Retry-After: 1 here so that the demo moves along (kube-apiserver sends none).
      // As a real kube-apiserver: a budget's 429 carries no Retry-After (../shared/k8s-captured/README.md).
      sim = await SimCluster.start({ terminationDelayMs: SIM_TERMINATION_MS, podStartDelayMs: 200 });
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
    setEnv("ROLLCALL_STORAGE_CONNECTION", connectionString);
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
    // The README's curl examples read these variables.
    const exampleNode = nodes.at(-1);
    out.write(`  for the README's curl examples: export ROLLCALL=${host.url}/${host.routePrefix} KEY=${host.key} CLUSTER=${args.cluster}${exampleNode ? ` N=${exampleNode}` : ""}\n`);
    if (aksResourceId) out.write(`  upgrade plan: POST ${host.url}/${host.routePrefix}/clusters/${args.cluster}/upgrade-plan?code=${host.key} (then GET it)\n`);

    const table = TableClient.fromConnectionString(connectionString, process.env.ROLLCALL_TABLE || "rollcall", { allowInsecureConnection: true });
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
        // The log line of the last transition may come a moment after the write the store shows: the summary's
        // phases and total are read from those lines, so wait for a completed run in them too.
        const logged = transitions.nodeRuns().some((r) => r.node === node && r.completed);
        return settled && (!marked.includes(node) || (rebooted && logged));
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
            const s = await summarize();
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

    /** Completed reboots of `node` that an operator's request caused, from the history. */
    async function operatorReboots(node: string): Promise<number> {
      try {
        const { entries } = await readHistory(table, args.cluster, { limit: 100, node });
        return entries.filter((e) => e.outcome === "completed" && e.requestId !== undefined).length;
      } catch {
        return 0;
      }
    }

    async function summarize(): Promise<StartSummary> {
      const phases = transitions.phaseDurations();
      const handoffs = transitions.handoffs();
      const rebootCounts = new Map((agents?.agents ?? []).map((a) => [a.node, a.reboots]));
      const rebooted = marked.filter((n) => (rebootCounts.get(n) ?? 0) >= 1);
      // A reboot an operator asked for (POST …/reboot, e.g. the README's curl) is one more the node owes, not an extra one.
      const extraReboots: string[] = [];
      for (const [n, count] of rebootCounts) {
        const owed = marked.includes(n) ? 1 : 0;
        if (count <= owed) continue;
        if (count > owed + (await operatorReboots(n))) extraReboots.push(n);
      }
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
        ...(sim && rebooted.length > 0 && addedPerRound(((finished ? lastIdle : Date.now()) - started), rebooted.length, args)),
        maxNodesUnavailable: sim?.maxNodesUnavailable,
        pdbViolations: sim?.pdbViolations,
        concurrency: args.concurrency,
        ok: problems.length === 0 && (!args.once || finished),
        problems: args.once && !finished ? [`the rollout did not finish within ${seconds(deadline - started)}`, ...problems] : problems,
      };
    }

    const summary = await summarize();
    out.write(`\n${formatSummary(summary)}\n`);
    return { exitCode: args.once ? (summary.ok ? 0 : 1) : 0, summary, url: host.url, key: host.key };
  } catch (error) {
    view?.close();
    out.write(`npm start failed: ${startFailure(error, args)}\n`);
    if (args.verbose) out.write(`${(error as Error).stack ?? String(error)}\n`);
    return { exitCode: 1 };
  } finally {
    for (const step of cleanup.reverse()) await step().catch(() => {});
    for (const [name, value] of savedEnv) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

/** A start-up failure in one line that names what to change: the stack only with --verbose. */
export function startFailure(error: unknown, args: Pick<Args, "port" | "storageConnection">): string {
  const e = error as NodeJS.ErrnoException;
  if (e.code === "EADDRINUSE") return `port ${args.port} is already taken (another npm start or func host?): pass --port P, or --port 0 for a free one (or set PORT)`;
  if (e.code === "EACCES" && e.syscall === "listen") return `port ${args.port} may not be opened by this user: pass --port P above 1023, or --port 0 for a free one`;
  if (error instanceof StorageUnreachable) return error.message;
  return `${e.message ?? String(error)} (run again with --verbose for the details)`;
}

class StorageUnreachable extends Error {}

/** The table endpoint a connection string names (TableEndpoint=…, or the account's public one). */
function tableEndpoint(connection: string): string {
  const parts = Object.fromEntries(
    connection
      .split(";")
      .filter((p) => p.includes("="))
      .map((p) => [p.slice(0, p.indexOf("=")).toLowerCase(), p.slice(p.indexOf("=") + 1)]),
  );
  if (parts.tableendpoint) return parts.tableendpoint;
  if (parts.accountname) return `${parts.defaultendpointsprotocol ?? "https"}://${parts.accountname}.table.${parts.endpointsuffix ?? "core.windows.net"}`;
  throw new StorageUnreachable("--storage-connection is not a storage connection string (no TableEndpoint= or AccountName=): copy it from the storage account's Access keys, or leave it out for Azurite");
}

/** Any HTTP answer will do: the point is a clear line now instead of the SDK's retries and a stack later. */
async function reachable(endpoint: string): Promise<void> {
  try {
    await fetch(endpoint, { signal: AbortSignal.timeout(5_000) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
    throw new StorageUnreachable(`the storage account at ${endpoint} did not answer (${cause}): check --storage-connection (its TableEndpoint or AccountName, the network, the account's firewall), or leave it out for Azurite`);
  }
}

export function formatSummary(s: StartSummary): string {
  const handoffs = `  lock handoffs: ${s.handoffs.count}${s.handoffs.count ? ` (release → next cordon of a node that was waiting, p50 ${ms(s.handoffs.p50)}, p99 ${ms(s.handoffs.p99)})` : ""}`;
  if (s.mode === "cluster") {
    // Against a real cluster Rollcall sees only its own transitions: say what was measured, and what was not.
    const measured = PHASES.filter((p) => s.phases[p].count > 0);
    return [
      `Summary: ${s.nodes} nodes seen, served for ${seconds(s.totalMs)}`,
      ...(measured.length === 0
        ? ["  no completed reboot seen: no phase durations"]
        : ["  phase     mean      max    nodes", ...measured.map((p) => `  ${p.padEnd(8)} ${seconds(s.phases[p].mean).padStart(7)}  ${seconds(s.phases[p].max).padStart(7)}  ${String(s.phases[p].count).padStart(5)}`)]),
      handoffs,
      "  not checked on a real cluster: reboots per node, PodDisruptionBudget violations, nodes unavailable at once (only the simulation observes them; see GET …/history)",
    ].join("\n");
  }
  const lines = [
    `Summary: ${s.rebooted.length} of ${s.marked.length} marked nodes rebooted (${s.nodes} nodes) in ${seconds(s.totalMs)}`,
    "  phase     mean      max    nodes",
    ...PHASES.map((p) => `  ${p.padEnd(8)} ${seconds(s.phases[p].mean).padStart(7)}  ${seconds(s.phases[p].max).padStart(7)}  ${String(s.phases[p].count).padStart(5)}`),
    handoffs,
  ];
  if (s.addedPerRoundMs !== undefined) lines.push(`  added per round over the ideal (pod termination + reboot): ${ms(s.addedPerRoundMs)} (per node at concurrency 1)`);
  if (s.maxNodesUnavailable !== undefined) lines.push(`  max nodes unavailable at once: ${s.maxNodesUnavailable} (concurrency ${s.concurrency})`);
  if (s.pdbViolations !== undefined) lines.push(`  PDB violations: ${s.pdbViolations}`);
  lines.push(s.problems.length === 0 ? "  OK: every invariant held" : `  FAILED: ${s.problems.join("; ")}`);
  return lines.join("\n");
}

/** The simulation's pods take this long to terminate: the drain's own work in the ideal round. */
const SIM_TERMINATION_MS = 300;

function addedPerRound(totalMs: number, nodes: number, args: Pick<Args, "concurrency" | "downMs">): { addedPerRoundMs: number } {
  const rounds = Math.ceil(nodes / args.concurrency);
  return { addedPerRoundMs: Math.round((totalMs - rounds * (SIM_TERMINATION_MS + args.downMs)) / rounds) };
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
