import type { MeterProvider } from "@opentelemetry/sdk-metrics";
import type { LoggerProvider } from "@opentelemetry/sdk-logs";
import type { Attributes, Counter, Gauge, Histogram, Meter } from "@opentelemetry/api";
import type { Logger } from "@opentelemetry/api-logs";
import type { TokenCredential } from "@azure/identity";
import { telemetryMetrics, type Telemetry, type TelemetryDimensions } from "./names";

/**
 * Implementations of the `Telemetry` seam.
 *
 * - `AzureMonitorTelemetry`: Application Insights through OpenTelemetry metrics and logs exported by
 *   `@azure/monitor-opentelemetry-exporter`. Custom events are log records carrying the
 *   `microsoft.custom_event.name` attribute, which the exporter turns into `customEvents` rows;
 *   metrics are OpenTelemetry instruments, which it turns into `customMetrics` rows; dimensions become
 *   `customDimensions` in both. The SDK is loaded with `import()` on the first call, never at module
 *   load, so a cold start pays nothing until the first piece of telemetry (and then in the background).
 * - `NoopTelemetry`: used when `APPLICATIONINSIGHTS_CONNECTION_STRING` is unset. Loads nothing, sends nothing.
 * - `MemoryTelemetry`: a synchronous recorder for tests (`events`, `metrics`, `exceptions` arrays).
 * - `OpenTelemetryTelemetry`: the shared code path behind `AzureMonitorTelemetry`; tests build it over
 *   OpenTelemetry's in-memory exporters (or the real Azure Monitor exporter pointed at a local server).
 *
 * No method ever throws into the caller: telemetry is best effort.
 */

/** How each Rollcall metric is aggregated. Durations are histograms, counts are counters, levels are gauges. */
export type MetricInstrument = "histogram" | "counter" | "gauge";

export const metricInstruments: Readonly<Record<string, MetricInstrument>> = {
  [telemetryMetrics.lockWaitSeconds]: "histogram",
  [telemetryMetrics.drainSeconds]: "histogram",
  [telemetryMetrics.rebootSeconds]: "histogram",
  [telemetryMetrics.returnSeconds]: "histogram",
  [telemetryMetrics.nodesPending]: "gauge",
  [telemetryMetrics.nodesStuck]: "gauge",
  [telemetryMetrics.checkins]: "counter",
  [telemetryMetrics.errors]: "counter",
};

/** The instrument for a metric name; names not listed in `metricInstruments` are recorded as histograms. */
export function instrumentFor(name: string): MetricInstrument {
  return metricInstruments[name] ?? "histogram";
}

/** Dimensions with `undefined` values removed: what actually reaches `customDimensions`. */
export type RecordedDimensions = Record<string, string | number | boolean>;

export function cleanDimensions(dimensions: TelemetryDimensions | undefined): RecordedDimensions {
  const out: RecordedDimensions = {};
  if (!dimensions || typeof dimensions !== "object") return out;
  for (const [key, value] of Object.entries(dimensions)) {
    if (value === undefined || value === null) continue;
    if (typeof value === "string" || typeof value === "boolean") out[key] = value;
    else if (typeof value === "number") out[key] = Number.isFinite(value) ? value : String(value);
    else out[key] = String(value);
  }
  return out;
}

