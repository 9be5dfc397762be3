import { after, before, beforeEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { HttpRequest, InvocationContext, type HttpResponseInit } from "@azure/functions";
import { getPolicy, putPolicy } from "../../functions/policy";
import { getRollcall, resetForTests } from "../../shared/orchestrator/fromConfig";
import { policyFromConfig } from "../../shared/policy/policy";
import { POLICY_ROW_KEY, policyStoreFor } from "../../shared/policy/policyStore";
import { getConfig } from "../../shared/config/config";
import { setHostResolverForTests } from "../../shared/outbound/outbound";
import { useAzurite } from "../support/azurite";
import { asEntra, EASY_AUTH_ON, entraLabel } from "../support/entra";

const azurite = useAzurite();
let tableCounter = 0;

beforeEach(() => {
  process.env.ROLLCALL_STORAGE_CONNECTION = azurite.azurite.connectionString;
  process.env.ROLLCALL_TABLE = `policy${Date.now().toString(36)}${tableCounter++}`;
  process.env.ROLLCALL_CLUSTERS = JSON.stringify([{ name: "prod", kubeconfig: "apiVersion: v1\nkind: Config" }]);
  process.env.ROLLCALL_DRAIN_TIMEOUT_MINUTES = "15";
  process.env.ROLLCALL_LOCK_TTL_MINUTES = "60";
  Object.assign(process.env, EASY_AUTH_ON);
  process.env.ROLLCALL_WEBHOOK_HOSTS = "hooks.slack.example";
  resetForTests();
});

// These machines have no DNS: the workspace's query endpoint resolves as it does from a Function App.
before(() => setHostResolverForTests(async (host) => assert.match(host, /\.prometheus\.monitor\.azure\.com$/)));
after(() => setHostResolverForTests());

type Handler = (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>;

async function call(handler: Handler, method: "GET" | "PUT", cluster: string, body?: unknown) {
  const request = new HttpRequest({
    method,
    url: `http://localhost/api/clusters/${cluster}/policy`,
    params: { cluster },
    headers: { ...asEntra("oncall@example.com"), ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: { string: typeof body === "string" ? body : JSON.stringify(body) } }),
  });
  const response = await handler(request, new InvocationContext({ invocationId: "test", functionName: "policy" }));
  return { status: response.status ?? 200, body: response.jsonBody as any };
}

const goodPolicy = {
  concurrency: 2,
  windows: [{ days: ["sat", "sun"], start: "22:00", end: "06:00", timeZone: "Europe/Berlin" }],
  maxPerZone: 1,
  blockers: { podSelectors: ["app=backup", { selector: "job=etl", scope: "cluster" }], prometheus: { url: "https://rollcall-1a2b.westeurope.prometheus.monitor.azure.com", auth: "azure-managed-identity", alertFilterRegex: "^Watchdog$", firingOnly: true } },
  drain: { timeoutMinutes: 20, podSelector: "app!=critical" },
  notifications: { webhookUrl: "https://hooks.slack.example/T/B/x", format: "slack", templates: { reboot: "Rebooting {{node}}" } },
};

describe("the policy API", () => {
  it("answers the app-setting defaults for a cluster without a stored policy", async () => {
    const answer = await call(getPolicy, "GET", "prod");
    assert.equal(answer.status, 200);
    assert.equal(answer.body.policy, null);
    assert.equal(answer.body.effective.concurrency, 1);
    assert.equal(answer.body.effective.drain.timeoutMinutes, 15);
    assert.equal(answer.body.effective.blockers.pdbPrecheck, true);
  });

  it("stores a valid policy with PUT and answers it with GET, merged over the defaults", async () => {
    const put = await call(putPolicy, "PUT", "prod", goodPolicy);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.updatedBy, entraLabel("oncall@example.com"));
    const got = await call(getPolicy, "GET", "prod");
    assert.deepEqual(got.body.policy, goodPolicy);
    assert.equal(got.body.effective.concurrency, 2);
    assert.equal(got.body.effective.lockTtlMinutes, 60, "from the app settings");
    assert.equal(got.body.effective.drain.timeoutMinutes, 20);
    assert.deepEqual(got.body.effective.blockers.podSelectors, [
      { selector: "app=backup", scope: "node" },
      { selector: "job=etl", scope: "cluster" },
    ]);
    assert.equal(got.body.effective.notifications.format, "slack");
  });

  it("rejects an invalid policy with 400 naming the option and the accepted values, and keeps the stored one", async () => {
    await call(putPolicy, "PUT", "prod", goodPolicy);
    const bad = await call(putPolicy, "PUT", "prod", { ...goodPolicy, windows: [{ days: ["sat"], start: "22:00", end: "06:00", timeZone: "Europe/Berlinn" }], notifications: { webhookUrl: "https://x.example", format: "discord" } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, "invalid_policy");
    const fields = bad.body.error.problems.map((p: { field: string }) => p.field);
    assert.ok(fields.includes("windows.0.timeZone"), JSON.stringify(bad.body));
    assert.ok(fields.includes("notifications.format"), JSON.stringify(bad.body));
    assert.match(bad.body.error.message, /windows\.0\.timeZone: "Europe\/Berlinn" is not an IANA time zone/);
    assert.match(bad.body.error.message, /notifications\.format: must be one of teams, slack, generic/);
    const got = await call(getPolicy, "GET", "prod");
    assert.deepEqual(got.body.policy, goodPolicy, "the stored policy is unchanged");
  });

  it("rejects a policy whose drain timeout is not shorter than the lock TTL it is merged with", async () => {
    const bad = await call(putPolicy, "PUT", "prod", { drain: { timeoutMinutes: 90 } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.problems[0].field, "drain.timeoutMinutes");
    assert.match(bad.body.error.problems[0].message, /must be shorter than the lock TTL \(60 min\)/);
  });

  it("rejects unknown options, listing the accepted ones", async () => {
    const bad = await call(putPolicy, "PUT", "prod", { concurency: 2 });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /unknown option "concurency"; accepted options here: concurrency, /);
  });

  it("rejects a body that is not JSON and a cluster that is not configured", async () => {
    assert.equal((await call(putPolicy, "PUT", "prod", "{not json")).status, 400);
    assert.equal((await call(putPolicy, "PUT", "staging", {})).status, 404);
  });

  it("serves the new policy to the orchestrator's policy source at once in the same process", async () => {
    const { table } = await getRollcall();
    const source = policyStoreFor(table, policyFromConfig(getConfig())).source;
    assert.equal((await source("prod")).concurrency, 1);
    await call(putPolicy, "PUT", "prod", { concurrency: 3 });
    assert.equal((await source("prod")).concurrency, 3);
    const row = await table.getEntity("prod", POLICY_ROW_KEY);
    assert.equal(row.updatedBy, entraLabel("oncall@example.com"));
  });
});
