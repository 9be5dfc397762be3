import assert from "node:assert/strict";
import { clusterStatus } from "../../functions/clusterStatus";
import { getPolicy, putPolicy } from "../../functions/policy";
import { releaseNode } from "../../functions/releaseNode";
import type { NodeRecord } from "../../shared/node/nodeRecord";
import { getRollcall } from "../../shared/orchestrator/fromConfig";
import { call, type Answer } from "./operatorCalls";
import { CLUSTER, invocation, type ManualClock, sleep, type TestAgent, type World } from "./world";

/**
 * Helpers for the reboot-policy tests through the check-in path: the policy set with the real
 * `PUT …/policy` handler, the status and release routes, and an orchestrator with a hand-moved clock
 * that uses the real policy source and the same composite gate the composition root builds.
 */

/** `PUT /api/clusters/{cluster}/policy` through the real handler. */
export function putClusterPolicy(document: unknown, cluster = CLUSTER): Promise<Answer> {
  return call(putPolicy, { method: "PUT", path: `clusters/${cluster}/policy`, params: { cluster }, body: document });
}

/** Sets the policy and insists that it was accepted. */
export async function setPolicy(document: unknown, cluster = CLUSTER): Promise<Answer> {
  const answer = await putClusterPolicy(document, cluster);
  assert.equal(answer.status, 200, `PUT policy answered ${answer.status}: ${answer.text}`);
  return answer;
}

export function getClusterPolicy(cluster = CLUSTER): Promise<Answer> {
  return call(getPolicy, { method: "GET", path: `clusters/${cluster}/policy`, params: { cluster } });
}

export function getStatus(cluster = CLUSTER): Promise<Answer> {
  return call(clusterStatus, { method: "GET", path: `clusters/${cluster}/status`, params: { cluster } });
}

export function postRelease(node: string, cluster = CLUSTER): Promise<Answer> {
  return call(releaseNode, {
    method: "POST",
    path: `clusters/${cluster}/nodes/${node}/release`,
    params: { cluster, node },
  });
}


export async function record(node: string, cluster = CLUSTER): Promise<NodeRecord> {
  const { store } = await getRollcall();
  const found = await store.get(cluster, node);
  assert.ok(found, `no record of ${node}`);
  return found.value;
}

export async function lockHolders(cluster = CLUSTER): Promise<string[]> {
  const { lock } = await getRollcall();
  return (await lock.view(cluster)).holders.map((h) => h.node).sort();
}

export function isReady(world: World, node: string): boolean {
  const conditions = (world.sim.getNode(node)?.status?.conditions ?? []) as { type: string; status: string }[];
  return conditions.some((c) => c.type === "Ready" && c.status === "True");
}

export function isCordoned(world: World, node: string): boolean {
  return world.sim.getNode(node)?.spec?.unschedulable === true;
}

export function labelsOf(world: World, node: string): Record<string, string> {
  return { ...(world.sim.getNode(node)?.metadata.labels ?? {}) };
}

export function taintsOf(world: World, node: string): { key: string; effect: string; value?: string }[] {
  return [...((world.sim.getNode(node)?.spec?.taints ?? []) as { key: string; effect: string; value?: string }[])];
}

/** Every node back: Ready, schedulable, idle (when Rollcall knows it), and the lock free. */
export async function assertSettled(world: World, nodes: string[]): Promise<void> {
  assert.deepEqual(await lockHolders(), [], "the lock is free");
  for (const node of nodes) {
    assert.ok(isReady(world, node), `${node} is Ready`);
    assert.ok(!isCordoned(world, node), `${node} is schedulable`);
    const { store } = await getRollcall();
    const found = await store.get(CLUSTER, node);
    if (found) assert.equal(found.value.state, "idle", `${node} is idle`);
  }
}

/** Deletes a pod through the simulated API server, as `kubectl delete pod` would, and waits until it is gone. */
export async function deletePod(world: World, namespace: string, name: string): Promise<void> {
  const response = await fetch(`${world.sim.url}/api/v1/namespaces/${namespace}/pods/${name}`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${world.sim.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ gracePeriodSeconds: 0 }),
  });
  assert.ok(response.ok, `DELETE pod ${namespace}/${name} answered ${response.status}`);
  await response.body?.cancel();
  for (let i = 0; i < 200 && world.sim.getPod(namespace, name); i++) await sleep(10);
  assert.equal(world.sim.getPod(namespace, name), undefined, `pod ${namespace}/${name} is gone`);
}

/** Ticks `step` until `done` holds, at most `rounds` times, pausing in between (the sim works in real time). */
export async function until(done: () => boolean | Promise<boolean>, step: () => Promise<unknown>, rounds = 200, pauseMs = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (await done()) return;
    await step();
    await sleep(pauseMs);
  }
  assert.ok(await done(), `not done after ${rounds} rounds`);
}

/** Ticks every agent until each of them no longer needs a reboot and its node is idle again. */
export async function finish(agents: TestAgent[], send?: Parameters<TestAgent["tick"]>[0], between: () => void = () => undefined): Promise<void> {
  await until(
    () => agents.every((a) => !a.rebootRequired && a.last?.state === "idle"),
    async () => {
      between();
      for (const agent of agents) await agent.tick(send);
    },
    300,
    15,
  );
}
