import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { TableClient } from "@azure/data-tables";
import { type FunctionsHost, startFunctionsHost } from "../../local/functionsHost/host";
import { type RunningAzurite, startAzurite } from "../../local/azurite/startAzurite";
import { SimCluster } from "../../local/kubeSim/simCluster";
import { resetForTests } from "../../shared/orchestrator/fromConfig";
import { asEntra, EASY_AUTH_ON } from "../support/entra";

/**
 * Entra app roles on every operator route, found by walking openapi/openapi.json (so a route added
 * later is covered as soon as it is documented, and openapi.test.ts holds every registered route to
 * being documented). Each call goes through the local Functions host — its routing, key check and
 * header passing — to the real handlers, against Azurite and the simulated API server.
 */

const ROOT = resolve(__dirname, "../..");
const doc = JSON.parse(readFileSync(resolve(ROOT, "openapi/openapi.json"), "utf8"));
const METHODS = ["get", "put", "post", "delete", "patch"] as const;
const CLUSTER = "prod";
const NODE = "roles-node";
const KEY = "operator-roles-test-key";
/** Routes that are not operator routes: the agent's own identity, and the probe. */
const NOT_OPERATOR = new Set(["checkin", "getHealth"]);

type Role = "Rollcall.Read" | "Rollcall.Operate";
interface Operation {
  id: string;
  method: string;
  path: string;
  role: Role;
}

/** The app role an operation's `entra` security requirements name (one role, the same in each). */
function documentedRole(operation: any): Role | undefined {
  const roles = new Set<string>((operation.security ?? doc.security ?? []).flatMap((r: Record<string, string[]>) => r.entra ?? []));
  assert.ok(roles.size <= 1, `${operation.operationId} names one role, not ${[...roles].join(", ")}`);
  return [...roles][0] as Role | undefined;
}

const operations: Operation[] = Object.entries(doc.paths as Record<string, any>).flatMap(([path, item]) =>
  METHODS.filter((m) => item[m] && !NOT_OPERATOR.has(item[m].operationId)).map((method) => ({
    id: item[method].operationId as string,
    method: method.toUpperCase(),
    path,
    role: documentedRole(item[method])!,
  })),
);

/** Bodies that an authorised caller's call would act on, so that a refusal that wrote anything would show. */
const BODIES: Record<string, unknown> = {
  requestReboot: { reason: "roles test", mode: "drain-only" },
  putPolicy: { concurrency: 2 },
};

const FORGER = "Mallory Forger";
const FORGER_OID = "99999999-9999-4999-8999-999999999999";

