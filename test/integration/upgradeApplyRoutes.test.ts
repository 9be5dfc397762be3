import type { TableClient } from "@azure/data-tables";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { approveUpgradeStep, pauseUpgradeApply, resumeUpgradeApply } from "../../functions/upgradePlanControl";
import { getUpgradePlan, postUpgradePlan } from "../../functions/upgradePlanHttp";
import { startArmSim, type ArmSim, type SimCluster } from "../../local/armSim/armSim";
import { poolsOnePatchBehind } from "../support/armClusters";
import { startAzurite, type RunningAzurite } from "../../local/azurite/startAzurite";
import { getConfig, resetConfigForTests } from "../../shared/config/config";
import { armClientFactory } from "../../shared/azure/arm";
import { openTable } from "../../shared/storage/table";
import { applyCluster } from "../../shared/upgrade/applier";
import { setArmOverridesForTests } from "../../shared/upgrade/fromConfig";
import { loadHistory } from "../../shared/upgrade/planStore";
import { asEntra, EASY_AUTH_ON, entraLabel } from "../support/entra";
import { call, leaksInternals } from "../support/operatorCalls";

/** approve / pause / resume through the real handlers, as Rollcall.Operate callers (App Service authentication on). */

const SUB = "00000000-0000-0000-0000-000000000006";
const id = (name: string) => `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/${name}`;
const fakeCredential = { getToken: async () => ({ token: "fake-token", expiresOnTimestamp: Date.now() + 3_600_000 }) };
const operator = asEntra("Olga Operator", ["Rollcall.Operate"]);
const reader = asEntra("Rita Reader", ["Rollcall.Read"]);

let azurite: RunningAzurite;
let sim: ArmSim;
let table: TableClient;

const cluster = (name: string): SimCluster => poolsOnePatchBehind(SUB, name, ["user"]);
const approvePath = (c: string, step: string) => ({
  method: "POST" as const,
  path: `clusters/${c}/upgrade-plan/steps/${encodeURIComponent(step)}/approve`,
  params: { cluster: c, step },
  headers: operator,
});

before(async () => {
  [azurite, sim] = await Promise.all([
    startAzurite(),
    startArmSim({ clusters: [cluster("gated"), cluster("auto")], versions: { westeurope: [{ version: "1.31", patches: ["1.31.1", "1.31.3"] }] } }),
  ]);
  Object.assign(process.env, EASY_AUTH_ON, {
    ROLLCALL_STORAGE_CONNECTION: azurite.connectionString,
    ROLLCALL_TABLE: "upgraderoutes",
    ROLLCALL_ARM_ENDPOINT: sim.endpoint,
    ROLLCALL_UPGRADE_REPLAN_SECONDS: "0",
    ROLLCALL_CLUSTERS: JSON.stringify([
      { name: "gated", aksResourceId: id("gated"), upgrade: { channel: "patch", apply: "approve" } },
      { name: "auto", aksResourceId: id("auto"), upgrade: { channel: "patch", apply: true } },
    ]),
  });
  resetConfigForTests();
  setArmOverridesForTests({ credential: fakeCredential, ca: sim.ca });
  table = await openTable(getConfig().storage);
  assert.equal((await call(postUpgradePlan, { method: "POST", path: "clusters/gated/upgrade-plan", params: { cluster: "gated" }, headers: operator })).status, 200);
});
after(async () => {
  setArmOverridesForTests(undefined);
  delete process.env.WEBSITE_AUTH_ENABLED;
  resetConfigForTests();
  await Promise.all([sim?.stop(), azurite?.stop()]);
});

describe("approving a step", () => {
  it("lets the approved step start, and the history names the approver", async () => {
    const answer = await call(approveUpgradeStep, approvePath("gated", "poolVersion:user:1.31.3"));
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.body.approval.by, entraLabel("Olga Operator"));
    const deps = { table, arm: armClientFactory(getConfig(), { credential: fakeCredential, ca: sim.ca }) };
    const result = await applyCluster(deps, getConfig().clusters[0]!, { followBudgetMs: 2_000, pollIntervalMs: 5 });
    assert.equal(result.action, "succeeded", result.message);
    assert.equal((await loadHistory(table, "gated"))[0]!.approvedBy, entraLabel("Olga Operator"));
  });

  it("needs Rollcall.Operate: a reader gets 403", async () => {
    const answer = await call(approveUpgradeStep, { ...approvePath("gated", "poolVersion:user:1.31.3"), headers: reader });
    assert.equal(answer.status, 403);
  });

  for (const [what, c, step, status, code] of [
    ["a step the plan does not have", "gated", "poolVersion:user:9.9.9", 404, "unknown_step"],
    ["something that is not a step id", "gated", "<script>", 400, "invalid_request"],
    ["a cluster that does not wait for approvals", "auto", "poolVersion:user:1.31.3", 409, "not_approve_mode"],
    ["an unknown cluster", "nope", "poolVersion:user:1.31.3", 404, "unknown_cluster"],
  ] as const) {
    it(`answers ${status} ${code} for ${what}, without a stack trace`, async () => {
      const answer = await call(approveUpgradeStep, approvePath(c, step));
      assert.equal(answer.status, status, answer.text);
      assert.equal(answer.body.error.code, code);
      assert.ok(!leaksInternals(answer.text));
    });
  }
});

describe("pausing and resuming apply mode", () => {
  const pause = (body?: unknown) => call(pauseUpgradeApply, { method: "POST", path: "clusters/auto/upgrade-plan/pause", params: { cluster: "auto" }, headers: operator, body });
  const resume = () => call(resumeUpgradeApply, { method: "POST", path: "clusters/auto/upgrade-plan/resume", params: { cluster: "auto" }, headers: operator });
  const status = () => call(getUpgradePlan, { method: "GET", path: "clusters/auto/upgrade-plan", params: { cluster: "auto" }, headers: operator });

  it("records who paused and why, shows it in the plan, and resume lifts it", async () => {
    await call(postUpgradePlan, { method: "POST", path: "clusters/auto/upgrade-plan", params: { cluster: "auto" }, headers: operator });
    const paused = await pause({ reason: "change freeze" });
    assert.equal(paused.status, 200, paused.text);
    assert.equal(paused.body.paused.by, entraLabel("Olga Operator"));
    assert.equal((await status()).body.apply.paused.reason, "change freeze");
    const deps = { table, arm: armClientFactory(getConfig(), { credential: fakeCredential, ca: sim.ca }) };
    assert.equal((await applyCluster(deps, getConfig().clusters[1]!, { followBudgetMs: 2_000, pollIntervalMs: 5 })).action, "paused");
    assert.equal((await resume()).status, 200);
    assert.equal((await status()).body.apply.paused, null);
  });

  it("refuses a pause body with unknown fields or a reason over 500 characters", async () => {
    assert.equal((await pause({ reason: "x", until: "never" })).status, 400);
    assert.equal((await pause({ reason: "x".repeat(501) })).status, 400);
    assert.equal((await pause("{nope")).status, 400);
  });
});