function describeError(error: unknown): { type: string; message: string; stack: string } {
  if (error instanceof Error) {
    const type = error.name || error.constructor?.name || "Error";
    return { type, message: error.message, stack: error.stack || `${type}: ${error.message}` };
  }
  const message = typeof error === "string" ? error : safeStringify(error);
  return { type: typeof error === "object" && error !== null ? "Object" : typeof error, message, stack: message };
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

let warned = false;
/** One line on stderr the first time telemetry fails, so a broken pipeline is visible in the host logs. */
function warnOnce(message: string, error?: unknown): void {
  if (warned) return;
  warned = true;
  try {
    console.warn(`[rollcall telemetry] ${message}${error ? `: ${describeError(error).message}` : ""}`);
  } catch {
    // nothing left to do
  }
}

// ---------------------------------------------------------------------------------------------- no-op

export class NoopTelemetry implements Telemetry {
  event(_name: string, _dimensions: TelemetryDimensions): void {}
  metric(_name: string, _value: number, _dimensions: TelemetryDimensions): void {}
  exception(_error: unknown, _dimensions: TelemetryDimensions): void {}
  async flush(): Promise<void> {}
}

// ------------------------------------------------------------------------------------------- in memory

export interface RecordedEvent {
  name: string;
  dimensions: RecordedDimensions;
  at: Date;
}
export interface RecordedMetric {
  name: string;
  value: number;
  instrument: MetricInstrument;
  dimensions: RecordedDimensions;
  at: Date;
}
export interface RecordedException {
  error: unknown;
  type: string;
  message: string;
  dimensions: RecordedDimensions;
  at: Date;
}

/** Records every call, synchronously, in order. Install it with `useMemoryTelemetry()`. */
export class MemoryTelemetry implements Telemetry {
  readonly events: RecordedEvent[] = [];
  readonly metrics: RecordedMetric[] = [];
  readonly exceptions: RecordedException[] = [];

  event(name: string, dimensions: TelemetryDimensions): void {
    this.events.push({ name, dimensions: cleanDimensions(dimensions), at: new Date() });
  }
  metric(name: string, value: number, dimensions: TelemetryDimensions): void {
    this.metrics.push({ name, value, instrument: instrumentFor(name), dimensions: cleanDimensions(dimensions), at: new Date() });
  }
  exception(error: unknown, dimensions: TelemetryDimensions): void {
    const { type, message } = describeError(error);
    this.exceptions.push({ error, type, message, dimensions: cleanDimensions(dimensions), at: new Date() });
  }
  async flush(): Promise<void> {}

  eventsNamed(name: string): RecordedEvent[] {
    return this.events.filter((e) => e.name === name);
  }
  metricsNamed(name: string): RecordedMetric[] {
    return this.metrics.filter((m) => m.name === name);
  }
  clear(): void {
    this.events.length = 0;
    this.metrics.length = 0;
    this.exceptions.length = 0;
  }
}

// ------------------------------------------------------------------------------------- OpenTelemetry

/** The attribute that makes the Azure Monitor exporter send a log record as a custom event (`customEvents`). */
export const customEventNameAttribute = "microsoft.custom_event.name";

const SEVERITY_INFO = 9; // SeverityNumber.INFO, without loading @opentelemetry/api-logs
const SEVERITY_ERROR = 17; // SeverityNumber.ERROR

/** Instrumentation scope name: appears as the meter and logger name. */
export const instrumentationScope = "rollcall";

/**
 * Telemetry over OpenTelemetry providers: events and exceptions as log records, metrics as instruments.
 * Whatever exporters the providers were built with receive exactly what Application Insights would.
 */
export class OpenTelemetryTelemetry implements Telemetry {
  private readonly meter: Meter;
  private readonly logger: Logger;
  private readonly histograms = new Map<string, Histogram>();
  private readonly counters = new Map<string, Counter>();
  private readonly gauges = new Map<string, Gauge>();

  constructor(
    private readonly meterProvider: MeterProvider,
    private readonly loggerProvider: LoggerProvider,
  ) {
    this.meter = meterProvider.getMeter(instrumentationScope);
    this.logger = loggerProvider.getLogger(instrumentationScope);
  }

  event(name: string, dimensions: TelemetryDimensions): void {
    try {
      this.logger.emit({
        severityNumber: SEVERITY_INFO,
        severityText: "INFO",
        body: name,
        attributes: { ...cleanDimensions(dimensions), [customEventNameAttribute]: name },
      });
    } catch (error) {
      warnOnce("could not record an event", error);
    }
  }

  metric(name: string, value: number, dimensions: TelemetryDimensions): void {
    try {
      if (typeof value !== "number" || !Number.isFinite(value)) return;
      const attributes: Attributes = cleanDimensions(dimensions);
      switch (instrumentFor(name)) {
        case "counter":
          if (value < 0) return; // counters only go up; a negative count is a caller bug, not worth a throw
          this.instrument(this.counters, name, () => this.meter.createCounter(name)).add(value, attributes);
          return;
        case "gauge":
          this.instrument(this.gauges, name, () => this.meter.createGauge(name)).record(value, attributes);
          return;
        case "histogram":
          this.instrument(this.histograms, name, () => this.meter.createHistogram(name, name.endsWith("_seconds") ? { unit: "s" } : {})).record(
            value,
            attributes,
          );
          return;
      }
    } catch (error) {
      warnOnce("could not record a metric", error);
    }
  }

  exception(error: unknown, dimensions: TelemetryDimensions): void {
    try {
      const { type, message, stack } = describeError(error);
      this.logger.emit({
        severityNumber: SEVERITY_ERROR,
        severityText: "ERROR",
        body: message,
        attributes: {
          ...cleanDimensions(dimensions),
          "exception.type": type,
          "exception.message": message,
          "exception.stacktrace": stack,
        },
      });
    } catch (failure) {
      warnOnce("could not record an exception", failure);
    }
  }

  /** Exports everything recorded so far. Resolves even when the export fails. */
  async flush(): Promise<void> {
    await Promise.allSettled([this.meterProvider.forceFlush(), this.loggerProvider.forceFlush()]);
  }

  async shutdown(): Promise<void> {
    await Promise.allSettled([this.meterProvider.shutdown(), this.loggerProvider.shutdown()]);
  }

  private instrument<T>(cache: Map<string, T>, name: string, create: () => T): T {
    let found = cache.get(name);
    if (!found) {
      found = create();
      cache.set(name, found);
    }
    return found;
  }
}

// ------------------------------------------------------------------------------------- Azure Monitor

export interface AzureMonitorOptions {
  connectionString: string;
  /**
   * `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` as the Functions host reads it
   * (`Authorization=AAD;ClientId=<client id>`): send with a managed identity token instead of the
   * connection string's key, for Application Insights resources with local authentication disabled.
   */
  authenticationString?: string;
  /** How often metrics are exported. Default 30 s. */
  metricExportIntervalMs?: number;
  /** How long events wait to be batched. Default 1 s. */
  logExportDelayMs?: number;
  /** Keep telemetry that could not be sent on disk and retry it later (the exporter's default). Default true. */
  offlineStorage?: boolean;
  /** Calls recorded while the SDK loads; later calls are dropped until it is ready. Default 1000. */
  maxBuffered?: number;
  /** Replaces the SDK loader (tests). */
  load?: () => Promise<OpenTelemetryTelemetry>;
  /** Extra options for both Azure Monitor exporters (tests pass an `httpClient` to capture what would be sent). */
  exporterOptions?: Record<string, unknown>;
}

type Call = (sink: Telemetry) => void;

function snapshot(dimensions: TelemetryDimensions): TelemetryDimensions {
  return dimensions && typeof dimensions === "object" ? { ...dimensions } : dimensions;
}

/**
 * Application Insights telemetry, loaded on first use. Calls made while the SDK loads are buffered and
 * replayed; if loading fails, telemetry is dropped (one warning on stderr) and the caller never notices.
 */
export class AzureMonitorTelemetry implements Telemetry {
  private sink: OpenTelemetryTelemetry | undefined;
  private loading: Promise<void> | undefined;
  private failed = false;
  private buffer: Call[] = [];
  private readonly maxBuffered: number;

  constructor(private readonly options: AzureMonitorOptions) {
    this.maxBuffered = options.maxBuffered ?? 1000;
  }

  /** True once loading the SDK has started (on the first call). */
  get started(): boolean {
    return this.loading !== undefined;
  }

  /** Resolves when loading has finished: true if the SDK is ready, false if it failed or never started. */
  async loaded(): Promise<boolean> {
    await this.loading;
    return this.sink !== undefined;
  }

  // Dimensions are copied now: a call may be replayed later, after the caller changed its object.
  event(name: string, dimensions: TelemetryDimensions): void {
    const copy = snapshot(dimensions);
    this.dispatch((sink) => sink.event(name, copy));
  }
  metric(name: string, value: number, dimensions: TelemetryDimensions): void {
    const copy = snapshot(dimensions);
    this.dispatch((sink) => sink.metric(name, value, copy));
  }
  exception(error: unknown, dimensions: TelemetryDimensions): void {
    const copy = snapshot(dimensions);
    this.dispatch((sink) => sink.exception(error, copy));
  }

  /** Waits for the SDK to load, then exports everything recorded so far. Never rejects. */
  async flush(): Promise<void> {
    try {
      await this.loading;
      await this.sink?.flush();
    } catch (error) {
      warnOnce("flush failed", error);
    }
  }

  async shutdown(): Promise<void> {
    try {
      await this.loading;
      await this.sink?.shutdown();
    } catch (error) {
      warnOnce("shutdown failed", error);
    }
  }

  private dispatch(call: Call): void {
    try {
      if (this.sink) {
        call(this.sink);
        return;
      }
      if (this.failed) return;
      if (this.buffer.length < this.maxBuffered) this.buffer.push(call);
      this.loading ??= this.start();
    } catch (error) {
      warnOnce("could not record telemetry", error);
    }
  }

  private async start(): Promise<void> {
    try {
      const load = this.options.load ?? (() => loadAzureMonitor(this.options));
      const sink = await load();
      const pending = this.buffer;
      this.buffer = [];
      this.sink = sink;
      for (const call of pending) {
        try {
          call(sink);
        } catch (error) {
          warnOnce("could not record telemetry", error);
        }
      }
    } catch (error) {
      this.failed = true;
      this.buffer = [];
      warnOnce("Application Insights telemetry is disabled: the SDK could not be loaded", error);
    }
  }
}

/** Parses `ClientId=…;Authorization=AAD` (either order, case-insensitive keys). */
export function parseAuthenticationString(text: string | undefined): { aad: boolean; clientId?: string } {
  const parts = new Map<string, string>();
  for (const piece of (text ?? "").split(";")) {
    const at = piece.indexOf("=");
    if (at > 0) parts.set(piece.slice(0, at).trim().toLowerCase(), piece.slice(at + 1).trim());
  }
  const clientId = parts.get("clientid") || undefined;
  return { aad: (parts.get("authorization") ?? "").toUpperCase() === "AAD", ...(clientId ? { clientId } : {}) };
}

/** The OpenTelemetry resource: `service.name` becomes `cloud_RoleName`, `service.instance.id` `cloud_RoleInstance`. */
export function resourceAttributes(env: Record<string, string | undefined> = process.env): Record<string, string> {
  const attributes: Record<string, string> = { "service.name": env.WEBSITE_SITE_NAME || "rollcall" };
  const instance = env.WEBSITE_INSTANCE_ID || env.CONTAINER_NAME || env.HOSTNAME;
  if (instance) attributes["service.instance.id"] = instance;
  return attributes;
}

/** Loads the exporter and the OpenTelemetry SDKs (dynamic imports) and wires them together. */
export async function loadAzureMonitor(options: AzureMonitorOptions): Promise<OpenTelemetryTelemetry> {
  const [exporterModule, metricsModule, logsModule, resourcesModule] = await Promise.all([
    import("@azure/monitor-opentelemetry-exporter"),
    import("@opentelemetry/sdk-metrics"),
    import("@opentelemetry/sdk-logs"),
    import("@opentelemetry/resources"),
  ]);
  let credential: TokenCredential | undefined;
  const auth = parseAuthenticationString(options.authenticationString);
  if (auth.aad) {
    const { ManagedIdentityCredential } = await import("@azure/identity");
    credential = auth.clientId ? new ManagedIdentityCredential({ clientId: auth.clientId }) : new ManagedIdentityCredential();
  }
  const exporterOptions = {
    ...options.exporterOptions,
    connectionString: options.connectionString,
    ...(credential ? { credential } : {}),
    ...(options.offlineStorage === false ? { disableOfflineStorage: true } : {}),
  };
  const resource = resourcesModule.resourceFromAttributes(resourceAttributes());
  const meterProvider = new metricsModule.MeterProvider({
    resource,
    readers: [
      new metricsModule.PeriodicExportingMetricReader({
        exporter: new exporterModule.AzureMonitorMetricExporter(exporterOptions),
        exportIntervalMillis: options.metricExportIntervalMs ?? 30_000,
      }),
    ],
  });
  const loggerProvider = new logsModule.LoggerProvider({
    resource,
    processors: [
      new logsModule.BatchLogRecordProcessor({
        exporter: new exporterModule.AzureMonitorLogExporter(exporterOptions),
        scheduledDelayMillis: options.logExportDelayMs ?? 1000,
      }),
    ],
  });
  return new OpenTelemetryTelemetry(meterProvider, loggerProvider);
}

// ------------------------------------------------------------------------------------- the process's one

let current: Telemetry | undefined;

/** Telemetry for these settings: Application Insights when a connection string is set, otherwise a no-op. */
export function createTelemetry(env: Record<string, string | undefined> = process.env): Telemetry {
  const connectionString = env.APPLICATIONINSIGHTS_CONNECTION_STRING?.trim();
  if (!connectionString) return new NoopTelemetry();
  return new AzureMonitorTelemetry({ connectionString, authenticationString: env.APPLICATIONINSIGHTS_AUTHENTICATION_STRING });
}

/** The process's telemetry, created from `process.env` on first use (or whatever `setTelemetry` installed). */
export function getTelemetry(): Telemetry {
  current ??= createTelemetry(process.env);
  return current;
}

/** Installs `telemetry` as the process's instance (`undefined`: back to the environment on next use). Returns the previous one. */
export function setTelemetry(telemetry: Telemetry | undefined): Telemetry | undefined {
  const previous = current;
  current = telemetry;
  return previous;
}

/** Tests: installs a fresh `MemoryTelemetry` as the process's instance and returns it. */
export function useMemoryTelemetry(): MemoryTelemetry {
  const memory = new MemoryTelemetry();
  current = memory;
  return memory;
}

/** Tests: forgets the installed instance; the next `getTelemetry()` reads the environment again. */
export function resetTelemetry(): void {
  current = undefined;
}

/**
 * Exports what the process's telemetry has buffered. Optional: metrics are exported every 30 s and
 * events within a second anyway; call it (without awaiting on a hot path) before an instance may go idle.
 */
export async function flushTelemetry(): Promise<void> {
  const telemetry = current as (Telemetry & { flush?: () => Promise<void> }) | undefined;
  try {
    await telemetry?.flush?.();
  } catch (error) {
    warnOnce("flush failed", error);
  }
}
