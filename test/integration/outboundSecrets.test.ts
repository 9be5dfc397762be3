import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { notifyEvent } from "../../shared/notify/notifier";
import { setHostResolverForTests } from "../../shared/outbound/outbound";
import { POLICY_ROW_KEY } from "../../shared/policy/policyStore";
import { getRollcall, resetForTests } from "../../shared/orchestrator/fromConfig";
import { startCaptureServer, type CapturedRequest } from "../support/webhookServer";
import { getStatus, putClusterPolicy, record } from "../support/policyWorld";
import { CLUSTER, TestAgent, useWorld } from "../support/world";

/**
 * Issue 11 item 1: the holder of an operator key must not be able to make the app send its secrets
 * or tokens anywhere. An attacker's HTTP endpoint records what it receives; a fake App Service
 * managed-identity endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER, what DefaultAzureCredential reads
 * on Functions) hands out a recognisable token for every resource, so a token that leaves the app
 * is seen at the attacker's endpoint. Everything goes through the real PUT handler, Azurite, the
 * simulated API server and a check-in that asks the Prometheus gate.
 */

const world = useWorld();
const STORAGE_SECRET = "AccountKey=c3RvcmFnZS1rZXktdGhhdC1tdXN0LW5vdC1sZWF2ZQ==";

let identity: Server;
const identityRequests: string[] = [];
let attacker: Awaited<ReturnType<typeof startCaptureServer>>;

const EMPTY_VECTOR = { status: "success", data: { resultType: "vector", result: [] } };

/** Whatever reached the attacker that is a credential: an Authorization header, or a secret value anywhere. */
function leaked(requests: readonly CapturedRequest[]): string[] {
  const found: string[] = [];
  for (const r of requests) {
    const text = JSON.stringify({ headers: r.headers, body: r.body, path: r.path });
    if (r.headers.authorization) found.push(`authorization: ${r.headers.authorization}`);
    if (text.includes("c3RvcmFnZS1rZXk")) found.push("the storage account key");
    if (text.includes("mi-token")) found.push("a managed-identity token");
  }
  return found;
}

/** Fresh settings for one test: the outbound ones of an earlier test do not carry over. */
function freshSettings(settings: Record<string, string> = {}) {
  for (const name of ["ROLLCALL_PROMETHEUS_HOSTS", "ROLLCALL_WEBHOOK_HOSTS", "ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK"]) delete process.env[name];
  world.configure(settings);
}

/** The settings of a Function App whose storage key and cluster credentials are app settings. */
function configure(settings: Record<string, string> = {}) {
  freshSettings({ ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK: "true", ...settings });
  // What the app really holds: its storage connection string carries the account key.
  process.env.ROLLCALL_STORAGE_CONNECTION = `${world.azurite.connectionString}`;
  process.env.AzureWebJobsStorage = `DefaultEndpointsProtocol=https;AccountName=rollcall;${STORAGE_SECRET};EndpointSuffix=core.windows.net`;
}

async function askToReboot(node: string) {
  world.sim.addNode(node);
  return (await TestAgent.on(world.sim, node, true)).tick();
}

