import type { TableClient } from "@azure/data-tables";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { startArmSim, ARM_API_VERSION, SIM_PRINCIPAL_ID, type ArmSim, type SimCluster } from "../../local/armSim/armSim";
import { armActionOf, infraGrants, isGranted } from "../../local/armSim/roles";
import { startAzurite, type RunningAzurite } from "../../local/azurite/startAzurite";
import { parseConfig, type ClusterConnection } from "../../shared/config/config";
import { armClientFactory } from "../../shared/azure/arm";
import { openTable } from "../../shared/storage/table";
import { applyCluster } from "../../shared/upgrade/applier";
import { planCluster, type UpgradeDeps } from "../../shared/upgrade/service";

/**
 * The simulated ARM authorizes every request against what infra/ grants (read from the Bicep), so
 * these runs fail exactly where Azure would refuse the app's identity.
 */

const SUB = "00000000-0000-0000-0000-000000000002";
const OLD = "AKSUbuntu-2204gen2containerd-202601.05.0";
const NEW = "AKSUbuntu-2204gen2containerd-202602.10.0";
const fakeCredential = { getToken: async () => ({ token: "fake-token", expiresOnTimestamp: Date.now() + 3_600_000 }) };
const examples = resolve(__dirname, "../../../shared/aks-arm-examples/specs-2026-06-01");

function cluster(name: string): SimCluster {
  return {
    subscriptionId: SUB,
    resourceGroup: "rg",
    name,
    location: "westeurope",
    kubernetesVersion: "1.30.4",
    currentKubernetesVersion: "1.30.4",
    pools: [{ name: "user", mode: "System", orchestratorVersion: "1.30.4", currentOrchestratorVersion: "1.30.4", nodeImageVersion: OLD, latestNodeImageVersion: NEW }],
  };
}
const versions = { westeurope: [{ version: "1.30", patches: ["1.30.4", "1.30.6"] }, { version: "1.31", isDefault: true, patches: ["1.31.3"] }] };
const id = (name: string) => `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/${name}`;
const connection = (name: string): ClusterConnection => ({ name, aksResourceId: id(name), aksAuth: "token", upgrade: { channel: "patch", allowPreview: false, apply: true } });

let azurite: RunningAzurite;
let table: TableClient;
before(async () => {
  azurite = await startAzurite();
  table = await openTable(parseConfig({ ROLLCALL_STORAGE_CONNECTION: azurite.connectionString, ROLLCALL_TABLE: "upgraderoles" }).storage);
});
after(() => azurite?.stop());

async function armCall(sim: ArmSim, method: string, path: string): Promise<{ status: number; body: unknown }> {
  const { request } = await import("node:https");
  return new Promise((done, reject) => {
    const req = request(new URL(`${sim.endpoint}${path}?api-version=${ARM_API_VERSION}`), { method, ca: sim.ca, headers: { authorization: "Bearer x" } }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString()));
      res.on("end", () => done({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined }));
    });
    req.on("error", reject);
    req.end();
  });
}

async function withSim<T>(grants: "apply" | "plan", run: (sim: ArmSim, deps: UpgradeDeps) => Promise<T>): Promise<T> {
  const sim = await startArmSim({ clusters: [cluster(`c-${grants}`)], versions }, { grants: infraGrants([id(`c-${grants}`)], grants) });
  try {
    const deps: UpgradeDeps = { table, arm: armClientFactory(parseConfig({ ROLLCALL_STORAGE_CONNECTION: "UseDevelopmentStorage=true" }), { credential: fakeCredential, endpoint: sim.endpoint, ca: sim.ca }) };
    return await run(sim, deps);
  } finally {
    await sim.stop();
  }
}

