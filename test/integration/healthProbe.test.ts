import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import type { TokenCredential } from "@azure/core-auth";
import { clusterStatus } from "../../functions/clusterStatus";
import { health, probeCluster } from "../../functions/health";
import { type ArmSim, startArmSim } from "../../local/armSim/armSim";
import { armClientFactory } from "../../shared/azure/arm";
import { nodeOsReport } from "../../shared/azure/nodeOsChannel";
import { type ClusterConnection, parseConfig } from "../../shared/config/config";
import { clusterApiFactory } from "../../shared/kube/connect";
import { call, leaksInternals } from "../support/operatorCalls";
import { CLUSTER, useWorld } from "../support/world";

/**
 * The health route tells an operator why a cluster's API server does not answer, step by step, as
 * the real client (client-node) meets each failure: a name that does not resolve (a private
 * cluster's FQDN outside its DNS zone), a closed port (an address the API server's authorized
 * ranges drop or refuse), a certificate that is not the kubeconfig's, a refused token, a refused
 * identity, and silence.
 */

const world = useWorld();

function kubeconfig(server: string, token: string, extra: Record<string, unknown> = { "insecure-skip-tls-verify": true }): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster: { server, ...extra } }],
    users: [{ name: "u", user: { token } }],
    contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
    "current-context": "c",
  });
}

let closedPort: number;
let forbidden: Server;
let silent: TcpServer;
const sockets: Socket[] = [];
let arm: ArmSim;

before(async () => {
  const probe = createTcpServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  // What kube-apiserver answers a user RBAC does not allow (a Status with reason Forbidden).
  forbidden = createServer((_req, res) => {
    res.writeHead(403, { "content-type": "application/json" });
    res.end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", message: 'nodes "x" is forbidden: User "abc" cannot get resource "nodes"', reason: "Forbidden", code: 403 }));
  });
  await new Promise<void>((resolve) => forbidden.listen(0, "127.0.0.1", resolve));
  silent = createTcpServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  arm = await startArmSim({
    clusters: ["Unmanaged", "NodeImage", "SecurityPatch", "None"].map((channel) => ({
      subscriptionId: "00000000-0000-0000-0000-000000000001",
      resourceGroup: "rg",
      name: `aks-${channel.toLowerCase()}`,
      location: "westeurope",
      kubernetesVersion: "1.31",
      currentKubernetesVersion: "1.31.2",
      nodeOSUpgradeChannel: channel,
      pools: [],
    })),
    versions: {},
  });
});

after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => silent.close(() => resolve()));
  await new Promise<void>((resolve) => forbidden.close(() => resolve()));
  await arm.stop();
});

function connections(): ClusterConnection[] {
  const port = (s: Server | TcpServer) => (s.address() as AddressInfo).port;
  return [
    { name: "sim", kubeconfig: world.sim.kubeconfig, aksAuth: "token" },
    { name: "closed", kubeconfig: kubeconfig(`https://127.0.0.1:${closedPort}`, "t"), aksAuth: "token" },
    { name: "nxdomain", kubeconfig: kubeconfig("https://rollcall-aks-1234abcd.hcp.westeurope.azmk8s.invalid", "t"), aksAuth: "token" },
    // The ARM simulator's certificate is self-signed: not the CA a kubeconfig without one trusts.
    { name: "mismatch", kubeconfig: kubeconfig(arm.endpoint, "t", {}), aksAuth: "token" },
    { name: "badtoken", kubeconfig: kubeconfig(world.sim.url, "not-the-token"), aksAuth: "token" },
    { name: "norbac", kubeconfig: kubeconfig(`http://127.0.0.1:${port(forbidden)}`, "t"), aksAuth: "token" },
    { name: "silent", kubeconfig: kubeconfig(`http://127.0.0.1:${port(silent)}`, "t"), aksAuth: "token" },
  ];
}

