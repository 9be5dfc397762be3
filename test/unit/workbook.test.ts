import { test, describe } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { telemetryEvents, telemetryMetrics } from "../../shared/telemetry/names";
import { LOCK_HOLDING_STATES, NODE_STATES } from "../../shared/node/stateMachine";

/**
 * The workbook (infra/workbook/rollcall-workbook.json) and the alert queries (infra/alerts/*.kql) may
 * only read what Rollcall's telemetry emits: the Application Insights tables below, the event and
 * metric names of shared/telemetry/names.ts, and the dimensions documented there.
 */

const repo = path.resolve(__dirname, "../..");
const read = (p: string) => fs.readFileSync(path.join(repo, p), "utf8");

type Json = Record<string, any>;
const workbook: Json = JSON.parse(read("infra/workbook/rollcall-workbook.json"));

const allowedTables = new Set(["customEvents", "customMetrics", "requests", "traces", "exceptions"]);
/** Tables that exist in Application Insights or Log Analytics but that Rollcall does not feed (or that are the workspace twins). */
const otherTables = [
  "dependencies", "pageViews", "browserTimings", "availabilityResults", "performanceCounters", "customMetric", "customEvent",
  "AppEvents", "AppMetrics", "AppRequests", "AppTraces", "AppExceptions", "AppDependencies", "Heartbeat", "AzureDiagnostics", "ContainerLog", "KubeEvents", "KubeNodeInventory",
];

/** Dimensions: names.ts's documented ones ("Dimensions: …" comments and the TelemetryDimensions type) plus the ones the brief lists. */
function allowedDimensions(): Set<string> {
  const source = read("shared/telemetry/names.ts");
  const fromNames = [...source.matchAll(/Dimensions: ([^.]+)\./g)].flatMap((m) => m[1]!.split(",").map((s) => s.trim()));
  const fromType = [...(source.match(/type TelemetryDimensions = \{([^}]*)\}/)?.[1] ?? "").matchAll(/(\w+)\??:/g)].map((m) => m[1]!);
  const documented = ["cluster", "node", "from", "to", "why", "leaseId", "state", "steps", "summary"];
  return new Set([...fromNames, ...fromType, ...documented]);
}
const dimensions = allowedDimensions();
const eventNames = new Set<string>(Object.values(telemetryEvents));
const metricNames = new Set<string>(Object.values(telemetryMetrics));
const nodeStates = new Set<string>(NODE_STATES);

/** Removes comments and replaces string literals by "" so that words inside them are not taken for tables. */
function code(query: string): string {
  return query
    .replace(/\/\/[^\n]*/g, "")
    .replace(/@"[^"]*"/g, '""')
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/'(?:[^'\\]|\\.)*'/g, "''");
}

