import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { type Answer, baseUrl, call, CliError, type Connection, EXIT } from "./api";
import { age, duration, OUTPUT_FORMATS, type OutputFormat, table, yaml } from "./format";

/**
 * `rollcall`: the operator API from a terminal (docs/cli.md). Thin on purpose: parse the arguments,
 * call one route, print its answer; every rule stays in the function app.
 */

const USAGE = `Usage: rollcall [options] COMMAND [ARGS]

Commands:
  status                     nodes, states, lock holders and the queue with each hold reason
  history [NODE]             finished reboots, drains and maintenances, newest first (--limit N)
  reboot NODE                ask for a reboot (--reason R, --not-before TIME, --drain-only, --priority N)
  cancel NODE                withdraw a reboot request before its drain begins
  release NODE               end a drain-only maintenance, or put a stuck or quarantined node back
  retry NODE                 move a drain-failed node back to pending now
  policy get                 the cluster's stored and effective policy
  policy set -f FILE         replace the cluster's policy with FILE's JSON document (- for stdin)
  plan                       the stored upgrade plan (--replan: plan again now from ARM)
  watch                      the status, refreshed every --interval seconds until Ctrl-C

Options:
  --url URL                  the API, e.g. https://<app>.azurewebsites.net/api  [ROLLCALL_URL]
  --key KEY                  a function key of the app                          [ROLLCALL_KEY]
  -c, --cluster NAME         the cluster; default the only configured one       [ROLLCALL_CLUSTER]
  --entra APP_ID             send an Entra token for api://APP_ID from az       [ROLLCALL_ENTRA_APP_ID]
  -o, --output FORMAT        table (default), json or yaml
  --timeout SECONDS          per call (default 30)
  -h, --help                 this text

Exit codes: 0 done, 1 usage or local setup error, 2 the API refused the request (4xx),
3 Rollcall unreachable or failing (5xx), 130 interrupted. See docs/cli.md.`;

const OPTIONS = {
  url: { type: "string" },
  key: { type: "string" },
  cluster: { type: "string", short: "c" },
  entra: { type: "string" },
  output: { type: "string", short: "o" },
  timeout: { type: "string" },
  help: { type: "boolean", short: "h" },
  reason: { type: "string" },
  "not-before": { type: "string" },
  "drain-only": { type: "boolean" },
  priority: { type: "string" },
  limit: { type: "string" },
  file: { type: "string", short: "f" },
  replan: { type: "boolean" },
  interval: { type: "string" },
  count: { type: "string" },
} as const;

type Option = keyof typeof OPTIONS;
const GLOBAL: Option[] = ["url", "key", "cluster", "entra", "output", "timeout", "help"];

/** The options each command takes beyond the global ones. */
const COMMANDS: Record<string, Option[]> = {
  status: [],
  history: ["limit"],
  reboot: ["reason", "not-before", "drain-only", "priority"],
  cancel: [],
  release: [],
  retry: [],
  policy: ["file"],
  plan: ["replan"],
  watch: ["interval", "count"],
};

export interface CliIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** Ctrl-C: ends `watch`, interrupts any other command. */
  signal?: AbortSignal;
  stdin?: NodeJS.ReadableStream;
}

type Values = Partial<Record<Option, string | boolean>>;

interface Context {
  connection: Connection;
  values: Values;
  output: OutputFormat;
  io: CliIo;
  clusterFlag?: string;
}

