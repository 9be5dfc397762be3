import Module from "node:module";
import { join } from "node:path";

/**
 * A stand-in for `@azure/functions-core`, the module the Azure Functions Node worker provides to
 * `@azure/functions` at run time. With it installed, `app.http()`/`app.timer()` register for real
 * (instead of the package's "test mode"), and the registrations carry the exact trigger metadata
 * Azure would receive.
 */

export interface RpcBindingInfo {
  type?: string;
  direction?: string;
  name?: string;
  route?: string;
  methods?: string[];
  authLevel?: string;
  schedule?: string;
  runOnStartup?: boolean;
  useMonitor?: boolean;
  [key: string]: unknown;
}

export interface FunctionMetadata {
  name: string;
  bindings: Record<string, RpcBindingInfo>;
  retryOptions?: unknown;
}

export type FunctionCallback = (...args: unknown[]) => unknown;
export type HookCallback = (context: Record<string, unknown>) => unknown;

export interface CapturedFunction {
  metadata: FunctionMetadata;
  callback: FunctionCallback;
  /** The call stack of the registration, to tell which entry module made it. */
  stack: string;
}

interface ShimState {
  /** Where registrations go while a host loads its function files. */
  sink?: CapturedFunction[];
  programmingModel?: unknown;
  hooks: Map<string, Set<HookCallback>>;
}

const STATE_KEY = Symbol.for("rollcall.functionsHost.coreShim");
const globals = globalThis as unknown as Record<symbol, ShimState | undefined>;
export const shimState: ShimState = (globals[STATE_KEY] ??= { hooks: new Map() });

const coreApi = {
  version: "4.0.0-rollcall-local",
  hostVersion: "4.0.0-rollcall-local",
  registerFunction(metadata: FunctionMetadata, callback: FunctionCallback) {
    if (!shimState.sink) throw new Error(`Function ${metadata.name} registered outside a load by the local Functions host`);
    if (shimState.sink.some((f) => f.metadata.name === metadata.name)) throw new Error(`A function named "${metadata.name}" is registered twice`);
    shimState.sink.push({ metadata, callback, stack: new Error().stack ?? "" });
    return { dispose() {} };
  },
  setProgrammingModel(model: unknown) {
    shimState.programmingModel = model;
  },
  getProgrammingModel() {
    return shimState.programmingModel;
  },
  registerHook(hookName: string, callback: HookCallback) {
    if (!["appStart", "appTerminate", "preInvocation", "postInvocation", "log"].includes(hookName)) throw new RangeError(`Unknown hook ${hookName}`);
    let set = shimState.hooks.get(hookName);
    if (!set) shimState.hooks.set(hookName, (set = new Set()));
    set.add(callback);
    return { dispose: () => set!.delete(callback) };
  },
  log(level: string, category: string, message: string) {
    if (level === "error" || level === "warning") process.stderr.write(`[worker ${category}] ${message}\n`);
  },
};

/** The virtual file the module lives under in the require cache. */
const SHIM_FILE = join(__dirname, "@azure-functions-core.virtual.js");
let installed = false;

type ResolveFilename = (request: string, parent: unknown, isMain: boolean, options?: unknown) => string;

/** Makes `require("@azure/functions-core")` return the shim in this process. Idempotent. */
export function installCoreShim(): void {
  if (installed) return;
  installed = true;
  const cached = new Module(SHIM_FILE);
  cached.filename = SHIM_FILE;
  cached.loaded = true;
  cached.exports = coreApi;
  (Module as unknown as { _cache: Record<string, Module> })._cache[SHIM_FILE] = cached;
  const internals = Module as unknown as { _resolveFilename: ResolveFilename };
  const original = internals._resolveFilename;
  internals._resolveFilename = function (request, parent, isMain, options) {
    if (request === "@azure/functions-core") return SHIM_FILE;
    return original.call(this, request, parent, isMain, options);
  };
}

export async function runHooks(name: string, context: Record<string, unknown>): Promise<void> {
  for (const hook of shimState.hooks.get(name) ?? []) await hook(context);
}
