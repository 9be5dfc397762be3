import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { BLIND_RETRY_MS, classifyPod, DRAIN_POLL_MS, drainFor, drainPass, type DrainOptions } from "../../shared/drain/drainer";
import type { KubePod } from "../../shared/kube/clusterApi";
import { FakeClusterApi } from "../support/fakeClusterApi";
import { runningPod } from "../support/fixtures";

const options: DrainOptions = { deleteEmptyDirData: false, forceUnmanaged: false, skipWaitForDeleteMs: 0 };
const pod = runningPod;
const now = new Date("2026-11-24T10:00:00Z");

describe("classifying pods like kubectl drain", () => {
  it("skips DaemonSet pods, mirror pods and finished pods", () => {
    assert.equal(classifyPod(pod({ controllerKinds: ["DaemonSet"] }), options).action, "skip");
    assert.equal(classifyPod(pod({ mirror: true, controllerKinds: [] }), options).action, "skip");
    assert.equal(classifyPod(pod({ phase: "Succeeded" }), options).action, "skip");
    assert.equal(classifyPod(pod({ phase: "Failed", controllerKinds: [] }), options).action, "skip");
  });

  it("refuses unmanaged pods unless forced", () => {
    assert.equal(classifyPod(pod({ controllerKinds: [] }), options).action, "refuse");
    assert.equal(classifyPod(pod({ controllerKinds: [] }), { ...options, forceUnmanaged: true }).action, "evict");
  });

  it("refuses pods with emptyDir data unless allowed to delete it", () => {
    assert.equal(classifyPod(pod({ usesEmptyDir: true }), options).action, "refuse");
    assert.equal(classifyPod(pod({ usesEmptyDir: true }), { ...options, deleteEmptyDirData: true }).action, "evict");
  });

  it("leaves pods that the drain pod filter excludes", () => {
    const filtered = { ...options, podFilter: (p: KubePod) => p.labels.app === "web" };
    assert.equal(classifyPod(pod({ labels: { app: "db" } }), filtered).action, "skip");
    assert.equal(classifyPod(pod({ labels: { app: "web" } }), filtered).action, "evict");
  });
});

describe("one drain pass", () => {
  it("is done at once on a node with only DaemonSet pods", async () => {
    const api = new FakeClusterApi();
    api.addPod("n1", "ds", { controllerKinds: ["DaemonSet"] });
    assert.deepEqual(await drainPass(api, "n1", options, now), { kind: "done", evicted: 0 });
    assert.deepEqual(api.evictions, []);
  });

  it("evicts pods and then waits for them to terminate before it is done", async () => {
    const api = new FakeClusterApi();
    api.addPod("n1", "a");
    api.addPod("n1", "b");
    const first = await drainPass(api, "n1", options, now);
    assert.equal(first.kind, "waiting");
    assert.deepEqual(api.evictions.sort(), ["default/a", "default/b"]);
    const second = await drainPass(api, "n1", options, now);
    assert.equal(second.kind, "waiting");
    assert.equal(api.evictions.length, 2, "terminating pods are not evicted again");
    api.reapTerminated();
    assert.deepEqual(await drainPass(api, "n1", options, now), { kind: "done", evicted: 0 });
  });

  it("names the pod and PodDisruptionBudget that block it and honours Retry-After", async () => {
    const api = new FakeClusterApi();
    api.addPod("n1", "db-0");
    api.evictionScript.set("default/db-0", [
      { kind: "blocked", pdb: "db-pdb", message: "The disruption budget db-pdb needs 2 healthy pods and has 2 currently", retryAfterSeconds: 17 },
    ]);
    const pass = await drainPass(api, "n1", options, now);
    assert.equal(pass.kind, "waiting");
    if (pass.kind !== "waiting") return;
    assert.match(pass.blocker, /default\/db-0/);
    assert.match(pass.blocker, /PodDisruptionBudget default\/db-pdb/);
    assert.equal(pass.retryAfterMs, 17_000);
  });

  it("retries a budget's refusal without Retry-After after kubectl's fixed 5 s, not an exponential back-off", async () => {
    const api = new FakeClusterApi();
    api.addPod("n1", "db-0");
    api.evictionScript.set("default/db-0", [{ kind: "blocked", pdb: "db", message: "budget" }]);
    const pass = await drainPass(api, "n1", options, now);
    assert.equal(pass.kind === "waiting" && pass.retryAfterMs, 5_000);
    assert.equal(BLIND_RETRY_MS, 5_000);
    assert.deepEqual(pass.kind === "waiting" && [pass.pdbs, pass.serverRetryAfter], [["default/db"], false]);
  });

  it("reports a pod selected by several PDBs as a configuration error", async () => {
    const api = new FakeClusterApi();
    api.addPod("n1", "web-1");
    api.evictionScript.set("default/web-1", [{ kind: "misconfigured", message: "This pod has more than one PodDisruptionBudget" }]);
    const pass = await drainPass(api, "n1", options, now);
    assert.equal(pass.kind, "refused");
    assert.match(pass.kind === "refused" ? pass.reason : "", /more than one PodDisruptionBudget/);
  });

  it("refuses without evicting anything when an unmanaged pod is present", async () => {
    const api = new FakeClusterApi();
    api.addPod("n1", "web-1");
    api.addPod("n1", "bare", { controllerKinds: [] });
    const pass = await drainPass(api, "n1", options, now);
    assert.equal(pass.kind, "refused");
    assert.deepEqual(api.evictions, []);
  });

  it("counts a pod terminating past the skip-wait-for-delete timeout as gone", async () => {
    const api = new FakeClusterApi();
    api.addPod("n1", "slow", { deletionTimestamp: new Date(now.getTime() - 60_000) });
    assert.equal((await drainPass(api, "n1", options, now)).kind, "waiting");
    assert.equal((await drainPass(api, "n1", { ...options, skipWaitForDeleteMs: 30_000 }, now)).kind, "done");
  });

  it("treats a pod that vanished before its eviction as evicted", async () => {
    const api = new FakeClusterApi();
    api.addPod("n1", "web-1");
    api.evictionScript.set("default/web-1", [{ kind: "gone" }]);
    assert.deepEqual(await drainPass(api, "n1", options, now), { kind: "done", evicted: 0 });
  });
});