const usage = (message: string) => new CliError(EXIT.usage, `${message}\nRun rollcall --help for usage.`);

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let command: string | undefined;
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    } catch (error) {
      throw usage((error as Error).message);
    }
    const values = parsed.values as Values;
    const [first, ...args] = parsed.positionals;
    command = first;
    if (values.help || command === "help") {
      io.stdout.write(`${USAGE}\n`);
      return EXIT.ok;
    }
    if (command === undefined) {
      io.stderr.write(`${USAGE}\n`);
      return EXIT.usage;
    }
    const allowed = COMMANDS[command];
    if (!allowed) throw usage(`Unknown command ${JSON.stringify(command)}; the commands are ${Object.keys(COMMANDS).join(", ")}`);
    for (const name of Object.keys(values) as Option[]) {
      if (!GLOBAL.includes(name) && !allowed.includes(name)) throw usage(`${command} takes no --${name}`);
    }
    const output = (values.output ?? "table") as OutputFormat;
    if (!OUTPUT_FORMATS.includes(output)) throw usage(`-o must be one of ${OUTPUT_FORMATS.join(", ")}, not ${JSON.stringify(values.output)}`);
    const timeout = positiveNumber(values.timeout, "--timeout", 30);
    const context: Context = {
      connection: {
        baseUrl: baseUrl((values.url as string | undefined) ?? io.env.ROLLCALL_URL),
        key: (values.key as string | undefined) ?? io.env.ROLLCALL_KEY,
        entraAppId: (values.entra as string | undefined) ?? (io.env.ROLLCALL_ENTRA_APP_ID || undefined),
        timeoutMs: timeout * 1000,
        signal: io.signal,
      },
      values,
      output,
      io,
      clusterFlag: (values.cluster as string | undefined) ?? (io.env.ROLLCALL_CLUSTER || undefined),
    };
    await COMMAND_RUNNERS[command]!(context, args);
    return EXIT.ok;
  } catch (error) {
    // Ctrl-C ends watch with 0 (its frames are the result); any other command it interrupts, with 130 as a shell would.
    if (io.signal?.aborted) return command === "watch" ? EXIT.ok : EXIT.interrupted;
    if (error instanceof CliError) {
      io.stderr.write(`error: ${error.message}\n`);
      return error.exitCode;
    }
    io.stderr.write(`error: ${(error as Error).message}\n`);
    return EXIT.server;
  }
}

function positiveNumber(raw: string | boolean | undefined, flag: string, fallback: number, integer = false): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw usage(`${flag} must be a positive ${integer ? "whole " : ""}number, not ${JSON.stringify(raw)}`);
  return n;
}

function oneArg(args: string[], command: string, what = "NODE"): string {
  if (args.length !== 1) throw usage(`${command} takes one ${what}${args.length ? `, not ${args.length}: ${args.join(" ")}` : ""}`);
  return args[0]!;
}

/** The cluster named by --cluster or ROLLCALL_CLUSTER, else the function app's only configured one (from /health). */
async function clusters(context: Context): Promise<string[]> {
  if (context.clusterFlag) return [context.clusterFlag];
  let answer: Answer;
  try {
    // An unhealthy app (a cluster API down) still names its clusters, with 503.
    answer = await call(context.connection, "GET", "/health", undefined, [503]);
  } catch (error) {
    if (!(error instanceof CliError) || error.exitCode !== EXIT.server) throw error;
    throw new CliError(error.exitCode, `${error.message}\n(Asked /health for the configured clusters because no --cluster or ROLLCALL_CLUSTER was given.)`);
  }
  const names: string[] = Array.isArray(answer.body?.clusters) ? answer.body.clusters.map((c: { name: string }) => c.name) : [];
  if (names.length === 0) throw new CliError(EXIT.api, "The function app has no cluster configured (ROLLCALL_CLUSTERS is empty)");
  return names;
}

async function cluster(context: Context): Promise<string> {
  const names = await clusters(context);
  if (names.length > 1) throw usage(`Several clusters are configured (${names.join(", ")}): name one with --cluster or ROLLCALL_CLUSTER`);
  return names[0]!;
}

const clusterPath = (c: string, rest = "") => `/clusters/${encodeURIComponent(c)}${rest}`;
const nodePath = (c: string, node: string, rest = "") => clusterPath(c, `/nodes/${encodeURIComponent(node)}${rest}`);

function print(context: Context, body: unknown, asTable: () => string): void {
  const text = context.output === "json" ? JSON.stringify(body, null, 2) : context.output === "yaml" ? yaml(body).trimEnd() : asTable();
  context.io.stdout.write(`${text}\n`);
}

function priority(raw: string): number {
  if (!/^\d{1,3}$/.test(raw) || Number(raw) > 100) throw usage(`--priority must be a whole number from 0 to 100, not ${JSON.stringify(raw)}`);
  return Number(raw);
}

