import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { telemetryEvents, telemetryMetrics } from "../../shared/telemetry/names";
import { loadAzureMonitor, type OpenTelemetryTelemetry } from "../../shared/telemetry/telemetry";

/**
 * The real Azure Monitor exporter, with its HTTP client replaced by one that records what would be
 * posted to the ingestion endpoint: proves the envelopes are the ones Application Insights stores in
 * `customEvents`, `customMetrics` and `exceptions`, with the dimensions in `customDimensions`.
 */

const repo = path.resolve(__dirname, "../..");
const connectionString = "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=https://ingest.example.invalid/";

interface Envelope {
  name: string;
  tags: Record<string, string>;
  data: { baseType: string; baseData: Record<string, unknown> & { properties?: Record<string, string> } };
}

function headers() {
  const map = new Map<string, string>();
  return {
    get: (k: string) => map.get(k.toLowerCase()),
    has: (k: string) => map.has(k.toLowerCase()),
    set: (k: string, v: string) => void map.set(k.toLowerCase(), v),
    delete: (k: string) => void map.delete(k.toLowerCase()),
    toJSON: () => Object.fromEntries(map),
    [Symbol.iterator]: () => map.entries(),
  };
}

function capturingClient(status = 200) {
  const sent: { url: string; envelopes: Envelope[] }[] = [];
  const httpClient = {
    async sendRequest(request: { url: string; body?: unknown }) {
      sent.push({ url: request.url, envelopes: JSON.parse(String(request.body)) as Envelope[] });
      const h = headers();
      h.set("content-type", "application/json");
      const body = status === 200 ? { itemsReceived: 1, itemsAccepted: 1, errors: [] } : { itemsReceived: 1, itemsAccepted: 0, errors: [{ index: 0, statusCode: status }] };
      return { request, status, headers: h, bodyAsText: JSON.stringify(body) };
    },
  };
  return { sent, httpClient };
}

before(() => {
  // The exporter's own usage reporting (statsbeat) would otherwise try to reach Microsoft.
  process.env.APPLICATION_INSIGHTS_NO_STATSBEAT = "true";
  process.env.APPLICATIONINSIGHTS_STATSBEAT_DISABLED = "true";
});

describe("Azure Monitor exporter envelopes", () => {
  test("events land in customEvents, metrics in customMetrics, exceptions in exceptions, dimensions in customDimensions", async () => {
    const { sent, httpClient } = capturingClient();
    const t: OpenTelemetryTelemetry = await loadAzureMonitor({ connectionString, offlineStorage: false, exporterOptions: { httpClient } });
    const dims = { cluster: "prod-weu", node: "aks-user-3" };
    t.event(telemetryEvents.transition, { ...dims, from: "draining", to: "drain-failed", why: "drain timed out after 15m", leaseId: "lease-9" });
    t.event(telemetryEvents.upgradePlan, { cluster: "prod-weu", steps: 2, summary: "system 1.30->1.31; user 1.30->1.31" });
    t.metric(telemetryMetrics.drainSeconds, 30, dims);
    t.metric(telemetryMetrics.drainSeconds, 90, dims);
    t.metric(telemetryMetrics.checkins, 1, dims);
    t.metric(telemetryMetrics.nodesPending, 4, { cluster: "prod-weu" });
    t.exception(new Error("kube API said no"), dims);
    await t.flush();
    await t.shutdown();

    assert.ok(sent.length >= 1);
    assert.ok(sent.every((s) => s.url.startsWith("https://ingest.example.invalid/") && s.url.endsWith("/track")), "posts to the connection string's ingestion endpoint");
    const envelopes = sent.flatMap((s) => s.envelopes);

    const events = envelopes.filter((e) => e.data.baseType === "EventData");
    assert.deepEqual(
      events.map((e) => [e.name, e.data.baseData.name, e.data.baseData.properties]),
      [
        [
          "Microsoft.ApplicationInsights.Event",
          telemetryEvents.transition,
          { cluster: "prod-weu", node: "aks-user-3", from: "draining", to: "drain-failed", why: "drain timed out after 15m", leaseId: "lease-9" },
        ],
        ["Microsoft.ApplicationInsights.Event", telemetryEvents.upgradePlan, { cluster: "prod-weu", steps: "2", summary: "system 1.30->1.31; user 1.30->1.31" }],
      ],
    );

    const metrics = envelopes.filter((e) => e.data.baseType === "MetricData");
    const metric = (name: string) => metrics.find((e) => (e.data.baseData.metrics as { name: string }[])[0]?.name === name);
    const drain = metric(telemetryMetrics.drainSeconds);
    assert.deepEqual(drain?.data.baseData.properties, dims);
    assert.deepEqual(drain?.data.baseData.metrics, [{ name: telemetryMetrics.drainSeconds, kind: "Aggregation", value: 120, count: 2, min: 30, max: 90 }]);
    assert.deepEqual(metric(telemetryMetrics.checkins)?.data.baseData.properties, dims);
    assert.equal((metric(telemetryMetrics.checkins)?.data.baseData.metrics as { value: number }[])[0]?.value, 1);
    assert.deepEqual(metric(telemetryMetrics.nodesPending)?.data.baseData.properties, { cluster: "prod-weu" });

    const exceptions = envelopes.filter((e) => e.data.baseType === "ExceptionData");
    assert.equal(exceptions.length, 1);
    assert.deepEqual(exceptions[0]?.data.baseData.properties, dims);
    assert.equal((exceptions[0]?.data.baseData.exceptions as { message: string }[])[0]?.message, "kube API said no");

    assert.ok(envelopes.every((e) => e.tags["ai.cloud.role"]), "cloud_RoleName is set from the resource");
  });

  test("an ingestion endpoint that fails does not throw into the caller", async () => {
    const { sent, httpClient } = capturingClient(400); // 5xx works too but the pipeline retries it for seconds
    const t = await loadAzureMonitor({ connectionString, offlineStorage: false, exporterOptions: { httpClient } });
    t.event(telemetryEvents.stuck, { cluster: "c", node: "n", state: "draining", why: "lock TTL" });
    t.metric(telemetryMetrics.errors, 1, { cluster: "c" });
    await t.flush();
    await t.shutdown();
    assert.ok(sent.length >= 1);
  });

  test("an HTTP client that throws does not throw into the caller", async () => {
    const httpClient = {
      async sendRequest(): Promise<never> {
        throw new Error("ECONNRESET");
      },
    };
    const t = await loadAzureMonitor({ connectionString, offlineStorage: false, exporterOptions: { httpClient } });
    t.event(telemetryEvents.stuck, { cluster: "c", node: "n" });
    t.metric(telemetryMetrics.errors, 1, { cluster: "c" });
    await t.flush();
    await t.shutdown();
  });
});

