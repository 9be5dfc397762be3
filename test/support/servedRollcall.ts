import { after, before } from "node:test";
import { type RunningAzurite, startAzurite } from "../../local/azurite/startAzurite";
import { type FunctionsHost, startFunctionsHost } from "../../local/functionsHost/host";
import { SimCluster } from "../../local/kubeSim/simCluster";
import { resetForTests } from "../../shared/orchestrator/fromConfig";

/**
 * Rollcall served as an operator reaches it: the function app on the local Functions host (its
 * routing and function-key check), Azurite and the simulated API server, for one test file. No
 * function module is imported here: the host must load @azure/functions through its own shim.
 */
export interface ServedRollcall {
  readonly host: FunctionsHost;
  readonly sim: SimCluster;
  readonly azurite: RunningAzurite;
  /** `http://127.0.0.1:PORT/api` */
  readonly apiUrl: string;
  /** Fresh settings and table for one test. */
  configure(settings?: Record<string, string>): void;
  /** One check-in of `node`'s agent over HTTP. */
  checkin(node: string, body: Record<string, unknown>): Promise<{ status: number; body: any }>;
}

export const SERVED_CLUSTER = "prod";
export const SERVED_KEY = "served-rollcall-test-key";

export function useServedRollcall(): ServedRollcall {
  let azurite: RunningAzurite | undefined;
  let sim: SimCluster | undefined;
  let host: FunctionsHost | undefined;
  let counter = 0;
  const saved = { ...process.env };
  before(async () => {
    [azurite, sim] = await Promise.all([startAzurite(), SimCluster.start()]);
    served.configure();
    host = await startFunctionsHost({ port: 0, key: SERVED_KEY, timers: false, log: () => {} });
  });
  after(async () => {
    await host?.stop();
    await sim?.stop();
    await azurite?.stop();
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
    resetForTests();
  });
  const served: ServedRollcall = {
    get host() {
      return host!;
    },
    get sim() {
      return sim!;
    },
    get azurite() {
      return azurite!;
    },
    get apiUrl() {
      return `${host!.url}/${host!.routePrefix}`;
    },
    configure(settings = {}) {
      Object.assign(process.env, {
        ROLLCALL_STORAGE_CONNECTION: azurite!.connectionString,
        ROLLCALL_TABLE: `served${process.pid}x${counter++}`,
        ROLLCALL_CLUSTERS: JSON.stringify([{ name: SERVED_CLUSTER, kubeconfig: sim!.kubeconfig }]),
        ROLLCALL_AGENT_AUTH: "off",
        ROLLCALL_CHECKIN_BUSY_SECONDS: "1",
        ...settings,
      });
      resetForTests();
    },
    async checkin(node, body) {
      const response = await fetch(`${served.apiUrl}/clusters/${SERVED_CLUSTER}/nodes/${node}/checkin`, {
        method: "POST",
        headers: { "x-functions-key": SERVED_KEY, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: response.status, body: await response.json() };
    },
  };
  return served;
}

/**
 * Rolls `nodes` (each marked as needing a reboot) to completion like real agents: each reboots once
 * per lease, comes back with a new boot id and no sentinel. Gives up after `limitMs`.
 */
export async function rollOut(served: ServedRollcall, nodes: string[], limitMs = 60_000): Promise<void> {
  const bootIds = new Map(nodes.map((n) => [n, served.sim.getNode(n)!.status.nodeInfo.bootID as string]));
  const required = new Map(nodes.map((n) => [n, true]));
  const leases = new Map<string, string>();
  const done = new Set<string>();
  const deadline = Date.now() + limitMs;
  while (done.size < nodes.length) {
    if (Date.now() > deadline) throw new Error(`rollout not done after ${limitMs} ms: done ${[...done].join(", ")}`);
    for (const node of nodes) {
      const answer = await served.checkin(node, {
        bootId: bootIds.get(node),
        rebootRequired: required.get(node),
        reasons: required.get(node) ? ["linux-image-azure"] : [],
        agentVersion: "test",
        ...(leases.has(node) ? { leaseId: leases.get(node) } : {}),
      });
      if (answer.status !== 200) throw new Error(`check-in of ${node} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
      if (answer.body.action === "reboot" && required.get(node)) {
        leases.set(node, answer.body.leaseId);
        bootIds.set(node, await served.sim.rebootNode(node, { downMs: 20 }));
        required.set(node, false);
      }
      if (!required.get(node) && answer.body.state === "idle") done.add(node);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
