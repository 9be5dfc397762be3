import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { getConfig } from "../../shared/config/config";
import { getRollcall } from "../../shared/orchestrator/fromConfig";
import { Orchestrator } from "../../shared/orchestrator/orchestrator";
import { policyFromConfig } from "../../shared/policy/policy";
import { PolicyStore } from "../../shared/policy/policyStore";
import { CheckinRequest } from "../../shared/protocol/checkin";
import { MemoryTelemetry } from "../../shared/telemetry/telemetry";
import { lockHolders, setPolicy } from "../support/policyWorld";
import { CLUSTER, invocation, TestAgent, useWorld } from "../support/world";

/**
 * Each instance caches a cluster's policy for a minute. A lower concurrency must bind at once, on
 * every instance: the policy write bumps a version in the lock row in the same transaction, and an
 * acquire commits against the lock row it read, so an instance whose cached policy is older re-reads
 * it before it takes a slot.
 */

const world = useWorld();

/** A second instance: its own table client, policy store and cache (an hour long), the same table. */
async function secondInstance() {
  const rollcall = await getRollcall();
  const policies = new PolicyStore(world.table(), policyFromConfig(getConfig()), Date.now, 3_600_000);
  const orchestrator = new Orchestrator({
    store: rollcall.store,
    lock: rollcall.lock,
    kube: rollcall.kube,
    policy: policies.source,
    gate: rollcall.gate,
    telemetry: new MemoryTelemetry(),
    stepBudgetMs: 5_000,
  });
  const checkin = async (node: string, body: unknown) => ({ status: 200, body: await orchestrator.checkin(CLUSTER, node, CheckinRequest.parse(body), invocation("second")) });
  return { policies, checkin };
}

const relaxed = { health: { waitForHealthy: false }, blockers: { pdbPrecheck: false } };

describe("a policy change on another instance", () => {
  it("binds at once: an instance that cached concurrency 3 takes no second slot after the policy was lowered to 1", async () => {
    world.configure();
    for (const name of ["bind-a", "bind-b", "bind-c"]) world.sim.addNode(name);
    await setPolicy({ concurrency: 3, ...relaxed });
    const stale = await secondInstance();
    assert.equal((await stale.policies.source(CLUSTER)).concurrency, 3, "the second instance caches concurrency 3");

    const first = await TestAgent.on(world.sim, "bind-a", true);
    await first.tick();
    assert.deepEqual(await lockHolders(), ["bind-a"]);

    await setPolicy({ concurrency: 1, ...relaxed });
    const second = await TestAgent.on(world.sim, "bind-b", true);
    const answer = await second.tick(stale.checkin);
    assert.equal(answer.state, "pending");
    assert.match(answer.reason, /waiting for a free lock slot \(held by bind-a\)/);
    assert.deepEqual(await lockHolders(), ["bind-a"], "the stale instance took no second slot");
    assert.equal((await stale.policies.source(CLUSTER)).concurrency, 1, "and now serves the new policy from its cache");
  });

  it("still lets a stale instance use a raised concurrency only once it has read it, and never more slots than the policy it read", async () => {
    world.configure();
    for (const name of ["raise-a", "raise-b"]) world.sim.addNode(name);
    await setPolicy({ concurrency: 1, ...relaxed });
    const stale = await secondInstance();
    await stale.policies.source(CLUSTER);
    const first = await TestAgent.on(world.sim, "raise-a", true);
    await first.tick();
    await setPolicy({ concurrency: 2, ...relaxed });
    const answer = await (await TestAgent.on(world.sim, "raise-b", true)).tick(stale.checkin);
    assert.notEqual(answer.state, "pending", `the raised concurrency lets raise-b go: ${answer.reason}`);
    assert.deepEqual(await lockHolders(), ["raise-a", "raise-b"]);
  });
});
