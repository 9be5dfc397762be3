import { after, before } from "node:test";
import { HttpRequest, InvocationContext } from "@azure/functions";
import { TableClient } from "@azure/data-tables";
import { type RunningAzurite, startAzurite } from "../../local/azurite/startAzurite";
import { SimCluster } from "../../local/kubeSim/simCluster";
import { checkin } from "../../functions/checkin";
import { getRollcall, resetForTests } from "../../shared/orchestrator/fromConfig";
import { Orchestrator } from "../../shared/orchestrator/orchestrator";
import type { RebootGate } from "../../shared/policy/policy";
import { CheckinRequest } from "../../shared/protocol/checkin";
import { MemoryTelemetry } from "../../shared/telemetry/telemetry";
import type { CheckinResponse } from "../../shared/protocol/checkin";

/**
 * One Azurite and one simulated cluster per test file, with the app settings pointing at them, and
 * agents that behave like the real one (reboot once per lease, come back with a new boot id).
 */
export interface World {
  azurite: RunningAzurite;
  sim: SimCluster;
  table(): TableClient;
  /** Fresh settings (a new table) for one test; extra app settings may be given. */
  configure(settings?: Record<string, string>): void;
}

export const CLUSTER = "prod";
let tableCounter = 0;

export function useWorld(options: { simOptions?: Parameters<typeof SimCluster.start>[0] } = {}): World {
  let azurite: RunningAzurite | undefined;
  let sim: SimCluster | undefined;
  let tableName = "";
  before(async () => {
    azurite = await startAzurite();
    sim = await SimCluster.start(options.simOptions);
  });
  after(async () => {
    await sim?.stop();
    await azurite?.stop();
    resetForTests();
  });
  return {
    get azurite() {
      return azurite!;
    },
    get sim() {
      return sim!;
    },
    table() {
      return TableClient.fromConnectionString(azurite!.connectionString, tableName, { allowInsecureConnection: true });
    },
    configure(settings = {}) {
      tableName = `world${process.pid}x${tableCounter++}`;
      // A test that watches a drain between check-ins turns the in-invocation wait off for itself only.
      delete process.env.ROLLCALL_STEP_WAIT_MS;
      Object.assign(process.env, {
        ROLLCALL_STORAGE_CONNECTION: azurite!.connectionString,
        ROLLCALL_TABLE: tableName,
        ROLLCALL_CLUSTERS: JSON.stringify([{ name: CLUSTER, kubeconfig: sim!.kubeconfig }]),
        ROLLCALL_AGENT_AUTH: "off",
        ROLLCALL_CHECKIN_BUSY_SECONDS: "1",
        ...settings,
      });
      resetForTests();
    },
  };
}

export function invocation(functionName = "checkin"): InvocationContext {
  return new InvocationContext({
    functionName,
    logHandler: (level, ...args) => {
      if (process.env.ROLLCALL_TEST_LOGS) console.log(`[${functionName}] ${level}`, ...args);
    },
  });
}

export async function postCheckin(node: string, body: unknown, cluster = CLUSTER, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const request = new HttpRequest({
    method: "POST",
    url: `http://localhost/api/clusters/${cluster}/nodes/${node}/checkin`,
    params: { cluster, node },
    headers: { "content-type": "application/json", ...headers },
    body: { string: typeof body === "string" ? body : JSON.stringify(body) },
  });
  const response = await checkin(request, invocation());
  return { status: response.status ?? 200, body: response.jsonBody };
}

/** An agent as the real one behaves: it reboots at most once per lease and reports the new boot id. */
export class TestAgent {
  readonly executedLeases = new Set<string>();
  reboots = 0;
  last?: CheckinResponse;

  constructor(
    readonly node: string,
    public bootId: string,
    public rebootRequired: boolean,
    private readonly sim: SimCluster,
    private readonly downMs = 50,
  ) {}

  static async on(sim: SimCluster, node: string, rebootRequired: boolean): Promise<TestAgent> {
    return new TestAgent(node, sim.getNode(node)!.status.nodeInfo.bootID, rebootRequired, sim);
  }

  body(): Record<string, unknown> {
    const lease = [...this.executedLeases].at(-1);
    return {
      bootId: this.bootId,
      rebootRequired: this.rebootRequired,
      reasons: this.rebootRequired ? ["linux-image-azure"] : [],
      agentVersion: "test",
      ...(lease ? { leaseId: lease } : {}),
    };
  }

  /** One check-in, acting on the answer like the agent would. */
  async tick(send: (node: string, body: unknown) => Promise<{ status: number; body: any }> = postCheckin): Promise<CheckinResponse> {
    const response = await send(this.node, this.body());
    if (response.status !== 200) throw new Error(`check-in of ${this.node} answered ${response.status}: ${JSON.stringify(response.body)}`);
    const answer = response.body as CheckinResponse;
    this.last = answer;
    if (answer.action === "reboot" && answer.leaseId && !this.executedLeases.has(answer.leaseId)) {
      this.executedLeases.add(answer.leaseId);
      this.reboots++;
      this.bootId = await this.sim.rebootNode(this.node, { downMs: this.downMs });
      this.rebootRequired = false;
    }
    return answer;
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs every agent, round after round, until `done` holds; gives up after `limitMs`. */
export async function runAgents(agents: TestAgent[], done: () => boolean | Promise<boolean>, limitMs = 90_000, pauseMs = 25): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    if (await done()) return;
    for (const agent of agents) await agent.tick();
    await sleep(pauseMs);
  }
  throw new Error(`not done after ${limitMs} ms: ${agents.map((a) => `${a.node}=${a.last?.state} (${a.last?.reason})`).join(", ")}`);
}

/** A clock the test moves by hand, for TTLs, drain timeouts and back-offs. */
export class ManualClock {
  constructor(public now = new Date()) {}
  advance(ms: number): void {
    this.now = new Date(this.now.getTime() + ms);
  }
  read = (): Date => this.now;
}

/**
 * The configured world's orchestrator with a hand-moved clock and a telemetry recorder: the real
 * policy store and, unless a test passes another, the production gate. `send` is a check-in.
 */
export async function clocked(clock: ManualClock, options: { gate?: RebootGate; stepWaitMs?: number } = {}) {
  const rollcall = await getRollcall();
  const telemetry = new MemoryTelemetry();
  const orchestrator = new Orchestrator({
    store: rollcall.store,
    lock: rollcall.lock,
    kube: rollcall.kube,
    policy: rollcall.policy,
    gate: options.gate ?? rollcall.gate,
    telemetry,
    stepBudgetMs: 5_000,
    stepWaitMs: options.stepWaitMs,
    clock: clock.read,
  });
  const log = invocation("clocked");
  const send = async (node: string, body: unknown) => ({ status: 200, body: await orchestrator.checkin(CLUSTER, node, CheckinRequest.parse(body), log) });
  return { rollcall, orchestrator, telemetry, send, log };
}
