import { randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { format } from "node:util";
import type * as AzureFunctions from "@azure/functions";
import { Cron } from "croner";
import { type CapturedFunction, type FunctionMetadata, installCoreShim, runHooks, shimState } from "./coreShim";
import { compareRoutes, compileRoute, type CompiledRoute, matchRoute } from "./routes";

/**
 * The local Functions host behind `npm start`, the tests and the benchmark: it loads the function
 * app's entry modules as the Azure worker does (so `app.http`/`app.timer` register for real through
 * `@azure/functions-core`), serves the HTTP triggers with the Functions host's routing and key
 * semantics, and runs the timer triggers on their NCRONTAB schedules (UTC, seconds first).
 */

export type LogLevel = "trace" | "debug" | "information" | "warning" | "error" | "critical" | "none";

export interface FunctionsHostOptions {
  /** Default 7071 (what `func start` uses); 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  hostname?: string;
  /** The key `authLevel: function` (and admin) routes require; generated when unset. */
  key?: string;
  /** Folder of the entry modules; default `functions/` (TypeScript, under tsx) or `dist/functions/` (compiled). */
  functionsDir?: string;
  /** Where host.json lives; default the repository root. */
  appRoot?: string;
  /** Where log lines go; default stdout. */
  log?: (line: string, level: LogLevel) => void;
  /** Run timer triggers on their schedules (default true). */
  timers?: boolean;
}

export interface Registration {
  name: string;
  /** The trigger binding's type: `httpTrigger`, `timerTrigger`, … */
  trigger: string;
  route?: string;
  methods?: string[];
  authLevel?: string;
  schedule?: string;
  runOnStartup?: boolean;
  /** The metadata exactly as `@azure/functions` gave it to the worker. */
  metadata: FunctionMetadata;
  file: string;
}

export interface FunctionsHost {
  readonly url: string;
  readonly key: string;
  readonly routePrefix: string;
  readonly registrations: Registration[];
  /** Runs a timer function now, as its schedule would. */
  invokeTimer(name: string): Promise<void>;
  /** Function executions so far and their summed duration, as Flex Consumption bills them (the bench's cost figures). */
  readonly executions: { count: number; ms: number };
  stop(): Promise<void>;
}

const REPO_ROOT = resolve(__dirname, "../..");

interface Loaded extends Registration {
  callback: (...args: unknown[]) => unknown;
  compiled?: CompiledRoute;
}

export async function startFunctionsHost(options: FunctionsHostOptions = {}): Promise<FunctionsHost> {
  installCoreShim();
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const appRoot = options.appRoot ?? REPO_ROOT;
  const routePrefix = readRoutePrefix(appRoot);
  const functionsDir = options.functionsDir ?? defaultFunctionsDir(appRoot);
  const key = options.key ?? randomBytes(24).toString("base64url");
  const functions = loadFunctions(functionsDir);
  const az = require("@azure/functions") as typeof AzureFunctions;
  await runHooks("appStart", { hookData: {}, appHookData: {}, functionAppDirectory: appRoot });

  const http = functions.filter((f) => f.trigger === "httpTrigger").sort((a, b) => compareRoutes(a.compiled!, b.compiled!));
  const invoke = (fn: Loaded, args: unknown[], context: AzureFunctions.InvocationContext) => invokeWithHooks(fn, args, context);
  const newContext = (fn: Loaded, triggerMetadata?: Record<string, unknown>) =>
    new az.InvocationContext({
      invocationId: randomUUID(),
      functionName: fn.name,
      triggerMetadata,
      logHandler: (level, ...args) => {
        if (level !== "none") log(`[${fn.name}] ${format(...args)}`, level);
      },
    });

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      log(`[host] request failed: ${(error as Error).stack ?? String(error)}`, "error");
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });

  const executions = { count: 0, ms: 0 };
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", `http://${req.headers.host ?? "127.0.0.1"}`);
    const prefix = routePrefix ? `/${routePrefix}/` : "/";
    const pathname = url.pathname;
    if (!pathname.toLowerCase().startsWith(prefix.toLowerCase()) && pathname.toLowerCase() !== prefix.toLowerCase().replace(/\/$/, "")) return empty(res, 404);
    const path = pathname.slice(prefix.length).replace(/^\/+/, "");
    const method = (req.method ?? "GET").toUpperCase();
    let match: { fn: Loaded; params: Record<string, string> } | undefined;
    for (const fn of http) {
      const params = matchRoute(fn.compiled!, path);
      // The Functions host's routes carry a method constraint: a route that does not allow the method does not match.
      if (params && (fn.methods ?? []).map((m) => m.toUpperCase()).includes(method)) {
        match = { fn, params };
        break;
      }
    }
    if (!match) return empty(res, 404);
    const { fn, params } = match;
    if (fn.authLevel !== "anonymous") {
      const given = headerValue(req, "x-functions-key") ?? url.searchParams.get("code") ?? undefined;
      if (!given || !sameKey(given, key)) return empty(res, 401);
    }
    const body = await readBody(req);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
    const request = new az.HttpRequest({
      method,
      url: url.toString(),
      headers,
      params,
      body: body.length > 0 ? { bytes: body } : undefined,
    });
    const context = newContext(fn, { ...params, Headers: headers, Query: Object.fromEntries(url.searchParams) });
    let result: unknown;
    const started = performance.now();
    try {
      result = await invoke(fn, [request, context], context);
    } catch (error) {
      log(`[${fn.name}] Executed with an error: ${(error as Error).stack ?? String(error)}`, "error");
      return empty(res, 500);
    } finally {
      executions.count++;
      executions.ms += performance.now() - started;
    }
    const response = result instanceof az.HttpResponse ? result : new az.HttpResponse((result ?? {}) as AzureFunctions.HttpResponseInit);
    const out = Buffer.from(await response.arrayBuffer());
    const outHeaders: Record<string, string | string[]> = {};
    response.headers.forEach((value, name) => (outHeaders[name] = value));
    if (response.cookies.length > 0) outHeaders["set-cookie"] = response.cookies.map((c) => `${c.name}=${c.value}`);
    res.writeHead(response.status, outHeaders);
    res.end(method === "HEAD" ? undefined : out);
  }

  const port = options.port ?? Number(process.env.PORT ?? 7071);
  const hostname = options.hostname ?? "127.0.0.1";
  await new Promise<void>((resolveListen, reject) => {
    server.once("error", reject);
    server.listen(port, hostname, () => resolveListen());
  });
  const address = server.address() as AddressInfo;
  const url = `http://${hostname}:${address.port}`;

  const timerFns = functions.filter((f) => f.trigger === "timerTrigger");
  const running = new Set<Promise<void>>();
  async function runTimer(fn: Loaded, cron?: Cron, isPastDue = false): Promise<void> {
    const now = new Date();
    const next = cron?.nextRun() ?? new Cron(fn.schedule!, { timezone: "Etc/UTC", paused: true }).nextRun();
    const timer: AzureFunctions.Timer = {
      isPastDue,
      schedule: { adjustForDST: false },
      scheduleStatus: { last: now.toISOString(), next: next?.toISOString() ?? "", lastUpdated: now.toISOString() },
    };
    const context = newContext(fn);
    const started = Date.now();
    try {
      await invoke(fn, [timer, context], context);
    } catch (error) {
      log(`[${fn.name}] Executed with an error after ${Date.now() - started} ms: ${(error as Error).stack ?? String(error)}`, "error");
    }
  }
  const track = (p: Promise<void>) => {
    running.add(p);
    void p.finally(() => running.delete(p));
  };
  const crons: Cron[] = [];
  if (options.timers ?? true) {
    for (const fn of timerFns) {
      // protect: like the Functions host's singleton lock, a tick is skipped while the previous run is still going.
      const cron: Cron = new Cron(fn.schedule!, { timezone: "Etc/UTC", protect: true }, () => {
        const p = runTimer(fn, cron);
        track(p);
        return p;
      });
      crons.push(cron);
      if (fn.runOnStartup) track(runTimer(fn, cron));
    }
  }

  let stopping: Promise<void> | undefined;
  return {
    url,
    key,
    routePrefix,
    executions,
    registrations: functions.map(({ callback: _c, compiled: _r, ...registration }) => registration),
    async invokeTimer(name) {
      const fn = timerFns.find((f) => f.name === name);
      if (!fn) throw new Error(`No timer function named ${name}`);
      await runTimer(fn);
    },
    stop() {
      stopping ??= (async () => {
        for (const cron of crons) cron.stop();
        await new Promise<void>((done) => {
          server.close(() => done());
          server.closeAllConnections();
        });
        await Promise.allSettled([...running]);
        await runHooks("appTerminate", { hookData: {}, appHookData: {} });
      })();
      return stopping;
    },
  };
}

