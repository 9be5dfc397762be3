import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import type { TokenCredential } from "@azure/core-auth";
import type { TableClient } from "@azure/data-tables";
import { loadAllYaml } from "@kubernetes/client-node";
import { type ArmSim, startArmSim } from "../../local/armSim/armSim";
import { armActionOf, infraGrants, infraRoles, isGranted } from "../../local/armSim/roles";
import { startAzurite, type RunningAzurite } from "../../local/azurite/startAzurite";
import { SimCluster } from "../../local/kubeSim/simCluster";
import { armClientFactory } from "../../shared/azure/arm";
import { nodeOsReport } from "../../shared/azure/nodeOsChannel";
import { type ClusterConnection, parseConfig } from "../../shared/config/config";
import type { ChangeFeed } from "../../shared/kube/changeFeed";
import type { ClusterApi } from "../../shared/kube/clusterApi";
import { clusterApiFactory } from "../../shared/kube/connect";
import { KubeClusterApi } from "../../shared/kube/kubeClusterApi";
import { aksMaintenanceScheduleLoader } from "../../shared/policy/aksMaintenance";
import { openTable } from "../../shared/storage/table";
import { applyCluster } from "../../shared/upgrade/applier";
import { planCluster } from "../../shared/upgrade/service";

/**
 * Roles from the code: every ARM and Kubernetes operation Rollcall performs, read from the
 * simulators' request logs while the real clients make them, against what infra/ grants — the
 * Azure roles in infra/modules (parsed from the Bicep by local/armSim/roles.ts) and the ClusterRole
 * in infra/kubernetes/rollcall-orchestrator-rbac.yaml. No call without a permission, no permission
 * without a call.
 */

const repo = path.resolve(__dirname, "../..");
const SUB = "00000000-0000-0000-0000-000000000003";
const id = `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-roles`;
const credential: TokenCredential = { getToken: async () => ({ token: "token", expiresOnTimestamp: Date.now() + 3_600_000 }) };

let kube: SimCluster;
let arm: ArmSim;
let azurite: RunningAzurite;
let table: TableClient;

before(async () => {
  kube = await SimCluster.start();
  azurite = await startAzurite();
  table = await openTable(parseConfig({ ROLLCALL_STORAGE_CONNECTION: azurite.connectionString, ROLLCALL_TABLE: "rolesfromcode" }).storage);
  const OLD = "AKSUbuntu-2204gen2containerd-202601.05.0";
  arm = await startArmSim({
    clusters: [
      {
        subscriptionId: SUB,
        resourceGroup: "rg",
        name: "aks-roles",
        location: "westeurope",
        kubernetesVersion: "1.30.4",
        currentKubernetesVersion: "1.30.4",
        nodeOSUpgradeChannel: "Unmanaged",
        pools: [{ name: "user", mode: "System", orchestratorVersion: "1.30.4", currentOrchestratorVersion: "1.30.4", nodeImageVersion: OLD, latestNodeImageVersion: "AKSUbuntu-2204gen2containerd-202602.10.0" }],
        userKubeconfig: kube.kubeconfig,
        // A daily window open now (it began up to an hour ago), so the node image step may start.
        maintenance: { aksManagedNodeOSUpgradeSchedule: { maintenanceWindow: { schedule: { daily: { intervalDays: 1 } }, durationHours: 4, startTime: `${String((new Date().getUTCHours() + 23) % 24).padStart(2, "0")}:00`, utcOffset: "+00:00" } } },
      },
    ],
    versions: { westeurope: [{ version: "1.30", patches: ["1.30.4", "1.30.6"] }, { version: "1.31", isDefault: true, patches: ["1.31.3"] }] },
  });
});

after(async () => {
  await arm?.stop();
  await kube?.stop();
  await azurite?.stop();
});

// ---- Kubernetes

/**
 * How to make each ClusterApi call once against a small cluster. Keyed by the implementation's own
 * methods, so a new Kubernetes operation fails the test until it is listed here (and so is checked).
 */