describe("no secret or token leaves the app through a policy", () => {
  before(async () => {
    identity = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://identity");
      identityRequests.push(url.searchParams.get("resource") ?? "");
      res.writeHead(req.headers["x-identity-header"] === "identity-header-secret" ? 200 : 401, { "content-type": "application/json" });
      res.end(JSON.stringify({ access_token: `mi-token-for:${url.searchParams.get("resource")}`, expires_on: Math.floor(Date.now() / 1000) + 3600, resource: url.searchParams.get("resource"), token_type: "Bearer" }));
    });
    await new Promise<void>((resolve) => identity.listen(0, "127.0.0.1", resolve));
    process.env.IDENTITY_ENDPOINT = `http://127.0.0.1:${(identity.address() as AddressInfo).port}/msi/token`;
    process.env.IDENTITY_HEADER = "identity-header-secret";
    attacker = await startCaptureServer(() => ({ status: 200, body: EMPTY_VECTOR }));
  });
  after(async () => {
    await attacker.close();
    await new Promise<void>((resolve) => identity.close(() => resolve()));
  });

  it("refuses a Prometheus bearer token taken from the storage connection string, naming the field, and sends it nowhere", async () => {
    configure();
    attacker.requests.length = 0;
    const put = await putClusterPolicy({ blockers: { prometheus: { url: attacker.url, bearerTokenSetting: "AzureWebJobsStorage" } } });
    await askToReboot("ex-a");
    assert.deepEqual(leaked(attacker.requests), []);
    assert.equal(put.status, 400, put.text);
    assert.equal(put.body.error.problems[0].field, "blockers.prometheus.bearerTokenSetting");
    assert.match(put.body.error.problems[0].message, /ROLLCALL_SECRET_/);
  });

  it("refuses a bearer token from the cluster credentials setting", async () => {
    configure();
    const put = await putClusterPolicy({ blockers: { prometheus: { url: attacker.url, bearerTokenSetting: "ROLLCALL_CLUSTERS" } } });
    assert.equal(put.status, 400, put.text);
    assert.deepEqual(put.body.error.problems.map((p: { field: string }) => p.field), ["blockers.prometheus.bearerTokenSetting"]);
  });

  it("refuses a managed-identity token for any scope but Azure Monitor's, and asks the identity endpoint for none", async () => {
    configure();
    attacker.requests.length = 0;
    identityRequests.length = 0;
    for (const [i, scope] of ["https://management.azure.com/.default", "https://storage.azure.com/.default", "6dae42f8-4368-4678-94ff-3960e28e3630/.default"].entries()) {
      const put = await putClusterPolicy({ blockers: { prometheus: { url: attacker.url, auth: "azure-managed-identity", tokenScope: scope } } });
      await askToReboot(`ex-scope-${i}`);
      assert.deepEqual(leaked(attacker.requests), [], scope);
      assert.equal(put.status, 400, put.text);
      assert.equal(put.body.error.problems[0].field, "blockers.prometheus.tokenScope");
      assert.match(put.body.error.problems[0].message, /https:\/\/prometheus\.monitor\.azure\.com\/\.default/);
    }
    assert.deepEqual(identityRequests, []);
  });

  it("refuses a Prometheus or webhook URL on a host the app's settings do not allow, or over plain http", async () => {
    configure({ ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK: "false", ROLLCALL_PROMETHEUS_HOSTS: "*.prometheus.monitor.azure.com", ROLLCALL_WEBHOOK_HOSTS: "hooks.slack.com" });
    const cases: [unknown, string, RegExp][] = [
      [{ blockers: { prometheus: { url: "https://attacker.example/steal" } } }, "blockers.prometheus.url", /attacker\.example, which is not in ROLLCALL_PROMETHEUS_HOSTS/],
      [{ blockers: { prometheus: { url: "http://ws-1.westeurope.prometheus.monitor.azure.com" } } }, "blockers.prometheus.url", /must be https/],
      [{ blockers: { prometheus: { url: attacker.url } } }, "blockers.prometheus.url", /loopback/],
      [{ notifications: { webhookUrl: "https://attacker.example/hook" } }, "notifications.webhookUrl", /attacker\.example, which is not in ROLLCALL_WEBHOOK_HOSTS/],
      [{ notifications: { webhookUrl: "https://hooks.slack.com.attacker.example/x" } }, "notifications.webhookUrl", /not in ROLLCALL_WEBHOOK_HOSTS/],
      [{ notifications: { webhookUrl: "https://user:pw@hooks.slack.com/x" } }, "notifications.webhookUrl", /user name or password/],
      [{ notifications: { webhookUrlSetting: "ROLLCALL_CLUSTERS" } }, "notifications.webhookUrlSetting", /ROLLCALL_SECRET_/],
    ];
    for (const [document, field, message] of cases) {
      const put = await putClusterPolicy(document);
      assert.equal(put.status, 400, `${JSON.stringify(document)}: ${put.text}`);
      assert.equal(put.body.error.code, "invalid_policy");
      const problem = put.body.error.problems.find((p: { field: string }) => p.field === field);
      assert.ok(problem, `${JSON.stringify(document)} names ${field}: ${put.text}`);
      assert.match(problem.message, message);
    }
  });

  it("re-checks the rules when it calls: a stored policy whose host the settings no longer allow holds the node and sends nothing", async () => {
    configure();
    process.env.ROLLCALL_SECRET_PROM_TOKEN = "prometheus-token";
    attacker.requests.length = 0;
    const put = await putClusterPolicy({ blockers: { prometheus: { url: attacker.url, bearerTokenSetting: "ROLLCALL_SECRET_PROM_TOKEN" } } });
    assert.equal(put.status, 200, put.text);
    // The app's operator withdraws local loopback calls (a restart with new settings); the stored policy still names the endpoint.
    process.env.ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK = "false";
    resetForTests();
    const answer = await askToReboot("ex-recheck");
    assert.equal(answer.state, "pending");
    assert.match(answer.reason, /^blocked: prometheus failed: .*loopback/);
    assert.deepEqual(attacker.requests, []);
    delete process.env.ROLLCALL_SECRET_PROM_TOKEN;
  });

  it("a stored row from before the rules that names another setting is not used: nothing is sent", async () => {
    configure();
    attacker.requests.length = 0;
    const { table } = await getRollcall();
    await table.upsertEntity(
      { partitionKey: CLUSTER, rowKey: POLICY_ROW_KEY, document: JSON.stringify({ blockers: { prometheus: { url: attacker.url, bearerTokenSetting: "AzureWebJobsStorage" } } }), updatedAt: new Date().toISOString(), updatedBy: "old" },
      "Replace",
    );
    await askToReboot("ex-legacy");
    assert.deepEqual(leaked(attacker.requests), []);
    assert.deepEqual(attacker.requests, []);
  });

  it("does not follow a redirect from Prometheus with the bearer token, and says why the node is held", async () => {
    configure();
    process.env.ROLLCALL_SECRET_PROM_TOKEN = "prometheus-token";
    attacker.requests.length = 0;
    const redirecting = await startCaptureServer(() => ({ status: 307, body: "", headers: { location: `${attacker.url}/api/v1/query` } }));
    try {
      const put = await putClusterPolicy({ blockers: { prometheus: { url: redirecting.url, bearerTokenSetting: "ROLLCALL_SECRET_PROM_TOKEN" } } });
      assert.equal(put.status, 200, put.text);
      const answer = await askToReboot("ex-redirect");
      assert.equal(redirecting.requests[0]?.headers.authorization, "Bearer prometheus-token", "the allowed endpoint gets the token");
      assert.deepEqual(attacker.requests, [], "the redirect target gets nothing");
      assert.match(answer.reason, /^blocked: prometheus failed: .*answered 307, a redirect to 127\.0\.0\.1:\d+; redirects are not followed/);
      const status = await getStatus();
      assert.equal(status.body.queue[0].gateError.gate, "prometheus");
    } finally {
      await redirecting.close();
      delete process.env.ROLLCALL_SECRET_PROM_TOKEN;
    }
  });

  it("does not follow a webhook's redirect", async () => {
    configure();
    attacker.requests.length = 0;
    const redirecting = await startCaptureServer(() => ({ status: 302, body: "", headers: { location: `${attacker.url}/hook` } }));
    try {
      const lines: string[] = [];
      const log = { info: () => undefined, warn: (...a: unknown[]) => lines.push(a.join(" ")), error: (...a: unknown[]) => lines.push(a.join(" ")) };
      const { policy } = await getRollcall();
      const sent = await notifyEvent(
        { ...(await policy(CLUSTER)), notifications: { webhookUrl: `${redirecting.url}/hook`, format: "generic", templates: {}, events: ["reboot"], timeoutMs: 2000 } },
        "reboot",
        "draining",
        await askToReboot("ex-hook").then(() => record("ex-hook")),
        log,
      );
      assert.equal(sent, false);
      assert.equal(redirecting.requests.length, 1);
      assert.deepEqual(attacker.requests, []);
      assert.match(lines.join("\n"), /answered 302, a redirect to 127\.0\.0\.1:\d+; redirects are not followed/);
    } finally {
      await redirecting.close();
    }
  });

  it("sends the Azure Monitor token, and only it, to an allowed Prometheus endpoint", async () => {
    configure();
    identityRequests.length = 0;
    const prometheus = await startCaptureServer(() => ({ status: 200, body: EMPTY_VECTOR }));
    try {
      const put = await putClusterPolicy({ blockers: { prometheus: { url: prometheus.url, auth: "azure-managed-identity" } } });
      assert.equal(put.status, 200, put.text);
      const answer = await askToReboot("ex-mi");
      assert.equal(answer.action, "reboot", answer.reason);
      assert.deepEqual([...new Set(identityRequests)], ["https://prometheus.monitor.azure.com"]);
      assert.equal(prometheus.requests[0]?.headers.authorization, "Bearer mi-token-for:https://prometheus.monitor.azure.com");
    } finally {
      await prometheus.close();
    }
  });
});

