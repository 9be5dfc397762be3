import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { compositeGate } from "../../shared/policy/gates/composite";
import { prometheusGate } from "../../shared/policy/gates/prometheus";
import { POLICY_DEFAULTS, withPolicyDefaults, type GateContext, type Policy, type PrometheusBlocker } from "../../shared/policy/policy";
import { FakeClusterApi } from "../support/fakeClusterApi";
import { startCaptureServer } from "../support/webhookServer";
import { policyBase } from "../support/fixtures";

type Alert = { labels: Record<string, string>; state: string };
let alerts: Alert[] = [];

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
});

describe("the Prometheus blocker against a local alerts API", () => {
  let prometheus: Awaited<ReturnType<typeof startCaptureServer>>;
  before(async () => {
    prometheus = await startCaptureServer((request) => {
      if (request.path === "/prom/api/v1/alerts") return { status: 200, body: { status: "success", data: { alerts } } };
      if (request.path === "/broken/api/v1/alerts") return { status: 503, body: "overloaded" };
      return { status: 404, body: "not found" };
    });
  });
  after(() => prometheus.close());

  it("holds the node while a matching alert fires and names it", async () => {
    alerts = [
      { labels: { alertname: "Watchdog" }, state: "firing" },
      { labels: { alertname: "KubeNodeNotReady", severity: "critical" }, state: "firing" },
    ];
    const reason = await prometheusGate().holdReason(context(policyWith({ url: `${prometheus.url}/prom`, alertFilterRegex: "^Watchdog$" })));
    assert.equal(reason, "1 active Prometheus alert: KubeNodeNotReady (firing)");
  });

  it("lets the node go when only ignored or pending alerts are active with firing-only", async () => {
    alerts = [
      { labels: { alertname: "Watchdog" }, state: "firing" },
      { labels: { alertname: "HighLatency" }, state: "pending" },
    ];
    const reason = await prometheusGate().holdReason(context(policyWith({ url: `${prometheus.url}/prom/`, alertFilterRegex: "Watchdog", firingOnly: true })));
    assert.equal(reason, undefined);
  });

  it("sends the bearer token named by bearerTokenSetting", async () => {
    alerts = [];
    await prometheusGate({ env: { PROM_TOKEN: "t0ken" } }).holdReason(context(policyWith({ url: `${prometheus.url}/prom`, bearerTokenSetting: "PROM_TOKEN" })));
    assert.equal(prometheus.requests.at(-1)?.headers.authorization, "Bearer t0ken");
  });

  it("sends an Entra ID token for Azure Monitor managed Prometheus", async () => {
    alerts = [];
    const scopes: string[] = [];
    const gate = prometheusGate({ token: async (scope) => (scopes.push(scope), "entra-token") });
    await gate.holdReason(context(policyWith({ url: `${prometheus.url}/prom`, auth: "azure-managed-identity" })));
    assert.deepEqual(scopes, ["https://prometheus.monitor.azure.com/.default"]);
    assert.equal(prometheus.requests.at(-1)?.headers.authorization, "Bearer entra-token");
  });

  it("counts an error answer as blocked and says so", async () => {
    const reason = await compositeGate([prometheusGate()]).holdReason(context(policyWith({ url: `${prometheus.url}/broken` })));
    assert.match(reason ?? "", /^blocked: prometheus failed: GET http:\/\/127\.0\.0\.1:\d+\/broken\/api\/v1\/alerts answered 503: overloaded$/);
  });

  it("counts an unreachable Prometheus as blocked and says so", async () => {
    const gone = await startCaptureServer();
    await gone.close();
    const reason = await compositeGate([prometheusGate()]).holdReason(context(policyWith({ url: gone.url })));
    assert.match(reason ?? "", /^blocked: prometheus failed: GET http:\/\/127\.0\.0\.1:\d+\/api\/v1\/alerts: fetch failed \(ECONNREFUSED\)$/);
  });

  it("counts an answer that is not the alerts API as blocked", async () => {
    const reason = await compositeGate([prometheusGate()]).holdReason(context(policyWith({ url: `${prometheus.url}/elsewhere` })));
    assert.match(reason ?? "", /^blocked: prometheus failed: .* answered 404/);
  });
});