const exercise: Record<string, (api: ClusterApi, sim: SimCluster) => Promise<unknown>> = {
  getNode: (api) => api.getNode("roles-node-1"),
  updateNode: async (api) => api.updateNode((await api.getNode("roles-node-1"))!, { unschedulable: true, annotations: { "rollcall.io/test": "1" } }),
  listPodsOnNode: (api) => api.listPodsOnNode("roles-node-1"),
  evictPod: async (api, sim) => api.evictPod(sim.pods({ node: "roles-node-1" }).find((p) => p.metadata.namespace === "apps")!.metadata as { namespace: string; name: string }),
  reviewToken: (api, sim) => api.reviewToken(sim.issueServiceAccountToken({ namespace: "rollcall", serviceAccount: "rollcall-agent", pod: sim.pods({ namespace: "rollcall" })[0]!.metadata.name, audiences: ["rollcall"] }), ["rollcall"]),
  getPodIdentity: (api, sim) => api.getPodIdentity("rollcall", sim.pods({ namespace: "rollcall" })[0]!.metadata.name),
  listNodeNames: (api) => api.listNodeNames(),
  listNodes: (api) => api.listNodes(),
  listPods: (api) => api.listPods({ labelSelector: "app=web", nodeName: "roles-node-1" }),
  listPodDisruptionBudgets: (api) => api.listPodDisruptionBudgets(),
  getPodDisruptionBudget: (api) => api.getPodDisruptionBudget("apps", "web"),
  setTaint: (api) => api.setTaint("roles-node-1", "rollcall.io/reboot", { effect: "PreferNoSchedule" }),
  // A watch counts once its request reached the server; the feed is closed then.
  watchPodDeletions: (api, sim) => watched(sim, () => api.watchPodDeletions!("roles-node-1")),
  watchNode: async (api, sim) => watched(sim, async () => api.watchNode!("roles-node-1", (await api.getNode("roles-node-1"))!.resourceVersion)),
  watchPodDisruptionBudgets: (api, sim) => watched(sim, () => api.watchPodDisruptionBudgets!()),
  // Twice: the repeat is counted on the first event (a patch), not written anew.
  recordEvent: async (api) => {
    const node = (await api.getNode("roles-node-1"))!;
    for (let i = 0; i < 2; i++) await api.recordEvent({ node, type: "Normal", reason: "RollcallCordon", message: "cordoned" });
  },
};

