import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { type FunctionsHost, startFunctionsHost } from "../../local/functionsHost/host";
import { CheckinRequest, CheckinResponse } from "../../shared/protocol/checkin";
import { PolicyDocument } from "../../shared/policy/policySchema";

/**
 * The OpenAPI document (openapi/openapi.json) against what the function app really registers,
 * captured through the local Functions host's `@azure/functions-core` shim.
 */

const ROOT = resolve(__dirname, "../..");
const DOCUMENT_FILE = resolve(ROOT, "openapi/openapi.json");
const METHODS = ["get", "put", "post", "delete", "patch", "head", "options"] as const;

type Json = any;
const documentText = readFileSync(DOCUMENT_FILE, "utf8");
const doc: Json = JSON.parse(documentText);

/** `clusters/{cluster}/status` (Functions route template) ↔ `/clusters/{cluster}/status` (OpenAPI path under the `/api` server). */
const toPath = (route: string) => `/${route.replace(/^\/+/, "")}`;

function operations(): { path: string; method: string; operation: Json }[] {
  return Object.entries(doc.paths as Record<string, Json>).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map((method) => ({ path, method: method.toUpperCase(), operation: item[method] })),
  );
}

function resolveRef(ref: string): Json {
  assert.match(ref, /^#\//, `only local references: ${ref}`);
  return ref
    .slice(2)
    .split("/")
    .reduce((node: Json, key) => (node === undefined ? undefined : node[key.replace(/~1/g, "/").replace(/~0/g, "~")]), doc);
}

function walk(node: Json, visit: (node: Json, where: string) => void, where = "#"): void {
  if (Array.isArray(node)) node.forEach((child, i) => walk(child, visit, `${where}/${i}`));
  else if (node && typeof node === "object") {
    visit(node, where);
    for (const [key, child] of Object.entries(node)) walk(child, visit, `${where}/${key}`);
  }
}

/** Field names and required fields of a zod object schema as the API accepts it. */
function fieldsOf(schema: z.ZodType): { properties: string[]; required: string[] } {
  const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as { properties?: object; required?: string[] };
  return { properties: Object.keys(json.properties ?? {}).sort(), required: [...(json.required ?? [])].sort() };
}

function documented(name: string): { properties: string[]; required: string[]; schema: Json } {
  const schema = doc.components.schemas[name];
  assert.ok(schema, `components.schemas.${name} exists`);
  return { properties: Object.keys(schema.properties ?? {}).sort(), required: [...(schema.required ?? [])].sort(), schema };
}

describe("the OpenAPI document", () => {
  let host: FunctionsHost;
  before(async () => {
    // Serving the document checks the caller's role, which needs valid settings; nothing here reaches storage.
    process.env.ROLLCALL_STORAGE_CONNECTION ??= "UseDevelopmentStorage=true";
    host = await startFunctionsHost({ port: 0, key: "openapi-test-key", timers: false, log: () => {} });
  });
  after(() => host?.stop());

  const httpRoutes = () => host.registrations.filter((r) => r.trigger === "httpTrigger");

  it("lists every registered HTTP route with exactly its methods, and documents nothing that is not registered", () => {
    const registered = new Map<string, Set<string>>();
    for (const r of httpRoutes()) {
      const path = toPath(r.route!);
      const methods = registered.get(path) ?? new Set<string>();
      for (const m of r.methods ?? []) methods.add(m.toUpperCase());
      registered.set(path, methods);
    }
    const documentedOps = new Map<string, Set<string>>();
    for (const { path, method } of operations()) {
      const methods = documentedOps.get(path) ?? new Set<string>();
      methods.add(method);
      documentedOps.set(path, methods);
    }
    for (const [path, methods] of registered) {
      assert.ok(documentedOps.has(path), `registered route ${path} is documented`);
      assert.deepEqual([...documentedOps.get(path)!].sort(), [...methods].sort(), `methods of ${path}`);
    }
    for (const path of documentedOps.keys()) assert.ok(registered.has(path), `documented path ${path} is registered`);
  });

  it("includes the check-in, the operator routes, status, history, health, policy and upgrade plan", () => {
    const paths = Object.keys(doc.paths);
    for (const path of [
      "/clusters/{cluster}/nodes/{node}/checkin",
      "/clusters/{cluster}/nodes/{node}/reboot",
      "/clusters/{cluster}/nodes/{node}/release",
      "/clusters/{cluster}/nodes/{node}",
      "/clusters/{cluster}/status",
      "/clusters/{cluster}/history",
      "/clusters/{cluster}/policy",
      "/clusters/{cluster}/upgrade-plan",
      "/health",
      "/openapi.json",
    ]) {
      assert.ok(paths.includes(path), `${path} is documented`);
    }
  });

  it("requires the function key on every route, as every registration's authLevel is function", async () => {
    for (const r of httpRoutes()) assert.equal(r.authLevel, "function", `${r.name} uses authLevel function`);
    const schemes = doc.components.securitySchemes;
    assert.deepEqual(schemes.functionKey, { ...schemes.functionKey, type: "apiKey", in: "header", name: "x-functions-key" });
    assert.deepEqual(schemes.functionKeyQuery, { ...schemes.functionKeyQuery, type: "apiKey", in: "query", name: "code" });
    for (const { path, method, operation } of operations()) {
      const security: Json[] = operation.security ?? doc.security;
      assert.ok(security?.length, `${method} ${path} has security`);
      assert.ok(
        security.every((requirement) => "functionKey" in requirement || "functionKeyQuery" in requirement),
        `${method} ${path}: every way in needs a function key`,
      );
      const url = `${host.url}/${host.routePrefix}${path.replace("{cluster}", "prod").replace("{node}", "node-1")}`;
      assert.equal((await fetch(url, { method })).status, 401, `${method} ${path} without a key`);
    }
  });

  it("documents the check-in's agent token beside the function key", () => {
    const checkin = doc.paths["/clusters/{cluster}/nodes/{node}/checkin"].post;
    assert.ok(checkin.security.every((requirement: Json) => "agentToken" in requirement));
    assert.deepEqual(
      { in: doc.components.securitySchemes.agentToken.in, name: doc.components.securitySchemes.agentToken.name },
      { in: "header", name: "X-Rollcall-Agent-Token" },
    );
    for (const status of ["200", "400", "401", "403", "404", "413", "503"]) assert.ok(checkin.responses[status], `check-in documents ${status}`);
  });

  it("is OpenAPI 3 whose every $ref resolves, every path parameter is declared and every operationId is unique", () => {
    assert.match(doc.openapi, /^3\.[01]\.\d+$/);
    assert.ok(doc.info?.title && doc.info?.version);
    walk(doc, (node, where) => {
      if (typeof node.$ref === "string") assert.ok(resolveRef(node.$ref) !== undefined, `${where}: ${node.$ref} resolves`);
    });
    const ids = operations().map((o) => o.operation.operationId);
    assert.ok(ids.every(Boolean), "every operation has an operationId");
    assert.equal(new Set(ids).size, ids.length, "operationIds are unique");
    for (const { path, method, operation } of operations()) {
      const declared = [...(doc.paths[path].parameters ?? []), ...(operation.parameters ?? [])]
        .map((p: Json) => (p.$ref ? resolveRef(p.$ref) : p))
        .filter((p: Json) => p.in === "path")
        .map((p: Json) => p.name)
        .sort();
      const inPath = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      assert.deepEqual(declared, inPath, `${method} ${path} declares its path parameters`);
      assert.ok(Object.keys(operation.responses ?? {}).length > 0, `${method} ${path} documents its responses`);
    }
    // Every component schema is used somewhere.
    const used = new Set<string>();
    walk(doc, (node) => {
      if (typeof node.$ref === "string" && node.$ref.startsWith("#/components/schemas/")) used.add(node.$ref.slice("#/components/schemas/".length));
    });
    for (const name of Object.keys(doc.components.schemas)) assert.ok(used.has(name), `components.schemas.${name} is referenced`);
  });

  it("documents the check-in request and response with exactly the protocol's fields", () => {
    const request = documented("CheckinRequest");
    assert.deepEqual({ properties: request.properties, required: request.required }, fieldsOf(CheckinRequest));
    assert.equal(request.schema.additionalProperties, false, "the protocol refuses unknown fields");
    const response = documented("CheckinResponse");
    const actual = z.toJSONSchema(CheckinResponse) as { properties: object; required: string[] };
    assert.deepEqual(response.properties, Object.keys(actual.properties).sort());
    assert.deepEqual(response.required, [...actual.required].sort());
    assert.deepEqual(response.schema.properties.action.enum, CheckinResponse.shape.action.options);
  });

  it("documents the reboot request and the policy document with exactly the fields their validators accept", async () => {
    // Loaded only now: importing a function module at the top would load @azure/functions in test mode before the host's shim.
    const { RebootRequestBody } = require("../../functions/rebootRequest") as typeof import("../../functions/rebootRequest");
    const reboot = documented("RebootRequest");
    assert.deepEqual({ properties: reboot.properties, required: reboot.required }, fieldsOf(RebootRequestBody));
    assert.equal(reboot.schema.properties.reason.maxLength, 500);
    assert.deepEqual([reboot.schema.properties.priority.minimum, reboot.schema.properties.priority.maximum], [0, 100]);
    const policy = documented("PolicyDocument");
    assert.deepEqual(policy.properties, fieldsOf(PolicyDocument).properties);
  });

  it("is served at GET /api/openapi.json exactly as kept in the repository", async () => {
    const response = await fetch(`${host.url}/${host.routePrefix}/openapi.json`, { headers: { "x-functions-key": host.key } });
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /application\/json/);
    assert.equal(await response.text(), documentText);
  });
});
