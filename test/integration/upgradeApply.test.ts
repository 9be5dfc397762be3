import type { TableClient } from "@azure/data-tables";
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { startArmSim, type ArmSim, type SimCluster } from "../../local/armSim/armSim";
import { poolsOnePatchBehind } from "../support/armClusters";
import { startAzurite, type RunningAzurite } from "../../local/azurite/startAzurite";
import { parseConfig, type ClusterConnection } from "../../shared/config/config";
import { armClientFactory } from "../../shared/azure/arm";
import { openTable } from "../../shared/storage/table";
import { applyCluster, approveStep, pauseApply, resumeApply } from "../../shared/upgrade/applier";
import { activePoolUpgrades, rebootPauseReason } from "../../shared/upgrade/pauses";
import { loadActive, loadHistory, loadPlan } from "../../shared/upgrade/planStore";
import { planCluster, refreshPoolPauses, type UpgradeDeps } from "../../shared/upgrade/service";

/** Apply mode against the simulated ARM (real SDK over https, infra's roles enforced) and Azurite. */

const SUB = "00000000-0000-0000-0000-000000000003";
const fakeCredential = { getToken: async () => ({ token: "fake-token", expiresOnTimestamp: Date.now() + 3_600_000 }) };
const id = (name: string) => `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/${name}`;

/** Pools `user` and `other` one patch behind the control plane. */
const cluster = (name: string, extra: Partial<SimCluster> = {}): SimCluster => poolsOnePatchBehind(SUB, name, ["user", "other"], extra);
const names = ["poll", "gone", "failing", "refused", "busy", "external", "windowed", "approve", "paused"] as const;
const connection = (name: (typeof names)[number], apply: boolean | "approve" = true): ClusterConnection => ({
  name,
  aksResourceId: id(name),
  aksAuth: "token",
  upgrade: { channel: "patch", allowPreview: false, apply },
});

let azurite: RunningAzurite;
let sim: ArmSim;
let table: TableClient;
let deps: UpgradeDeps;
const quick = { followBudgetMs: 0, pollIntervalMs: 5 };
const full = { followBudgetMs: 2_000, pollIntervalMs: 5 };
const puts = (clusterName: string) => sim.requests.filter((r) => r.method === "PUT" && r.path.includes(`/managedClusters/${clusterName}/`)).length;

before(async () => {
  const windowed = cluster("windowed", {
    maintenance: {
      aksManagedAutoUpgradeSchedule: {
        maintenanceWindow: { schedule: { daily: { intervalDays: 1 } }, durationHours: 4, utcOffset: "+00:00", startDate: "2026-01-01", startTime: "00:00" },
      },
    },
  });
  [azurite, sim] = await Promise.all([
    startAzurite(),
    startArmSim({
      clusters: [...names.filter((n) => n !== "windowed").map((n) => cluster(n)), windowed],
      versions: { westeurope: [{ version: "1.30", patches: ["1.30.6"] }, { version: "1.31", isDefault: true, patches: ["1.31.1", "1.31.3"] }] },
    }),
  ]);
  table = await openTable(parseConfig({ ROLLCALL_STORAGE_CONNECTION: azurite.connectionString, ROLLCALL_TABLE: "upgradeapply" }).storage);
  const arm = armClientFactory(parseConfig({ ROLLCALL_STORAGE_CONNECTION: "UseDevelopmentStorage=true" }), {
    credential: fakeCredential,
    endpoint: sim.endpoint,
    ca: sim.ca,
    retryOptions: { maxRetries: 0 },
  });
  deps = { table, arm };
});
after(() => Promise.all([sim?.stop(), azurite?.stop()]));
beforeEach(() => {
  sim.faults.length = 0;
  sim.operationPolls = 1;
});

