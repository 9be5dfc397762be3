import { app, type HttpRequest, type InvocationContext } from "@azure/functions";
import { ConfigError, getConfig } from "../shared/config/config";
import { httpHandler, json } from "../shared/http/http";
import { clusterApiFactory } from "../shared/kube/connect";
import { openTable } from "../shared/storage/table";

/**
 * GET /api/health — the process is alive (any answer at all), and whether Table Storage and each
 * configured cluster's API answer, with their latency. 200 when everything answers, else 503.
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
  const [storage, ...clusters] = await Promise.all([
    timed(async () => {
      const table = await openTable(config.storage);
      await table.listEntities({ queryOptions: { filter: "PartitionKey eq 'health'" } }).byPage({ maxPageSize: 1 }).next();
    }),
    ...config.clusters.map(async ({ name }) => ({ name, ...(await timed(async () => void (await (await kube(name)).getNode(PROBE_NODE)))) })),
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
