import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { TransactionAction } from "@azure/data-tables";
import type { ClusterApi } from "../../shared/kube/clusterApi";
import { type LockHolder, TableLock } from "../../shared/lock/tableLock";
import { type NodeRecord, NodeStore } from "../../shared/node/nodeRecord";
import { getRollcall } from "../../shared/orchestrator/fromConfig";
import { Orchestrator } from "../../shared/orchestrator/orchestrator";
import { openGate } from "../../shared/policy/policy";
import { CheckinRequest } from "../../shared/protocol/checkin";
import { NoopTelemetry } from "../../shared/telemetry/telemetry";
import { CLUSTER, invocation, TestAgent, useWorld } from "../support/world";

const world = useWorld({ simOptions: { terminationDelayMs: 10, podStartDelayMs: 20 } });
const log = invocation("crash-test");

class Crash extends Error {}

/** Counts every write Rollcall makes (storage, lock, Kubernetes) and crashes at the chosen one. */
class Faults {
  count = 0;
  crashed = false;
  constructor(
    private readonly crashAt: number,
    private readonly when: "before" | "after",
  ) {}

  async around<T>(name: string, write: () => Promise<T>): Promise<T> {
    const index = ++this.count;
    const crashNow = !this.crashed && index === this.crashAt;
    if (crashNow && this.when === "before") {
      this.crashed = true;
      throw new Crash(`crash before ${name} (#${index})`);
    }
    const result = await write();
    if (crashNow) {
      this.crashed = true;
      throw new Crash(`crash after ${name} (#${index})`);
    }
    return result;
  }
}

async function faultyOrchestrator(faults: Faults, clock: () => Date): Promise<Orchestrator> {
  const rollcall = await getRollcall();
  class FaultyStore extends NodeStore {
    override create(record: NodeRecord) {
      return faults.around("store.create", () => super.create(record));
    }
    override replace(record: NodeRecord, etag: string) {
      return faults.around(`store.replace(${record.state})`, () => super.replace(record, etag));
    }
  }
  class FaultyLock extends TableLock {
    override acquire(cluster: string, holder: LockHolder, slots: number, alongWith?: TransactionAction[]) {
      return faults.around("lock.acquire", () => super.acquire(cluster, holder, slots, alongWith));
    }
    override release(cluster: string, node: string, leaseId: string, alongWith?: TransactionAction[]) {
      return faults.around("lock.release", () => super.release(cluster, node, leaseId, alongWith));
    }
  }
  const kube = async (cluster: string): Promise<ClusterApi> => {
    const real = await rollcall.kube(cluster);
    return {
      getNode: (name) => real.getNode(name),
      listNodes: () => real.listNodes(),
      listPodsOnNode: (name) => real.listPodsOnNode(name),
      updateNode: (seen, change) => faults.around(`kube.updateNode(unschedulable=${change.unschedulable})`, () => real.updateNode(seen, change)),
      evictPod: (pod, grace) => faults.around("kube.evictPod", () => real.evictPod(pod, grace)),
    } as ClusterApi;
  };
  return new Orchestrator({
    store: new FaultyStore(rollcall.table),
    lock: new FaultyLock(rollcall.table),
    kube,
    policy: rollcall.policy,
    gate: openGate,
    telemetry: new NoopTelemetry(),
    stepBudgetMs: 5_000,
    clock,
  });
}

let run = 0;

/** Two nodes need a reboot; the orchestrator crashes once at write number `crashAt`; everything must still end well. */
async function rollout(crashAt: number, when: "before" | "after"): Promise<{ writes: number; crashed: boolean }> {
  world.configure();
  const { sim } = world;
  const names = [`c${run}-a`, `c${run}-b`];
  const spare = `c${run}-spare`;
  run++;
  for (const name of [...names, spare]) sim.addNode(name);
  // The spare takes the evicted pods, so drains never wait on the PDB back-off: this test is about crashes.
  sim.addDeployment("app", `web-${run}`, { replicas: 2, pdb: { minAvailable: 1 }, nodes: [...names, spare] });
  const faults = new Faults(crashAt, when);
  // Orchestrator time runs ahead 3 s a round, so eviction re-checks are due at once; the sim's own timers stay real.
  let skew = 0;
  const orchestrator = await faultyOrchestrator(faults, () => new Date(Date.now() + skew));
  const send = async (node: string, body: unknown) => ({ status: 200, body: await orchestrator.checkin(CLUSTER, node, CheckinRequest.parse(body), log) });
  const agents = await Promise.all(names.map((n) => TestAgent.on(sim, n, true)));
  const { store, lock } = await getRollcall();

  const deadline = Date.now() + 30_000;
  for (let round = 0; Date.now() < deadline; round++) {
    const records = (await store.list(CLUSTER)).map((r) => r.value);
    const finished = agents.every((a) => a.reboots === 1) && records.length === 2 && records.every((r) => r.state === "idle");
    if (finished) break;
    for (const agent of agents) {
      try {
        await agent.tick(send);
      } catch (error) {
        if (!(error instanceof Crash)) throw error;
      }
    }
    if (round % 5 === 4) await orchestrator.reconcile(CLUSTER, log).catch((error) => assert.ok(error instanceof Crash, String(error)));
    skew += 3_000;
    await new Promise((r) => setTimeout(r, 15));
  }

  const label = `crash ${when} write #${crashAt}`;
  const records = (await store.list(CLUSTER)).map((r) => r.value);
  assert.deepEqual(
    records.map((r) => [r.node, r.state]),
    names.map((n) => [n, "idle"]),
    `${label}: every node back to idle`,
  );
  assert.deepEqual(
    agents.map((a) => a.reboots),
    [1, 1],
    `${label}: each node rebooted exactly once`,
  );
  for (const name of names) assert.ok(!sim.getNode(name)!.spec?.unschedulable, `${label}: ${name} uncordoned`);
  assert.deepEqual((await lock.view(CLUSTER)).holders, [], `${label}: the lock is free`);
  assert.equal(sim.pdbViolations, 0, `${label}: no PodDisruptionBudget was violated`);
  return { writes: faults.count, crashed: faults.crashed };
}

describe("crash-resume", () => {
  it("finishes a rolling reboot correctly whichever write the orchestrator dies before or after", async () => {
    const clean = await rollout(Number.POSITIVE_INFINITY, "after");
    assert.ok(clean.writes > 10, `a clean rollout makes ${clean.writes} writes`);
    // Crash at write 1, 2, 3, … until a run ends without reaching the crash point: every write was covered.
    for (const when of ["after", "before"] as const) {
      let crashAt = 1;
      while ((await rollout(crashAt, when)).crashed) crashAt++;
      assert.ok(crashAt > 10, `crashes ${when} ${crashAt - 1} different writes were survived`);
    }
  });
});
