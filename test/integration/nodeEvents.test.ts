import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type * as k8s from "@kubernetes/client-node";
import { readHistory } from "../../shared/history/history";
import { kuredAnnotations, nodeAnnotations } from "../../shared/kube/clusterApi";
import { KubeClusterApi } from "../../shared/kube/kubeClusterApi";
import { getRollcall } from "../../shared/orchestrator/fromConfig";
import { getStatus, setPolicy } from "../support/policyWorld";
import { CLUSTER, runAgents, TestAgent, useWorld } from "../support/world";

/**
 * What an operator sees of a rollout with kubectl: Events on the Node object (core/v1, namespace
 * default, as kubelet writes node events) and the `rollcall.io/state` annotation, read back through
 * @kubernetes/client-node from the simulated API server, which serves Events through core/v1 and
 * events.k8s.io/v1 as kube-apiserver does. Shadow mode beside kured: every decision in status and
 * history, and nothing but reads in the API server's request log.
 */

const world = useWorld({ simOptions: { terminationDelayMs: 30, podStartDelayMs: 60 } });

async function clients() {
  const lib = await import("@kubernetes/client-node");
  const config = new lib.KubeConfig();
  config.loadFromString(world.sim.kubeconfig);
  return {
    lib,
    core: config.makeApiClient(lib.CoreV1Api),
    eventsV1: config.makeApiClient(lib.EventsV1Api),
    policy: config.makeApiClient(lib.PolicyV1Api),
    api: new KubeClusterApi(lib, config, 5_000),
  };
}

/** In the order they were written: a never-patched event's resourceVersion is the revision of its creation. */
const inOrder = (events: k8s.CoreV1Event[]) => [...events].sort((a, b) => Number(a.metadata?.resourceVersion) - Number(b.metadata?.resourceVersion));

/** Every distinct value the node's annotation took, in order (`-` for absent). */
function annotationStory(node: string, key: string): { values: string[]; stop: () => void } {
  const values: string[] = [];
  const stop = world.sim.onNodeChange((change) => {
    if (change.node !== node || change.change !== "annotated") return;
    const value = change.annotations?.[key] ?? "-";
    if (values.at(-1) !== value) values.push(value);
  });
  return { values, stop };
}