/**
 * Runs a script in a fresh Node process with a module hook that records every specifier resolved, so
 * "the SDK is not loaded" is checked against what Node actually resolved, not against our own flags.
 */
function runIsolated(script: string, env: Record<string, string | undefined>) {
  const prelude = `
    const loaded = [];
    require("node:module").registerHooks({ resolve(specifier, context, next) { loaded.push(specifier); return next(specifier, context); } });
    const sdk = () => loaded.filter((s) => /@azure\\/monitor-opentelemetry|@opentelemetry\\/|@azure\\/identity/.test(s));
    const report = (x) => { process.stdout.write(JSON.stringify(x)); process.exit(0); };
  `;
  const childEnv: Record<string, string | undefined> = { ...process.env, APPLICATION_INSIGHTS_NO_STATSBEAT: "true", ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete childEnv[k];
  const result = spawnSync(process.execPath, ["--import", "tsx", "-e", prelude + script], { cwd: repo, env: childEnv as NodeJS.ProcessEnv, encoding: "utf8", timeout: 60_000 });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

describe("lazy loading", () => {
  test("without a connection string nothing is loaded and nothing is sent", () => {
    const out = runIsolated(
      `
      const { getTelemetry, flushTelemetry, NoopTelemetry } = require("./shared/telemetry/telemetry.ts");
      const t = getTelemetry();
      t.event("RollcallTransition", { cluster: "c", node: "n", from: "idle", to: "pending" });
      t.metric("rollcall.checkins", 1, { cluster: "c", node: "n" });
      t.exception(new Error("x"), { cluster: "c" });
      flushTelemetry().then(() => report({ noop: t instanceof NoopTelemetry, sdk: sdk() }));
      `,
      { APPLICATIONINSIGHTS_CONNECTION_STRING: undefined },
    );
    assert.deepEqual(out, { noop: true, sdk: [] });
  });

  test("with a connection string the SDK is loaded on the first call, not when the module loads", () => {
    const out = runIsolated(
      `
      const { getTelemetry } = require("./shared/telemetry/telemetry.ts");
      const t = getTelemetry();
      const atModuleLoad = sdk().length;
      t.event("RollcallTransition", { cluster: "c", node: "n" });
      t.loaded().then((ok) => report({ atModuleLoad, ok, afterFirstCall: sdk() }));
      `,
      { APPLICATIONINSIGHTS_CONNECTION_STRING: "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=https://127.0.0.1:9/" },
    );
    assert.equal(out.atModuleLoad, 0);
    assert.equal(out.ok, true);
    const afterFirstCall = out.afterFirstCall as string[];
    for (const m of ["@azure/monitor-opentelemetry-exporter", "@opentelemetry/sdk-metrics", "@opentelemetry/sdk-logs"]) {
      assert.ok(afterFirstCall.includes(m), `${m} loaded after the first call`);
    }
    assert.ok(!afterFirstCall.includes("@azure/identity"), "no managed identity credential without an authentication string");
  });
});
