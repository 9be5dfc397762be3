import { test, describe, afterEach } from "node:test";
import assert from "node:assert/strict";
import { AggregationTemporality, DataPointType, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import type { HistogramMetricData, ResourceMetrics } from "@opentelemetry/sdk-metrics";
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import { telemetryEvents, telemetryMetrics } from "../../shared/telemetry/names";
import {
  AzureMonitorTelemetry,
  MemoryTelemetry,
  NoopTelemetry,
  OpenTelemetryTelemetry,
  createTelemetry,
  customEventNameAttribute,
  flushTelemetry,
  getTelemetry,
  instrumentFor,
  parseAuthenticationString,
  resetTelemetry,
  setTelemetry,
  useMemoryTelemetry,
} from "../../shared/telemetry/telemetry";

const transition = { cluster: "prod-weu", node: "aks-sys-0", from: "draining", to: "reboot-ordered", why: "drained", leaseId: "l-1" };

afterEach(() => resetTelemetry());

describe("MemoryTelemetry and the process's instance", () => {
  test("useMemoryTelemetry installs a recorder that getTelemetry returns", () => {
    const memory = useMemoryTelemetry();
    assert.equal(getTelemetry(), memory);
    getTelemetry().event(telemetryEvents.transition, { ...transition, extra: undefined });
    getTelemetry().metric(telemetryMetrics.drainSeconds, 42, { cluster: "prod-weu", node: "aks-sys-0" });
    getTelemetry().exception(new TypeError("bad"), { cluster: "prod-weu" });
    assert.deepEqual(
      memory.events.map((e) => [e.name, e.dimensions]),
      [[telemetryEvents.transition, transition]],
    );
    assert.deepEqual(
      memory.metrics.map((m) => [m.name, m.value, m.instrument, m.dimensions]),
      [[telemetryMetrics.drainSeconds, 42, "histogram", { cluster: "prod-weu", node: "aks-sys-0" }]],
    );
    assert.equal(memory.exceptions[0]?.type, "TypeError");
    assert.equal(memory.exceptions[0]?.message, "bad");
    assert.equal(memory.eventsNamed(telemetryEvents.stuck).length, 0);
    assert.equal(memory.metricsNamed(telemetryMetrics.drainSeconds).length, 1);
    memory.clear();
    assert.equal(memory.events.length + memory.metrics.length + memory.exceptions.length, 0);
  });

  test("setTelemetry returns the previous instance and resetTelemetry goes back to the environment", () => {
    const a = new MemoryTelemetry();
    assert.equal(setTelemetry(a), undefined);
    assert.equal(getTelemetry(), a);
    const b = new MemoryTelemetry();
    assert.equal(setTelemetry(b), a);
    resetTelemetry();
    const saved = process.env.APPLICATIONINSIGHTS_CONNECTION_STRING;
    delete process.env.APPLICATIONINSIGHTS_CONNECTION_STRING;
    try {
      assert.ok(getTelemetry() instanceof NoopTelemetry);
    } finally {
      if (saved !== undefined) process.env.APPLICATIONINSIGHTS_CONNECTION_STRING = saved;
    }
  });

  test("createTelemetry: no-op without a connection string, lazy Azure Monitor with one (nothing loaded yet)", () => {
    assert.ok(createTelemetry({}) instanceof NoopTelemetry);
    assert.ok(createTelemetry({ APPLICATIONINSIGHTS_CONNECTION_STRING: "  " }) instanceof NoopTelemetry);
    const t = createTelemetry({ APPLICATIONINSIGHTS_CONNECTION_STRING: "InstrumentationKey=00000000-0000-0000-0000-000000000000" });
    assert.ok(t instanceof AzureMonitorTelemetry);
    assert.equal(t.started, false);
  });

  test("the no-op accepts anything", async () => {
    const t = new NoopTelemetry();
    t.event(telemetryEvents.transition, transition);
    t.metric(telemetryMetrics.errors, 1, { cluster: "c" });
    t.exception(new Error("x"), { cluster: "c" });
    await t.flush();
  });

  test("every metric in names.ts has a deliberate instrument", () => {
    assert.equal(instrumentFor(telemetryMetrics.lockWaitSeconds), "histogram");
    assert.equal(instrumentFor(telemetryMetrics.drainSeconds), "histogram");
    assert.equal(instrumentFor(telemetryMetrics.rebootSeconds), "histogram");
    assert.equal(instrumentFor(telemetryMetrics.returnSeconds), "histogram");
    assert.equal(instrumentFor(telemetryMetrics.nodesPending), "gauge");
    assert.equal(instrumentFor(telemetryMetrics.nodesStuck), "gauge");
    assert.equal(instrumentFor(telemetryMetrics.checkins), "counter");
    assert.equal(instrumentFor(telemetryMetrics.errors), "counter");
  });

  test("parseAuthenticationString reads the Functions host's format", () => {
    assert.deepEqual(parseAuthenticationString("Authorization=AAD;ClientId=abc"), { aad: true, clientId: "abc" });
    assert.deepEqual(parseAuthenticationString("clientid=abc; authorization=aad"), { aad: true, clientId: "abc" });
    assert.deepEqual(parseAuthenticationString(undefined), { aad: false });
  });
});

/** OpenTelemetry providers over the SDK's in-memory exporters: the code path production uses, minus the network. */
function inMemoryPipeline() {
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.DELTA);
  const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  const logExporter = new InMemoryLogRecordExporter();
  const loggerProvider = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter: logExporter })] });
  const telemetry = new OpenTelemetryTelemetry(meterProvider, loggerProvider);
  const points = () =>
    metricExporter
      .getMetrics()
      .flatMap((rm: ResourceMetrics) => rm.scopeMetrics.flatMap((sm) => sm.metrics))
      .flatMap((m) => m.dataPoints.map((p) => ({ name: m.descriptor.name, type: m.dataPointType, unit: m.descriptor.unit, attributes: p.attributes, value: p.value, metric: m })));
  return { telemetry, logExporter, points };
}

