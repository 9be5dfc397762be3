import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { type FunctionsHost, startFunctionsHost } from "../../local/functionsHost/host";

const ROOT = resolve(__dirname, "../..");
const lines: string[] = [];

describe("the local Functions host with Rollcall's function app", () => {
  let host: FunctionsHost;
  before(async () => {
    host = await startFunctionsHost({ port: 0, key: "test-key", timers: false, log: (line) => lines.push(line) });
  });
  after(() => host?.stop());

  it("registers every entry module's functions with their trigger metadata", () => {
    const files = readdirSync(join(ROOT, "functions")).filter((f) => f.endsWith(".ts"));
    for (const file of files) {
      assert.ok(host.registrations.some((r) => r.file === join(ROOT, "functions", file)), `${file} registers at least one function`);
    }
    for (const r of host.registrations) {
      if (r.trigger === "httpTrigger") {
        assert.ok(r.route && r.methods?.length && r.authLevel, `${r.name} has a route, methods and an auth level`);
      } else if (r.trigger === "eventGridTrigger") {
        assert.equal(r.name, "aksEvents", `${r.name}: the one Event Grid function`);
      } else {
        assert.equal(r.trigger, "timerTrigger", `${r.name} is an HTTP, timer or Event Grid function`);
        assert.match(r.schedule ?? "", /^\S+( \S+){5}$/, `${r.name} has a six-field NCRONTAB schedule`);
      }
    }
  });

  it("registers AKS's Event Grid events as an Event Grid trigger", () => {
    const events = host.registrations.find((r) => r.name === "aksEvents");
    assert.equal(events?.trigger, "eventGridTrigger");
    assert.equal(events?.file, join(ROOT, "functions", "aksEvents.ts"));
  });

  it("registers the check-in as a function-key POST on the agent's route", () => {
    const checkin = host.registrations.find((r) => r.name === "checkin");
    assert.deepEqual(
      { route: checkin?.route, methods: checkin?.methods, authLevel: checkin?.authLevel, trigger: checkin?.trigger },
      { route: "clusters/{cluster}/nodes/{node}/checkin", methods: ["POST"], authLevel: "function", trigger: "httpTrigger" },
    );
  });

  it("registers the reconcile timer every minute", () => {
    const reconcile = host.registrations.find((r) => r.name === "reconcile");
    assert.equal(reconcile?.trigger, "timerTrigger");
    assert.equal(reconcile?.schedule, "0 */1 * * * *");
  });

  it("refuses a check-in without the function key or with a wrong one", async () => {
    const url = `${host.url}/api/clusters/dev/nodes/node-1/checkin`;
    assert.equal((await fetch(url, { method: "POST", body: "{}" })).status, 401);
    assert.equal((await fetch(url, { method: "POST", body: "{}", headers: { "x-functions-key": "wrong" } })).status, 401);
    assert.equal((await fetch(`${url}?code=wrong`, { method: "POST", body: "{}" })).status, 401);
  });

  it("passes a check-in with the key in the header or in ?code= to the real handler", async () => {
    const url = `${host.url}/api/clusters/dev/nodes/node-1/checkin`;
    for (const init of [{ headers: { "x-functions-key": "test-key" } }, {}]) {
      const target = "headers" in init ? url : `${url}?code=test-key`;
      const response = await fetch(target, { method: "POST", body: JSON.stringify({ rebootRequired: "yes" }), ...init });
      assert.equal(response.status, 400, "the handler validated the body");
      const body = (await response.json()) as { error: { code: string } };
      assert.equal(body.error.code, "invalid_request");
    }
  });

  it("answers 404 for unknown routes and for methods the function does not allow", async () => {
    assert.equal((await fetch(`${host.url}/api/nothing/here`, { headers: { "x-functions-key": "test-key" } })).status, 404);
    assert.equal((await fetch(`${host.url}/clusters/dev/nodes/node-1/checkin`, { method: "POST", headers: { "x-functions-key": "test-key" } })).status, 404);
    assert.equal((await fetch(`${host.url}/api/clusters/dev/nodes/node-1/checkin`, { headers: { "x-functions-key": "test-key" } })).status, 404);
  });
});

describe("the local Functions host's routing and timers", () => {
  let host: FunctionsHost;
  const fixture = join(__dirname, "fixtures", "functionsApp");
  before(async () => {
    host = await startFunctionsHost({ port: 0, functionsDir: join(fixture, "functions"), appRoot: fixture, log: (line) => lines.push(line) });
  });
  after(() => host?.stop());

  const get = async (path: string, init: RequestInit = {}) => {
    const response = await fetch(`${host.url}/api/${path}`, init);
    return { status: response.status, body: response.status === 200 ? ((await response.json()) as Record<string, unknown>) : undefined };
  };

  it("generates a key when none is given", () => {
    assert.ok(host.key.length >= 16);
  });

  it("prefers a literal segment to a parameter, and a constrained parameter to a plain one", async () => {
    assert.deepEqual((await get("items/special")).body, { fn: "itemSpecial" });
    assert.deepEqual((await get("items/42")).body, { fn: "itemById", id: "42" });
    assert.equal((await get("items/widget")).status, 401, "the plain parameter's function needs the key");
    const named = await get("items/widget?q=blue", { headers: { "x-functions-key": host.key } });
    assert.deepEqual(named.body, { fn: "itemByName", name: "widget", query: "blue" });
  });

  it("serves anonymous functions without a key", async () => {
    assert.equal((await get("items/7")).status, 200);
  });

  it("uses the function's name as its route when it has none, and passes status, headers and body back", async () => {
    const response = await fetch(`${host.url}/api/echo?code=${host.key}`, { method: "POST", body: "hello" });
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("x-echo"), "yes");
    assert.equal(await response.text(), "hello");
  });

  it("answers 500 without details when a handler throws, and logs the error", async () => {
    assert.equal((await get("boom")).status, 500);
    assert.ok(lines.some((l) => l.startsWith("[boom]") && l.includes("handler failure")));
  });

  it("logs through the invocation context with the function's name", async () => {
    await fetch(`${host.url}/api/items/gadget`, { method: "DELETE", headers: { "x-functions-key": host.key } });
    assert.ok(lines.includes("[itemByName] deleting gadget"));
  });

  it("runs timer functions on their NCRONTAB schedule", async () => {
    const counter = globalThis as { fixtureTicks?: number };
    for (let i = 0; i < 100 && !(counter.fixtureTicks && counter.fixtureTicks >= 2); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok((counter.fixtureTicks ?? 0) >= 2, "the every-second timer ran twice");
    assert.ok(lines.includes("[everySecond] tick"));
  });
});
