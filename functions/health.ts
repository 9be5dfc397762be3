import { app, type HttpRequest, type InvocationContext } from "@azure/functions";
import { armClientFactory } from "../shared/azure/arm";
import { nodeOsWithin, type NodeOsReport } from "../shared/azure/nodeOsChannel";
import { type ClusterConnection, ConfigError, getConfig } from "../shared/config/config";
import { httpHandler, json } from "../shared/http/http";
import { type ClusterApiFactory, clusterApiFactory } from "../shared/kube/connect";
import { classifyUnreachable, ProbeTimeout, type Unreachable } from "../shared/kube/reachability";
import { openTable } from "../shared/storage/table";

/**
 * GET /api/health — the process is alive (any answer at all), and whether Table Storage and each
 * configured cluster's API answer, with their latency. 200 when everything answers, else 503.
 * A cluster that does not answer says which step failed (connection, DNS, TCP, TLS, 401/403,
 * timeout) and what to check (docs/deploy.md's network rows). Each AKS cluster also says whether it
 * needs Rollcall at all (its node OS upgrade channel, shared/azure/nodeOsChannel.ts).
 * It builds on the settings alone, not on the orchestrator, so it answers when storage does not.
 */

const CHECK_TIMEOUT_MS = 5000;
/** A name no node has: reading it costs the API server nothing and proves it answers and lets us in. */
const PROBE_NODE = "rollcall-health-probe.invalid";

export interface Check {
  ok: boolean;
  latencyMs: number;
  error?: string;
}

export interface ClusterCheck extends Check {
  name: string;
  /** Which step failed, when one did. */
  failure?: Unreachable;
  /** The setting or network row to check. */
  check?: string;
  nodeOs?: NodeOsReport;
}

/** Connects (kubeconfig or AKS credentials) and reads a node that does not exist: a 404 is an answer. */
export async function probeCluster(connection: ClusterConnection, kube: ClusterApiFactory, timeoutMs = CHECK_TIMEOUT_MS): Promise<Omit<ClusterCheck, "nodeOs">> {
  const started = performance.now();
  let step: "connect" | "call" = "connect";
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ProbeTimeout(`no answer within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
  });
  try {
    await Promise.race([
      (async () => {
        const api = await kube(connection.name);
        step = "call";
        await api.getNode(PROBE_NODE);
      })(),
      timeout,
    ]);
    return { name: connection.name, ok: true, latencyMs: Math.round(performance.now() - started) };
  } catch (error) {
    return { name: connection.name, ok: false, latencyMs: Math.round(performance.now() - started), ...classifyUnreachable(error, step, connection) };
  } finally {
    clearTimeout(timer);
  }
}

export const health = httpHandler(async (_request: HttpRequest, context: InvocationContext) => {
  const checkedAt = new Date().toISOString();
  let config;
  try {
    config = getConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return json(503, { status: "unhealthy", live: true, checkedAt, config: { ok: false, error: error.message } });
  }
  const kube = clusterApiFactory(config);
  const arm = armClientFactory(config);
  const [storage, ...clusters] = await Promise.all([
    timed(async () => {
      const table = await openTable(config.storage);
      await table.listEntities({ queryOptions: { filter: "PartitionKey eq 'health'" } }).byPage({ maxPageSize: 1 }).next();
    }),
    ...config.clusters.map(async (connection): Promise<ClusterCheck> => {
      const [probe, os] = await Promise.all([probeCluster(connection, kube), nodeOsWithin(connection, arm, CHECK_TIMEOUT_MS)]);
      return { ...probe, nodeOs: os };
    }),
  ]);
  const ok = storage.ok && clusters.every((c) => c.ok);
  if (!ok) context.warn(`health: ${JSON.stringify({ storage, clusters })}`);
  return json(
    ok ? 200 : 503,
    {
      status: ok ? "healthy" : "unhealthy",
      live: true,
      checkedAt,
      storage,
      clusters,
      agentAuth: config.agentAuth.mode === "off" ? "off — check-ins are NOT authenticated (local simulation only)" : "tokenreview",
    },
    { "cache-control": "no-store" },
  );
});

async function timed(check: () => Promise<void>): Promise<Check> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
    timer.unref();
  });
  try {
    await Promise.race([check(), timeout]);
    return { ok: true, latencyMs: Math.round(performance.now() - started) };
  } catch (error) {
    return { ok: false, latencyMs: Math.round(performance.now() - started), error: describe(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** One line, no stack: the status code and the message, enough to tell a refused key from a dead host. */
function describe(error: unknown): string {
  const e = error as { statusCode?: unknown; code?: unknown; message?: unknown };
  const code = e.statusCode ?? e.code;
  const message = String(e.message ?? error).split("\n")[0]!.slice(0, 300);
  return code === undefined ? message : `${String(code)}: ${message}`;
}

app.http("health", {
  route: "health",
  methods: ["GET"],
  authLevel: "function",
  handler: health,
});