describe("Kubernetes Events and annotations on the node", () => {
  it("tells a whole rollout in Events on the node, listed with kubectl's field selector, while rollcall.io/state follows every state", async () => {
    world.configure();
    const { sim } = world;
    for (const name of ["ev-a", "ev-spare"]) sim.addNode(name);
    // A budget that allows no disruption until the test deletes it, once the drain said it is blocked.
    sim.addDeployment("shop", "ev-web", { replicas: 2, pdb: { minAvailable: 2 }, nodes: ["ev-a", "ev-spare"] });
    await setPolicy({ blockers: { pdbPrecheck: false } });
    const agent = await TestAgent.on(sim, "ev-a", true);
    const story = annotationStory("ev-a", nodeAnnotations.state);
    const { store } = await getRollcall();
    await runAgents([agent], async () => (await store.get(CLUSTER, "ev-a"))?.value.drainBlocker !== undefined, 30_000);
    const { core, eventsV1, policy } = await clients();
    await policy.deleteNamespacedPodDisruptionBudget({ namespace: "shop", name: "ev-web" });
    await runAgents([agent], async () => agent.reboots === 1 && agent.last?.state === "idle");
    story.stop();

    const uid = sim.getNode("ev-a")!.metadata.uid;
    // What `kubectl describe node ev-a` asks: every namespace, the node's kind, name and uid.
    const listed = await core.listEventForAllNamespaces({ fieldSelector: `involvedObject.kind=Node,involvedObject.name=ev-a,involvedObject.namespace=,involvedObject.uid=${uid}` });
    assert.ok(listed.items.length > 0, "the node has events");
    for (const event of listed.items) {
      assert.equal(event.metadata?.namespace, "default", "a cluster-scoped object's events are in default");
      assert.deepEqual({ kind: event.involvedObject.kind, name: event.involvedObject.name, uid: event.involvedObject.uid }, { kind: "Node", name: "ev-a", uid });
      assert.equal(event.source?.component, "rollcall");
      assert.ok(event.type === "Normal" || event.type === "Warning");
    }
    const reasons = inOrder(listed.items).map((e) => e.reason).filter((r) => r !== "RollcallDrainBlocked");
    assert.deepEqual(reasons, ["RollcallPending", "RollcallLockAcquired", "RollcallCordon", "RollcallRebootOrdered", "RollcallRebooted", "RollcallRebootConfirmed", "RollcallUncordon"]);
    const blocked = listed.items.filter((e) => e.reason === "RollcallDrainBlocked");
    assert.ok(blocked.length > 0, "the budget refused an eviction and said so");
    for (const event of blocked) {
      assert.equal(event.type, "Warning");
      assert.match(event.message ?? "", /pod shop\/ev-web-\S+ is protected by PodDisruptionBudget shop\/ev-web/);
    }
    // The same events through events.k8s.io/v1, under its field names.
    const v1 = await eventsV1.listNamespacedEvent({ namespace: "default", fieldSelector: "regarding.name=ev-a" });
    assert.deepEqual(v1.items.map((e) => e.metadata?.name).sort(), listed.items.map((e) => e.metadata?.name).sort());
    assert.ok(v1.items.every((e) => e.regarding?.kind === "Node" && e.note && e.reportingController === "rollcall"));

    assert.deepEqual(story.values, ["draining", "reboot-ordered", "rebooted", "-"], "the annotation followed the state and went with the release");
    assert.equal(sim.getNode("ev-a")!.metadata.annotations?.[nodeAnnotations.state], undefined);
  });

  it("counts a repeated event on the one already written (count and lastTimestamp patched), as client-go's correlator does", async () => {
    const { sim } = world;
    sim.addNode("ev-series");
    const { core, api } = await clients();
    const node = (await api.getNode("ev-series"))!;
    const blocked = { node, type: "Warning" as const, reason: "RollcallDrainBlocked", message: "pod shop/db-0 is protected by PodDisruptionBudget shop/db" };
    const start = sim.requestLog.length;
    for (let i = 0; i < 3; i++) await api.recordEvent(blocked);
    await api.recordEvent({ ...blocked, message: "pod shop/db-1 is protected by PodDisruptionBudget shop/db" });
    const events = inOrder((await core.listNamespacedEvent({ namespace: "default", fieldSelector: "involvedObject.name=ev-series" })).items);
    assert.deepEqual(events.map((e) => [e.message, e.count]), [
      ["pod shop/db-0 is protected by PodDisruptionBudget shop/db", 3],
      ["pod shop/db-1 is protected by PodDisruptionBudget shop/db", 1],
    ]);
    assert.ok(events[0]!.lastTimestamp! >= events[0]!.firstTimestamp!);
    assert.deepEqual(sim.requestLog.slice(start).filter((r) => r.path.includes("/events") && r.method !== "GET").map((r) => r.method), ["POST", "PATCH", "PATCH", "POST"]);
  });

  it("serves Events through both APIs as kube-apiserver does, refusing a node's event outside default", async () => {
    const { sim } = world;
    sim.addNode("ev-apis");
    const { core, eventsV1 } = await clients();
    const uid = sim.getNode("ev-apis")!.metadata.uid;
    const now = new Date();
    await eventsV1.createNamespacedEvent({
      namespace: "default",
      body: {
        metadata: { name: "ev-apis.v1" },
        eventTime: now,
        reportingController: "example.com/tool",
        reportingInstance: "tool-1",
        action: "Check",
        reason: "Checked",
        note: "written through events.k8s.io/v1",
        type: "Normal",
        regarding: { kind: "Node", name: "ev-apis", uid },
      },
    });
    const read = await core.readNamespacedEvent({ namespace: "default", name: "ev-apis.v1" });
    assert.equal(read.message, "written through events.k8s.io/v1");
    assert.equal(read.reportingComponent, "example.com/tool");
    assert.equal(read.involvedObject.name, "ev-apis");
    await assert.rejects(
      eventsV1.createNamespacedEvent({ namespace: "default", body: { metadata: { name: "ev-apis.bad" }, eventTime: now, reason: "X", note: "no controller", type: "Normal", regarding: { kind: "Node", name: "ev-apis" } } }),
      (error: { code?: number; body?: string }) => error.code === 422 && /reportingController: Required value/.test(String(error.body)),
    );
    await assert.rejects(
      core.createNamespacedEvent({ namespace: "kube-system", body: { metadata: { name: "ev-apis.ns" }, involvedObject: { kind: "Node", name: "ev-apis" }, reason: "X", message: "m", type: "Normal" } }),
      (error: { code?: number }) => error.code === 422,
    );
  });

  it("writes kured's annotations while the node holds a slot when kuredAnnotations is on: in-progress removed at the end, most-recent-reboot-needed kept", async () => {
    world.configure();
    const { sim } = world;
    sim.addNode("ev-kured");
    await setPolicy({ kuredAnnotations: true });
    const agent = await TestAgent.on(sim, "ev-kured", true);
    const inProgress = annotationStory("ev-kured", kuredAnnotations.rebootInProgress);
    await runAgents([agent], async () => agent.reboots === 1 && agent.last?.state === "idle");
    inProgress.stop();
    const [setAt, removed] = inProgress.values;
    assert.match(setAt ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, "RFC 3339 in seconds, as kured writes it");
    assert.equal(removed, "-");
    assert.equal(sim.getNode("ev-kured")!.metadata.annotations?.[kuredAnnotations.mostRecentRebootNeeded], setAt);
  });
});