/** The trigger binding of a registration: the one input binding whose type ends in `Trigger`. */
function triggerOf(metadata: FunctionMetadata) {
  return Object.values(metadata.bindings).find((b) => b.direction === "in" && typeof b.type === "string" && /Trigger$/.test(b.type));
}

function loadFunctions(dir: string): Loaded[] {
  if (!existsSync(dir)) throw new Error(`No function app entry modules in ${dir}`);
  const ext = dir.split(/[\\/]/).includes("dist") ? ".js" : ".ts";
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(ext) && !f.endsWith(".d.ts") && !f.endsWith(".test.ts"))
    .sort()
    .map((f) => join(dir, f));
  // As in the worker, each entry module is required once, in order; one may import another (whose
  // registrations then happen during the first one's load). A second host in the same process loads them again.
  for (const file of files) delete require.cache[require.resolve(file)];
  const sink: CapturedFunction[] = [];
  const fileOf = new Map<CapturedFunction, string>();
  shimState.sink = sink;
  try {
    for (const file of files) {
      const before = sink.length;
      require(file);
      for (const captured of sink.slice(before)) fileOf.set(captured, files.find((f) => captured.stack.includes(f)) ?? file);
    }
  } finally {
    shimState.sink = undefined;
  }
  const loaded: Loaded[] = [];
  for (const captured of sink) {
    const { metadata, callback } = captured;
    const file = fileOf.get(captured)!;
    const trigger = triggerOf(metadata);
    if (!trigger) throw new Error(`Function ${metadata.name} in ${file} has no trigger binding`);
    const registration: Loaded = {
      name: metadata.name,
      trigger: String(trigger.type),
      metadata,
      file,
      callback,
      ...(trigger.type === "httpTrigger"
        ? { route: trigger.route ?? metadata.name, methods: trigger.methods ?? ["GET", "POST"], authLevel: trigger.authLevel ?? "anonymous" }
        : {}),
      ...(trigger.type === "timerTrigger" ? { schedule: trigger.schedule, runOnStartup: trigger.runOnStartup === true } : {}),
    };
    if (registration.route !== undefined) registration.compiled = compileRoute(registration.route);
    // A schedule croner cannot parse fails here, at load, as the Functions host fails at start.
    if (registration.schedule !== undefined) new Cron(registration.schedule, { paused: true }).stop();
    loaded.push(registration);
  }
  if (files.length > 0 && loaded.length === 0) {
    throw new Error(
      `The function modules in ${dir} registered nothing: "@azure/functions" was loaded in test mode before the local host installed @azure/functions-core. Start the host before anything calls app.*.`,
    );
  }
  return loaded;
}