describe("OpenTelemetryTelemetry (in-memory exporters)", () => {
  test("events become log records carrying the custom event name and every dimension", async () => {
    const { telemetry, logExporter } = inMemoryPipeline();
    telemetry.event(telemetryEvents.transition, transition);
    telemetry.event(telemetryEvents.stuck, { cluster: "prod-weu", node: "aks-sys-1", state: "draining", why: "lock older than TTL", ignored: undefined });
    telemetry.event(telemetryEvents.upgradePlan, { cluster: "prod-weu", steps: 3, summary: "1.30.5 -> 1.31.2" });
    await telemetry.flush();
    const records = logExporter.getFinishedLogRecords();
    assert.equal(records.length, 3);
    assert.deepEqual(records[0]?.attributes, { ...transition, [customEventNameAttribute]: telemetryEvents.transition });
    assert.deepEqual(records[1]?.attributes, {
      cluster: "prod-weu",
      node: "aks-sys-1",
      state: "draining",
      why: "lock older than TTL",
      [customEventNameAttribute]: telemetryEvents.stuck,
    });
    assert.equal(records[2]?.attributes.steps, 3);
    assert.equal(records[2]?.instrumentationScope.name, "rollcall");
    await telemetry.shutdown();
  });

  test("exceptions become log records with the exception semantic attributes", async () => {
    const { telemetry, logExporter } = inMemoryPipeline();
    telemetry.exception(new RangeError("out of range"), { cluster: "c1", node: "n1" });
    telemetry.exception("a string", { cluster: "c1" });
    const [first, second] = logExporter.getFinishedLogRecords();
    assert.equal(first?.attributes["exception.type"], "RangeError");
    assert.equal(first?.attributes["exception.message"], "out of range");
    assert.match(String(first?.attributes["exception.stacktrace"]), /RangeError: out of range/);
    assert.equal(first?.attributes.node, "n1");
    assert.equal(second?.attributes["exception.message"], "a string");
    assert.ok(second?.attributes["exception.stacktrace"], "a stack is required for the exporter to send it to `exceptions`");
    await telemetry.shutdown();
  });

  test("metrics: durations are histograms, counts are counters, levels are gauges, all with dimensions", async () => {
    const { telemetry, points } = inMemoryPipeline();
    const n1 = { cluster: "prod-weu", node: "n1" };
    const n2 = { cluster: "prod-weu", node: "n2" };
    telemetry.metric(telemetryMetrics.drainSeconds, 30, n1);
    telemetry.metric(telemetryMetrics.drainSeconds, 90, n1);
    telemetry.metric(telemetryMetrics.drainSeconds, 10, n2);
    telemetry.metric(telemetryMetrics.lockWaitSeconds, 5, n1);
    telemetry.metric(telemetryMetrics.rebootSeconds, 120, n1);
    telemetry.metric(telemetryMetrics.returnSeconds, 200, n1);
    telemetry.metric(telemetryMetrics.checkins, 1, n1);
    telemetry.metric(telemetryMetrics.checkins, 1, n1);
    telemetry.metric(telemetryMetrics.checkins, 1, n2);
    telemetry.metric(telemetryMetrics.errors, 1, { cluster: "prod-weu", node: "n2", phase: "drain" });
    telemetry.metric(telemetryMetrics.nodesPending, 4, { cluster: "prod-weu" });
    telemetry.metric(telemetryMetrics.nodesPending, 3, { cluster: "prod-weu" });
    telemetry.metric(telemetryMetrics.nodesStuck, 1, { cluster: "prod-weu" });
    telemetry.metric(telemetryMetrics.checkins, -1, n1); // dropped: counters only go up
    telemetry.metric(telemetryMetrics.drainSeconds, Number.NaN, n1); // dropped
    await telemetry.flush();
    const all = points();
    const find = (name: string, attributes: Record<string, unknown>) =>
      all.filter((p) => p.name === name && JSON.stringify(p.attributes) === JSON.stringify(attributes));

    const [drainN1] = find(telemetryMetrics.drainSeconds, n1);
    assert.equal(drainN1?.type, DataPointType.HISTOGRAM);
    assert.equal(drainN1?.unit, "s");
    const h = drainN1?.value as HistogramMetricData["dataPoints"][number]["value"];
    assert.deepEqual([h.count, h.sum, h.min, h.max], [2, 120, 30, 90]);
    assert.equal((find(telemetryMetrics.drainSeconds, n2)[0]?.value as typeof h).sum, 10);
    for (const name of [telemetryMetrics.lockWaitSeconds, telemetryMetrics.rebootSeconds, telemetryMetrics.returnSeconds]) {
      assert.equal(find(name, n1)[0]?.type, DataPointType.HISTOGRAM, name);
    }

    const checkinsN1 = find(telemetryMetrics.checkins, n1)[0];
    assert.equal(checkinsN1?.type, DataPointType.SUM);
    assert.equal(checkinsN1?.value, 2);
    assert.equal(find(telemetryMetrics.checkins, n2)[0]?.value, 1);
    assert.equal(find(telemetryMetrics.errors, { cluster: "prod-weu", node: "n2", phase: "drain" })[0]?.value, 1);

    const pending = find(telemetryMetrics.nodesPending, { cluster: "prod-weu" })[0];
    assert.equal(pending?.type, DataPointType.GAUGE);
    assert.equal(pending?.value, 3, "a gauge reports its last value");
    assert.equal(find(telemetryMetrics.nodesStuck, { cluster: "prod-weu" })[0]?.value, 1);
    await telemetry.shutdown();
  });

  test("a failing exporter or provider never throws into the caller", async () => {
    const broken = {
      getMeter: () => {
        throw new Error("meter broke");
      },
    };
    assert.throws(() => new OpenTelemetryTelemetry(broken as never, broken as never)); // construction is the loader's problem…
    const { telemetry } = inMemoryPipeline();
    // …but a recording that blows up inside the SDK is swallowed.
    (telemetry as unknown as { logger: { emit: () => void } }).logger.emit = () => {
      throw new Error("emit broke");
    };
    (telemetry as unknown as { meter: { createCounter: () => void } }).meter.createCounter = () => {
      throw new Error("counter broke");
    };
    telemetry.event(telemetryEvents.transition, transition);
    telemetry.exception(new Error("x"), { cluster: "c" });
    telemetry.metric(telemetryMetrics.checkins, 1, { cluster: "c" });
    telemetry.metric(telemetryMetrics.drainSeconds, 1, null as never);
    await telemetry.flush();
  });
});

