import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type * as k8s from "@kubernetes/client-node";
import { readFileSync } from "node:fs";
import { startTlsFront } from "../../local/bench/tlsFront";
import { SimCluster, type SimClusterOptions } from "../../local/kubeSim";
import { drainFor } from "../../shared/drain/drainer";
import { KubeClusterApi } from "../../shared/kube/kubeClusterApi";
import type { NodeRecord } from "../../shared/node/nodeRecord";
import { STEPS, type StepPorts } from "../../shared/node/stateMachine";
import type { Policy } from "../../shared/policy/policy";
import { policyBase } from "../support/fixtures";

type ClientNode = typeof import("@kubernetes/client-node");

let lib: ClientNode;
const started: SimCluster[] = [];

before(async () => {
  lib = await import("@kubernetes/client-node");
});

after(async () => {
  await Promise.all(started.map((sim) => sim.stop()));
});

interface Connected {
  sim: SimCluster;
  config: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  policy: k8s.PolicyV1Api;
  auth: k8s.AuthenticationV1Api;
}

/** A fresh simulated cluster with three Ready nodes, reached through the real client-node. */
async function cluster(options: SimClusterOptions = {}): Promise<Connected> {
  const sim = await SimCluster.start({ podStartDelayMs: 20, terminationDelayMs: 30, ...options });
  started.push(sim);
  for (const name of ["n1", "n2", "n3"]) sim.addNode(name);
  const config = new lib.KubeConfig();
  config.loadFromString(sim.kubeconfig);
  return {
    sim,
    config,
    core: config.makeApiClient(lib.CoreV1Api),
    policy: config.makeApiClient(lib.PolicyV1Api),
    auth: config.makeApiClient(lib.AuthenticationV1Api),
  };
}

interface Failure {
  code: number;
  body: { reason?: string; message?: string; code?: number; details?: { causes?: { reason?: string; message?: string }[]; retryAfterSeconds?: number } };
  headers: Record<string, string>;
}

async function failure(call: Promise<unknown>): Promise<Failure> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof lib.ApiException, `expected an ApiException, got ${String(error)}`);
    const e = error as k8s.ApiException<string>;
    return { code: e.code, body: JSON.parse(e.body), headers: e.headers };
  }
  assert.fail("the call succeeded");
}