/** `--not-before` as the API takes it: an ISO date-time, or a delay from now like `30m`, `2h`, `1d`. */
export function notBefore(raw: string, now = Date.now()): string {
  const delay = /^(\d+)([smhd])$/.exec(raw);
  if (delay) return new Date(now + Number(delay[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[delay[2] as "s"]! * 1000).toISOString();
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/.test(raw) || Number.isNaN(Date.parse(raw))) {
    throw usage(`--not-before must be a date-time with a time zone (2026-11-24T22:00:00Z) or a delay from now (30m, 2h, 1d), not ${JSON.stringify(raw)}`);
  }
  return raw;
}

const COMMAND_RUNNERS: Record<string, (context: Context, args: string[]) => Promise<void>> = {
  async status(context, args) {
    if (args.length) throw usage(`status takes no arguments (got ${args.join(" ")}); name the cluster with --cluster`);
    const names = await clusters(context);
    const answers = await Promise.all(names.map(async (c) => (await call(context.connection, "GET", clusterPath(c, "/status"))).body));
    print(context, answers.length === 1 ? answers[0] : answers, () => answers.map((a) => statusTable(a)).join("\n\n"));
  },

  async history(context, args) {
    if (args.length > 1) throw usage(`history takes at most one NODE, not ${args.join(" ")}`);
    const c = await cluster(context);
    const query = new URLSearchParams({ limit: String(positiveNumber(context.values.limit, "--limit", 20, true)) });
    if (args[0]) query.set("node", args[0]);
    const { body } = await call(context.connection, "GET", clusterPath(c, `/history?${query}`));
    print(context, body, () => {
      const rows = (body.entries ?? []).map((e: any) => [
        e.node,
        e.outcome,
        age(e.finishedAt),
        e.requestedBy,
        ...["wait", "cordon", "drain", "reboot", "return"].map((p) => duration(e.phases?.[p])),
        (e.reasons ?? []).join(", "),
      ]);
      const text = rows.length ? table(["NODE", "OUTCOME", "FINISHED", "REQUESTED-BY", "WAIT", "CORDON", "DRAIN", "REBOOT", "RETURN", "REASONS"], rows) : `No history in cluster ${c} yet.`;
      return body.continuationToken ? `${text}\n(more: raise --limit, at most 100)` : text;
    });
  },

  async reboot(context, args) {
    const node = oneArg(args, "reboot");
    const c = await cluster(context);
    const request = {
      reason: (context.values.reason as string | undefined) ?? "requested with the rollcall CLI",
      ...(context.values["not-before"] ? { notBefore: notBefore(context.values["not-before"] as string) } : {}),
      mode: context.values["drain-only"] ? "drain-only" : "reboot",
      ...(context.values.priority !== undefined ? { priority: priority(context.values.priority as string) } : {}),
    };
    const { body } = await call(context.connection, "POST", nodePath(c, node, "/reboot"), request);
    print(context, body, () =>
      body.created
        ? `${request.mode === "drain-only" ? "Drain-only maintenance" : "Reboot"} of ${node} requested (request ${body.requestId}, state ${body.state}${request.notBefore ? `, not before ${request.notBefore}` : ""}); follow it with rollcall watch`
        : body.message ?? `${node} already has request ${body.requestId} (state ${body.state}); nothing new was asked`,
    );
  },

  async cancel(context, args) {
    const node = oneArg(args, "cancel");
    const c = await cluster(context);
    const { body } = await call(context.connection, "DELETE", nodePath(c, node, "/reboot"));
    print(context, body, () => `Request ${body.requestId} for ${node} cancelled (state ${body.state})`);
  },

  async release(context, args) {
    const node = oneArg(args, "release");
    const c = await cluster(context);
    const { body } = await call(context.connection, "POST", nodePath(c, node, "/release"));
    print(context, body, () => `${node} released by ${body.releasedBy} (state ${body.state})`);
  },

  async retry(context, args) {
    const node = oneArg(args, "retry");
    const c = await cluster(context);
    const path = nodePath(c, node, "/retry");
    let answer: Answer;
    try {
      answer = await call(context.connection, "POST", path);
    } catch (error) {
      // The Functions host answers an unknown route with an empty 404; the route's own 404s carry an error code.
      if (error instanceof CliError && / is not a route of this Rollcall \(404\)/.test(error.message)) {
        throw new CliError(
          EXIT.api,
          `This Rollcall has no retry route (POST ${context.connection.baseUrl}${path} answered 404): deploy a function app version with POST /api/clusters/{cluster}/nodes/{node}/retry, or wait for the drain-failure back-off`,
        );
      }
      throw error;
    }
    const { body } = answer;
    print(context, body, () => `${node} moved back to ${body.state ?? "pending"}${body.retriedBy ? ` by ${body.retriedBy}` : ""}`);
  },

  async policy(context, args) {
    const [action, ...rest] = args;
    if (rest.length || (action !== "get" && action !== "set")) throw usage("policy takes get or set (policy set -f FILE)");
    if (action === "get" && context.values.file !== undefined) throw usage("policy get takes no -f; did you mean policy set -f FILE?");
    const c = await cluster(context);
    if (action === "get") {
      const { body } = await call(context.connection, "GET", clusterPath(c, "/policy"));
      print(context, body, () => policyText(body));
      return;
    }
    const file = context.values.file as string | undefined;
    if (!file) throw usage("policy set needs -f FILE (a JSON policy document, docs/policy.md; - reads stdin)");
    const text = await readDocument(file, context.io);
    try {
      JSON.parse(text);
    } catch (error) {
      throw new CliError(EXIT.usage, `${file} is not JSON: ${(error as Error).message}`);
    }
    const { body } = await call(context.connection, "PUT", clusterPath(c, "/policy"), text);
    print(context, body, () => `Policy of ${c} replaced by ${body.updatedBy} at ${body.updatedAt}\n${policyText(body)}`);
  },

  async plan(context, args) {
    if (args.length) throw usage(`plan takes no arguments (got ${args.join(" ")})`);
    const c = await cluster(context);
    const { body } = await call(context.connection, context.values.replan ? "POST" : "GET", clusterPath(c, "/upgrade-plan"));
    print(context, body, () => planText(c, body));
  },

  async watch(context, args) {
    if (args.length) throw usage(`watch takes no arguments (got ${args.join(" ")})`);
    const interval = positiveNumber(context.values.interval, "--interval", 5);
    const count = context.values.count === undefined ? Infinity : positiveNumber(context.values.count, "--count", 1, true);
    const names = await clusters(context);
    const { stdout, signal } = context.io;
    for (let frame = 0; frame < count && !signal?.aborted; frame++) {
      if (frame > 0) await sleep(interval * 1000, signal);
      if (signal?.aborted) break;
      let text: string;
      try {
        const answers = await Promise.all(names.map(async (c) => (await call(context.connection, "GET", clusterPath(c, "/status"))).body));
        text = context.output === "table" ? answers.map((a) => statusTable(a)).join("\n\n") : answers.map((a) => (context.output === "json" ? JSON.stringify(a) : `---\n${yaml(a).trimEnd()}`)).join("\n");
      } catch (error) {
        // An app that stops answering for a moment (a restart, a scale-out) is worth watching through.
        if (!(error instanceof CliError) || error.exitCode !== EXIT.server) throw error;
        text = `error: ${error.message} (retrying every ${interval} s)`;
      }
      if (context.output !== "table") stdout.write(`${text}\n`);
      else {
        const header = `Every ${interval}s: rollcall status   ${new Date().toISOString()}   Ctrl-C to stop`;
        stdout.write(stdout.isTTY ? `\x1b[2J\x1b[H${header}\n\n${text}\n` : `${frame > 0 ? "\n" : ""}${header}\n\n${text}\n`);
      }
    }
  },
};

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

async function readDocument(file: string, io: CliIo): Promise<string> {
  if (file === "-") {
    const chunks: Buffer[] = [];
    for await (const chunk of io.stdin ?? process.stdin) chunks.push(Buffer.from(chunk as Buffer));
    return Buffer.concat(chunks).toString("utf8");
  }
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    throw new CliError(EXIT.usage, `Cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** The stored plan's human summary (planner's lines), the step running now and ARM's last refusal. */
export function planText(cluster: string, body: any): string {
  const lines = [`Upgrade plan of ${cluster}${body.plan?.computedAt ? ` (computed ${body.plan.computedAt})` : ""}:`, ...(body.summary ?? []).map((line: string) => `  ${line}`)];
  if (!body.summary?.length) lines.push("  nothing to do");
  const active = body.activeOperation;
  if (active) lines.push(`Running: ${active.kind} ${active.pool ? `of pool ${active.pool} ` : ""}${active.from ? `${active.from} → ` : "to "}${active.to} since ${active.startedAt}`);
  if (body.lastError) lines.push(`Last ARM error (${body.lastError.at}): ${body.lastError.failure?.explanation ?? body.lastError.failure?.message ?? "no details"}`);
  if (body.rebootsPausedOnPools?.length) lines.push(`Sentinel reboots paused on pools being upgraded: ${body.rebootsPausedOnPools.join(", ")}`);
  return lines.join("\n");
}

function policyText(body: any): string {
  const stored = body.policy === null ? "none: the app-setting defaults apply" : `updated ${body.updatedAt} by ${body.updatedBy}\n${yaml(body.policy).trimEnd()}`;
  return `Stored policy: ${stored}\nEffective:\n${yaml(body.effective).trimEnd().replace(/^/gm, "  ")}`;
}

export function statusTable(status: any, now = Date.now()): string {
  const lock = status.lock ?? {};
  const lines = [`CLUSTER ${status.cluster}   SLOTS ${lock.slots ?? "?"} (${lock.free ?? "?"} free)   NODES ${(status.nodes ?? []).length}`];
  const nodes = status.nodes ?? [];
  lines.push(
    nodes.length
      ? table(
          ["NODE", "STATE", "AGE", "REBOOT-REQUIRED", "LAST-CHECKIN", "WHY"],
          nodes.map((n: any) => [n.node, n.state, age(n.since, now), n.rebootRequired ? "yes" : "no", age(n.lastCheckinAt, now), n.holdReason ?? n.why]),
        )
      : "No node has checked in or been asked for yet.",
  );
  const holders = lock.holders ?? [];
  lines.push("", "LOCK HOLDERS");
  lines.push(holders.length ? table(["NODE", "LEASE", "HELD", "EXPIRES"], holders.map((h: any) => [h.node, h.leaseId, age(h.acquiredAt, now), h.expired ? `expired ${age(h.expiresAt, now)} ago` : age(h.expiresAt, now)])) : "none");
  const queue = status.queue ?? [];
  lines.push("", "QUEUE");
  lines.push(
    queue.length
      ? table(
          ["#", "NODE", "WAITING", "PRIORITY", "REQUESTED-BY", "NOT-BEFORE", "HOLD-REASON"],
          queue.map((q: any) => [q.position, q.node, age(q.pendingSince, now), q.priority, q.requestedBy, q.notBefore, q.holdReason]),
        )
      : "empty",
  );
  for (const g of status.gateErrors ?? []) lines.push(`WARNING gate ${g.gate} fails (${g.error}); it holds ${g.nodes.join(", ")}`);
  if (status.kubernetes?.reachable === false) lines.push(`WARNING ${status.kubernetes.error}`);
  if (status.kubernetes?.unknownNodes?.length) lines.push(`Nodes without an agent or request: ${status.kubernetes.unknownNodes.join(", ")}`);
  if (status.nodeOs?.warning) lines.push(`WARNING ${status.nodeOs.warning}`);
  return lines.join("\n");
}

/** The process entry point (bin/rollcall.js): Ctrl-C ends `watch` cleanly with exit code 0, anything else with 130. */
export function main(): void {
  const controller = new AbortController();
  process.once("SIGINT", () => controller.abort());
  process.once("SIGTERM", () => controller.abort());
  void runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, signal: controller.signal }).then((code) => {
    process.exitCode = code;
  });
}