describe("the roles infra grants cover what the planner and apply mode call", () => {
  it("plans and applies a patch, a pool version and a node image with infra's apply-mode roles and never meets a 403", async () => {
    await withSim("apply", async (sim, deps) => {
      const c = connection("c-apply");
      const options = { followBudgetMs: 2_000, pollIntervalMs: 5 };
      await planCluster(deps, c);
      for (const expected of ["controlPlane:1.30.6", "poolVersion:user:1.30.6"]) {
        const result = await applyCluster(deps, c, options);
        assert.equal(result.stepId, expected, result.message);
        assert.equal(result.action, "succeeded", result.message);
      }
      sim.cluster("c-apply").pools[0]!.nodeImageVersion = OLD;
      await planCluster(deps, c);
      const image = await applyCluster(deps, c, options);
      assert.equal(image.stepId, "nodeImage:user", image.message);
      assert.equal(image.action, "succeeded", image.message);

      const refused = sim.requests.filter((r) => r.status === 403);
      assert.deepEqual(refused.map((r) => `${r.method} ${r.path}`), []);
      // The actions, derived from the request log, each held by a grant at the request's scope.
      for (const r of sim.requests) assert.ok(isGranted(sim.grants, armActionOf(r.method, r.path)!), `${r.action} at ${r.path}`);
      const used = sim.actionsUsed();
      for (const action of [
        "Microsoft.ContainerService/managedClusters/write",
        "Microsoft.ContainerService/managedClusters/agentPools/write",
        "Microsoft.ContainerService/managedClusters/agentPools/upgradeNodeImageVersion/action",
        "Microsoft.ContainerService/managedClusters/agentPools/upgradeProfiles/read",
        "Microsoft.ContainerService/locations/operations/read",
      ]) {
        assert.ok(used.includes(action), `the run exercised ${action}`);
      }
    });
  });

  it("with the plan-mode role, plans but a start gets ARM's 403 AuthorizationFailed naming the missing action", async () => {
    await withSim("plan", async (sim, deps) => {
      const c = connection("c-plan");
      const planned = await planCluster(deps, c);
      assert.ok(planned.ok, planned.ok ? "" : planned.error.failure.message);
      const result = await applyCluster(deps, c, { followBudgetMs: 1_000, pollIntervalMs: 5 });
      assert.equal(result.action, "failed", result.message);
      assert.match(result.message, /AuthorizationFailed/);
      const denied = sim.requests.find((r) => r.status === 403)!;
      assert.equal(denied.action, "Microsoft.ContainerService/managedClusters/write");
      assert.equal(denied.method, "PUT");
    });
  });

  it("answers an action no grant holds with ARM's 403 AuthorizationFailed body naming the client, the action and the scope", async () => {
    await withSim("apply", async (sim) => {
      sim.grants = sim.grants.filter((g) => !g.role.includes("aks-access"));
      const answer = await armCall(sim, "GET", id("c-apply"));
      assert.equal(answer.status, 403);
      const error = (answer.body as { error: { code: string; message: string } }).error;
      assert.equal(error.code, "AuthorizationFailed");
      assert.equal(
        error.message,
        `The client '${SIM_PRINCIPAL_ID}' with object id '${SIM_PRINCIPAL_ID}' does not have authorization to perform action 'Microsoft.ContainerService/managedClusters/read' over scope '${id("c-apply")}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
      );
      // The subscription-scope grant still covers the versions list.
      assert.equal((await armCall(sim, "GET", `/subscriptions/${SUB}/providers/Microsoft.ContainerService/locations/westeurope/kubernetesVersions`)).status, 200);
    });
  });
});

/** Every key path of a JSON value; arrays collapse to `[]`, and maps keyed by versions to `{version}`. */
function keyPaths(value: unknown, prefix = "", out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) value.forEach((v) => keyPaths(v, `${prefix}[]`, out));
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      const key = /^\d+\.\d+(\.\d+)?$/.test(k) ? "{version}" : k;
      out.add(`${prefix}.${key}`);
      keyPaths(v, `${prefix}.${key}`, out);
    }
  }
  return out;
}

/**
 * Properties the REST API definitions have that these particular examples happen not to show
 * (https://learn.microsoft.com/rest/api/aks/managed-clusters/get, …/agent-pools/get,
 * …/maintenance-configurations/list-by-managed-cluster): the planner reads them.
 */
const beyondExample = (key: string) =>
  /(^|\.)(sku(\.name|\.tier)?|powerState(\.code)?|autoUpgradeProfile(\.upgradeChannel|\.nodeOSUpgradeChannel)?|supportPlan|mode|osSKU|osDiskSizeGB|type|eTag|upgradeSettings(\.maxSurge)?)$/.test(key) ||
  /maintenanceWindow\.schedule\.weekly(\.intervalWeeks|\.dayOfWeek)?$/.test(key);

describe("the simulated ARM serves bodies shaped like the service's own examples", () => {
  let sim: ArmSim;
  before(async () => {
    const c = cluster("shape");
    c.maintenance = {
      aksManagedAutoUpgradeSchedule: { maintenanceWindow: { schedule: { weekly: { intervalWeeks: 1, dayOfWeek: "Sunday" } }, durationHours: 4, utcOffset: "+00:00", startDate: "2026-01-04", startTime: "00:30", notAllowedDates: [{ start: "2030-01-06", end: "2030-01-06" }] } },
    };
    c.userKubeconfig = "apiVersion: v1\nkind: Config\n";
    sim = await startArmSim({ clusters: [c], versions: { westeurope: [...versions.westeurope, { version: "1.32", isPreview: true, patches: ["1.32.0"] }] } });
  });
  after(() => sim?.stop());

  for (const [example, method, path, status] of [
    ["ManagedClustersGet", "GET", "", 200],
    ["AgentPoolsList", "GET", "/agentPools", 200],
    ["AgentPoolsGet", "GET", "/agentPools/user", 200],
    ["ManagedClustersGetUpgradeProfile", "GET", "/upgradeProfiles/default", 200],
    ["AgentPoolsGetUpgradeProfile", "GET", "/agentPools/user/upgradeProfiles/default", 200],
    ["AgentPoolsGetAgentPoolAvailableVersions", "GET", "/availableAgentPoolVersions", 200],
    ["MaintenanceConfigurationsList_MaintenanceWindow", "GET", "/maintenanceConfigurations", 200],
    ["ManagedClustersListClusterUserCredentials", "POST", "/listClusterUserCredential", 200],
    ["AgentPoolsUpgradeNodeImageVersion", "POST", "/agentPools/user/upgradeNodeImageVersion", 202],
    ["KubernetesVersions_List", "GET", `/subscriptions/${SUB}/providers/Microsoft.ContainerService/locations/westeurope/kubernetesVersions`, 200],
  ] as const) {
    it(`${method} ${path || "managedCluster"} has only keys that ${example}.json has`, async () => {
      const full = path.startsWith("/subscriptions") ? path : `${id("shape")}${path}`;
      const answer = await armCall(sim, method, full);
      assert.equal(answer.status, status);
      const spec = JSON.parse(readFileSync(join(examples, `${example}.json`), "utf8")) as { responses: Record<string, { body?: unknown }> };
      const allowed = keyPaths(spec.responses[String(status)]!.body);
      const extra = [...keyPaths(answer.body)].filter((k) => !allowed.has(k) && !beyondExample(k));
      assert.deepEqual(extra, [], `keys neither the example nor the REST API definition has`);
    });
  }

});