describe("the health route's per-cluster API server check", () => {
  it("names the failed step of each unreachable API server and what to check, through the real client", async () => {
    const list = connections();
    const config = parseConfig({ ROLLCALL_STORAGE_CONNECTION: "UseDevelopmentStorage=true", ROLLCALL_CLUSTERS: JSON.stringify(list) });
    const kube = clusterApiFactory(config);
    // Silence is waited for briefly; every other failure answers at once, however loaded the machine.
    const results = Object.fromEntries(await Promise.all(config.clusters.map(async (c) => [c.name, await probeCluster(c, kube, c.name === "silent" ? 1000 : 30_000)] as const)));
    const kinds = Object.fromEntries(Object.entries(results).map(([name, r]) => [name, r.ok ? "ok" : r.failure]));
    assert.deepEqual(kinds, { sim: "ok", closed: "tcp", nxdomain: "dns", mismatch: "tls", badtoken: "unauthorized", norbac: "forbidden", silent: "timeout" }, JSON.stringify(results, null, 1));
    assert.match(results.closed!.check!, /ROLLCALL_EGRESS_IP/);
    assert.match(results.nxdomain!.check!, /private DNS zone/);
    assert.match(results.mismatch!.check!, /certificate-authority-data/);
    assert.match(results.badtoken!.check!, /credentials/);
    assert.match(results.norbac!.check!, /rollcall-orchestrator-rbac\.yaml/);
    assert.match(results.silent!.check!, /authorized IP ranges/);
    for (const r of Object.values(results)) if (!r.ok) assert.ok(r.error && !r.error.includes("\n    at "), r.error);
  });

  it("answers 503 with the failure of the one cluster that does not answer, and 200 for the ones that do", async () => {
    world.configure({ ROLLCALL_CLUSTERS: JSON.stringify([{ name: CLUSTER, kubeconfig: world.sim.kubeconfig }, connections()[1]]) });
    const answer = await call(health, { method: "GET", path: "health", params: {} });
    assert.equal(answer.status, 503, answer.text);
    const [ok, closed] = answer.body.clusters;
    assert.deepEqual([ok.name, ok.ok, ok.failure], [CLUSTER, true, undefined]);
    assert.deepEqual([closed.name, closed.ok, closed.failure], ["closed", false, "tcp"]);
    assert.match(closed.nodeOs.note, /not configured by aksResourceId/);
    assert.ok(!leaksInternals(answer.text), answer.text);
  });
});

describe("does this cluster need Rollcall? (node OS upgrade channel, read through ARM)", () => {
  const credential: TokenCredential = { getToken: async () => ({ token: "arm-token", expiresOnTimestamp: Date.now() + 3_600_000 }) };
  const id = (name: string) => `/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/${name}`;

  it("says only Unmanaged leaves reboots to the operator, and warns when sentinel reboots meet NodeImage or SecurityPatch", async () => {
    const config = parseConfig({ ROLLCALL_STORAGE_CONNECTION: "UseDevelopmentStorage=true", ROLLCALL_ARM_ENDPOINT: arm.endpoint });
    const factory = armClientFactory(config, { credential, ca: arm.ca, endpoint: arm.endpoint });
    const report = async (channel: string) => nodeOsReport({ name: channel.toLowerCase(), aksResourceId: id(`aks-${channel.toLowerCase()}`), aksAuth: "token" }, factory);
    const unmanaged = await report("Unmanaged");
    assert.deepEqual([unmanaged.nodeOSUpgradeChannel, unmanaged.rebootsLeftToOperator, unmanaged.warning], ["Unmanaged", true, undefined]);
    for (const channel of ["NodeImage", "SecurityPatch"]) {
      const r = await report(channel);
      assert.deepEqual([r.nodeOSUpgradeChannel, r.rebootsLeftToOperator], [channel, false]);
      assert.match(r.warning!, new RegExp(`${channel}: AKS reimages these nodes itself`));
    }
    const none = await report("None");
    assert.deepEqual([none.rebootsLeftToOperator, none.warning], [false, undefined]);
    assert.ok(arm.requests.some((r) => r.method === "GET" && r.path === id("aks-unmanaged")), "read with ManagedClusters_Get");
  });

  it("says what is missing when ARM refuses or the cluster is not an AKS resource", async () => {
    const config = parseConfig({ ROLLCALL_STORAGE_CONNECTION: "UseDevelopmentStorage=true" });
    const factory = armClientFactory(config, { credential, ca: arm.ca, endpoint: arm.endpoint, retryOptions: { maxRetries: 0 } });
    const missing = await nodeOsReport({ name: "gone", aksResourceId: id("aks-gone"), aksAuth: "token" }, factory);
    assert.equal(missing.rebootsLeftToOperator, undefined);
    assert.match(missing.note, /managedClusters\/read/);
    const kubeconfigCluster = await nodeOsReport({ name: "k", kubeconfigFile: "/k", aksAuth: "token" }, factory);
    assert.match(kubeconfigCluster.note, /cannot read the node OS upgrade channel/);
  });

  it("the cluster status route says it too", async () => {
    world.configure();
    const answer = await call(clusterStatus, { method: "GET", path: `clusters/${CLUSTER}/status`, params: { cluster: CLUSTER } });
    assert.equal(answer.status, 200, answer.text);
    assert.match(answer.body.nodeOs.note, /not configured by aksResourceId/);
  });
});
