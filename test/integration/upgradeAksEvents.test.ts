import { InvocationContext, type EventGridEvent } from "@azure/functions";
import type { TableClient } from "@azure/data-tables";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { aksEvents } from "../../functions/aksEvents";
import { startArmSim, type ArmSim, type SimCluster } from "../../local/armSim/armSim";
import { startAzurite, type RunningAzurite } from "../../local/azurite/startAzurite";
import { getConfig, resetConfigForTests } from "../../shared/config/config";
import { openTable } from "../../shared/storage/table";
import { setArmOverridesForTests } from "../../shared/upgrade/fromConfig";
import { EVENT_POLL_GRACE_MS, rebootPauseReason } from "../../shared/upgrade/pauses";
import { loadPlan } from "../../shared/upgrade/planStore";
import { refreshPoolPauses } from "../../shared/upgrade/service";
import { armClientFactory } from "../../shared/azure/arm";
import { resetForTests } from "../../shared/orchestrator/fromConfig";
import { policyFromConfig } from "../../shared/policy/policy";
import { policyStoreFor } from "../../shared/policy/policyStore";
import { startCaptureServer } from "../support/webhookServer";

/** The Event Grid function through its real handler, with AKS's published event examples. */

const SUB = "00000000-0000-0000-0000-000000000005";
const IMAGE = "AKSUbuntu-2204gen2containerd-202602.10.0";
const id = `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/evented`;
const examples = resolve(__dirname, "../../../shared/aks-arm-examples/eventgrid");
const fakeCredential = { getToken: async () => ({ token: "fake-token", expiresOnTimestamp: Date.now() + 3_600_000 }) };

/** One of AKS's examples, on this test's cluster. */
function example(file: string, change: Partial<EventGridEvent> & { data?: Record<string, unknown> } = {}): EventGridEvent {
  const event = JSON.parse(readFileSync(join(examples, `${file}.json`), "utf8")) as EventGridEvent;
  return { ...event, topic: id, subject: "evented", ...change, data: { ...(event.data as object), ...change.data } };
}

let azurite: RunningAzurite;
let sim: ArmSim;
let table: TableClient;
const lines: string[] = [];
const context = () => new InvocationContext({ functionName: "aksEvents", logHandler: (_level, ...args) => lines.push(args.join(" ")) });
const reads = () => sim.requests.length;

before(async () => {
  const cluster: SimCluster = {
    subscriptionId: SUB,
    resourceGroup: "rg",
    name: "evented",
    location: "westeurope",
    kubernetesVersion: "1.30.4",
    currentKubernetesVersion: "1.30.4",
    pools: ["nodepool1", "other"].map((name) => ({ name, orchestratorVersion: "1.30.4", currentOrchestratorVersion: "1.30.4", nodeImageVersion: IMAGE, latestNodeImageVersion: IMAGE })),
  };
  [azurite, sim] = await Promise.all([startAzurite(), startArmSim({ clusters: [cluster], versions: { westeurope: [{ version: "1.30", patches: ["1.30.4", "1.30.6"] }] } })]);
  process.env.ROLLCALL_STORAGE_CONNECTION = azurite.connectionString;
  process.env.ROLLCALL_TABLE = "aksevents";
  process.env.ROLLCALL_ARM_ENDPOINT = sim.endpoint;
  process.env.ROLLCALL_CLUSTERS = JSON.stringify([{ name: "evented", aksResourceId: id, upgrade: { channel: "patch" } }]);
  resetConfigForTests();
  setArmOverridesForTests({ credential: fakeCredential, ca: sim.ca });
  table = await openTable(getConfig().storage);
});
after(async () => {
  setArmOverridesForTests(undefined);
  await Promise.all([sim?.stop(), azurite?.stop()]);
});
beforeEach(() => (lines.length = 0));

