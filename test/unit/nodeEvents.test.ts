import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { nodeAnnotations } from "../../shared/kube/clusterApi";
import { readOnlyClusterApi } from "../../shared/kube/readOnly";
import type { NodeRecord } from "../../shared/node/nodeRecord";
import { EVENT_REASONS, tellNode, transitionEvent } from "../../shared/orchestrator/nodeEvents";
import { FakeClusterApi } from "../support/fakeClusterApi";

const record = (overrides: Partial<NodeRecord>): NodeRecord => ({ cluster: "c", node: "n1", state: "idle", since: "", why: "because", rebootRequired: true, reasons: [], ...overrides });

function logger() {
  const warnings: string[] = [];
  return { warnings, log: { info() {}, warn: (...args: unknown[]) => warnings.push(args.join(" ")), error() {} } };
}

describe("node events", () => {
  it("names each transition with a reason from the documented list, Warning where an operator may have to act", () => {
    const cases: [NodeRecord["state"], Partial<NodeRecord>, string | undefined, string | undefined][] = [
      ["idle", { state: "pending" }, "RollcallPending", "Normal"],
      ["drain-failed", { state: "pending" }, "RollcallRetry", "Normal"],
      ["pending", { state: "cordoning" }, "RollcallLockAcquired", "Normal"],
      ["cordoning", { state: "draining" }, "RollcallCordon", "Normal"],
      ["draining", { state: "reboot-ordered" }, "RollcallRebootOrdered", "Normal"],
      ["reboot-ordered", { state: "rebooted" }, "RollcallRebooted", "Normal"],
      ["rebooted", { state: "releasing", outcome: "completed" }, "RollcallRebootConfirmed", "Normal"],
      ["reboot-ordered", { state: "stuck" }, "RollcallStuck", "Warning"],
      ["releasing", { state: "drain-failed" }, "RollcallDrainFailed", "Warning"],
      ["releasing", { state: "quarantined" }, "RollcallQuarantined", "Warning"],
      ["draining", { state: "releasing", outcome: "interrupted" }, "RollcallInterrupted", "Warning"],
      ["pending", { state: "idle" }, "RollcallCancelled", "Normal"],
      // The releasing step itself tells whether it uncordoned the node.
      ["releasing", { state: "idle" }, undefined, undefined],
      ["draining", { state: "releasing", outcome: "node-deleted" }, undefined, undefined],
    ];
    for (const [from, next, reason, type] of cases) {
      const event = transitionEvent(from, record(next));
      assert.equal(event?.reason, reason, `${from} → ${next.state}`);
      assert.equal(event?.type, type, `${from} → ${next.state}`);
      if (event) assert.ok((EVENT_REASONS as readonly string[]).includes(event.reason));
    }
  });

  it("documents exactly the reasons it writes, the steps' own included", () => {
    const repo = path.resolve(__dirname, "../..");
    const section = readFileSync(path.join(repo, "docs/monitoring.md"), "utf8").split("## Kubernetes Events")[1]!.split("\n## ")[0]!;
    const documented = [...section.matchAll(/^\| `(Rollcall\w+)` \|/gm)].map((m) => m[1]);
    assert.deepEqual(documented, [...EVENT_REASONS]);
    const stepReasons = [...readFileSync(path.join(repo, "shared/node/stateMachine.ts"), "utf8").matchAll(/reason: "(Rollcall\w+)"/g)].map((m) => m[1]!);
    assert.ok(stepReasons.length >= 2 && stepReasons.every((r) => (EVENT_REASONS as readonly string[]).includes(r)), stepReasons.join(", "));
  });

  it("never fails a transition when the Event cannot be written: it logs and moves on", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("n1", { annotations: { [nodeAnnotations.state]: "draining" } });
    kube.failures.set("recordEvent", new Error("events is forbidden"));
    const { log, warnings } = logger();
    await tellNode(async () => kube, "draining", record({ state: "reboot-ordered", why: "drained; reboot ordered" }), log);
    assert.match(warnings.join("\n"), /node event not written .*events is forbidden/);
    assert.equal(kube.nodes.get("n1")!.annotations[nodeAnnotations.state], "reboot-ordered", "the annotation was still written");
  });

  it("does not hold the check-in's answer past its budget for an Event write that hangs", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("n1");
    kube.recordEvent = () => new Promise(() => undefined);
    const started = Date.now();
    await tellNode(async () => kube, "draining", record({ state: "reboot-ordered" }), logger().log);
    assert.ok(Date.now() - started < 3_000, `answered after ${Date.now() - started} ms`);
  });

  it("writes the step's own event before the transition's, on the node object of this lease only", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("n1");
    const { log } = logger();
    const told = { type: "Normal" as const, reason: "RollcallUncordon", message: "uncordoned: back-off" };
    await tellNode(async () => kube, "releasing", record({ state: "drain-failed", why: "drain timed out" }), log, told);
    assert.deepEqual(kube.events.map((e) => e.reason), ["RollcallUncordon", "RollcallDrainFailed"]);
    await tellNode(async () => kube, "reboot-ordered", record({ state: "stuck", nodeUid: "uid-of-another-machine" }), log);
    assert.equal(kube.events.length, 2, "nothing on a node object re-created under the name");
  });

  it("names a lease's node by the uid the lease recorded, without reading the node, where only an Event is written", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("n1");
    let reads = 0;
    const getNode = kube.getNode.bind(kube);
    kube.getNode = (name) => (reads++, getNode(name));
    await tellNode(async () => kube, "cordoning", record({ state: "draining", nodeUid: "uid-of-the-lease" }), logger().log);
    assert.equal(reads, 0);
    assert.deepEqual([kube.events.at(-1)?.reason, kube.events.at(-1)?.node.uid], ["RollcallCordon", "uid-of-the-lease"]);
    await tellNode(async () => kube, "idle", record({ state: "pending" }), logger().log);
    assert.equal(reads, 1, "no lease, no uid recorded: the node is read for it");
  });

  it("shadow mode's cluster refuses every write and answers every read", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("n1");
    const shadow = readOnlyClusterApi(kube);
    assert.equal((await shadow.getNode("n1"))?.name, "n1");
    assert.deepEqual(await shadow.listNodeNames(), ["n1"]);
    const node = (await shadow.getNode("n1"))!;
    await assert.rejects(shadow.updateNode(node, { unschedulable: true }), /shadow mode writes nothing to the cluster \(updateNode refused\)/);
    await assert.rejects(shadow.evictPod({ namespace: "a", name: "b" }), /evictPod refused/);
    await assert.rejects(shadow.setTaint("n1", "k", { effect: "PreferNoSchedule" }), /setTaint refused/);
    await assert.rejects(shadow.recordEvent({ node, type: "Normal", reason: "R", message: "m" }), /recordEvent refused/);
    assert.equal(kube.nodes.get("n1")!.unschedulable, false);
    assert.deepEqual(kube.events, []);
  });
});
