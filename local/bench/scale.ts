import type { PipelinePolicy } from "@azure/core-rest-pipeline";
import type { RunningAzurite } from "../azurite/startAzurite";
import { AGENT_NAMESPACE, AGENT_SERVICE_ACCOUNT, agentToken, nodeNames } from "../demo/demoCluster";
import { bootIdOf } from "../demo/simAgents";
import { startFunctionsHost } from "../functionsHost/host";
import { SimCluster } from "../kubeSim";
import { getRollcall } from "../../shared/orchestrator/fromConfig";
import { checkinPath } from "../../shared/protocol/checkin";
import { rowKeys } from "../../shared/storage/table";

/** What one queued node's check-in costs, with `queued` nodes waiting for the one slot. */
export interface QueuedCheckinCost {
  queued: number;
  storageOps: number;
  /** Kubernetes calls of the orchestrator itself. */
  kubeCalls: number;
  /** Check-in authentication's own calls (TokenReview and the agent pod's read): none while a remembered review vouches for the unchanged check-in. */
  authKubeCalls: number;
  /** What the orchestrator's own calls were (method and path), to say where any comes from. */
  kubeCallPaths: string[];
  ms: number;
}

export interface ScaleFigures {
  checkins: QueuedCheckinCost[];
  /**
   * One check-in of the last queued node held for `heldMs` (`Prefer: wait`, docs/api.md): its storage
   * operations, of which `lockPolls` read the lock row (the check-in's own read, and the instance's
   * polls every 250 ms, which every check-in it holds shares), and its Kubernetes calls.
   */
  held: { queued: number; heldMs: number; storageOps: number; lockPolls: number; kubeCalls: number };
  /** One reconcile timer pass with the largest queue: what it advanced within its budget, and its cost. */
  reconcile: { nodes: number; advanced: number; storageOps: number; kubeCalls: number; ms: number };
}

const SILENT = { info() {}, warn() {}, error() {} };

/** How long the held check-in is offered to wait: its whole hold, since the slot never frees. */
const HELD_SECONDS = 2;

/**
 * A queue of up to `sizes.at(-1)` nodes behind a slot held by a node that never reboots: what a queued
 * node's check-in costs at each queue size (mean of `samples` check-ins), and one reconcile pass.
 */
export async function scaleFigures(azurite: RunningAzurite, o: { sizes: number[]; samples: number; table: string; settings: (s: Record<string, string>) => () => void }): Promise<ScaleFigures> {
  const largest = Math.max(...o.sizes);
  const sim = await SimCluster.start();
  const names = nodeNames(largest + 1);
  names.forEach((n) => sim.addNode(n));
  sim.addDaemonSet(AGENT_NAMESPACE, AGENT_SERVICE_ACCOUNT);
  const restore = o.settings({
    ROLLCALL_STORAGE_CONNECTION: azurite.connectionString,
    ROLLCALL_TABLE: o.table,
    ROLLCALL_CLUSTERS: JSON.stringify([{ name: "bench", kubeconfig: sim.kubeconfig }]),
    ROLLCALL_CONCURRENCY: "1",
    ROLLCALL_AGENT_AUTH: "tokenreview",
    ROLLCALL_AGENT_AUDIENCE: "rollcall",
  });
  const host = await startFunctionsHost({ port: 0, timers: false, log: () => {} });
  let storageOps = 0;
  const counter: PipelinePolicy = { name: "benchScaleCounter", sendRequest: (request, next) => (storageOps++, next(request)) };
  try {
    const tokens = new Map<string, string>();
    const send = async (node: string, headers: Record<string, string> = {}) => {
      tokens.set(node, tokens.get(node) ?? agentToken(sim, node, "rollcall"));
      const response = await fetch(`${host.url}${checkinPath("bench", node)}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-functions-key": host.key, authorization: `Bearer ${tokens.get(node)}`, ...headers },
        body: JSON.stringify({ bootId: bootIdOf(sim, node), rebootRequired: true, reasons: [], agentVersion: "0.1.0" }),
      });
      if (response.status !== 200) throw new Error(`check-in answered ${response.status}: ${await response.text()}`);
      return (await response.json()) as { state: string };
    };
    // The holder takes the slot and is told to reboot, which it never does.
    const [holder, ...queue] = names;
    await send(holder!);
    const rollcall = await getRollcall();
    rollcall.table.pipeline.addPolicy(counter);
    const checkins: QueuedCheckinCost[] = [];
    let joined = 0;
    for (const size of [...o.sizes].sort((a, b) => a - b)) {
      while (joined < size) await send(queue[joined++]!);
      const probe = queue[size - 1]!;
      const ops = storageOps;
      const calls = sim.requestLog.length;
      const started = performance.now();
      for (let i = 0; i < o.samples; i++) if ((await send(probe)).state !== "pending") throw new Error(`${probe} is not queued`);
      const ms = (performance.now() - started) / o.samples;
      const made = sim.requestLog.slice(calls);
      // Authentication reviews the token and reads the agent's pod (in the agent's namespace).
      const isAuth = (r: { method: string; path: string }) => r.path.endsWith("/tokenreviews") || (r.method === "GET" && r.path.includes(`/namespaces/${AGENT_NAMESPACE}/pods`));
      const own = made.filter((r) => !isAuth(r));
      checkins.push({
        queued: size,
        storageOps: round((storageOps - ops) / o.samples),
        kubeCalls: round(own.length / o.samples),
        authKubeCalls: round((made.length - own.length) / o.samples),
        kubeCallPaths: [...new Set(own.map((r) => `${r.method} ${r.path}`))],
        ms: round(ms),
      });
    }
    const held = await (async () => {
      const probe = queue[largest - 1]!;
      const [ops, calls, started] = [storageOps, sim.requestLog.length, performance.now()];
      let lockPolls = 0;
      const polls: PipelinePolicy = { name: "benchScaleLockPolls", sendRequest: (request, next) => (decodeURIComponent(request.url).includes(`RowKey='${rowKeys.lock}'`) && lockPolls++, next(request)) };
      rollcall.table.pipeline.addPolicy(polls);
      try {
        if ((await send(probe, { prefer: `wait=${HELD_SECONDS}` })).state !== "pending") throw new Error(`${probe} is not queued`);
      } finally {
        rollcall.table.pipeline.removePolicy({ name: polls.name });
      }
      return { queued: largest, heldMs: Math.round(performance.now() - started), storageOps: storageOps - ops, lockPolls, kubeCalls: sim.requestLog.length - calls };
    })();
    const ops = storageOps;
    const calls = sim.requestLog.length;
    const started = performance.now();
    const report = await rollcall.orchestrator.reconcile("bench", SILENT);
    const reconcile = { nodes: largest + 1, advanced: report.advanced, storageOps: storageOps - ops, kubeCalls: sim.requestLog.length - calls, ms: Math.round(performance.now() - started) };
    return { checkins, held, reconcile };
  } finally {
    (await getRollcall()).table.pipeline.removePolicy({ name: "benchScaleCounter" });
    await host.stop();
    await sim.stop();
    restore();
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