function stringLiterals(query: string): string[] {
  return [...query.replace(/\/\/[^\n]*/g, "").matchAll(/@"[^"]*"|"((?:[^"\\]|\\.)*)"/g)].flatMap((m) => (m[1] === undefined ? [] : [m[1]]));
}

/** Problems with one query; empty when it only reads what the telemetry emits. */
function check(query: string): string[] {
  const problems: string[] = [];
  const c = code(query);
  const lets = new Set([...c.matchAll(/\blet\s+(\w+)\s*=/g)].map((m) => m[1]!));

  // Tabular sources: a statement's first word, and the operands of union / join / parentheses.
  const statements = c.split(";").map((s) => s.replace(/^\s*let\s+\w+\s*=\s*/, "").trim());
  const sources = new Set<string>();
  for (const s of statements) {
    const first = s.match(/^\(?\s*([A-Za-z_]\w*)/)?.[1];
    if (first && !["print", "datatable", "range", "union", "let"].includes(first)) sources.add(first);
  }
  for (const m of c.matchAll(/\bunion\b(?:\s+kind\s*=\s*\w+)?([^|;]*)/g)) {
    for (const operand of m[1]!.split(",")) {
      const name = operand.trim().match(/^\(?\s*([A-Za-z_]\w*)/)?.[1];
      if (name && name !== "datatable") sources.add(name);
    }
  }
  for (const m of c.matchAll(/\bjoin\b[^(|]*?(?:\(\s*([A-Za-z_]\w*)|\s([A-Za-z_]\w*)\s+on\b)/g)) sources.add((m[1] ?? m[2])!);
  for (const source of sources) {
    if (!allowedTables.has(source) && !lets.has(source)) problems.push(`reads table or name ${source}`);
  }
  for (const table of otherTables) if (new RegExp(`\\b${table}\\b`).test(c)) problems.push(`mentions table ${table}`);
  if (![...allowedTables].some((t) => new RegExp(`\\b${t}\\b`).test(c))) problems.push("reads no Rollcall table");

  // customDimensions fields, in both spellings.
  for (const m of query.matchAll(/customDimensions(?:\.(\w+)|\[\s*["'](\w+)["']\s*\])/g)) {
    const field = (m[1] ?? m[2])!;
    if (!dimensions.has(field)) problems.push(`customDimensions.${field} is not emitted`);
  }
  if (/customDimensions(?![.[])/.test(c.replace(/customDimensions\s*\./g, "customDimensions."))) problems.push("uses customDimensions without a field");

  // Names compared with `name` are Rollcall's events or metrics.
  for (const m of query.matchAll(/\bname\s*(?:==|=~|startswith)\s*"([^"]+)"|\bname\s+in\s*\(([^)]*)\)/g)) {
    const names = m[1] ? [m[1]] : [...m[2]!.matchAll(/"([^"]+)"/g)].map((x) => x[1]!);
    for (const n of names) if (!eventNames.has(n) && !metricNames.has(n)) problems.push(`name ${n} is neither a Rollcall event nor metric`);
  }
  // State names compared with a state column are real node states.
  for (const m of query.matchAll(/\b(?:toState|fromState|state)\s*(?:==|!=)\s*"([^"]+)"|\b(?:toState|fromState|state)\s+in\s*\(([^)]*)\)/g)) {
    const states = m[1] ? [m[1]] : [...m[2]!.matchAll(/"([^"]+)"/g)].map((x) => x[1]!);
    for (const s of states) if (!nodeStates.has(s)) problems.push(`state ${s} is not a node state`);
  }
  // Requests are the Functions host's: only the checkin function's are read.
  for (const m of query.matchAll(/operation_Name\s*(?:==|=~)\s*"([^"]+)"/g)) {
    if (!new RegExp(`app\\.http\\("${m[1]}"`).test(read("functions/checkin.ts"))) problems.push(`no HTTP function named ${m[1]}`);
  }
  return problems;
}

const queryItems = (workbook.items as Json[]).filter((i) => i.type === 3);
const parameterItem = (workbook.items as Json[]).find((i) => i.type === 9);

describe("the checker itself", () => {
  test("accepts Rollcall's telemetry and refuses anything else", () => {
    assert.deepEqual(check('customEvents | where name == "RollcallTransition" | extend c = tostring(customDimensions.cluster), t = tostring(customDimensions["to"])'), []);
    assert.deepEqual(check('customMetrics | where name in ("rollcall.checkins", "rollcall.errors")'), []);
    assert.deepEqual(check('let x = requests | where operation_Name =~ "checkin"; union x, (traces | take 1)'), []);
    assert.ok(check("dependencies | take 1").length > 0);
    assert.ok(check("AppEvents | take 1").length > 0);
    assert.ok(check("customEvents | union pageViews").length > 0);
    assert.ok(check('customEvents | extend n = tostring(customDimensions.podName)').some((p) => p.includes("podName")));
    assert.ok(check('customEvents | where name == "RollcallReboot"').some((p) => p.includes("RollcallReboot")));
    assert.ok(check('customMetrics | where name == "rollcall.drain_ms"').some((p) => p.includes("drain_ms")));
    assert.ok(check('customEvents | where toState == "rebooting"').some((p) => p.includes("rebooting")));
    assert.ok(check('requests | where operation_Name =~ "checkout"').some((p) => p.includes("checkout")));
    assert.ok(check("customEvents | join kind=inner (dependencies) on cluster").length > 0);
  });

  test("derives the dimensions from names.ts", () => {
    for (const d of ["cluster", "node", "from", "to", "why", "leaseId", "state", "steps", "summary"]) assert.ok(dimensions.has(d), d);
  });
});

describe("infra/workbook/rollcall-workbook.json", () => {
  test("is an Azure Monitor workbook with a time range and a cluster parameter", () => {
    assert.equal(workbook.version, "Notebook/1.0");
    assert.ok(Array.isArray(workbook.items));
    assert.ok(parameterItem, "a parameters item (type 9)");
    const params = parameterItem.content.parameters as Json[];
    const cluster = params.find((p) => p.name === "Cluster")!;
    assert.equal(cluster.type, 2, "dropdown");
    assert.equal(cluster.multiSelect, true);
    assert.deepEqual(check(cluster.query), [], "the cluster list query");
    assert.ok(params.some((p) => p.name === "TimeRange" && p.type === 4));
    for (const item of workbook.items as Json[]) assert.ok([1, 3, 9].includes(item.type) && typeof item.name === "string", JSON.stringify(item).slice(0, 80));
    const names = (workbook.items as Json[]).map((i) => i.name);
    assert.equal(new Set(names).size, names.length, "unique item names");
  });

  test("every query item is a Logs query on Application Insights, filtered by the cluster parameter", () => {
    assert.ok(queryItems.length >= 10);
    for (const item of queryItems) {
      const c = item.content;
      assert.equal(c.version, "KqlItem/1.0", item.name);
      assert.equal(c.queryType, 0, item.name);
      assert.equal(c.resourceType, "microsoft.insights/components", item.name);
      assert.equal(typeof c.query, "string", item.name);
      assert.ok(c.query.includes("in ({Cluster})"), `${item.name} filters by cluster`);
      assert.ok(c.timeContextFromParameter === "TimeRange" || typeof c.timeContext?.durationMs === "number", `${item.name} has a time range`);
      if (c.query.includes("{TimeRange:grain}")) assert.equal(c.timeContextFromParameter, "TimeRange", item.name);
      assert.ok(["table", "timechart", "barchart", "tiles"].includes(c.visualization), item.name);
    }
  });

  test("every query reads only the tables, names and dimensions the telemetry emits", () => {
    for (const item of queryItems) assert.deepEqual(check(item.content.query), [], item.name);
  });

  test("shows each view the issue asks for", () => {
    const byName = new Map(queryItems.map((i) => [i.name as string, i.content.query as string]));
    const need = (name: string, ...fragments: string[]) => {
      const q = byName.get(name);
      assert.ok(q, `item ${name}`);
      for (const f of fragments) assert.ok(q.includes(f), `${name} uses ${f}`);
    };
    need("rollouts-over-time", telemetryEvents.transition, "bin(timestamp");
    need("lock-holder", telemetryEvents.transition, "leaseId", "arg_max");
    need("pending-queue", telemetryEvents.transition, '"pending"');
    need("pending-over-time", telemetryMetrics.nodesPending, telemetryMetrics.nodesStuck);
    need("phase-durations", telemetryMetrics.lockWaitSeconds, telemetryMetrics.drainSeconds, telemetryMetrics.rebootSeconds, telemetryMetrics.returnSeconds, "valueCount");
    need("stuck-and-failed", telemetryEvents.stuck, '"drain-failed"');
    need("upgrade-plan-latest", telemetryEvents.upgradePlan, "customDimensions.steps", "customDimensions.summary");
    need("checkins-over-time", telemetryMetrics.checkins);
    need("errors-by-state", telemetryMetrics.errors);
  });

  test("the lock holder view lists exactly the lock-holding states", () => {
    const q = queryItems.find((i) => i.name === "lock-holder")!.content.query as string;
    const listed = [...q.match(/toState in \(([^)]*)\)/)![1]!.matchAll(/"([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(new Set(listed), new Set(LOCK_HOLDING_STATES));
  });
});

describe("infra/alerts/*.kql", () => {
  const files = fs.readdirSync(path.join(repo, "infra/alerts")).filter((f) => f.endsWith(".kql"));

  test("four alert queries", () => {
    assert.deepEqual(files.sort(), ["checkin-failures.kql", "drain-timeout.kql", "no-checkins.kql", "stuck-node.kql"]);
  });

  test("every alert query reads only what the telemetry emits", () => {
    for (const f of files) {
      const query = read(`infra/alerts/${f}`)
        .replaceAll("{{EXPECTED_CLUSTERS}}", '"prod-weu", "dev"')
        .replace(/\{\{\w+\}\}/g, "30");
      assert.deepEqual(check(query), [], f);
      assert.ok(/\bcluster\b/.test(code(query)), `${f} yields a cluster column for the alert dimension`);
    }
  });

  test("each alert looks for its signal", () => {
    assert.ok(stringLiterals(read("infra/alerts/stuck-node.kql")).includes(telemetryEvents.stuck));
    const drain = read("infra/alerts/drain-timeout.kql");
    assert.ok(stringLiterals(drain).includes("drain-failed") && stringLiterals(drain).includes("timed out"));
    const failures = read("infra/alerts/checkin-failures.kql");
    assert.ok(failures.includes(">= 500") && stringLiterals(failures).includes(telemetryMetrics.errors));
    assert.ok(stringLiterals(read("infra/alerts/no-checkins.kql")).includes(telemetryMetrics.checkins));
  });
});