async function eventually(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function eviction(pod: string, namespace = "default", deleteOptions?: k8s.V1DeleteOptions): { name: string; namespace: string; body: k8s.V1Eviction } {
  return { name: pod, namespace, body: { apiVersion: "policy/v1", kind: "Eviction", metadata: { name: pod, namespace }, ...(deleteOptions ? { deleteOptions } : {}) } };
}

describe("the simulated API server", () => {
  describe("listing", () => {
    it("lists nodes as a NodeList with Ready conditions, boot ids and AKS labels", async () => {
      const { core } = await cluster();
      const list = await core.listNode();
      assert.deepEqual(list.items.map((n) => n.metadata?.name), ["n1", "n2", "n3"]);
      const node = list.items[0]!;
      assert.equal(node.status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
      assert.match(node.status?.nodeInfo?.bootID ?? "", /^[0-9a-f-]{36}$/);
      assert.equal(node.metadata?.labels?.["kubernetes.azure.com/agentpool"], "nodepool1");
      assert.ok(Number(list.metadata?.resourceVersion) > 0);
    });

    it("selects pods by node, phase and namespace with field selectors, and excludes with !=", async () => {
      const { sim, core } = await cluster();
      sim.addPod("default", "done", { node: "n1", phase: "Succeeded" });
      sim.addPod("default", "busy", { node: "n1" });
      sim.addPod("other", "elsewhere", { node: "n2" });
      const onN1 = await core.listPodForAllNamespaces({ fieldSelector: "spec.nodeName=n1" });
      assert.deepEqual(onN1.items.map((p) => p.metadata?.name), ["busy", "done"]);
      const running = await core.listPodForAllNamespaces({ fieldSelector: "spec.nodeName==n1,status.phase!=Succeeded" });
      assert.deepEqual(running.items.map((p) => p.metadata?.name), ["busy"]);
      const inOther = await core.listNamespacedPod({ namespace: "other" });
      assert.deepEqual(inOther.items.map((p) => p.metadata?.name), ["elsewhere"]);
      const cordoned = await core.listNode({ fieldSelector: "spec.unschedulable=true" });
      assert.equal(cordoned.items.length, 0);
    });

    it("answers 400 BadRequest for a field the real server cannot select on", async () => {
      const { core } = await cluster();
      const { code, body } = await failure(core.listPodForAllNamespaces({ fieldSelector: "spec.hostname=n1" }));
      assert.equal(code, 400);
      assert.equal(body.reason, "BadRequest");
      assert.equal(body.message, "field label not supported: spec.hostname");
    });

    it("selects by labels with equality, set and existence requirements", async () => {
      const { sim, core } = await cluster();
      sim.addPod("default", "a", { node: "n1", labels: { app: "web", tier: "front" } });
      sim.addPod("default", "b", { node: "n1", labels: { app: "api" } });
      sim.addPod("default", "c", { node: "n1", labels: {} });
      const names = async (labelSelector: string) => (await core.listNamespacedPod({ namespace: "default", labelSelector })).items.map((p) => p.metadata?.name);
      assert.deepEqual(await names("app=web"), ["a"]);
      assert.deepEqual(await names("app!=web"), ["b", "c"]);
      assert.deepEqual(await names("app in (web,api)"), ["a", "b"]);
      assert.deepEqual(await names("app notin (web)"), ["b", "c"]);
      assert.deepEqual(await names("tier"), ["a"]);
      assert.deepEqual(await names("!app"), ["c"]);
      assert.deepEqual(await names("app,!tier"), ["b"]);
    });
  });

  describe("writing nodes", () => {
    it("cordons a node through a merge patch, and uncordons it by removing the field with null", async () => {
      const { sim, core } = await cluster();
      const options = lib.setHeaderOptions("Content-Type", lib.PatchStrategy.MergePatch);
      const patched = await core.patchNode({ name: "n1", body: { spec: { unschedulable: true }, metadata: { annotations: { "rollcall.io/state": "draining" } } } }, options);
      assert.equal(patched.spec?.unschedulable, true);
      assert.equal(sim.getNode("n1")?.metadata.annotations?.["rollcall.io/state"], "draining");
      await core.patchNode({ name: "n1", body: { spec: { unschedulable: null }, metadata: { annotations: { "rollcall.io/state": null } } } }, options);
      assert.equal(sim.getNode("n1")?.spec.unschedulable, undefined);
      assert.equal(sim.getNode("n1")?.metadata.annotations?.["rollcall.io/state"], undefined);
      assert.equal(sim.requestLog.at(-1)?.contentType, "application/merge-patch+json");
    });

    it("cordons a node through a JSON patch, which client-node sends by default", async () => {
      const { sim, core } = await cluster();
      await core.patchNode({ name: "n2", body: [{ op: "add", path: "/spec/unschedulable", value: true }] });
      assert.equal(sim.getNode("n2")?.spec.unschedulable, true);
      assert.equal(sim.requestLog.at(-1)?.contentType, "application/json-patch+json");
      assert.equal(sim.maxNodesUnavailable, 1);
      assert.deepEqual(
        sim.nodeChanges.filter((c) => c.change === "cordoned").map((c) => c.node),
        ["n2"],
      );
    });

    it("answers 422 Invalid when a JSON patch test operation fails, and changes nothing", async () => {
      const { sim, core } = await cluster();
      const before = sim.getNode("n1")?.metadata.resourceVersion;
      const { code, body } = await failure(
        core.patchNode({
          name: "n1",
          body: [
            { op: "test", path: "/spec/unschedulable", value: true },
            { op: "add", path: "/spec/unschedulable", value: true },
          ],
        }),
      );
      assert.equal(code, 422);
      assert.equal(body.reason, "Invalid");
      assert.match(body.details?.causes?.[0]?.message ?? "", /testing value \/spec\/unschedulable failed/);
      assert.equal(sim.getNode("n1")?.metadata.resourceVersion, before);
    });

    it("merges node status conditions by type in a strategic merge patch, but replaces taints whole", async () => {
      const { sim, core } = await cluster();
      const strategic = lib.setHeaderOptions("Content-Type", lib.PatchStrategy.StrategicMergePatch);
      await core.patchNodeStatus({ name: "n1", body: { status: { conditions: [{ type: "Ready", status: "False", reason: "KubeletNotReady" }] } } }, strategic);
      const conditions = sim.getNode("n1")?.status.conditions as { type: string; status: string }[];
      assert.equal(conditions.length, 4);
      assert.equal(conditions.find((c) => c.type === "Ready")?.status, "False");
      assert.equal(conditions.find((c) => c.type === "MemoryPressure")?.status, "False");

      await core.patchNode({ name: "n1", body: { spec: { taints: [{ key: "a", effect: "NoSchedule" }] } } }, strategic);
      await core.patchNode({ name: "n1", body: { spec: { taints: [{ key: "b", effect: "NoSchedule" }] } } }, strategic);
      assert.deepEqual(sim.getNode("n1")?.spec.taints, [{ key: "b", effect: "NoSchedule" }]);
    });

    it("leaves status alone on writes to the node itself", async () => {
      const { sim, core } = await cluster();
      const merge = lib.setHeaderOptions("Content-Type", lib.PatchStrategy.MergePatch);
      await core.patchNode({ name: "n1", body: { status: { nodeInfo: { bootID: "forged" } } } }, merge);
      assert.notEqual(sim.getNode("n1")?.status.nodeInfo.bootID, "forged");
    });

    it("refuses a PUT or a patch carrying a stale resourceVersion with 409 Conflict", async () => {
      const { core } = await cluster();
      const stale = await core.readNode({ name: "n1" });
      await core.patchNode({ name: "n1", body: [{ op: "add", path: "/metadata/labels/touched", value: "yes" }] });
      stale.spec = { ...stale.spec, unschedulable: true };
      const { code, body } = await failure(core.replaceNode({ name: "n1", body: stale }));
      assert.equal(code, 409);
      assert.equal(body.reason, "Conflict");
      assert.equal(
        body.message,
        'Operation cannot be fulfilled on nodes "n1": the object has been modified; please apply your changes to the latest version and try again',
      );
      const staleMerge = { metadata: { resourceVersion: stale.metadata?.resourceVersion }, spec: { unschedulable: true } };
      const merge = lib.setHeaderOptions("Content-Type", lib.PatchStrategy.MergePatch);
      assert.equal((await failure(core.patchNode({ name: "n1", body: staleMerge }, merge))).code, 409);
      const fresh = await core.readNode({ name: "n1" });
      fresh.spec = { ...fresh.spec, unschedulable: true };
      const replaced = await core.replaceNode({ name: "n1", body: fresh });
      assert.equal(replaced.spec?.unschedulable, true);
      assert.ok(Number(replaced.metadata?.resourceVersion) > Number(fresh.metadata?.resourceVersion));
    });

    it("answers 404 NotFound with the real message for a missing node", async () => {
      const { core } = await cluster();
      const { code, body } = await failure(core.readNode({ name: "ghost" }));
      assert.equal(code, 404);
      assert.equal(body.message, 'nodes "ghost" not found');
    });
  });

  describe("HTTP edges", () => {
    it("answers 401 Unauthorized without the admin bearer token, or with another one", async () => {
      const { sim } = await cluster();
      const none = await fetch(`${sim.url}/api/v1/nodes`);
      assert.equal(none.status, 401);
      assert.equal(((await none.json()) as { reason: string }).reason, "Unauthorized");
      const wrong = await fetch(`${sim.url}/api/v1/nodes`, { headers: { Authorization: "Bearer nope" } });
      assert.equal(wrong.status, 401);
    });

    it("answers 415 for a patch in an unknown content type, 404 for unknown paths and 405 for wrong methods", async () => {
      const { sim } = await cluster();
      const headers = { Authorization: `Bearer ${sim.adminToken}` };
      const patch = await fetch(`${sim.url}/api/v1/nodes/n1`, { method: "PATCH", headers: { ...headers, "Content-Type": "text/plain" }, body: "{}" });
      assert.equal(patch.status, 415);
      assert.equal(((await patch.json()) as { reason: string }).reason, "UnsupportedMediaType");
      const unknown = await fetch(`${sim.url}/api/v1/configmaps`, { headers });
      assert.equal(unknown.status, 404);
      const wrongMethod = await fetch(`${sim.url}/api/v1/nodes`, { method: "PUT", headers, body: "{}" });
      assert.equal(wrongMethod.status, 405);
      assert.equal(((await wrongMethod.json()) as { reason: string }).reason, "MethodNotAllowed");
    });

    it("answers 409 AlreadyExists when a pod is created twice", async () => {
      const { core } = await cluster();
      const body: k8s.V1Pod = { metadata: { name: "twice" }, spec: { containers: [{ name: "c", image: "pause" }], nodeName: "n1" } };
      const created = await core.createNamespacedPod({ namespace: "default", body });
      assert.equal(created.status?.phase, "Pending");
      const { code, body: status } = await failure(core.createNamespacedPod({ namespace: "default", body }));
      assert.equal(code, 409);
      assert.equal(status.reason, "AlreadyExists");
    });
  });

  describe("pod deletion", () => {
    it("deletes gracefully: the pod gets a deletionTimestamp first and disappears after terminating", async () => {
      const { sim, core } = await cluster({ terminationDelayMs: 100 });
      sim.addPod("default", "slow", { node: "n1" });
      const deleted = await core.deleteNamespacedPod({ name: "slow", namespace: "default" });
      assert.ok(deleted.metadata?.deletionTimestamp);
      assert.equal(deleted.metadata?.deletionGracePeriodSeconds, 30);
      assert.ok(sim.getPod("default", "slow")?.metadata.deletionTimestamp);
      await eventually(() => sim.getPod("default", "slow") === undefined, "the pod is gone");
    });

    it("deletes at once with gracePeriodSeconds 0", async () => {
      const { sim, core } = await cluster({ terminationDelayMs: 10_000 });
      sim.addPod("default", "quick", { node: "n1" });
      await core.deleteNamespacedPod({ name: "quick", namespace: "default", gracePeriodSeconds: 0 });
      assert.equal(sim.getPod("default", "quick"), undefined);
    });

    it("replaces a deleted ReplicaSet pod on another schedulable node, Pending first, then Running and Ready", async () => {
      const { sim, core } = await cluster({ podStartDelayMs: 100 });
      const { pods } = sim.addDeployment("default", "web", { replicas: 2, nodes: ["n1", "n2"] });
      const victim = pods.find((p) => p.spec.nodeName === "n1")!;
      await core.patchNode({ name: "n1", body: [{ op: "add", path: "/spec/unschedulable", value: true }] });
      await core.deleteNamespacedPod({ name: victim.metadata.name, namespace: "default" });
      const replacement = sim.pods({ namespace: "default" }).find((p) => !p.metadata.deletionTimestamp && p.metadata.name !== pods[1]!.metadata.name && p.metadata.name !== victim.metadata.name);
      assert.ok(replacement, "a replacement pod exists at once");
      assert.equal(replacement.spec.nodeName, "n2");
      assert.equal(replacement.status.phase, "Pending");
      await eventually(() => sim.getPod("default", replacement.metadata.name)?.status.phase === "Running", "the replacement runs");
      assert.equal(sim.getPod("default", replacement.metadata.name)?.status.conditions.find((c: { type: string }) => c.type === "Ready").status, "True");
    });

    it("gives a replacement pod another name when its generated name is taken, as the ReplicaSet controller retries a 409", async () => {
      const { sim } = await cluster();
      const random = Math.random;
      // The same draws at first (the ReplicaSet's hash, then two pods'): the second pod's name collides with the first's.
      let draws = 0;
      Math.random = () => (draws++ < 20 ? 0 : random());
      try {
        const { pods } = sim.addDeployment("default", "twin", { replicas: 2, nodes: ["n1", "n2"] });
        assert.equal(new Set(pods.map((p) => p.metadata.name)).size, 2);
        assert.ok(pods.some((p) => p.metadata.name.endsWith("-bbbbb")), pods.map((p) => p.metadata.name).join(" "));
      } finally {
        Math.random = random;
      }
    });

    it("keeps a replacement Pending while no node fits, and schedules it once one does", async () => {
      const { sim, core } = await cluster();
      const { pods } = sim.addDeployment("default", "pinned", { replicas: 1, nodes: ["n1"] });
      await core.patchNode({ name: "n1", body: [{ op: "add", path: "/spec/unschedulable", value: true }] });
      await core.deleteNamespacedPod({ name: pods[0]!.metadata.name, namespace: "default", gracePeriodSeconds: 0 });
      const [pending] = sim.pods({ namespace: "default" });
      assert.equal(pending?.spec.nodeName, undefined);
      assert.equal(pending?.status.phase, "Pending");
      await core.patchNode({ name: "n1", body: [{ op: "remove", path: "/spec/unschedulable" }] });
      await eventually(() => sim.getPod("default", pending!.metadata.name)?.status.phase === "Running", "the pod runs on n1");
      assert.equal(sim.getPod("default", pending!.metadata.name)?.spec.nodeName, "n1");
    });

    it("counts a PDB violation when a plain DELETE takes a budget below its desired healthy count", async () => {
      const { sim, core } = await cluster();
      const { pods } = sim.addDeployment("default", "db", { replicas: 2, pdb: { minAvailable: 2 } });
      await core.deleteNamespacedPod({ name: pods[0]!.metadata.name, namespace: "default" });
      assert.equal(sim.pdbViolations, 1);
    });
  });

  describe("eviction", () => {
    it("evicts a pod whose budget allows it: 201 Success, then the pod terminates and the budget is spent", async () => {
      const { sim, core } = await cluster();
      const { pods } = sim.addDeployment("default", "web", { replicas: 3, pdb: { maxUnavailable: 1 } });
      const victim = pods[0]!.metadata.name;
      const response = await core.createNamespacedPodEviction(eviction(victim));
      assert.equal(response.kind, "Status");
      assert.equal(sim.requestLog.at(-1)?.status, 201);
      assert.ok(sim.getPod("default", victim)?.metadata.deletionTimestamp);
      const [pdb] = sim.pdbs();
      assert.equal(pdb?.status.disruptionsAllowed, 0);
      assert.equal(pdb?.status.currentHealthy, 2);
      await eventually(() => sim.getPod("default", victim) === undefined, "the evicted pod is gone");
      assert.equal(sim.pdbViolations, 0);
    });

    it("answers 429 with the DisruptionBudget cause when the budget allows no disruption", async () => {
      const { sim, core } = await cluster();
      const { pods } = sim.addDeployment("default", "web", { replicas: 2, pdb: { minAvailable: 2 } });
      const { code, body, headers } = await failure(core.createNamespacedPodEviction(eviction(pods[0]!.metadata.name)));
      assert.equal(code, 429);
      assert.equal(body.reason, "TooManyRequests");
      assert.equal(body.message, "Cannot evict pod as it would violate the pod's disruption budget.");
      assert.deepEqual(body.details?.causes, [{ reason: "DisruptionBudget", message: "The disruption budget web needs 2 healthy pods and has 2 currently" }]);
      assert.equal(headers["retry-after"], undefined);
      assert.equal(sim.getPod("default", pods[0]!.metadata.name)?.metadata.deletionTimestamp, undefined);
    });

    it("advertises Retry-After on 429s when the sim is told to", async () => {
      const { sim, core } = await cluster({ evictionRetryAfterSeconds: 7 });
      const { pods } = sim.addDeployment("default", "web", { replicas: 1, pdb: { minAvailable: 1 } });
      const { headers, body } = await failure(core.createNamespacedPodEviction(eviction(pods[0]!.metadata.name)));
      assert.equal(headers["retry-after"], "7");
      assert.equal(body.details?.retryAfterSeconds, 7);
    });

    it("answers a bare 500, without a reason, when two budgets select the pod (as the captured kube-apiserver does)", async () => {
      const { sim, core } = await cluster();
      const { pods } = sim.addDeployment("default", "web", { replicas: 3, pdb: { maxUnavailable: 1 } });
      sim.addPdb("default", "also-web", { selector: { app: "web" }, maxUnavailable: 1 });
      const { code, body } = await failure(core.createNamespacedPodEviction(eviction(pods[0]!.metadata.name)));
      assert.equal(code, 500);
      assert.equal(body.reason, undefined);
      assert.equal(body.details, undefined);
      assert.equal(body.message, "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.");
    });

    it("answers 404 for a pod that does not exist", async () => {
      const { core } = await cluster();
      const { code, body } = await failure(core.createNamespacedPodEviction(eviction("ghost")));
      assert.equal(code, 404);
      assert.equal(body.message, 'pods "ghost" not found');
    });

    it("deletes a finished pod at once, whatever its budget says", async () => {
      const { sim, core } = await cluster();
      sim.addPdb("default", "strict", { selector: { app: "job" }, minAvailable: 5 });
      sim.addPod("default", "finished", { node: "n1", phase: "Failed", labels: { app: "job" } });
      await core.createNamespacedPodEviction(eviction("finished"));
      assert.equal(sim.getPod("default", "finished"), undefined, "finished pods are deleted at once");
    });
  });

  describe("PodDisruptionBudget status", () => {
    it("is recomputed as pods lose readiness and come back, rounding percentages up", async () => {
      const { sim, policy } = await cluster({ podStartDelayMs: 20 });
      sim.addDeployment("default", "web", { replicas: 3, pdb: { minAvailable: "50%" } });
      sim.addDeployment("default", "api", { replicas: 3, pdb: { maxUnavailable: "34%" } });
      const status = async (name: string) => (await policy.readNamespacedPodDisruptionBudget({ name, namespace: "default" })).status!;
      assert.deepEqual(
        (({ expectedPods, currentHealthy, desiredHealthy, disruptionsAllowed }) => ({ expectedPods, currentHealthy, desiredHealthy, disruptionsAllowed }))(await status("web")),
        { expectedPods: 3, currentHealthy: 3, desiredHealthy: 2, disruptionsAllowed: 1 },
      );
      assert.equal((await status("api")).desiredHealthy, 1);
      sim.setNodeReady("n1", false);
      const web = await status("web");
      assert.equal(web.currentHealthy, 2);
      assert.equal(web.disruptionsAllowed, 0);
      assert.equal(web.conditions?.find((c) => c.type === "DisruptionAllowed")?.reason, "InsufficientPods");
      sim.setNodeReady("n1", true);
      await eventually(() => sim.pdbs().find((p) => p.metadata.name === "web")?.status.currentHealthy === 3, "the budget recovers");
      assert.equal(sim.pdbViolations, 0, "losing readiness is not an API-allowed disruption");
    });

    it("lists budgets across namespaces", async () => {
      const { sim, policy } = await cluster();
      sim.addDeployment("a", "one", { replicas: 1, pdb: { minAvailable: 1 } });
      sim.addDeployment("b", "two", { replicas: 1, pdb: { minAvailable: 0 } });
      const list = await policy.listPodDisruptionBudgetForAllNamespaces();
      assert.deepEqual(list.items.map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`), ["a/one", "b/two"]);
    });
  });

  describe("TokenReview", () => {
    const review = (auth: k8s.AuthenticationV1Api, token: string, audiences?: string[]) =>
      auth.createTokenReview({ body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token, ...(audiences ? { audiences } : {}) } } });

    it("authenticates a bound service account token with its pod, not its node, in extra (as v1.24 does)", async () => {
      const { sim, auth } = await cluster();
      const pod = sim.addPod("kube-system", "agent-x", { node: "n2" });
      const token = sim.issueServiceAccountToken({ namespace: "kube-system", serviceAccount: "rollcall-agent", pod: "agent-x", audiences: ["rollcall"] });
      const { status } = await review(auth, token, ["rollcall", "other"]);
      assert.equal(status?.authenticated, true);
      assert.equal(status?.user?.username, "system:serviceaccount:kube-system:rollcall-agent");
      assert.match(status?.user?.uid ?? "", /^[0-9a-f-]{36}$/);
      assert.deepEqual(status?.user?.groups, ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]);
      assert.deepEqual(status?.user?.extra?.["authentication.kubernetes.io/pod-name"], ["agent-x"]);
      assert.deepEqual(status?.user?.extra?.["authentication.kubernetes.io/pod-uid"], [pod.metadata.uid]);
      assert.equal(status?.user?.extra?.["authentication.kubernetes.io/node-name"], undefined);
      assert.deepEqual(status?.audiences, ["rollcall"]);
    });

    it("rejects a token meant for other audiences", async () => {
      const { sim, auth } = await cluster();
      const token = sim.issueServiceAccountToken({ namespace: "ns", serviceAccount: "sa", audiences: ["elsewhere"] });
      const { status } = await review(auth, token, ["rollcall"]);
      assert.ok(!status?.authenticated);
      assert.equal(status?.error, '[invalid bearer token, token audiences ["elsewhere"] is invalid for the target audiences ["rollcall"]]');
    });

    it("rejects an expired token", async () => {
      const { sim, auth } = await cluster();
      const token = sim.issueServiceAccountToken({ namespace: "ns", serviceAccount: "sa", audiences: ["rollcall"], expiresInSeconds: 0 });
      const { status } = await review(auth, token, ["rollcall"]);
      assert.ok(!status?.authenticated);
      assert.equal(status?.error, "[invalid bearer token, service account token has expired]");
    });

    it("rejects a token whose pod has been deleted", async () => {
      const { sim, core, auth } = await cluster();
      sim.addPod("kube-system", "agent-y", { node: "n1" });
      const token = sim.issueServiceAccountToken({ namespace: "kube-system", serviceAccount: "sa", pod: "agent-y", audiences: ["rollcall"] });
      await core.deleteNamespacedPod({ name: "agent-y", namespace: "kube-system", gracePeriodSeconds: 0 });
      const { status } = await review(auth, token, ["rollcall"]);
      assert.ok(!status?.authenticated);
      assert.equal(status?.error, "[invalid bearer token, service account token has been invalidated]");
    });

    it("does not authenticate a string it never issued", async () => {
      const { auth } = await cluster();
      const { status } = await review(auth, "garbage", ["rollcall"]);
      assert.ok(!status?.authenticated);
    });
  });

  describe("nodes as the facade drives them", () => {
    it("reboots a node: NotReady, then Ready with a new boot id, its pods back to Ready", async () => {
      const { sim, core } = await cluster();
      sim.addDaemonSet("kube-system", "agent");
      const { pods } = sim.addDeployment("default", "web", { replicas: 3 });
      const onN1 = pods.find((p) => p.spec.nodeName === "n1")!;
      const oldBoot = sim.getNode("n1")?.status.nodeInfo.bootID;
      const rebooted = sim.rebootNode("n1", { downMs: 50 });
      const down = await core.readNode({ name: "n1" });
      assert.equal(down.status?.conditions?.find((c) => c.type === "Ready")?.reason, "KubeletNotReady");
      assert.equal(sim.getPod("default", onN1.metadata.name)?.status.conditions.find((c: { type: string }) => c.type === "Ready").status, "False");
      const newBoot = await rebooted;
      assert.notEqual(newBoot, oldBoot);
      assert.equal((await core.readNode({ name: "n1" })).status?.nodeInfo?.bootID, newBoot);
      await eventually(() => sim.pods({ node: "n1" }).every((p) => p.status.conditions.some((c: { type: string; status: string }) => c.type === "Ready" && c.status === "True")), "pods on n1 are Ready");
      assert.deepEqual(
        sim.nodeChanges.filter((c) => c.node === "n1" && c.change !== "added").map((c) => c.change),
        ["notReady", "ready", "rebooted"],
      );
      assert.equal(sim.maxNodesUnavailable, 1);
    });

    it("runs one DaemonSet pod per node and recreates it on its node after deletion", async () => {
      const { sim, core } = await cluster();
      sim.addDaemonSet("kube-system", "agent");
      const agents = sim.pods({ namespace: "kube-system" });
      assert.deepEqual(agents.map((p) => p.spec.nodeName).sort(), ["n1", "n2", "n3"]);
      assert.equal(agents[0]?.metadata.ownerReferences?.[0]?.kind, "DaemonSet");
      const onN2 = agents.find((p) => p.spec.nodeName === "n2")!;
      await core.deleteNamespacedPod({ name: onN2.metadata.name, namespace: "kube-system", gracePeriodSeconds: 0 });
      const again = sim.pods({ namespace: "kube-system", node: "n2" });
      assert.equal(again.length, 1);
      assert.notEqual(again[0]?.metadata.name, onN2.metadata.name);
    });

    it("drops the pods of a deleted node and reschedules ReplicaSet pods elsewhere", async () => {
      const { sim } = await cluster();
      sim.addDeployment("default", "web", { replicas: 3 });
      sim.deleteNode("n3");
      assert.equal(sim.pods({ node: "n3" }).length, 0);
      assert.equal(sim.pods({ namespace: "default" }).length, 3);
    });
  });
});

/**
 * Watches (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes):
 * the simulated API server streams them as kube-apiserver does, read here through client-node's own
 * `Watch`, and a drain or a wait for Ready is woken by them instead of waiting out its poll.
 */
interface Seen {
  type: string;
  name?: string;
  resourceVersion?: string;
  object: any;
}

/** Opens a watch through client-node and collects its events until `stop` or the server ends it. */
async function watch(config: k8s.KubeConfig, path: string, query: Record<string, string | number>): Promise<{ events: Seen[]; ended: Promise<void>; stop: () => void }> {
  const events: Seen[] = [];
  let ended!: () => void;
  const done = new Promise<void>((resolve) => (ended = resolve));
  const request = await new lib.Watch(config).watch(path, query, (type, object) => events.push({ type, name: object?.metadata?.name, resourceVersion: object?.metadata?.resourceVersion, object }), () => ended());
  return { events, ended: done, stop: () => request.abort() };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe("the simulated API server's watches", () => {
  it("start with an ADDED for every pod that matches, then stream the deletion: MODIFIED with its deletionTimestamp, DELETED at a newer resourceVersion", async () => {
    const { sim, config, core } = await cluster({ terminationDelayMs: 300 });
    const { pods } = sim.addDeployment("default", "web", { replicas: 2, nodes: ["n1"] });
    const w = await watch(config, "/api/v1/pods", { fieldSelector: "spec.nodeName=n1" });
    await eventually(() => w.events.length >= 2, "the synthetic ADDED events");
    assert.deepEqual(w.events.map((e) => e.type), ["ADDED", "ADDED"]);
    assert.deepEqual(w.events.map((e) => e.name).sort(), pods.map((p) => p.metadata.name).sort());
    assert.equal(w.events[0]!.object.kind, "Pod", "watch events carry their object's kind, unlike list items");

    const victim = pods[0]!.metadata.name;
    await core.deleteNamespacedPod({ name: victim, namespace: "default" });
    await eventually(() => w.events.some((e) => e.type === "DELETED"), "the DELETED event");
    const mine = w.events.filter((e) => e.name === victim);
    assert.deepEqual(mine.map((e) => e.type), ["ADDED", "MODIFIED", "DELETED"]);
    assert.ok(mine[1]!.object.metadata.deletionTimestamp, "the graceful deletion is a MODIFIED first");
    assert.ok(Number(mine[2]!.resourceVersion) > Number(mine[1]!.resourceVersion), "DELETED carries the resourceVersion of the deletion");
    w.stop();
  });

  it("replay every change after a resourceVersion, and answer one older than the kept history with an ERROR event carrying 410 Expired", async () => {
    const { sim, config, core } = await cluster({ watchHistory: 3 });
    const node = await core.readNode({ name: "n1" });
    const from = node.metadata!.resourceVersion!;
    await core.patchNode({ name: "n1", body: [{ op: "add", path: "/metadata/labels/first", value: "1" }] });
    const replayed = await watch(config, "/api/v1/nodes", { fieldSelector: "metadata.name=n1", resourceVersion: from });
    await eventually(() => replayed.events.length >= 1, "the replayed change");
    assert.deepEqual(
      replayed.events.map((e) => [e.type, e.object.metadata.labels.first]),
      [["MODIFIED", "1"]],
    );
    replayed.stop();

    for (let i = 0; i < 4; i++) sim.addNode(`filler-${i}`);
    const expired = await watch(config, "/api/v1/nodes", { fieldSelector: "metadata.name=n1", resourceVersion: from });
    await expired.ended;
    assert.equal(expired.events.length, 1);
    assert.equal(expired.events[0]!.type, "ERROR");
    assert.deepEqual([expired.events[0]!.object.code, expired.events[0]!.object.reason], [410, "Expired"]);
  });

  it("tell a watch with a label selector DELETED when an object stops matching it, and end the stream after timeoutSeconds", async () => {
    const { sim, config, core } = await cluster({ terminationDelayMs: 300 });
    const [pod] = sim.addDeployment("default", "api", { replicas: 1, nodes: ["n2"] }).pods;
    const w = await watch(config, "/api/v1/namespaces/default/pods", { labelSelector: "app=api", timeoutSeconds: 1 });
    await eventually(() => w.events.length === 1, "the synthetic ADDED");
    await core.patchNamespacedPod({ name: pod!.metadata.name, namespace: "default", body: [{ op: "replace", path: "/metadata/labels/app", value: "other" }] });
    await eventually(() => w.events.length === 2, "the DELETED of the pod that left the selection");
    assert.equal(w.events[1]!.type, "DELETED");
    await w.ended;
  });

  it("stop sending to a watch whose client went away", async () => {
    const { sim, config } = await cluster();
    const listeners = () => (sim as unknown as { store: { listeners: Set<unknown> } }).store.listeners.size;
    const before = listeners();
    const w = await watch(config, "/api/v1/nodes", {});
    await eventually(() => listeners() === before + 1, "the watch is subscribed");
    w.stop();
    await eventually(() => listeners() === before, "the watch is forgotten");
  });

  it("answer 400 for a resourceVersion this server never issued, before streaming", async () => {
    const { sim } = await cluster({ terminationDelayMs: 300 });
    const response = await fetch(`${sim.url}/api/v1/pods?watch=1&resourceVersion=abc`, { headers: { authorization: `Bearer ${sim.adminToken}` } });
    assert.equal(response.status, 400);
    assert.equal(((await response.json()) as { reason?: string }).reason, "BadRequest");
  });
});

describe("waits woken by watches", () => {
  // A poll that sleeps 10 s: a wait that ends well before is one a watch ended.
  const slowPoll = () => sleep(10_000);

  it("a drain returns as soon as its evicted pods are deleted, not at its next poll", async () => {
    const { sim, config } = await cluster({ terminationDelayMs: 300 });
    sim.addDeployment("default", "web", { replicas: 2, nodes: ["n1"], terminationGracePeriodSeconds: 30 });
    sim.setUnschedulable("n1", true);
    const api = new KubeClusterApi(lib, config, 5_000);
    const startedAt = Date.now();
    const pass = await drainFor(api, "n1", { deleteEmptyDirData: false, forceUnmanaged: false, skipWaitForDeleteMs: 0 }, {
      waitMs: 30_000,
      sleep: slowPoll,
      now: () => new Date(),
    });
    assert.equal(pass.kind, "done", JSON.stringify(pass));
    assert.ok(Date.now() - startedAt < 5_000, `the drain took ${Date.now() - startedAt} ms: it waited out its poll`);
    assert.ok(sim.requestLog.some((r) => r.path === "/api/v1/pods" && /watch=true/.test(r.query)), "the drain watched the node's pods");
  });

  it("a rebooted node's turn goes on as soon as the kubelet posts Ready, not at the next poll", async () => {
    const { sim, config } = await cluster({ terminationDelayMs: 300 });
    const api = new KubeClusterApi(lib, config, 5_000);
    const before = sim.getNode("n1")!.status.nodeInfo.bootID as string;
    const newBoot = await sim.rebootNode("n1", { downMs: 0, readyAfterBootMs: 300 });
    assert.equal((await api.getNode("n1"))?.ready, false, "the new boot id is posted NotReady first");
    const record: NodeRecord = { cluster: "c", node: "n1", state: "rebooted", since: new Date().toISOString(), why: "test", bootId: `agent-${newBoot}`, orderBootId: "agent-old", orderNodeBootId: before, rebootRequired: false, reasons: [] };
    const ports = {
      now: new Date(),
      policy: { concurrency: 1, ...policyBase } as Policy,
      kube: async () => api,
      waitMs: 30_000,
      sleep: slowPoll,
      clock: () => new Date(),
    } as unknown as StepPorts;
    const startedAt = Date.now();
    const result = await STEPS.rebooted(record, "e", ports);
    assert.deepEqual(result.kind === "move" && [result.to, result.set?.outcome], ["releasing", "completed"]);
    assert.ok(Date.now() - startedAt < 5_000, `the wait for Ready took ${Date.now() - startedAt} ms: it waited out its poll`);
  });

  it("the cluster client keeps its connections to the API server open between calls and while idle, over TLS as to AKS", async () => {
    const { sim } = await cluster();
    const front = await startTlsFront(sim.url);
    try {
      const kubeconfig = JSON.parse(sim.kubeconfig);
      kubeconfig.clusters[0].cluster = { server: front.url, "certificate-authority-data": Buffer.from(readFileSync(front.caFile)).toString("base64") };
      const config = new lib.KubeConfig();
      config.loadFromString(JSON.stringify(kubeconfig));
      const api = new KubeClusterApi(lib, config, 5_000);
      const before = sim.connections;
      for (let i = 0; i < 20; i++) await api.getNode("n1");
      await Promise.all([api.listNodes(), api.listPodsOnNode("n1"), api.listPodDisruptionBudgets()]);
      // client-node 1.4 alone builds a new https.Agent for every request: 23 connections, 23 TLS handshakes.
      assert.ok(sim.connections - before <= 3, `${sim.connections - before} connections for 23 calls`);
      // Idle past Node's own 5 s keep-alive: kube-apiserver keeps an idle connection 90 s (IdleTimeout
      // in k8s.io/apiserver's SecureServingInfo.Serve), the simulator too; a reused one is not refused.
      const opened = sim.connections;
      await new Promise((r) => setTimeout(r, 5_500));
      assert.ok(await api.getNode("n1"));
      assert.equal(sim.connections, opened, "the idle connection was reused");
    } finally {
      await front.stop();
    }
  });

  it("a feed is live once its watch is open, and never when the API server refuses the watch (an older ClusterRole) or cannot be reached", async () => {
    const { sim, config } = await cluster();
    const open = new KubeClusterApi(lib, config, 5_000).watchPodDeletions("n1");
    await eventually(() => open.live, "the watch is open");
    open.close();
    assert.equal(open.live, false);

    const refusedConfig = new lib.KubeConfig();
    refusedConfig.loadFromString(sim.kubeconfig.replace(sim.adminToken, "a-token-it-refuses"));
    const refused = new KubeClusterApi(lib, refusedConfig, 5_000).watchPodDeletions("n1");
    await eventually(() => sim.requestLog.some((r) => r.status === 401), "the refusal");
    await sleep(50);
    assert.equal(refused.live, false, "its wait keeps the 100 ms poll");
    refused.close();

    const api = new KubeClusterApi(lib, config, 5_000);
    await sim.stop();
    const unreachable = api.watchNode("n1", "1");
    const startedAt = Date.now();
    await unreachable.next(sleep(200));
    unreachable.close();
    assert.ok(Date.now() - startedAt >= 190, "nothing woke it early");
  });
});
