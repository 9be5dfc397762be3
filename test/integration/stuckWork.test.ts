import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { InvocationContext, Timer } from "@azure/functions";
import { reconcile } from "../../functions/reconcile";
import { nodeAnnotations } from "../../shared/kube/clusterApi";
import { getRollcall } from "../../shared/orchestrator/fromConfig";
import { openGate } from "../../shared/policy/policy";
import { telemetryEvents } from "../../shared/telemetry/names";
import { CLUSTER, clocked, invocation, ManualClock, TestAgent, useWorld } from "../support/world";

const world = useWorld({ simOptions: { terminationDelayMs: 20, podStartDelayMs: 40 } });
const log = invocation("test");

/** These tests are about timeouts and leases, not policy: every gate is open. */
const clockedOpen = (clock: ManualClock) => clocked(clock, { gate: openGate });

describe("the reconcile timer", () => {
  it("reconciles twenty clusters in one pass, an API server that never answers holding back none of the others", async () => {
    // Accepts connections and never answers: every call to it runs into the Kubernetes request timeout.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => void sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      const names = Array.from({ length: 20 }, (_, i) => `fleet-${String(i).padStart(2, "0")}`);
      const kubeconfig = (name: string) => (name === "fleet-00" ? world.sim.kubeconfig.replace(world.sim.url, silentUrl) : world.sim.kubeconfig);
      world.configure({ ROLLCALL_CLUSTERS: JSON.stringify(names.map((name) => ({ name, kubeconfig: kubeconfig(name) }))), ROLLCALL_STEP_BUDGET_MS: "3000" });
      const { lock } = await getRollcall();
      // A slot in every cluster that no node record owns, long expired: the pass must free each.
      const expired = new Date(Date.now() - 60_000).toISOString();
      for (const name of names) assert.equal((await lock.acquire(name, { node: "vanished", leaseId: `lease-${name}`, acquiredAt: expired, expiresAt: expired }, 1)).kind, "acquired");

      const lines: string[] = [];
      const context = new InvocationContext({ functionName: "reconcile", logHandler: (_level, ...args) => void lines.push(args.join(" ")) });
      await reconcile({ isPastDue: false, scheduleStatus: { last: "", next: "", lastUpdated: "" } } as Timer, context);

      for (const name of names) assert.deepEqual((await lock.view(name)).holders, [], `${name}'s orphaned slot was freed`);
      const reports = lines.filter((line) => line.startsWith("reconcile {")).map((line) => (JSON.parse(line.slice("reconcile ".length)) as { cluster: string }).cluster);
      assert.deepEqual([...reports].sort(), names, "every cluster reported its pass");
      // The silent cluster came first in the settings; the others did not wait for its timeouts.
      assert.equal(reports.at(-1), "fleet-00", reports.join(" "));
      assert.ok(lines.some((line) => /leftover repair failed cluster=fleet-00/.test(line)), lines.join("\n"));
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it("gives up a drain blocked past its timeout: uncordons, releases, records why, and backs off", async () => {
    world.configure({ ROLLCALL_DRAIN_TIMEOUT_MINUTES: "10" });
    const { sim } = world;
    sim.addNode("tmo-a");
    sim.addDeployment("db", "tmo-db", { replicas: 2, pdb: { minAvailable: 2 }, nodes: ["tmo-a"] });
    const clock = new ManualClock();
    const { orchestrator, rollcall, send } = await clockedOpen(clock);
    const agent = await TestAgent.on(sim, "tmo-a", true);
    assert.equal((await agent.tick(send)).state, "draining");
    clock.advance(11 * 60_000);
    await orchestrator.reconcile(CLUSTER, log);
    const record = (await rollcall.store.get(CLUSTER, "tmo-a"))!.value;
    assert.equal(record.state, "drain-failed");
    assert.match(record.why, /timed out.*PodDisruptionBudget db\/tmo-db/);
    assert.ok(!sim.getNode("tmo-a")!.spec?.unschedulable, "uncordoned");
    assert.deepEqual((await rollcall.lock.view(CLUSTER)).holders, []);
    assert.equal((await agent.tick(send)).action, "wait", "no reboot after a failed drain");
    clock.advance(31 * 60_000);
    await orchestrator.reconcile(CLUSTER, log);
    const queued = (await rollcall.store.get(CLUSTER, "tmo-a"))!.value;
    assert.equal(queued.state, "pending", "back in the queue after the back-off");
    assert.match(queued.holdReason ?? "", /waiting for the node's agent to check in/, "not cordoned again before its agent is there");
    assert.equal((await agent.tick(send)).state, "draining", "tried again at the agent's check-in");
  });

  it("marks a node that never came back from its reboot as stuck, loudly, and hands its slot to the next node at once", async () => {
    world.configure({ ROLLCALL_LOCK_TTL_MINUTES: "30" });
    const { sim } = world;
    sim.addNode("ttl-a");
    sim.addNode("ttl-b");
    const clock = new ManualClock();
    const { orchestrator, rollcall, send, telemetry } = await clockedOpen(clock);
    const a = await TestAgent.on(sim, "ttl-a", true);
    const b = await TestAgent.on(sim, "ttl-b", true);
    const first = await a.tick(async (node, body) => send(node, body));
    assert.equal(first.action, "reboot");
    assert.equal((await b.tick(send)).state, "pending");
    // ttl-a was told to reboot and is never heard of again.
    clock.advance(31 * 60_000);
    // ttl-b's agent keeps checking in while it waits, so it is there to take the slot.
    assert.equal((await b.tick(send)).state, "pending");
    const report = await orchestrator.reconcile(CLUSTER, log);
    assert.deepEqual(report.expired, ["ttl-a"]);
    const stuck = (await rollcall.store.get(CLUSTER, "ttl-a"))!.value;
    assert.equal(stuck.state, "stuck");
    assert.match(stuck.why, /lock TTL expired/);
    assert.equal(sim.getNode("ttl-a")!.spec?.unschedulable, true, "a stuck node stays cordoned");
    assert.ok(telemetry.events.some((e) => e.name === telemetryEvents.stuck && e.dimensions.node === "ttl-a"));
    const holders = (await rollcall.lock.view(CLUSTER)).holders.map((h) => h.node);
    assert.deepEqual(holders, ["ttl-b"], "the free slot went to the pending node in the same tick");
  });

  it("lets a stuck node that finally comes back with a new boot id finish and be uncordoned", async () => {
    world.configure({ ROLLCALL_LOCK_TTL_MINUTES: "30" });
    const { sim } = world;
    sim.addNode("late-a");
    const clock = new ManualClock();
    const { orchestrator, rollcall, send } = await clockedOpen(clock);
    const agent = await TestAgent.on(sim, "late-a", true);
    const order = await agent.tick(async (node, body) => send(node, body));
    assert.equal(order.action, "reboot");
    clock.advance(31 * 60_000);
    await orchestrator.reconcile(CLUSTER, log);
    assert.equal((await rollcall.store.get(CLUSTER, "late-a"))!.value.state, "stuck");
    assert.equal(agent.reboots, 1);
    const back = await agent.tick(send);
    assert.equal(back.state, "idle");
    assert.ok(!sim.getNode("late-a")!.spec?.unschedulable);
  });

  it("releases the slot of a node deleted from the cluster", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("gone-a");
    sim.addDeployment("db", "gone-db", { replicas: 2, pdb: { minAvailable: 1 }, nodes: ["gone-a"] });
    const agent = await TestAgent.on(sim, "gone-a", true);
    const first = await agent.tick();
    assert.equal(first.state, "draining", first.reason);
    sim.deleteNode("gone-a");
    await reconcile({ isPastDue: false, scheduleStatus: { last: "", next: "", lastUpdated: "" } } as Timer, invocation("reconcile"));
    const { store, lock } = await getRollcall();
    assert.equal((await store.get(CLUSTER, "gone-a"))!.value.state, "idle");
    assert.deepEqual((await lock.view(CLUSTER)).holders, []);
  });

  it("leaves a node that someone else had cordoned cordoned after its reboot", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("pre-a", { unschedulable: true });
    const agent = await TestAgent.on(sim, "pre-a", true);
    for (let i = 0; i < 10 && agent.reboots === 0; i++) await agent.tick();
    for (let i = 0; i < 50 && agent.last?.state !== "idle"; i++) await agent.tick();
    assert.equal(agent.last?.state, "idle");
    assert.equal(sim.getNode("pre-a")!.spec?.unschedulable, true);
    assert.equal(sim.getNode("pre-a")!.metadata.annotations?.[nodeAnnotations.cordonedBy], undefined);
  });
});
