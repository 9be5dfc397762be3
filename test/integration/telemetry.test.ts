import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Timer } from "@azure/functions";
import { reconcile } from "../../functions/reconcile";
import { telemetryEvents, telemetryMetrics } from "../../shared/telemetry/names";
import { resetTelemetry, useMemoryTelemetry } from "../../shared/telemetry/telemetry";
import { invocation, runAgents, TestAgent, useWorld } from "../support/world";

const world = useWorld({ simOptions: { terminationDelayMs: 20, podStartDelayMs: 40 } });
after(() => resetTelemetry());

describe("telemetry during a rolling reboot", () => {
  it("records every transition, the phase durations, check-ins and queue gauges with cluster and node dimensions", async () => {
    const telemetry = useMemoryTelemetry();
    world.configure();
    const { sim } = world;
    for (const name of ["tel-a", "tel-b", "tel-spare"]) sim.addNode(name);
    sim.addDeployment("shop", "tel-web", { replicas: 3, pdb: { minAvailable: 2 }, nodes: ["tel-a", "tel-b", "tel-spare"] });
    const agents = await Promise.all(["tel-a", "tel-b"].map((n) => TestAgent.on(sim, n, true)));
    await runAgents(agents, () => agents.every((a) => a.reboots === 1 && a.last?.state === "idle"));
    await reconcile({ isPastDue: false } as Timer, invocation("reconcile"));

    const transitions = telemetry.eventsNamed(telemetryEvents.transition);
    for (const node of ["tel-a", "tel-b"]) {
      const path = transitions.filter((e) => e.dimensions.node === node).map((e) => e.dimensions.to);
      assert.deepEqual(path, ["pending", "cordoning", "draining", "reboot-ordered", "rebooted", "releasing", "idle"], `${node}: ${path.join(" → ")}`);
    }
    assert.ok(transitions.every((e) => e.dimensions.cluster === "prod" && typeof e.dimensions.from === "string" && typeof e.dimensions.why === "string"));
    assert.ok(transitions.filter((e) => e.dimensions.to === "cordoning").every((e) => typeof e.dimensions.leaseId === "string"));

    for (const metric of [telemetryMetrics.lockWaitSeconds, telemetryMetrics.drainSeconds, telemetryMetrics.rebootSeconds, telemetryMetrics.returnSeconds]) {
      const samples = telemetry.metricsNamed(metric);
      assert.deepEqual(samples.map((m) => m.dimensions.node).sort(), ["tel-a", "tel-b"], metric);
      assert.ok(samples.every((m) => m.value >= 0 && m.dimensions.cluster === "prod"), metric);
    }
    const checkins = telemetry.metricsNamed(telemetryMetrics.checkins);
    assert.ok(checkins.length >= 4 && checkins.every((m) => m.dimensions.cluster === "prod" && m.dimensions.node !== undefined));
    const pending = telemetry.metricsNamed(telemetryMetrics.nodesPending).at(-1);
    assert.deepEqual([pending?.value, pending?.dimensions.cluster], [0, "prod"]);
    assert.equal(telemetry.metricsNamed(telemetryMetrics.nodesStuck).at(-1)?.value, 0);
  });

  it("counts a step that fails against the cluster API as an error with the node and state", async () => {
    const telemetry = useMemoryTelemetry();
    world.configure();
    world.sim.addNode("tel-err");
    world.sim.addDeployment("db", "tel-db", { replicas: 2, pdb: { minAvailable: 1 }, nodes: ["tel-err"] });
    const agent = await TestAgent.on(world.sim, "tel-err", true);
    assert.equal((await agent.tick()).state, "draining");
    await world.sim.stop(); // the cluster API goes away mid-drain (the last test in this file)
    const answer = await agent.tick();
    assert.equal(answer.action, "wait", "the agent is told to wait, not to reboot");
    const errors = telemetry.metricsNamed(telemetryMetrics.errors);
    assert.ok(errors.some((m) => m.dimensions.node === "tel-err" && m.dimensions.state === "draining"), JSON.stringify(errors));
    assert.ok(telemetry.exceptions.some((e) => e.dimensions.node === "tel-err"));
  });
});
