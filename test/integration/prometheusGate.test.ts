import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { compositeGate } from "../../shared/policy/gates/composite";
import { prometheusGate } from "../../shared/policy/gates/prometheus";
import type { OutboundRules } from "../../shared/outbound/outbound";
import { POLICY_DEFAULTS, withPolicyDefaults, type GateContext, type Policy, type PrometheusBlocker } from "../../shared/policy/policy";
import { FakeClusterApi } from "../support/fakeClusterApi";
import { startCaptureServer } from "../support/webhookServer";
import { policyBase } from "../support/fixtures";

/**
 * The Prometheus gate against a local server that answers Prometheus's instant-query API
 * (`/api/v1/query`) the way Prometheus does: `{ status, data: { resultType, result } }`, with the
 * `ALERTS` series carrying `alertname` and `alertstate` labels. No `/api/v1/alerts` is served,
 * as on Azure Monitor managed Prometheus.
 */

type Series = Record<string, string>;
let alerts: Series[] = [];
let metrics: Series[] = [];

const LOCAL: OutboundRules = { prometheusHosts: [], webhookHosts: [], allowHttpLoopback: true };

const policyWith = (prometheus: Partial<PrometheusBlocker> & { url: string }): Policy =>
  withPolicyDefaults({
    concurrency: 1,
    ...policyBase,
    blockers: {
      podSelectors: [],
      pdbPrecheck: false,
      prometheus: { alertFilterMatchOnly: false, firingOnly: false, auth: "none", tokenScope: POLICY_DEFAULTS.prometheusTokenScope, timeoutMs: 2000, ...prometheus },
    },
  });

const context = (policy: Policy): GateContext => ({
  record: { cluster: "prod", node: "n1", state: "pending", since: "", why: "", rebootRequired: true, reasons: [] },
  policy,
  now: new Date(),
  phase: "before-lock",
  kube: async () => new FakeClusterApi(),
  records: async () => [],
  lastRelease: async () => undefined,
});

/** What Prometheus evaluates for the few expressions the tests use. */
function evaluate(query: string): Series[] | undefined {
  if (query === "ALERTS") return alerts.map((a) => ({ __name__: "ALERTS", ...a }));
  if (query === 'ALERTS{alertstate="firing"}') return alerts.filter((a) => a.alertstate === "firing").map((a) => ({ __name__: "ALERTS", ...a }));
  if (query === 'kube_node_status_condition{condition="Ready",status="true"} == 0') return metrics;
  return undefined;
}