describe("AKS Event Grid events", () => {
  it("NodePoolRollingStarted pauses sentinel reboots on that pool only, until NodePoolRollingSucceeded", async () => {
    await aksEvents(example("node_pool_rolling_started", { eventTime: "2026-03-02T10:00:00Z" }), context());
    assert.match((await rebootPauseReason(table, "evented", "nodepool1", new Date("2026-03-02T10:01:00Z"))) ?? "", /AKS reported NodePoolRollingStarted/);
    assert.equal(await rebootPauseReason(table, "evented", "other", new Date("2026-03-02T10:01:00Z")), undefined);
    await aksEvents(example("node_pool_rolling_succeeded", { eventTime: "2026-03-02T10:30:00Z" }), context());
    assert.equal(await rebootPauseReason(table, "evented", "nodepool1", new Date("2026-03-02T10:31:00Z")), undefined);
  });

  it("NodePoolRollingFailed ends the pause too, whoever started the upgrade", async () => {
    await aksEvents(example("node_pool_rolling_started", { eventTime: "2026-03-02T11:00:00Z" }), context());
    await aksEvents(example("node_pool_rolling_failed", { eventTime: "2026-03-02T11:20:00Z" }), context());
    assert.equal(await rebootPauseReason(table, "evented", "nodepool1", new Date("2026-03-02T11:21:00Z")), undefined);
  });

  it("an end event older than the latest start (delivered out of order) does not lift the pause", async () => {
    await aksEvents(example("node_pool_rolling_started", { eventTime: "2026-03-02T12:00:00Z" }), context());
    await aksEvents(example("node_pool_rolling_succeeded", { eventTime: "2026-03-02T11:59:00Z" }), context());
    assert.match((await rebootPauseReason(table, "evented", "nodepool1", new Date("2026-03-02T12:01:00Z"))) ?? "", /NodePoolRollingStarted/);
  });

  it("a poll showing the pool settled after the start lifts a pause whose end event never came", async () => {
    const started = new Date("2026-03-02T12:00:00Z");
    const deps = { table, arm: armClientFactory(getConfig(), { credential: fakeCredential, ca: sim.ca }), now: () => new Date(started.getTime() + EVENT_POLL_GRACE_MS + 60_000) };
    await refreshPoolPauses(deps, getConfig().clusters[0]!);
    assert.equal(await rebootPauseReason(table, "evented", "nodepool1", deps.now()), undefined);
  });

  for (const file of ["new_kubernetes_version_available", "cluster_support_ending", "cluster_support_ended"]) {
    it(`${file} re-plans the cluster from ARM and says so`, async () => {
      const before = reads();
      const previous = (await loadPlan(table, "evented"))?.plan?.computedAt;
      await aksEvents(example(file), context());
      assert.ok(reads() > before, "ARM was read");
      const plan = (await loadPlan(table, "evented"))!.plan!;
      assert.notEqual(plan.computedAt, previous);
      assert.ok(lines.some((l) => /aks-event cluster=evented AKS reported .*re-planned, evented: 3 step\(s\)/.test(l)), lines.join("\n"));
    });
  }

  it("tells the policy's webhook what AKS announced and what the re-plan found", async () => {
    const hook = await startCaptureServer();
    process.env.ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK = "true";
    resetForTests();
    try {
      await policyStoreFor(table, policyFromConfig(getConfig())).write("evented", { notifications: { webhookUrl: `${hook.url}/hook`, format: "generic" } }, "test");
      await aksEvents(example("cluster_support_ending"), context());
      assert.equal(hook.requests.length, 1);
      const body = hook.requests[0]!.body as { event: string; cluster: string; message: string };
      assert.equal(body.event, "upgrade");
      assert.equal(body.cluster, "evented");
      assert.match(body.message, /^Cluster evented: AKS reported ClusterSupportEnding.*re-planned/);
    } finally {
      delete process.env.ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK;
      await policyStoreFor(table, policyFromConfig(getConfig())).write("evented", {}, "test");
      resetForTests();
      await hook.close();
    }
  });

  for (const [what, event] of [
    ["ClusterOutOfSupport (newer than the schema)", () => example("cluster_out_of_support")],
    ["NodePoolRollingProgress", () => example("node_pool_rolling_progress")],
    ["an unknown AKS event type", () => example("node_pool_rolling_started", { eventType: "Microsoft.ContainerService.SomethingNew" })],
    ["another service's event", () => example("node_pool_rolling_started", { eventType: "Microsoft.Storage.BlobCreated" })],
    ["a cluster not in ROLLCALL_CLUSTERS", () => example("node_pool_rolling_started", { topic: id.replace("evented", "stranger") })],
    ["a pool name that is not one", () => example("node_pool_rolling_started", { data: { nodePoolName: "../../x" } })],
    ["something that is not an event", () => ({ hello: "world" }) as unknown as EventGridEvent],
  ] as const) {
    it(`ignores ${what}: no ARM read, no pause`, async () => {
      const before = reads();
      await aksEvents(event(), context());
      assert.equal(reads(), before);
      assert.equal(await rebootPauseReason(table, "evented", "other"), undefined);
    });
  }
});