async function watched(sim: SimCluster, open: () => ChangeFeed | Promise<ChangeFeed>): Promise<void> {
  const from = sim.requestLog.length;
  const feed = await open();
  const deadline = Date.now() + 5_000;
  while (!sim.requestLog.slice(from).some((r) => /(^|&)watch=true/.test(r.query))) {
    if (Date.now() > deadline) assert.fail("the watch never reached the API server");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  feed.close();
}

/** `group/resource[/subresource]:verb` of one kube-apiserver request, as RBAC authorizes it. */
function rbacOf(method: string, urlPath: string, query: string): string | undefined {
  const s = urlPath.split("/").filter(Boolean);
  let group: string;
  let rest: string[];
  if (s[0] === "api") [group, rest] = ["", s.slice(2)];
  else if (s[0] === "apis") [group, rest] = [s[1]!, s.slice(3)];
  else return undefined; // a non-resource URL (/version, /healthz): readable by every authenticated user
  if (rest[0] === "namespaces" && rest.length > 2) rest = rest.slice(2);
  const [resource, name, sub] = rest;
  const watch = /(^|&)watch=(true|1)/.test(query);
  const verb = { GET: name ? "get" : watch ? "watch" : "list", POST: "create", PUT: "update", PATCH: "patch", DELETE: name ? "delete" : "deletecollection" }[method];
  return `${group}/${resource}${sub ? `/${sub}` : ""}:${verb}`;
}

function clusterRoleGrants(): string[] {
  const docs = JSON.parse(JSON.stringify(loadAllYaml(fs.readFileSync(path.join(repo, "infra/kubernetes/rollcall-orchestrator-rbac.yaml"), "utf8")))) as Record<string, any>[];
  const role = docs.find((d) => d.kind === "ClusterRole")!;
  return role.rules.flatMap((r: Record<string, string[]>) => r.apiGroups!.flatMap((g) => r.resources!.flatMap((res) => r.verbs!.map((v) => `${g}/${res}:${v}`))));
}

describe("roles from the code", () => {
  it("Kubernetes: every call the orchestrator's client makes is in the ClusterRole, and the ClusterRole grants nothing it does not call", async () => {
    kube.addNode("roles-node-1");
    kube.addDaemonSet("rollcall", "rollcall-agent", { labels: { "app.kubernetes.io/name": "rollcall-agent" } });
    kube.addDeployment("apps", "web", { replicas: 1, labels: { app: "web" }, pdb: { minAvailable: 0 } });
    const implemented = Object.getOwnPropertyNames(KubeClusterApi.prototype).filter((m) => m !== "constructor" && typeof (KubeClusterApi.prototype as any)[m] === "function");
    const missing = implemented.filter((m) => !(m in exercise));
    assert.deepEqual(missing, [], "a new Kubernetes operation: add how to exercise it here, then grant it in the ClusterRole");
    const config = parseConfig({ ROLLCALL_STORAGE_CONNECTION: "UseDevelopmentStorage=true", ROLLCALL_CLUSTERS: JSON.stringify([{ name: "roles", kubeconfig: kube.kubeconfig }]) });
    const api = await clusterApiFactory(config)("roles");
    const from = kube.requestLog.length;
    for (const method of implemented) await exercise[method]!(api, kube);
    const calls = new Set(kube.requestLog.slice(from).map((r) => rbacOf(r.method, r.path, r.query)).filter((c): c is string => c !== undefined));
    const granted = new Set(clusterRoleGrants());
    assert.deepEqual([...calls].filter((c) => !granted.has(c)).sort(), [], "calls without a permission in infra/kubernetes/rollcall-orchestrator-rbac.yaml");
    assert.deepEqual([...granted].filter((g) => !calls.has(g)).sort(), [], "permissions without a call");
  });

  it("ARM: every call of the connection, the maintenance windows, the planner, apply mode and the node OS check is granted by infra/modules, and every granted action is called", async () => {
    const config = parseConfig({ ROLLCALL_STORAGE_CONNECTION: "UseDevelopmentStorage=true", ROLLCALL_ARM_ENDPOINT: arm.endpoint });
    const overrides = { credential, ca: arm.ca, endpoint: arm.endpoint };
    const factory = armClientFactory(config, overrides);
    const connection: ClusterConnection = { name: "aks-roles", aksResourceId: id, aksAuth: "credentials", upgrade: { channel: "patch", allowPreview: false, apply: true } };
    const withCluster = { ...config, clusters: [connection] };
    await (await clusterApiFactory(withCluster, overrides)("aks-roles")).listNodeNames();
    await aksMaintenanceScheduleLoader(withCluster, factory)("aks-roles", "aksManagedNodeOSUpgradeSchedule");
    assert.equal((await nodeOsReport(connection, factory)).nodeOSUpgradeChannel, "Unmanaged");
    const deps = { table, arm: factory };
    const options = { followBudgetMs: 2_000, pollIntervalMs: 5 };
    await planCluster(deps, connection);
    for (let i = 0; i < 3; i++) {
      const result = await applyCluster(deps, connection, options);
      if (result.action !== "succeeded") break;
      await planCluster(deps, connection);
    }
    arm.cluster("aks-roles").pools[0]!.nodeImageVersion = "AKSUbuntu-2204gen2containerd-202601.05.0";
    await planCluster(deps, connection);
    assert.equal((await applyCluster(deps, connection, options)).stepId, "nodeImage:user");

    const grants = infraGrants([id], "apply");
    const actions = arm.requests.map((r) => ({ request: `${r.method} ${r.path}`, action: armActionOf(r.method, r.path) })).filter((a) => a.action);
    const refused = actions.filter((a) => !isGranted(grants, a.action!));
    assert.deepEqual(refused.map((a) => `${a.action!.action} (${a.request})`), [], "calls without a permission");
    const called = new Set(actions.map((a) => a.action!.action.toLowerCase()));
    const roles = infraRoles();
    const grantedActions = [...new Set([...roles.cluster.apply, ...roles.clusterBuiltIn, ...roles.subscription])];
    assert.deepEqual(grantedActions.filter((g) => !called.has(g.toLowerCase())).sort(), [], "permissions without a call");
  });
});