describe("the Prometheus blocker against a local query API", () => {
  let prometheus: Awaited<ReturnType<typeof startCaptureServer>>;
  before(async () => {
    prometheus = await startCaptureServer((request) => {
      const url = new URL(request.path, "http://prometheus");
      const query = url.searchParams.get("query") ?? "";
      if (url.pathname === "/prom/api/v1/query") {
        const result = evaluate(query);
        if (!result) return { status: 400, body: { status: "error", errorType: "bad_data", error: `unknown expression ${query}` } };
        return { status: 200, body: { status: "success", data: { resultType: "vector", result: result.map((metric) => ({ metric, value: [1764547200, "1"] })) } } };
      }
      if (url.pathname === "/scalar/api/v1/query") return { status: 200, body: { status: "success", data: { resultType: "scalar", result: [1764547200, "1"] } } };
      if (url.pathname === "/broken/api/v1/query") return { status: 503, body: "overloaded" };
      return { status: 404, body: "not found" };
    });
  });
  after(() => prometheus.close());

  const gate = (deps: Parameters<typeof prometheusGate>[0] = {}) => prometheusGate({ rules: LOCAL, ...deps });
  const lastQuery = () => new URL(prometheus.requests.at(-1)!.path, "http://prometheus");

  it("asks /api/v1/query for ALERTS, holds the node while a matching alert is active and names it", async () => {
    alerts = [
      { alertname: "Watchdog", alertstate: "firing" },
      { alertname: "KubeNodeNotReady", alertstate: "firing", severity: "critical" },
    ];
    const reason = await gate().holdReason(context(policyWith({ url: `${prometheus.url}/prom`, alertFilterRegex: "^Watchdog$" })));
    assert.equal(reason, "1 active Prometheus alert: KubeNodeNotReady (firing)");
    assert.equal(lastQuery().pathname, "/prom/api/v1/query");
    assert.equal(lastQuery().searchParams.get("query"), "ALERTS");
  });

  it("asks only for firing alerts with firingOnly, and lets the node go when only ignored or pending alerts are active", async () => {
    alerts = [
      { alertname: "Watchdog", alertstate: "firing" },
      { alertname: "HighLatency", alertstate: "pending" },
    ];
    const reason = await gate().holdReason(context(policyWith({ url: `${prometheus.url}/prom/`, alertFilterRegex: "Watchdog", firingOnly: true })));
    assert.equal(reason, undefined);
    assert.equal(lastQuery().searchParams.get("query"), 'ALERTS{alertstate="firing"}');
  });

  it("with alertFilterMatchOnly, only alerts whose name matches block (unanchored, as kured's regexp.MatchString)", async () => {
    alerts = [
      { alertname: "KubeNodeNotReady", alertstate: "pending" },
      { alertname: "Watchdog", alertstate: "firing" },
    ];
    const reason = await gate().holdReason(context(policyWith({ url: `${prometheus.url}/prom`, alertFilterRegex: "NodeNot", alertFilterMatchOnly: true })));
    assert.equal(reason, "1 active Prometheus alert: KubeNodeNotReady (pending)");
  });

  it("evaluates the operator's own expression and blocks while it returns any series", async () => {
    const query = 'kube_node_status_condition{condition="Ready",status="true"} == 0';
    metrics = [{ node: "aks-np-2", condition: "Ready", status: "true" }];
    const blocked = await gate().holdReason(context(policyWith({ url: `${prometheus.url}/prom`, query })));
    assert.equal(blocked, `Prometheus query ${JSON.stringify(query)} returned 1 series: {node="aks-np-2", condition="Ready", status="true"}`);
    assert.equal(lastQuery().searchParams.get("query"), query);
    metrics = [];
    assert.equal(await gate().holdReason(context(policyWith({ url: `${prometheus.url}/prom`, query }))), undefined);
  });

  it("counts a query that does not return a vector as blocked", async () => {
    const reason = await compositeGate([gate()]).holdReason(context(policyWith({ url: `${prometheus.url}/scalar`, query: "scalar(up)" })));
    assert.match(reason ?? "", /^blocked: prometheus failed: the query "scalar\(up\)" returned a scalar result; a blocker query must return an instant vector/);
  });

  it("sends the bearer token of the ROLLCALL_SECRET_ setting named by bearerTokenSetting", async () => {
    alerts = [];
    await gate({ env: { ROLLCALL_SECRET_PROM_TOKEN: "t0ken" } }).holdReason(context(policyWith({ url: `${prometheus.url}/prom`, bearerTokenSetting: "ROLLCALL_SECRET_PROM_TOKEN" })));
    assert.equal(prometheus.requests.at(-1)?.headers.authorization, "Bearer t0ken");
  });

  it("sends no request when bearerTokenSetting names a setting that is not a policy secret", async () => {
    const before = prometheus.requests.length;
    const reason = await compositeGate([gate({ env: { AzureWebJobsStorage: "AccountKey=secret" } })]).holdReason(context(policyWith({ url: `${prometheus.url}/prom`, bearerTokenSetting: "AzureWebJobsStorage" })));
    assert.match(reason ?? "", /^blocked: prometheus failed: GET .* not sent: bearerTokenSetting AzureWebJobsStorage must name an app setting declared for policies/);
    assert.equal(prometheus.requests.length, before);
  });

  it("sends an Entra ID token for Azure Monitor managed Prometheus, and asks for no other scope", async () => {
    alerts = [];
    const scopes: string[] = [];
    const withToken = gate({ token: async (scope) => (scopes.push(scope), "entra-token") });
    await withToken.holdReason(context(policyWith({ url: `${prometheus.url}/prom`, auth: "azure-managed-identity" })));
    assert.deepEqual(scopes, ["https://prometheus.monitor.azure.com/.default"]);
    assert.equal(prometheus.requests.at(-1)?.headers.authorization, "Bearer entra-token");
    const reason = await compositeGate([withToken]).holdReason(context(policyWith({ url: `${prometheus.url}/prom`, auth: "azure-managed-identity", tokenScope: "https://management.azure.com/.default" })));
    assert.match(reason ?? "", /not sent: tokenScope must be one of https:\/\/prometheus\.monitor\.azure\.com\/\.default/);
    assert.deepEqual(scopes, ["https://prometheus.monitor.azure.com/.default"]);
  });

  it("sends nothing to a host the app's rules do not allow", async () => {
    const before = prometheus.requests.length;
    const reason = await compositeGate([prometheusGate({ rules: { ...LOCAL, allowHttpLoopback: false } })]).holdReason(context(policyWith({ url: `${prometheus.url}/prom` })));
    assert.match(reason ?? "", /^blocked: prometheus failed: GET http:\/\/127\.0\.0\.1:\d+\/prom\/api\/v1\/query not sent: the URL names the loopback interface/);
    assert.equal(prometheus.requests.length, before);
  });

  it("counts an error answer as blocked and says so", async () => {
    const reason = await compositeGate([gate()]).holdReason(context(policyWith({ url: `${prometheus.url}/broken` })));
    assert.match(reason ?? "", /^blocked: prometheus failed: GET http:\/\/127\.0\.0\.1:\d+\/broken\/api\/v1\/query answered 503: overloaded$/);
  });

  it("counts a rejected expression as blocked and shows Prometheus's error", async () => {
    const reason = await compositeGate([gate()]).holdReason(context(policyWith({ url: `${prometheus.url}/prom`, query: "nonsense(" })));
    assert.match(reason ?? "", /answered 400: .*unknown expression nonsense\(/);
  });

  it("counts an unreachable Prometheus as blocked and says so", async () => {
    const gone = await startCaptureServer();
    await gone.close();
    const reason = await compositeGate([gate()]).holdReason(context(policyWith({ url: gone.url })));
    assert.match(reason ?? "", /^blocked: prometheus failed: GET http:\/\/127\.0\.0\.1:\d+\/api\/v1\/query: fetch failed \(ECONNREFUSED\)$/);
  });

  it("counts an answer that is not the query API as blocked", async () => {
    const reason = await compositeGate([gate()]).holdReason(context(policyWith({ url: `${prometheus.url}/elsewhere` })));
    assert.match(reason ?? "", /^blocked: prometheus failed: .* answered 404/);
  });
});