describe("apply mode follows AKS, not the SDK's poller", () => {
  for (const status of [404, 429, 500]) {
    it(`keeps following, and keeps the reboot pause, when polling the operation answers ${status} while AKS is still upgrading`, async () => {
      const c = connection("poll");
      sim.operationPolls = 1_000;
      await planCluster(deps, c);
      if (!(await loadActive(table, "poll"))) assert.equal((await applyCluster(deps, c, quick)).action, "started");
      sim.faults.push({ method: "GET", path: /\/operations\//, status, code: status === 404 ? "NotFound" : status === 429 ? "TooManyRequests" : "InternalServerError", times: 1 });
      const result = await applyCluster(deps, c, quick);
      assert.equal(result.action, "following", result.message);
      assert.ok(await loadActive(table, "poll"), "the operation is still followed");
      assert.deepEqual(await activePoolUpgrades(table, "poll"), ["user"]);
      assert.ok(!(await loadHistory(table, "poll")).some((h) => h.result === "failed"), "nothing recorded as failed");
    });
  }

  it("records success once the operation ends after the failed polls, and lifts the pause then", async () => {
    const c = connection("poll");
    sim.finishOperations();
    const done = await applyCluster(deps, c, full);
    assert.equal(done.action, "succeeded", done.message);
    assert.equal(sim.cluster("poll").pools[0]!.currentOrchestratorVersion, "1.31.3");
    assert.deepEqual(await activePoolUpgrades(table, "poll"), []);
  });

  it("decides from the pool's own state when the operation URL is gone for good: following while Upgrading, done once settled", async () => {
    const c = connection("gone");
    sim.operationPolls = 1_000;
    await planCluster(deps, c);
    assert.equal((await applyCluster(deps, c, quick)).action, "started");
    sim.faults.push({ method: "GET", path: /\/operations\//, status: 404, code: "NotFound" });
    assert.equal((await applyCluster(deps, c, quick)).action, "following");
    // AKS finishes the pool while the status URL still answers 404.
    const pool = sim.cluster("gone").pools[0]!;
    Object.assign(pool, { provisioningState: "Succeeded", currentOrchestratorVersion: "1.31.3", orchestratorVersion: "1.31.3" });
    const done = await applyCluster(deps, c, quick);
    assert.equal(done.action, "succeeded", done.message);
    assert.equal(await loadActive(table, "gone"), undefined);
  });
});

describe("a long-running operation that fails", () => {
  it("is recorded with ARM's error, and the pool's pause ends with it", async () => {
    const c = connection("failing");
    await planCluster(deps, c);
    sim.failNextOperation = { code: "UpgradeFailed", message: "Drain of node aks-user-1 did not complete: PodDisruptionBudget db/postgres" };
    const result = await applyCluster(deps, c, full);
    assert.equal(result.action, "failed", result.message);
    assert.match(result.message, /UpgradeFailed: Drain of node aks-user-1 did not complete/);
    assert.equal(await loadActive(table, "failing"), undefined);
    assert.equal((await loadHistory(table, "failing"))[0]!.result, "failed");
    // AKS leaves the pool Failed, which is settled: no pause.
    assert.deepEqual(await activePoolUpgrades(table, "failing"), []);
  });
});

describe("409 OperationNotAllowed: busy or refused", () => {
  it("records an upgrade AKS refuses once, never starts it again, and tries again after resume", async () => {
    const c = connection("refused");
    await planCluster(deps, c);
    sim.faults.push({ method: "PUT", path: /managedClusters\/refused\/agentPools\/user$/, status: 409, code: "OperationNotAllowed", message: "Upgrade to 1.31.3 is not allowed for this node pool: its OS SKU is retired." });
    const first = await applyCluster(deps, c, full);
    assert.equal(first.action, "refused", first.message);
    const before = puts("refused");
    for (let i = 0; i < 3; i++) {
      const again = await applyCluster(deps, c, full);
      assert.equal(again.action, "blocked", again.message);
      assert.match(again.message, /ARM refused poolVersion:user:1\.31\.3/);
    }
    assert.equal(puts("refused"), before, "no further PUT");
    assert.deepEqual((await loadHistory(table, "refused")).map((h) => h.result), ["refused"]);
    assert.match((await loadPlan(table, "refused"))!.plan!.summary.join("\n"), /poolVersion:user:1\.31\.3|pool user 1\.31\.1 → 1\.31\.3/);

    sim.faults.length = 0;
    await resumeApply(table, "refused", "operator@example.com");
    const retried = await applyCluster(deps, c, full);
    assert.equal(retried.action, "succeeded", retried.message);
  });

  it("defers while another operation is in progress, folding repeated deferrals into one history entry", async () => {
    const c = connection("busy");
    await planCluster(deps, c);
    sim.cluster("busy").pools[1]!.provisioningState = "Upgrading";
    for (let i = 0; i < 3; i++) assert.equal((await applyCluster(deps, c, full)).action, "deferred");
    const history = await loadHistory(table, "busy");
    assert.equal(history.length, 1);
    assert.equal(history[0]!.result, "deferred");
    assert.equal(history[0]!.count, 3);
    sim.cluster("busy").pools[1]!.provisioningState = "Succeeded";
  });
});

describe("reboot pauses know upgrades Rollcall did not start", () => {
  it("pauses reboots on a pool ARM shows Upgrading and lifts the pause once ARM shows it settled", async () => {
    const c = connection("external", false);
    const pool = sim.cluster("external").pools[0]!;
    pool.provisioningState = "Upgrading";
    await refreshPoolPauses(deps, c);
    assert.match((await rebootPauseReason(table, "external", "user")) ?? "", /ARM shows provisioningState Upgrading/);
    assert.equal(await rebootPauseReason(table, "external", "other"), undefined);
    pool.provisioningState = "Succeeded";
    await refreshPoolPauses(deps, c);
    assert.equal(await rebootPauseReason(table, "external", "user"), undefined);
  });
});

describe("the plan's timeline is what apply does", () => {
  it("starts one step per maintenance window occurrence, and the plan shows the next step in the next one", async () => {
    let now = new Date("2026-03-02T01:00:00Z");
    const d: UpgradeDeps = { ...deps, now: () => now };
    const c = connection("windowed");
    const planned = await planCluster(d, c);
    assert.ok(planned.ok);
    assert.deepEqual(
      planned.plan.steps.map((s) => (s.window.kind === "window" ? s.window.start : s.window.kind)),
      ["2026-03-02T00:00:00.000Z", "2026-03-03T00:00:00.000Z"],
    );
    assert.equal((await applyCluster(d, c, full)).action, "succeeded");
    const second = await applyCluster(d, c, full);
    assert.equal(second.action, "waiting", second.message);
    assert.match(second.message, /already ran a step/);
    const stored = (await loadPlan(table, "windowed"))!.plan!;
    assert.equal(stored.steps.length, 1);
    assert.equal(stored.steps[0]!.window.kind === "window" && stored.steps[0]!.window.start, "2026-03-03T00:00:00.000Z");
    now = new Date("2026-03-03T00:30:00Z");
    assert.equal((await applyCluster(d, c, full)).action, "succeeded");
  });
});

describe("a human in the loop", () => {
  it("waits for each step's approval, then records who approved it, when it started and ARM's operation id", async () => {
    const c = connection("approve", "approve");
    await planCluster(deps, c);
    const waiting = await applyCluster(deps, c, full);
    assert.equal(waiting.action, "awaiting-approval", waiting.message);
    assert.equal(puts("approve"), 0);
    await approveStep(table, "approve", waiting.stepId!, "alice@example.com");
    const done = await applyCluster(deps, c, full);
    assert.equal(done.action, "succeeded", done.message);
    const [succeeded, started] = await loadHistory(table, "approve");
    assert.equal(succeeded!.result, "succeeded");
    assert.equal(succeeded!.approvedBy, "alice@example.com");
    assert.match(succeeded!.operationId ?? "", /^[0-9a-f-]{36}$/);
    assert.equal(succeeded!.startedAt, started!.at);
    assert.equal(started!.result, "started");
    // The next step needs its own approval.
    assert.equal((await applyCluster(deps, c, full)).action, "awaiting-approval");
  });

  it("starts nothing while paused, and carries on after resume", async () => {
    const c = connection("paused");
    await planCluster(deps, c);
    await pauseApply(table, "paused", "bob@example.com", "change freeze");
    const paused = await applyCluster(deps, c, full);
    assert.equal(paused.action, "paused");
    assert.match(paused.message, /bob@example\.com.*change freeze/);
    assert.equal(puts("paused"), 0);
    await resumeApply(table, "paused", "bob@example.com");
    assert.equal((await applyCluster(deps, c, full)).action, "succeeded");
  });
});
