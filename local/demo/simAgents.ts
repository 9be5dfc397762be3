import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CallbackRebooter } from "../../node-agent/rebooter";
import { type AgentLoop, createAgent, parseAgentConfig } from "../../node-agent/agent";
import type { AgentLog } from "../../node-agent/log";
import type { SimCluster } from "../kubeSim";
import { agentToken } from "./demoCluster";

/**
 * One real node agent per simulated node, in simulation mode: its sentinel, boot id and token are
 * files in a temporary folder, and its reboot takes the simulated node down and up again
 * (`sim.rebootNode`), writes the new boot id (the same one the node object reports) and removes the
 * sentinel, as a real boot would.
 */
export interface SimAgentOptions {
  sim: SimCluster;
  nodes: string[];
  cluster: string;
  url: string;
  functionKey: string;
  /** Where each node's files go: `<root>/<node>/{reboot-required,boot_id,token,state/}`. */
  root: string;
  /** How long a simulated reboot keeps the node down. */
  downMs: number;
  /** How long after its new boot id the node reports Ready (a real kubelet: about 1 s). */
  readyAfterBootMs?: number;
  /** Multiplies the orchestrator's answered intervals (e.g. 0.5). */
  intervalScale?: number;
  backoffBaseSeconds?: number;
  backoffMaxSeconds?: number;
  audience?: string;
  log?: (node: string) => AgentLog;
}

export interface SimAgent {
  node: string;
  dir: string;
  sentinel: string;
  agent: AgentLoop;
  /** Simulated reboots this agent performed. */
  reboots: number;
}

export interface SimAgents {
  agents: SimAgent[];
  /** The nodes whose agent had a check-in answered: registered with the orchestrator. */
  registered: ReadonlySet<string>;
  /** Writes the sentinel and its `.pkgs`, as unattended-upgrades does after a kernel update. */
  markRebootRequired(node: string, packages?: string[]): Promise<void>;
  start(): void;
  stop(): Promise<void>;
}

export async function startSimAgents(options: SimAgentOptions): Promise<SimAgents> {
  const { sim } = options;
  const audience = options.audience ?? "rollcall";
  const aborted = new AbortController();
  const agents: SimAgent[] = [];
  const registered = new Set<string>();
  for (const node of options.nodes) {
    const dir = join(options.root, node);
    await mkdir(join(dir, "state"), { recursive: true });
    const sentinel = join(dir, "reboot-required");
    const bootIdFile = join(dir, "boot_id");
    const tokenFile = join(dir, "token");
    await writeFile(bootIdFile, `${bootIdOf(sim, node)}\n`);
    await writeFile(tokenFile, agentToken(sim, node, audience));
    const config = parseAgentConfig({
      ROLLCALL_URL: options.url,
      ROLLCALL_FUNCTION_KEY: options.functionKey,
      ROLLCALL_CLUSTER: options.cluster,
      NODE_NAME: node,
      ROLLCALL_TOKEN_FILE: tokenFile,
      ROLLCALL_SENTINEL_FILE: sentinel,
      ROLLCALL_BOOT_ID_FILE: bootIdFile,
      ROLLCALL_STATE_DIR: join(dir, "state"),
      ROLLCALL_INTERVAL_SCALE: String(options.intervalScale ?? 1),
      ROLLCALL_BACKOFF_BASE_SECONDS: String(options.backoffBaseSeconds ?? 1),
      ROLLCALL_BACKOFF_MAX_SECONDS: String(options.backoffMaxSeconds ?? 10),
      ROLLCALL_REQUEST_TIMEOUT_SECONDS: "30",
      // Hundreds of agents share this process: a curl process for each check-in would be the simulation's whole cost.
      ROLLCALL_HTTP_CLIENT: "node",
    });
    const entry: SimAgent = { node, dir, sentinel, agent: undefined as unknown as AgentLoop, reboots: 0 };
    const rebooter = new CallbackRebooter(async () => {
      entry.reboots++;
      const newBootId = await abortable(sim.rebootNode(node, { downMs: options.downMs, readyAfterBootMs: options.readyAfterBootMs }), aborted.signal);
      if (newBootId === undefined) return;
      // The node is back: a new boot id for the agent, the same the kubelet reports; the sentinel is gone.
      await writeFile(bootIdFile, `${newBootId}\n`);
      await rm(sentinel, { force: true });
      await rm(`${sentinel}.pkgs`, { force: true });
      // A real agent starts again with the node and checks in at once, not after its interval.
      entry.agent.checkInNow();
    }, "simulated reboot (sim.rebootNode)");
    entry.agent = createAgent(config, { rebooter, ...(options.log ? { log: options.log(node) } : { log: () => {} }) });
    // `checkins` counts attempts; the node is registered once a check-in was answered.
    entry.agent.onCycle((outcome) => void (outcome.kind === "answered" && registered.add(node)));
    agents.push(entry);
  }

  // The kubelet rotates projected tokens; the simulation re-issues them every half hour.
  const rotation = setInterval(() => {
    for (const { node, dir } of agents) {
      try {
        void writeFile(join(dir, "token"), agentToken(sim, node, audience)).catch(() => {});
      } catch {
        // The agent pod may be gone (node deleted); the agent then fails its check-ins, as it would.
      }
    }
  }, 30 * 60_000);
  rotation.unref();

  return {
    agents,
    registered,
    async markRebootRequired(node, packages = ["linux-image-5.15.0-1080-azure", "libc6"]) {
      const entry = agents.find((a) => a.node === node);
      if (!entry) throw new Error(`No simulated agent for node ${node}`);
      await writeFile(`${entry.sentinel}.pkgs`, `${packages.join("\n")}\n`);
      await writeFile(entry.sentinel, "*** System restart required ***\n");
    },
    start() {
      for (const { agent } of agents) agent.start();
    },
    async stop() {
      clearInterval(rotation);
      aborted.abort();
      await Promise.all(agents.map(({ agent }) => agent.stop()));
    },
  };
}

export function bootIdOf(sim: SimCluster, node: string): string {
  const id = sim.getNode(node)?.status?.nodeInfo?.bootID;
  if (typeof id !== "string") throw new Error(`Simulated node ${node} has no boot id`);
  return id;
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(undefined);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