describe("shadow mode beside kured", () => {
  it("ends a drain an active turn began when the policy switches to shadow: uncordoned, no reboot", async () => {
    world.configure();
    const { sim } = world;
    for (const name of ["sw-a", "sw-spare"]) sim.addNode(name);
    sim.addDeployment("shop", "sw-web", { replicas: 2, pdb: { minAvailable: 2 }, nodes: ["sw-a", "sw-spare"] });
    await setPolicy({ blockers: { pdbPrecheck: false } });
    const agent = await TestAgent.on(sim, "sw-a", true);
    const { store } = await getRollcall();
    await runAgents([agent], async () => (await store.get(CLUSTER, "sw-a"))?.value.drainBlocker !== undefined, 30_000);
    assert.equal(sim.getNode("sw-a")!.spec?.unschedulable, true);
    await setPolicy({ mode: "shadow", blockers: { pdbPrecheck: false } });
    await agent.tick();
    const history = await readHistory(world.table(), CLUSTER, { limit: 5 });
    // Newest first: the active turn ended, then the node, still needing its reboot, took a shadow turn.
    assert.deepEqual(history.entries.map((e) => [e.node, e.outcome]), [["sw-a", "shadow"], ["sw-a", "cancelled"]]);
    assert.match(history.entries[1]!.why, /switched to shadow mode/);
    assert.ok(!sim.getNode("sw-a")!.spec?.unschedulable, "uncordoned");
    assert.equal(sim.getNode("sw-a")!.metadata.annotations?.[nodeAnnotations.state], undefined);
    assert.equal(agent.reboots, 0);
  });

  it("decides a whole rollout, shows who would take the lock and what would be evicted, and only reads the cluster", async () => {
    world.configure();
    const { sim } = world;
    const names = ["sh-a", "sh-b"];
    for (const name of [...names, "sh-spare"]) sim.addNode(name);
    sim.addDeployment("shop", "sh-web", { replicas: 3, pdb: { minAvailable: 3 }, nodes: [...names, "sh-spare"] });
    await setPolicy({ mode: "shadow", blockers: { pdbPrecheck: false } });
    const agents = await Promise.all(names.map((n) => TestAgent.on(sim, n, true)));
    const start = sim.requestLog.length;
    const { store } = await getRollcall();
    const decided = async () => (await store.list(CLUSTER)).filter((r) => r.value.shadowBootId !== undefined).length === names.length;
    await runAgents(agents, decided, 30_000);
    // Once decided, the nodes wait for someone else's reboot: more check-ins change nothing.
    for (const agent of agents) await agent.tick();

    const requests = sim.requestLog.slice(start);
    const writes = requests.filter((r) => r.method !== "GET" && !(r.method === "POST" && r.path === "/apis/authentication.k8s.io/v1/tokenreviews"));
    assert.deepEqual(writes, [], "nothing but reads");
    assert.ok(requests.some((r) => r.path.endsWith("/pods")), "the drain was planned from the pods");
    assert.deepEqual(agents.map((a) => [a.reboots, a.last?.action]), [[0, "none"], [0, "none"]], "no agent was told to reboot");
    for (const name of names) {
      const node = sim.getNode(name)!;
      assert.ok(!node.spec?.unschedulable, `${name} was not cordoned`);
      assert.equal(node.metadata.annotations?.[nodeAnnotations.state], undefined);
    }

    const history = await readHistory(world.table(), CLUSTER, { limit: 10 });
    assert.deepEqual(history.entries.map((e) => [e.node, e.outcome]).sort(), [["sh-a", "shadow"], ["sh-b", "shadow"]]);
    for (const entry of history.entries) {
      assert.ok(entry.leaseId, "the turn took a lease");
      assert.match(entry.why, /shadow mode, nothing done: would cordon and evict 1 pod\(s\) \(shop\/sh-web-\S+\); evictions would be blocked: shop\/sh-web-\S+ by PodDisruptionBudget shop\/sh-web/);
    }
    const status = await getStatus();
    assert.equal(status.status, 200);
    assert.match(JSON.stringify(status.body), /shadow mode, nothing done: would cordon/);

    // kured rebooted sh-a and the sentinel is still there (a second kernel update): a new boot, a new shadow turn.
    agents[0]!.bootId = await sim.rebootNode("sh-a", { downMs: 20 });
    await runAgents([agents[0]!], async () => (await readHistory(world.table(), CLUSTER, { limit: 10 })).entries.length === 3, 30_000);
    assert.deepEqual(sim.requestLog.slice(start).filter((r) => r.method === "PATCH" || r.method === "POST" || r.method === "PUT" || r.method === "DELETE"), []);
  });
});