describe("AzureMonitorTelemetry (lazy)", () => {
  test("loads on the first call, buffers while loading, then replays in order", async () => {
    const { telemetry: sink, logExporter, points } = inMemoryPipeline();
    let loads = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const t = new AzureMonitorTelemetry({
      connectionString: "InstrumentationKey=00000000-0000-0000-0000-000000000000",
      load: async () => {
        loads++;
        await gate;
        return sink;
      },
    });
    assert.equal(t.started, false);
    const mutable = { ...transition };
    t.event(telemetryEvents.transition, mutable);
    mutable.to = "changed-after-the-call";
    t.metric(telemetryMetrics.checkins, 1, { cluster: "prod-weu", node: "aks-sys-0" });
    assert.equal(t.started, true);
    assert.equal(logExporter.getFinishedLogRecords().length, 0, "nothing reaches the exporter before the SDK is loaded");
    release();
    await t.flush();
    t.event(telemetryEvents.stuck, { cluster: "prod-weu", node: "aks-sys-0", state: "stuck", why: "lock TTL" });
    await t.flush();
    assert.equal(loads, 1);
    assert.deepEqual(
      logExporter.getFinishedLogRecords().map((r) => r.attributes[customEventNameAttribute]),
      [telemetryEvents.transition, telemetryEvents.stuck],
    );
    assert.equal(logExporter.getFinishedLogRecords()[0]?.attributes.to, transition.to, "buffered calls keep the dimensions they were made with");
    assert.equal(points().find((p) => p.name === telemetryMetrics.checkins)?.value, 1);
    await t.shutdown();
  });

  test("a loader that fails disables telemetry quietly", async () => {
    let loads = 0;
    const t = new AzureMonitorTelemetry({
      connectionString: "InstrumentationKey=00000000-0000-0000-0000-000000000000",
      load: async () => {
        loads++;
        throw new Error("Cannot find module '@azure/monitor-opentelemetry-exporter'");
      },
    });
    const warn = console.warn;
    console.warn = () => {};
    try {
      t.event(telemetryEvents.transition, transition);
      await t.flush();
      t.metric(telemetryMetrics.errors, 1, { cluster: "c" });
      t.exception(new Error("x"), { cluster: "c" });
      await t.flush();
      await t.shutdown();
    } finally {
      console.warn = warn;
    }
    assert.equal(loads, 1, "no retry storm");
  });

  test("the buffer is bounded while the SDK loads", async () => {
    const { telemetry: sink, logExporter } = inMemoryPipeline();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const t = new AzureMonitorTelemetry({ connectionString: "x", maxBuffered: 5, load: async () => (await gate, sink) });
    for (let i = 0; i < 20; i++) t.event(telemetryEvents.transition, { ...transition, leaseId: String(i) });
    release();
    await t.flush();
    assert.equal(logExporter.getFinishedLogRecords().length, 5);
  });

  test("flushTelemetry flushes the installed instance and tolerates any", async () => {
    await flushTelemetry();
    let flushed = 0;
    setTelemetry({ event() {}, metric() {}, exception() {}, flush: async () => void flushed++ } as never);
    await flushTelemetry();
    assert.equal(flushed, 1);
    setTelemetry({
      event() {},
      metric() {},
      exception() {},
      flush: async () => {
        throw new Error("flush broke");
      },
    } as never);
    const warn = console.warn;
    console.warn = () => {};
    try {
      await flushTelemetry();
    } finally {
      console.warn = warn;
    }
  });
});