async function invokeWithHooks(fn: Loaded, args: unknown[], context: AzureFunctions.InvocationContext): Promise<unknown> {
  const pre: Record<string, unknown> = { hookData: {}, appHookData: {}, invocationContext: context, inputs: args, functionCallback: fn.callback };
  await runHooks("preInvocation", pre);
  const callback = pre.functionCallback as (...a: unknown[]) => unknown;
  let result: unknown;
  let error: unknown;
  try {
    result = await callback(...(pre.inputs as unknown[]));
  } catch (e) {
    error = e;
  }
  const post: Record<string, unknown> = { hookData: pre.hookData, appHookData: {}, invocationContext: context, inputs: pre.inputs, result, error };
  await runHooks("postInvocation", post);
  if (post.error) throw post.error;
  return post.result;
}

function readRoutePrefix(appRoot: string): string {
  try {
    const host = JSON.parse(readFileSync(join(appRoot, "host.json"), "utf8")) as { extensions?: { http?: { routePrefix?: string } } };
    const prefix = host.extensions?.http?.routePrefix;
    return (prefix ?? "api").replace(/^\/+|\/+$/g, "");
  } catch {
    return "api";
  }
}

function defaultFunctionsDir(appRoot: string): string {
  // Under tsx (npm start, tests) the TypeScript sources are loaded; otherwise the compiled output, as in Azure.
  return require.extensions[".ts"] ? join(appRoot, "functions") : join(appRoot, "dist", "functions");
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function sameKey(given: string, key: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(key);
  return a.length === b.length && timingSafeEqual(a, b);
}

function empty(res: ServerResponse, status: number): void {
  res.writeHead(status, { "content-length": "0" });
  res.end();
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolveBody, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      // The Functions host refuses request bodies over 100 MB.
      if (size > 100 * 1024 * 1024) {
        reject(new Error("request body too large"));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolveBody(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

