import { afterEach, beforeEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { TableClient } from "@azure/data-tables";
import { InvocationContext } from "@azure/functions";
import { reconcile } from "../../functions/reconcile";
import { TableLock } from "../../shared/lock/tableLock";
import { NodeStore } from "../../shared/node/nodeRecord";
import { getRollcall } from "../../shared/orchestrator/fromConfig";
import { withPolicyDefaults } from "../../shared/policy/policy";
import { PolicyStore } from "../../shared/policy/policyStore";
import { MemoryTelemetry, setTelemetry } from "../../shared/telemetry/telemetry";
import { policyBase } from "../support/fixtures";
import { CLUSTER, postCheckin, TestAgent, useWorld } from "../support/world";

/**
 * A table deleted while Rollcall runs (a mistaken cleanup, a restored account): before, every read
 * answered "no row" — a free lock, nodes never seen — and every write failed with 500 until the
 * process restarted, because the table was created only once per process. Now the missing table is
 * an error, logged and sent as telemetry, the table is re-created once and the call retried.
 */

const world = useWorld();
let telemetry: MemoryTelemetry;
let errors: string[];
let restoreConsole: () => void;

beforeEach(() => {
  telemetry = new MemoryTelemetry();
  setTelemetry(telemetry);
  errors = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void errors.push(args.join(" "));
  restoreConsole = () => (console.error = original);
});
afterEach(() => {
  restoreConsole();
  setTelemetry(undefined);
});

function assertReportedOnce(): void {
  const missing = errors.filter((line) => line.includes("STORAGE TABLE MISSING"));
  assert.equal(missing.length, 1, `one loud log line, got: ${errors.join(" | ")}`);
  assert.match(missing[0]!, /cluster=prod: it was deleted while Rollcall runs; re-creating it/);
  assert.equal(telemetry.exceptions.length, 1, "one exception in telemetry");
  assert.equal(telemetry.exceptions[0]!.dimensions.recovery, "table re-created");
  assert.equal(telemetry.exceptions[0]!.dimensions.cluster, CLUSTER);
}

describe("a table deleted while the app runs", () => {
  it("is reported, re-created at the next check-in, and check-ins go on answering 200 instead of 500", async () => {
    world.configure();
    world.sim.addNode("gone-1");
    const agent = await TestAgent.on(world.sim, "gone-1", false);
    await agent.tick();
    await world.table().deleteTable();

    const answer = await postCheckin("gone-1", agent.body());
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assertReportedOnce();
    const { store } = await getRollcall();
    assert.ok(await store.get(CLUSTER, "gone-1"), "the node is known again after its check-in");
  });

  it("lets a node that needs a reboot take the lock again in the re-created table and finish its reboot", async () => {
    world.configure();
    world.sim.addNode("gone-2");
    const agent = await TestAgent.on(world.sim, "gone-2", true);
    await getRollcall();
    await world.table().deleteTable();
    for (let i = 0; i < 100 && agent.reboots === 0; i++) await agent.tick();
    assert.equal(agent.reboots, 1);
    assertReportedOnce();
    const { lock } = await getRollcall();
    assert.deepEqual((await lock.view(CLUSTER)).holders.map((h) => h.node), ["gone-2"], "the slot is in the re-created table");
  });

  it("is re-created by the reconcile timer's listing too", async () => {
    world.configure();
    await getRollcall();
    await world.table().deleteTable();
    const logged: string[] = [];
    const context = new InvocationContext({ functionName: "reconcile", logHandler: (_level, ...args) => void logged.push(args.join(" ")) });
    await reconcile({ isPastDue: false, scheduleStatus: undefined } as never, context);
    assert.doesNotMatch(logged.join("\n"), /reconcile failed/);
    assertReportedOnce();
    const { store } = await getRollcall();
    assert.deepEqual(await store.list(CLUSTER), []);
  });

  it("never reads as a free lock, an unknown node or the default policy: without the recovery each read fails", async () => {
    world.configure();
    const raw = TableClient.fromConnectionString(world.azurite.connectionString, "neverCreated", { allowInsecureConnection: true });
    await assert.rejects(new TableLock(raw).view(CLUSTER), { statusCode: 404 });
    await assert.rejects(new NodeStore(raw).get(CLUSTER, "n1"), { statusCode: 404 });
    await assert.rejects(new PolicyStore(raw, withPolicyDefaults({ concurrency: 1, ...policyBase })).read(CLUSTER), { statusCode: 404 });
  });
});