describe("a Prometheus URL the Function App cannot reach is refused when the policy is PUT", () => {
  after(() => setHostResolverForTests());

  it("refuses in-cluster service DNS names and single labels, naming the field and saying why", async () => {
    freshSettings({ ROLLCALL_PROMETHEUS_HOSTS: "prometheus.monitoring.svc,prometheus.monitoring.svc.cluster.local,prometheus" });
    for (const url of ["http://prometheus.monitoring.svc:9090", "https://prometheus.monitoring.svc.cluster.local:9090", "https://prometheus:9090"]) {
      const put = await putClusterPolicy({ blockers: { prometheus: { url } } });
      assert.equal(put.status, 400, `${url}: ${put.text}`);
      assert.equal(put.body.error.problems[0].field, "blockers.prometheus.url");
      assert.match(put.body.error.problems[0].message, /(in-cluster service DNS name|single-label name).*Rollcall runs outside the cluster \(in the Function App\) and cannot resolve it/, url);
    }
  });

  it("refuses the README's old kured-style URL, which is plain http to a name that does not resolve from the app", async () => {
    freshSettings();
    const put = await putClusterPolicy({ blockers: { prometheus: { url: "http://prometheus.monitoring:9090" } } });
    assert.equal(put.status, 400, put.text);
    assert.equal(put.body.error.problems[0].field, "blockers.prometheus.url");
  });

  it("refuses an allowed host that does not resolve (the system resolver, a .invalid name)", async () => {
    freshSettings({ ROLLCALL_PROMETHEUS_HOSTS: "prometheus.rollcall-test.invalid" });
    const put = await putClusterPolicy({ blockers: { prometheus: { url: "https://prometheus.rollcall-test.invalid" } } });
    assert.equal(put.status, 400, put.text);
    assert.equal(put.body.error.problems[0].field, "blockers.prometheus.url");
    assert.match(put.body.error.problems[0].message, /the host prometheus\.rollcall-test\.invalid does not resolve from the app \(.+\); every check-in would be blocked/);
  });

  it("accepts an Azure Monitor workspace query endpoint that resolves, and a secret setting that is set", async () => {
    freshSettings({ ROLLCALL_WEBHOOK_HOSTS: "*.webhook.office.com" });
    const asked: string[] = [];
    setHostResolverForTests(async (host) => void asked.push(host));
    process.env.ROLLCALL_SECRET_TEAMS_WEBHOOK = "https://contoso.webhook.office.com/webhookb2/abc";
    try {
      const url = "https://rollcall-1a2b.westeurope.prometheus.monitor.azure.com";
      const put = await putClusterPolicy({
        blockers: { prometheus: { url, auth: "azure-managed-identity", query: 'kube_node_status_condition{condition="Ready",status="true"} == 0' } },
        notifications: { webhookUrlSetting: "ROLLCALL_SECRET_TEAMS_WEBHOOK", format: "teams" },
      });
      assert.equal(put.status, 200, put.text);
      assert.deepEqual(asked, ["rollcall-1a2b.westeurope.prometheus.monitor.azure.com"]);
      assert.equal(put.body.effective.blockers.prometheus.query, 'kube_node_status_condition{condition="Ready",status="true"} == 0');

      delete process.env.ROLLCALL_SECRET_TEAMS_WEBHOOK;
      const unset = await putClusterPolicy({ notifications: { webhookUrlSetting: "ROLLCALL_SECRET_TEAMS_WEBHOOK", format: "teams" } });
      assert.equal(unset.status, 400, unset.text);
      assert.match(unset.body.error.problems[0].message, /the app setting ROLLCALL_SECRET_TEAMS_WEBHOOK \(webhookUrlSetting\) is not set/);
      process.env.ROLLCALL_SECRET_TEAMS_WEBHOOK = "https://attacker.example/hook";
      const elsewhere = await putClusterPolicy({ notifications: { webhookUrlSetting: "ROLLCALL_SECRET_TEAMS_WEBHOOK", format: "teams" } });
      assert.equal(elsewhere.status, 400, elsewhere.text);
      assert.match(elsewhere.body.error.problems[0].message, /the URL in ROLLCALL_SECRET_TEAMS_WEBHOOK names the host attacker\.example, which is not in ROLLCALL_WEBHOOK_HOSTS/);
    } finally {
      delete process.env.ROLLCALL_SECRET_TEAMS_WEBHOOK;
    }
  });

  it("refuses alert filters beside the operator's own query", async () => {
    freshSettings();
    setHostResolverForTests(async () => undefined);
    const put = await putClusterPolicy({ blockers: { prometheus: { url: "https://ws.westeurope.prometheus.monitor.azure.com", query: "up == 0", alertFilterRegex: "Watchdog" } } });
    assert.equal(put.status, 400, put.text);
    assert.equal(put.body.error.problems[0].field, "blockers.prometheus.query");
  });
});
