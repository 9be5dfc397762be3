import { HttpRequest, InvocationContext, type HttpResponseInit } from "@azure/functions";
import type { TableClient } from "@azure/data-tables";
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { getUpgradePlan, postUpgradePlan } from "../../functions/upgradePlanHttp";
import { upgradePlanTimer } from "../../functions/upgradePlanTimer";
import { startArmSim, ARM_API_VERSION, type ArmSim, type SimCluster, type SimState } from "../../local/armSim/armSim";
import { startAzurite, type RunningAzurite } from "../../local/azurite/startAzurite";
import { getConfig, resetConfigForTests, type ClusterConnection } from "../../shared/config/config";
import { resetTelemetry, useMemoryTelemetry } from "../../shared/telemetry/telemetry";
import { openTable } from "../../shared/storage/table";
import { applyCluster } from "../../shared/upgrade/applier";
import { armClientFactory, type ArmClientOverrides } from "../../shared/azure/arm";
import { setArmOverridesForTests } from "../../shared/upgrade/fromConfig";
import { activePoolUpgrades } from "../../shared/upgrade/pauses";
import { clearActive, loadActive, loadHistory, loadPlan } from "../../shared/upgrade/planStore";
import type { UpgradePlan } from "../../shared/upgrade/planner";
import type { UpgradeDeps } from "../../shared/upgrade/service";

const SUB = "00000000-0000-0000-0000-000000000001";
const IMAGE_OLD = "AKSUbuntu-2204gen2containerd-202601.05.0";
const IMAGE_NEW = "AKSUbuntu-2204gen2containerd-202602.10.0";
const fakeCredential = { getToken: async () => ({ token: "fake-token", expiresOnTimestamp: Date.now() + 3_600_000 }) };

function simCluster(name: string, extra: Partial<SimCluster> = {}): SimCluster {
  return {
    subscriptionId: SUB,
    resourceGroup: "rg",
    name,
    location: "westeurope",
    kubernetesVersion: "1.29",
    currentKubernetesVersion: "1.29.7",
    pools: [
      { name: "system", mode: "System", orchestratorVersion: "1.29.7", currentOrchestratorVersion: "1.29.7", nodeImageVersion: IMAGE_NEW, latestNodeImageVersion: IMAGE_NEW },
      { name: "user", orchestratorVersion: "1.29.7", currentOrchestratorVersion: "1.29.7", nodeImageVersion: IMAGE_OLD, latestNodeImageVersion: IMAGE_NEW, upgradeSettings: { maxSurge: "33%", drainTimeoutInMinutes: 45 } },
    ],
    ...extra,
  };
}

function simState(): SimState {
  return {
    clusters: [
      simCluster("prod"),
      simCluster("nullpools", { upgradeProfilePools: "null" }),
      simCluster("windowed", {
        currentKubernetesVersion: "1.31.1",
        kubernetesVersion: "1.31",
        pools: [{ name: "user", orchestratorVersion: "1.31", currentOrchestratorVersion: "1.31.1", nodeImageVersion: IMAGE_NEW, latestNodeImageVersion: IMAGE_NEW }],
        maintenance: {
          aksManagedAutoUpgradeSchedule: {
            maintenanceWindow: {
              schedule: { weekly: { intervalWeeks: 1, dayOfWeek: "Sunday" } },
              durationHours: 4,
              utcOffset: "+02:00",
              startDate: "2026-01-04",
              startTime: "00:30",
              notAllowedDates: [{ start: "2030-01-06", end: "2030-01-06" }],
            },
          },
        },
      }),
      simCluster("apply"),
    ],
    versions: {
      westeurope: [
        { version: "1.29", supportPlan: ["KubernetesOfficial", "AKSLongTermSupport"], patches: ["1.29.7", "1.29.9"] },
        { version: "1.30", patches: ["1.30.4", "1.30.6"] },
        { version: "1.31", isDefault: true, patches: ["1.31.1", "1.31.3"] },
        { version: "1.32", patches: ["1.32.0", "1.32.2"] },
        { version: "1.33", isPreview: true, patches: ["1.33.0"] },
      ],
    },
  };
}