describe("Entra app roles on every operator route in openapi.json", () => {
  let azurite: RunningAzurite;
  let sim: SimCluster;
  let host: FunctionsHost;
  let table: TableClient;
  let tableCounter = 0;

  before(async () => {
    [azurite, sim] = await Promise.all([startAzurite(), SimCluster.start()]);
    sim.addNode(NODE);
    host = await startFunctionsHost({ port: 0, key: KEY, timers: false, log: () => {} });
  });
  after(async () => {
    await host?.stop();
    await sim?.stop();
    await azurite?.stop();
    resetForTests();
  });

  /** Fresh settings and table; `easyAuth` is what App Service would inject with authentication on. */
  function configure(easyAuth: boolean): void {
    const name = `roles${process.pid}x${tableCounter++}`;
    delete process.env.WEBSITE_AUTH_ENABLED;
    Object.assign(process.env, {
      ROLLCALL_STORAGE_CONNECTION: azurite.connectionString,
      ROLLCALL_TABLE: name,
      ROLLCALL_CLUSTERS: JSON.stringify([{ name: CLUSTER, kubeconfig: sim.kubeconfig }]),
      ...(easyAuth ? EASY_AUTH_ON : {}),
    });
    resetForTests();
    table = TableClient.fromConnectionString(azurite.connectionString, name, { allowInsecureConnection: true });
  }

  async function send(op: Operation, headers: Record<string, string>): Promise<{ status: number; body: any }> {
    const path = op.path.replace("{cluster}", CLUSTER).replace("{node}", NODE);
    const body = op.method === "GET" || op.method === "DELETE" ? undefined : JSON.stringify(BODIES[op.id] ?? {});
    const response = await fetch(`${host.url}/${host.routePrefix}${path}`, {
      method: op.method,
      headers: { "x-functions-key": KEY, ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
      body,
    });
    const text = await response.text();
    let parsed: any;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    return { status: response.status, body: parsed };
  }

  /** Everything Rollcall keeps: every row of its table and the simulated node. */
  async function snapshot(): Promise<string> {
    const rows: unknown[] = [];
    try {
      for await (const entity of table.listEntities()) rows.push(entity);
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) throw error;
    }
    return JSON.stringify({ rows, node: sim.getNode(NODE) });
  }

  function assertRefused(answer: { status: number; body: any }, status: 401 | 403, code: string, role: Role, what: string): void {
    assert.equal(answer.status, status, `${what}: ${JSON.stringify(answer.body)}`);
    assert.equal(answer.body?.error?.code, code, what);
    assert.equal(answer.body.error.requiredRole ?? role, role, what);
    if (status === 403) {
      assert.equal(answer.body.error.requiredRole, role, what);
      assert.ok(answer.body.error.message.includes(role), `${what}: the message names ${role}`);
    }
  }

  function assertAdmitted(answer: { status: number; body: any }, what: string): void {
    assert.ok(answer.status !== 401 && answer.status !== 403, `${what}: answered ${answer.status} ${JSON.stringify(answer.body)}`);
    assert.ok(answer.status < 500, `${what}: the route itself answered, not ${answer.status} ${JSON.stringify(answer.body)}`);
  }

  it("documents an app role for every operator route: Rollcall.Read to read, Rollcall.Operate for anything else", () => {
    assert.ok(operations.length >= 11, `found the operator routes (${operations.map((o) => o.id).join(", ")})`);
    for (const op of operations) {
      assert.equal(op.role, op.method === "GET" ? "Rollcall.Read" : "Rollcall.Operate", `${op.method} ${op.path} (${op.id})`);
      const responses = doc.paths[op.path][op.method.toLowerCase()].responses;
      for (const status of ["401", "403"]) assert.ok(responses[status], `${op.id} documents ${status}`);
    }
    for (const id of NOT_OPERATOR) {
      const op = Object.values(doc.paths as Record<string, any>).flatMap((item) => METHODS.map((m) => item[m])).find((o) => o?.operationId === id);
      assert.equal(documentedRole(op), undefined, `${id} needs no app role`);
    }
  });

  it("under App Service authentication: no principal 401, a garbled one 401, without the role 403 naming it, and nothing written", async () => {
    configure(true);
    // Reads may create the table; take the snapshot after that.
    assertAdmitted(await send(operations.find((o) => o.id === "getClusterStatus")!, asEntra("warm-up", ["Rollcall.Read"])), "warm-up");
    for (const op of operations) {
      const before = await snapshot();
      const lesser = op.role === "Rollcall.Operate" ? ["Rollcall.Read"] : [];
      assertRefused(await send(op, {}), 401, "unauthenticated", op.role, `${op.id} without a principal`);
      assertRefused(await send(op, { "x-ms-client-principal-name": "alice@example.com" }), 401, "unauthenticated", op.role, `${op.id} with only a name`);
      assertRefused(await send(op, { "x-ms-client-principal": "bm90IGpzb24=" }), 401, "invalid_principal", op.role, `${op.id} with a garbled principal`);
      assertRefused(await send(op, asEntra("Nora Norole", lesser)), 403, "missing_role", op.role, `${op.id} with roles [${lesser.join(", ")}]`);
      assert.equal(await snapshot(), before, `${op.id}: a refused call wrote nothing`);
    }
  });

  it("under App Service authentication: the route's role admits, and Rollcall.Operate admits to reads too", async () => {
    configure(true);
    for (const op of operations) {
      assertAdmitted(await send(op, asEntra("Rita Rightrole", [op.role])), `${op.id} with ${op.role}`);
      if (op.role === "Rollcall.Read") assertAdmitted(await send(op, asEntra("Otto Operator", ["Rollcall.Operate"])), `${op.id} with Rollcall.Operate`);
    }
  });

  it("an admitted write changes what the refusal checks look at, so 'nothing written' can fail", async () => {
    configure(true);
    for (const id of Object.keys(BODIES)) {
      const op = operations.find((o) => o.id === id)!;
      const before = await snapshot();
      assertAdmitted(await send(op, asEntra("Rita Rightrole", [op.role])), id);
      assert.notEqual(await snapshot(), before, `${id} with its role wrote`);
    }
  });

  it("without App Service authentication: principal headers a client sends are ignored, the caller is function-key", async () => {
    configure(false);
    for (const op of operations) {
      assertAdmitted(await send(op, asEntra(FORGER, [], FORGER_OID)), `${op.id} with a forged principal`);
    }
    const stored = await snapshot();
    assert.ok(!stored.includes(FORGER) && !stored.includes(FORGER_OID), "the forged name and object id are recorded nowhere");
    assert.ok(stored.includes("function-key"), "the writes name function-key");
  });

  it("keeps the probe open to the function key alone under App Service authentication", async () => {
    configure(true);
    const response = await fetch(`${host.url}/${host.routePrefix}/health`, { headers: { "x-functions-key": KEY } });
    assert.ok(response.status === 200 || response.status === 503, `health answered ${response.status}`);
  });
});