describe("a drain within one invocation", () => {
  const wait = (api: FakeClusterApi, waitMs: number, onSleep: (n: number) => void = () => {}) => {
    let sleeps = 0;
    return { waitMs, now: () => now, sleep: async () => onSleep(++sleeps), sleeps: () => sleeps };
  };

  it("is done as soon as the evicted pods terminated, inside its bounded wait", async () => {
    const api = new FakeClusterApi();
    api.addPod("n1", "a");
    const w = wait(api, 3_000, (n) => n === 3 && api.reapTerminated());
    assert.deepEqual(await drainFor(api, "n1", options, w), { kind: "done", evicted: 0 });
    assert.equal(w.sleeps(), 3);
  });

  it("stops waiting when its bound is spent and reports what is left", async () => {
    const api = new FakeClusterApi();
    api.addPod("n1", "a");
    const w = wait(api, 1_000);
    const pass = await drainFor(api, "n1", options, w);
    assert.equal(pass.kind, "waiting");
    assert.equal(w.sleeps(), 1_000 / DRAIN_POLL_MS, "1 s of looks, then it answers");
  });

  it("evicts again the moment a re-read budget allows a disruption (two pods of one app on the node)", async () => {
    const api = new FakeClusterApi();
    api.addPod("n1", "web-1");
    api.addPod("n1", "web-2");
    const pdb = api.addPdb("default", "web", {}, { disruptionsAllowed: 0 });
    api.evictionScript.set("default/web-2", [{ kind: "blocked", pdb: "web", message: "The disruption budget web needs 1 healthy pods and has 1 currently" }, { kind: "evicted" }]);
    const w = wait(api, 3_000, (n) => {
      if (n === 2) pdb.disruptionsAllowed = 1;
      if (n === 4) api.reapTerminated();
    });
    assert.deepEqual(await drainFor(api, "n1", options, w), { kind: "done", evicted: 0 });
    assert.deepEqual(api.evictions.sort(), ["default/web-1", "default/web-2", "default/web-2"]);
    assert.ok(api.pdbReads >= 2, "the budget was read again, not waited out blindly");
  });

  it("re-reads the node at most once a second while evicted pods terminate, and before every retry of refused evictions", async () => {
    const api = new FakeClusterApi();
    api.addPod("n1", "a");
    let checks = 0;
    const terminating = { ...wait(api, 3_000, (n) => n === 25 && api.reapTerminated()), stillHeld: async () => (checks++, true) };
    assert.equal((await drainFor(api, "n1", options, terminating)).kind, "done");
    assert.equal(checks, 2, "after 1 s and 2 s of 2.5 s of terminating");

    const refused = new FakeClusterApi();
    refused.addPod("n1", "web-1");
    refused.addPod("n1", "web-2");
    refused.addPdb("default", "web", {}, { disruptionsAllowed: 1 });
    refused.evictionScript.set("default/web-2", [{ kind: "blocked", pdb: "web", message: "The disruption budget web needs 1 healthy pods and has 1 currently" }]);
    // An administrator uncordoned the node while the budget refused web-2.
    const uncordoned = { ...wait(refused, 3_000), stillHeld: async () => false };
    await drainFor(refused, "n1", options, uncordoned);
    assert.deepEqual(refused.evictions.sort(), ["default/web-1", "default/web-2"], "no eviction once the node was no longer held");
  });

  it("does not evict again before a Retry-After the server sent", async () => {
    const api = new FakeClusterApi();
    api.addPod("n1", "db-0");
    api.addPdb("default", "db", {}, { disruptionsAllowed: 1 });
    api.evictionScript.set("default/db-0", [{ kind: "blocked", pdb: "db", message: "still being processed", retryAfterSeconds: 10 }]);
    const w = wait(api, 3_000);
    const pass = await drainFor(api, "n1", options, w);
    assert.deepEqual(pass.kind === "waiting" && [pass.retryAfterMs, pass.serverRetryAfter], [10_000, true]);
    assert.equal(api.evictions.length, 1);
    assert.equal(w.sleeps(), 0);
  });
});