const resourceId = (name: string) => `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/${name}`;
const connections: ClusterConnection[] = [
  { name: "prod", aksResourceId: resourceId("prod"), aksAuth: "token" },
  { name: "nullpools", aksResourceId: resourceId("nullpools"), aksAuth: "token" },
  { name: "windowed", aksResourceId: resourceId("windowed"), aksAuth: "token", upgrade: { channel: "stable", allowPreview: false, apply: false } },
  { name: "apply", aksResourceId: resourceId("apply"), aksAuth: "token", upgrade: { channel: "stable", allowPreview: false, apply: true } },
];

let azurite: RunningAzurite;
let sim: ArmSim;
let table: TableClient;
let overrides: ArmClientOverrides;

const context = () => new InvocationContext({ functionName: "upgradePlan" });
const call = async (handler: typeof getUpgradePlan, method: "GET" | "POST", cluster: string, body?: string) => {
  const request = new HttpRequest({
    method,
    url: `http://localhost/api/clusters/${cluster}/upgrade-plan`,
    params: { cluster },
    ...(body === undefined ? {} : { body: { string: body }, headers: { "content-type": "application/json" } }),
  });
  return (await handler(request, context())) as HttpResponseInit & { jsonBody: any };
};

describe("upgrade planner against the ARM simulator and Azurite", () => {
  before(async () => {
    [azurite, sim] = await Promise.all([startAzurite(), startArmSim(simState())]);
    process.env.ROLLCALL_STORAGE_CONNECTION = azurite.connectionString;
    process.env.ROLLCALL_TABLE = "upgradetest";
    process.env.ROLLCALL_ARM_ENDPOINT = sim.endpoint;
    // Re-plans are rate-limited per cluster; this suite re-plans on purpose (the limit has its own test).
    process.env.ROLLCALL_UPGRADE_REPLAN_SECONDS = "0";
    process.env.ROLLCALL_CLUSTERS = JSON.stringify(connections.map(({ aksAuth: _, ...c }) => c));
    resetConfigForTests();
    overrides = { credential: fakeCredential, ca: sim.ca, retryOptions: { maxRetries: 1, retryDelayInMs: 10, maxRetryDelayInMs: 20 } };
    setArmOverridesForTests(overrides);
    table = await openTable(getConfig().storage);
  });

  after(async () => {
    setArmOverridesForTests(undefined);
    await Promise.all([sim?.stop(), azurite?.stop()]);
  });

  beforeEach(() => {
    sim.faults.length = 0;
    sim.failNextOperation = undefined;
    sim.operationPolls = 1;
  });

  it("plans a cluster two minors behind through the real SDK: two control plane steps after the patch, then the pools one minor at a time", async () => {
    const response = await call(postUpgradePlan, "POST", "prod");
    assert.equal(response.status, 200);
    const plan = response.jsonBody.plan as UpgradePlan;
    assert.deepEqual(plan.steps.map((s) => s.id), [
      "controlPlane:1.29.9",
      "controlPlane:1.30.6",
      "controlPlane:1.31.3",
      "poolVersion:system:1.30.6",
      "poolVersion:system:1.31.3",
      "poolVersion:user:1.30.6",
      "poolVersion:user:1.31.3",
    ]);
    assert.equal(plan.inputs.controlPlane, "1.29.7");
    assert.ok(plan.warnings.some((w) => /oldest minor/.test(w)));
    assert.match(response.jsonBody.summary[0], /prod: 7 step\(s\) — control plane 1\.29\.7 → 1\.31\.3/);
    // Every request carried the installed SDK's api-version and a bearer token.
    assert.ok(sim.requests.length > 0);
    assert.ok(sim.requests.every((r) => r.apiVersion === ARM_API_VERSION && /^Bearer /.test(String(r.headers.authorization))));
  });

  it("serves the stored plan as JSON with its human summary", async () => {
    const response = await call(getUpgradePlan, "GET", "prod");
    assert.equal(response.status, 200);
    assert.equal(response.jsonBody.plan.steps.length, 7);
    assert.ok(response.jsonBody.summary.some((l: string) => /^1\. control plane 1\.29\.7 → 1\.29\.9/.test(l)));
    assert.equal(response.jsonBody.lastError, null);
  });

  it("answers 404 for an unknown cluster and for a cluster without a plan yet", async () => {
    assert.equal((await call(getUpgradePlan, "GET", "nope")).status, 404);
    const none = await call(getUpgradePlan, "GET", "apply");
    assert.equal(none.status, 404);
    assert.equal(none.jsonBody.error.code, "no_plan");
  });

  it("survives an upgrade profile whose agentPoolProfiles is null, falling back to per-pool profiles", async () => {
    const response = await call(postUpgradePlan, "POST", "nullpools");
    assert.equal(response.status, 200);
    const plan = response.jsonBody.plan as UpgradePlan;
    assert.equal(plan.steps.length, 7);
    assert.ok(plan.notes.some((n) => /no agentPoolProfiles/.test(n)));
  });

  it("places steps in the cluster's maintenance window with its dates re-read in the window's utcOffset", async () => {
    const response = await call(postUpgradePlan, "POST", "windowed");
    const plan = response.jsonBody.plan as UpgradePlan;
    assert.equal(plan.steps[0]!.id, "controlPlane:1.31.3");
    const window = plan.steps[0]!.window;
    assert.equal(window.kind, "window");
    // Sunday 00:30 +02:00 is Saturday 22:30 UTC.
    assert.match(window.kind === "window" ? window.start : "", /T22:30:00\.000Z$/);
    assert.equal(new Date(window.kind === "window" ? window.start : "").getUTCDay(), 6);
  });

  for (const [status, code, headers, expected] of [
    [404, "ResourceNotFound", {}, /not found \(ResourceNotFound\); check aksResourceId/],
    [403, "AuthorizationFailed", {}, /access denied \(AuthorizationFailed\)/],
    [429, "TooManyRequests", { "retry-after": "1" }, /throttled by ARM; retry after 1 s/],
    [500, "InternalServerError", {}, /ARM failed with 500 .*transient/],
  ] as const) {
    it(`reports ARM ${status} ${code} clearly without losing the previous plan`, async () => {
      sim.faults.push({ method: "GET", path: /managedClusters\/prod$/, status, code, headers });
      const response = await call(postUpgradePlan, "POST", "prod");
      assert.equal(response.status, status === 429 ? 503 : 502);
      assert.equal(response.jsonBody.error.arm.status, status);
      assert.equal(response.jsonBody.error.arm.code, code);
      assert.match(response.jsonBody.error.message, expected);
      assert.equal(response.jsonBody.previousPlan.steps.length, 7);
      if (status === 429) assert.equal((response.headers as Record<string, string>)["retry-after"], "1");
      const stored = await call(getUpgradePlan, "GET", "prod");
      assert.equal(stored.jsonBody.plan.steps.length, 7);
      assert.equal(stored.jsonBody.lastError.failure.code, code);
    });
  }

  it("emits RollcallUpgradePlan, the event the workbook queries, through the production wiring", async () => {
    const telemetry = useMemoryTelemetry();
    try {
      assert.equal((await call(postUpgradePlan, "POST", "windowed")).status, 200);
      const events = telemetry.eventsNamed("RollcallUpgradePlan");
      assert.equal(events.length, 1);
      assert.equal(events[0]!.dimensions.cluster, "windowed");
      assert.equal(typeof events[0]!.dimensions.steps, "number");
      assert.match(String(events[0]!.dimensions.summary), /^windowed: /);
    } finally {
      resetTelemetry();
    }
  });

  for (const [what, body, status, code] of [
    ["bad JSON", "{not json", 400, "invalid_json"],
    ["an unknown field", JSON.stringify({ force: true }), 400, "invalid_request"],
    ["a 20 MB body", JSON.stringify({ pad: "x".repeat(20 * 1024 * 1024) }), 413, "body_too_large"],
  ] as const) {
    it(`refuses a re-plan with ${what} (${status} ${code}) without reading ARM`, async () => {
      const before = sim.requests.length;
      const response = await call(postUpgradePlan, "POST", "windowed", body);
      assert.equal(response.status, status);
      assert.equal(response.jsonBody.error.code, code);
      assert.equal(sim.requests.length, before, "no ARM request");
    });
  }

  it("accepts an empty object as the re-plan body", async () => {
    assert.equal((await call(postUpgradePlan, "POST", "windowed", "{}")).status, 200);
  });

  it("rate-limits re-plans per cluster: a second one within ROLLCALL_UPGRADE_REPLAN_SECONDS answers 429 with Retry-After and reads nothing from ARM", async () => {
    process.env.ROLLCALL_UPGRADE_REPLAN_SECONDS = "300";
    resetConfigForTests();
    try {
      const first = await call(postUpgradePlan, "POST", "nullpools");
      assert.ok(first.status === 200 || first.status === 429, String(first.status));
      const before = sim.requests.length;
      const second = await call(postUpgradePlan, "POST", "nullpools");
      assert.equal(second.status, 429);
      assert.equal(second.jsonBody.error.code, "replan_too_soon");
      assert.ok(Number((second.headers as Record<string, string>)["retry-after"]) > 0);
      assert.equal(sim.requests.length, before);
      assert.ok(second.jsonBody.plan, "the stored plan comes with the answer");
    } finally {
      process.env.ROLLCALL_UPGRADE_REPLAN_SECONDS = "0";
      resetConfigForTests();
    }
  });

  it("plans every configured AKS cluster from the timer even when one of them fails", async () => {
    sim.faults.push({ method: "GET", path: /managedClusters\/nullpools$/, status: 403, code: "AuthorizationFailed" });
    const lines: string[] = [];
    const ctx = new InvocationContext({ functionName: "upgradePlanTimer", logHandler: (_level, ...args) => lines.push(args.join(" ")) });
    await upgradePlanTimer({ isPastDue: false, schedule: { adjustForDST: false }, scheduleStatus: { last: "", next: "", lastUpdated: "" } }, ctx);
    assert.ok(lines.some((l) => /upgrade-plan planned=3 failed=1/.test(l)));
    assert.ok(lines.some((l) => /cluster=apply 1\. control plane 1\.29\.7 → 1\.29\.9/.test(l)));
    assert.ok((await loadPlan(table, "apply"))?.plan);
  });

  describe("apply mode", () => {
    const connection = connections.find((c) => c.name === "apply")!;
    let deps: UpgradeDeps;
    const options = { followBudgetMs: 2_000, pollIntervalMs: 5 };

    before(() => {
      deps = { table, arm: armClientFactory(getConfig(), overrides) };
    });
    beforeEach(async () => {
      await clearActive(table, "apply");
    });

    it("starts the first step as a control-plane-only PUT from a fresh GET with If-Match, follows it and records success", async () => {
      const before = sim.requests.length;
      const result = await applyCluster(deps, connection, options);
      assert.equal(result.action, "succeeded", result.message);
      assert.equal(result.stepId, "controlPlane:1.29.9");
      const put = sim.requests.slice(before).find((r) => r.method === "PUT")!;
      assert.match(String(put.headers["if-match"]), /^"/);
      const body = put.body as { properties: { kubernetesVersion: string; agentPoolProfiles: Array<{ name: string; orchestratorVersion: string }> } };
      assert.equal(body.properties.kubernetesVersion, "1.29.9");
      assert.deepEqual(body.properties.agentPoolProfiles.map((p) => p.orchestratorVersion), ["1.29.7", "1.29.7"]);
      const cluster = sim.cluster("apply");
      assert.equal(cluster.currentKubernetesVersion, "1.29.9");
      assert.deepEqual(cluster.pools.map((p) => p.currentOrchestratorVersion), ["1.29.7", "1.29.7"]);
      const history = await loadHistory(table, "apply");
      assert.deepEqual(history.slice(0, 2).map((h) => h.result), ["succeeded", "started"]);
      // The plan was recomputed from the new facts.
      assert.equal((await loadPlan(table, "apply"))?.plan?.steps[0]?.id, "controlPlane:1.30.6");
    });

    // Following, failures, refusals, pauses and approvals: test/integration/upgradeApply.test.ts.

    it("does nothing for a cluster whose apply mode is off", async () => {
      const result = await applyCluster(deps, connections[0]!, options);
      assert.equal(result.action, "off");
    });
  });
});
