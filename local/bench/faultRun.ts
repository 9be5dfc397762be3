import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import type { RunningAzurite } from "../azurite/startAzurite";
import { startSimAgents } from "../demo/simAgents";
import { DelayProxy } from "../../test/support/delayProxy";
import { getRollcall } from "../../shared/orchestrator/fromConfig";
import { benchCluster, rolloutSettings } from "./benchCluster";
import type { Logger } from "../../shared/orchestrator/transitionLog";

/**
 * The benchmark's fault run (issue 11): a rolling reboot served by function hosts in separate
 * processes behind a random load balancer, while one host's API-server writes are held 0.5–2.5 s
 * (a slow, partly partitioned instance, its step budget 600 ms) and a host is killed with SIGKILL
 * and restarted every few seconds. It counts what must stay 0: double reboots, reboots of a node
 * that was not cordoned and drained, nodes left cordoned after one reconcile pass.
 */

const ROOT = resolve(__dirname, "../..");
/**
 * One host killed this often. The rollout itself takes a few seconds now (6 s for 6 nodes at
 * concurrency 2): at the 6 s this was once, the quick run could finish before the first kill.
 */
const KILL_EVERY_MS = 2_000;

export interface FaultFigures {
  nodes: number;
  concurrency: number;
  hosts: number;
  hostKills: number;
  heldWrites: number;
  /** 1 when every node rebooted and came back to idle within the bound, else 0. */
  rolloutsFinished: number;
  nodesCompleted: number;
  wallMs: number;
  nodesLeftCordoned: number;
  doubleReboots: number;
  undrainedReboots: number;
  pdbViolations: number;
}

interface Host {
  port: number;
  env: NodeJS.ProcessEnv;
  child?: ChildProcess;
}

