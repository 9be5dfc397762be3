import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../shared/config/config";
import { unsafeOnAzure } from "../../shared/config/hosting";
import {
  hostAllowed,
  inClusterHostProblem,
  outboundUrlProblem,
  parseHostPatterns,
  resolveHost,
  secretSettingProblem,
  tokenScopeProblem,
  type OutboundRules,
} from "../../shared/outbound/outbound";

const AZURE_MONITOR: OutboundRules = { prometheusHosts: ["*.prometheus.monitor.azure.com"], webhookHosts: ["hooks.slack.com", "*.webhook.office.com"], allowHttpLoopback: false };
const STORAGE = { ROLLCALL_STORAGE_CONNECTION: "UseDevelopmentStorage=true" };

describe("the outbound rules", () => {
  it("match a host exactly or by a *.suffix of whole labels, never by a look-alike", () => {
    const patterns = parseHostPatterns(" Hooks.Slack.com , *.prometheus.monitor.azure.com ");
    assert.deepEqual(patterns, ["hooks.slack.com", "*.prometheus.monitor.azure.com"]);
    assert.ok(hostAllowed("hooks.slack.com", patterns));
    assert.ok(hostAllowed("ws-1a2b.westeurope.prometheus.monitor.azure.com", patterns));
    assert.ok(!hostAllowed("prometheus.monitor.azure.com", patterns), "the suffix itself is not a host under it");
    assert.ok(!hostAllowed("evilprometheus.monitor.azure.com", patterns));
    assert.ok(!hostAllowed("hooks.slack.com.attacker.example", patterns));
    assert.ok(!hostAllowed("xhooks.slack.com", patterns));
  });

  it("refuse host patterns that are not a name or *.suffix", () => {
    for (const bad of ["*", "*.com", "https://hooks.slack.com", "hooks.slack.com:443", "a.*.example.com", "hooks.slack.com/path"]) {
      assert.throws(() => parseHostPatterns(bad), /not a host name|top-level domain/, bad);
    }
    assert.deepEqual(parseHostPatterns("10.1.2.3"), ["10.1.2.3"]);
  });

  it("allow only https to an allowed host, and plain http only to loopback in local runs", () => {
    assert.equal(outboundUrlProblem("https://ws-1.westeurope.prometheus.monitor.azure.com/", "prometheus", AZURE_MONITOR), undefined);
    assert.match(outboundUrlProblem("http://ws-1.westeurope.prometheus.monitor.azure.com/", "prometheus", AZURE_MONITOR)!, /must be https/);
    assert.match(outboundUrlProblem("https://hooks.slack.com/services/x", "prometheus", AZURE_MONITOR)!, /not in ROLLCALL_PROMETHEUS_HOSTS/, "a webhook host is not a Prometheus host");
    assert.equal(outboundUrlProblem("https://hooks.slack.com/services/x", "webhook", AZURE_MONITOR), undefined);
    assert.match(outboundUrlProblem("ftp://hooks.slack.com/x", "webhook", AZURE_MONITOR)!, /https:\/\//);
    for (const loopback of ["http://127.0.0.1:9090", "http://localhost:9090", "http://[::1]:9090", "http://2130706433/", "http://0.0.0.0:8081/msi/token"]) {
      assert.match(outboundUrlProblem(loopback, "prometheus", AZURE_MONITOR)!, /loopback interface .* ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK/, loopback);
      assert.equal(outboundUrlProblem(loopback, "prometheus", { ...AZURE_MONITOR, allowHttpLoopback: true }), undefined, loopback);
    }
    assert.match(outboundUrlProblem("https://u:p@hooks.slack.com/x", "webhook", AZURE_MONITOR)!, /user name or password/);
  });

  it("refuse in-cluster service names and single labels, saying that the app runs outside the cluster", () => {
    for (const host of ["prometheus.monitoring.svc", "prometheus.monitoring.svc.cluster.local", "kube-prometheus-stack-prometheus", "thanos.monitoring.svc.cluster.local."]) {
      assert.match(inClusterHostProblem(host.replace(/\.$/, ""))!, /Rollcall runs outside the cluster/, host);
      assert.match(outboundUrlProblem(`http://${host}:9090`, "prometheus", { ...AZURE_MONITOR, prometheusHosts: [host] })!, /in-cluster service DNS name|single-label name/, host);
    }
    assert.equal(inClusterHostProblem("prometheus.example.com"), undefined);
    assert.equal(inClusterHostProblem("10.0.0.12"), undefined);
  });

  it("take secrets only from ROLLCALL_SECRET_ settings and tokens only for Azure Monitor's scope", () => {
    assert.equal(secretSettingProblem("ROLLCALL_SECRET_PROM_TOKEN"), undefined);
    for (const name of ["ROLLCALL_STORAGE_CONNECTION", "AzureWebJobsStorage", "ROLLCALL_CLUSTERS", "IDENTITY_HEADER", "ROLLCALL_SECRET_", "rollcall_secret_x"]) {
      assert.match(secretSettingProblem(name)!, /ROLLCALL_SECRET_/, name);
    }
    assert.equal(tokenScopeProblem("https://prometheus.monitor.azure.com/.default"), undefined);
    for (const scope of ["https://management.azure.com/.default", "https://storage.azure.com/.default", "6dae42f8-4368-4678-94ff-3960e28e3630/.default", "https://prometheus.monitor.azure.com/.default "]) {
      assert.ok(tokenScopeProblem(scope), scope);
    }
  });

  it("resolve host names with the system resolver: localhost resolves, a .invalid name does not", async () => {
    await resolveHost("localhost");
    await assert.rejects(resolveHost("rollcall-test.invalid"));
  });
});

describe("the outbound settings", () => {
  it("default to Azure Monitor's query hosts for Prometheus, no webhook host, and no loopback", () => {
    assert.deepEqual(parseConfig(STORAGE).outbound, { prometheusHosts: ["*.prometheus.monitor.azure.com"], webhookHosts: [], allowHttpLoopback: false });
  });

  it("read the host lists and name a bad entry", () => {
    const config = parseConfig({ ...STORAGE, ROLLCALL_PROMETHEUS_HOSTS: "prom.example.com", ROLLCALL_WEBHOOK_HOSTS: "hooks.slack.com,*.webhook.office.com" });
    assert.deepEqual(config.outbound.prometheusHosts, ["prom.example.com"]);
    assert.deepEqual(config.outbound.webhookHosts, ["hooks.slack.com", "*.webhook.office.com"]);
    assert.throws(() => parseConfig({ ...STORAGE, ROLLCALL_WEBHOOK_HOSTS: "https://hooks.slack.com" }), (e: Error) => e instanceof ConfigError && /ROLLCALL_WEBHOOK_HOSTS: "https:\/\/hooks\.slack\.com" is not a host name/.test(e.message));
  });

  it("refuse plain-http loopback calls on Azure", () => {
    assert.equal(parseConfig({ ...STORAGE, ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK: "true" }).outbound.allowHttpLoopback, true);
    assert.throws(
      () => parseConfig({ ...STORAGE, ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK: "true", WEBSITE_SKU: "FlexConsumption" }),
      (e: Error) => e instanceof ConfigError && /ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK is for local runs only and is refused on Azure \(detected by WEBSITE_SKU=FlexConsumption\)/.test(e.message),
    );
    // The same answer at startup (the check-in module refuses to load), not only at the first request.
    assert.match(unsafeOnAzure({ ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK: "1", WEBSITE_INSTANCE_ID: "0f3d" }) ?? "", /ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK is for local runs only/);
    assert.equal(unsafeOnAzure({ ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK: "false", WEBSITE_INSTANCE_ID: "0f3d" }), undefined);
  });
});