export async function faultRun(
  azurite: RunningAzurite,
  o: { nodes: number; concurrency: number; table: string; settings: (values: Record<string, string>) => () => void },
): Promise<FaultFigures> {
  const { sim, names } = await benchCluster({ ...o, drainMs: 200 });
  const delay = await DelayProxy.start(sim.url);
  delay.holdWritesMs = [500, 2_500];
  const key = randomBytes(24).toString("base64url");
  const settings = rolloutSettings(azurite, sim.kubeconfig, o.table, o.concurrency);
  // This process reads the same table for the figures and runs the final reconcile pass.
  const restore = o.settings(settings);
  const hosts: Host[] = await Promise.all(
    [0, 1, 2].map(async (i) => ({
      port: await freePort(),
      env: {
        ...process.env,
        ...settings,
        ROLLCALL_LOCAL_FUNCTION_KEY: key,
        // Host 0 is the slow one: every write to the API server held, its requests abandoned after 480 ms.
        ...(i === 0 ? { ROLLCALL_CLUSTERS: JSON.stringify([{ name: "bench", kubeconfig: delay.kubeconfig(sim.kubeconfig) }]), ROLLCALL_STEP_BUDGET_MS: "600" } : {}),
      },
    })),
  );
  const balancer = await startBalancer(hosts);
  const root = await mkdtemp(join(tmpdir(), "rollcall-faults-"));
  const undrained: string[] = [];
  const stopWatching = sim.onNodeChange((change) => {
    // A reboot takes the node NotReady first: at that moment it must be cordoned with its workload gone.
    if (change.change !== "notReady") return;
    const node = sim.getNode(change.node);
    const running = sim.pods({ node: change.node }).filter((p) => !p.metadata.deletionTimestamp && !p.metadata.ownerReferences?.some((r) => r.kind === "DaemonSet"));
    if (!node?.spec?.unschedulable || running.length > 0) undrained.push(change.node);
  });
  let kills = 0;
  let killer: NodeJS.Timeout | undefined;
  const agents = await startSimAgents({ sim, nodes: names, cluster: "bench", url: balancer.url, functionKey: key, root, downMs: 500, intervalScale: 0.5 });
  try {
    await Promise.all(hosts.map(startHost));
    agents.start();
    if (!(await waitFor(() => agents.registered.size === names.length, 60_000))) throw new Error("the fault run's agents did not register within 60 s");
    const t0 = Date.now();
    await Promise.all(names.map((n) => agents.markRebootRequired(n)));
    // One host dies mid-flight every KILL_EVERY_MS and a fresh process takes its place.
    killer = setInterval(() => {
      const victim = hosts[Math.floor(Math.random() * hosts.length)]!;
      victim.child?.kill("SIGKILL");
      kills++;
      void startHost(victim).catch(() => {});
    }, KILL_EVERY_MS);
    const { store } = await getRollcall();
    const done = async () => agents.agents.every((a) => a.reboots >= 1) && (await store.list("bench")).every((r) => r.value.state === "idle");
    const finished = await waitFor(done, 60_000 + o.nodes * 15_000);
    const wallMs = Date.now() - t0;
    clearInterval(killer);
    killer = undefined;
    // Late writes land; then one timer pass repairs what they left, as the reconcile timer does every minute.
    await delay.drained();
    await (await getRollcall()).orchestrator.reconcile("bench", quiet);
    const records = (await store.list("bench")).map((r) => r.value);
    return {
      nodes: o.nodes,
      concurrency: o.concurrency,
      hosts: hosts.length,
      hostKills: kills,
      heldWrites: delay.forwarded.length,
      rolloutsFinished: finished ? 1 : 0,
      nodesCompleted: records.filter((r) => r.state === "idle" && r.lastRebootAt).length,
      wallMs,
      nodesLeftCordoned: names.filter((n) => sim.getNode(n)?.spec?.unschedulable).length,
      doubleReboots: agents.agents.reduce((sum, a) => sum + Math.max(0, a.reboots - 1), 0),
      undrainedReboots: undrained.length,
      pdbViolations: sim.pdbViolations,
    };
  } finally {
    if (killer) clearInterval(killer);
    stopWatching();
    await agents.stop();
    for (const host of hosts) host.child?.kill("SIGKILL");
    await balancer.stop();
    await delay.stop();
    await sim.stop();
    await rm(root, { recursive: true, force: true });
    restore();
  }
}

/** `tsx local/functionsHost/index.ts` in its own process; resolves when it serves. */
function startHost(host: Host): Promise<void> {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "local/functionsHost/index.ts"), "--port", String(host.port)], {
    cwd: ROOT,
    env: host.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  host.child = child;
  return new Promise((resolveStart, reject) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      if (out.length < 10_000) out += chunk.toString();
      if (out.includes("Functions host on")) resolveStart();
    });
    child.stderr!.resume();
    child.once("exit", (code) => reject(new Error(`host on port ${host.port} exited (${code}) before serving`)));
  });
}

/** A load balancer that sends each request to a random host; a dead host's requests answer 502, as Azure's front end would. */
async function startBalancer(hosts: Host[]): Promise<{ url: string; stop(): Promise<void> }> {
  const server: Server = createServer((request, response) => {
    const target = hosts[Math.floor(Math.random() * hosts.length)]!;
    const upstream = httpRequest({ host: "127.0.0.1", port: target.port, method: request.method, path: request.url, headers: request.headers }, (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(response);
      answer.on("error", () => response.destroy());
    });
    upstream.on("error", () => {
      if (response.headersSent) return void response.destroy();
      response.writeHead(502, { "content-type": "application/json" });
      response.end(JSON.stringify({ error: { code: "bad_gateway", message: "the instance went away" } }));
    });
    request.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Whether `predicate` held within `boundMs`. */
async function waitFor(predicate: () => boolean | Promise<boolean>, boundMs: number): Promise<boolean> {
  const end = Date.now() + boundMs;
  while (!(await predicate())) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

const quiet: Logger = { info: () => {}, warn: () => {}, error: () => {} };
