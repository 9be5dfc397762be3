import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  applyPendingTaint,
  postRebootLabels,
  preRebootLabels,
  delayBeforeRebootReason,
  drainFailureDecision,
  onDrainTimeout,
  rebootLoopReason,
  sentinelSurvivedReason,
} from "../../shared/policy/lifecycle";
import { withPolicyDefaults, type Policy } from "../../shared/policy/policy";
import type { NodeRecord } from "../../shared/node/nodeRecord";
import { FakeClusterApi } from "../support/fakeClusterApi";
import { policyBase } from "../support/fixtures";

const MIN = 60_000;
const now = new Date("2026-11-24T03:00:00Z");
const policy = (overrides: Partial<Policy> = {}): Policy =>
  withPolicyDefaults({
    concurrency: 1,
    ...policyBase,
    ...overrides,
  });

describe("policy decisions in the lifecycle", () => {
  it("taints a waiting node PreferNoSchedule and removes the taint when it is done", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("n1", { taints: [{ key: "other", effect: "NoSchedule" }] });
    const p = policy({ preferNoScheduleTaint: { enabled: true, key: "rollcall.io/reboot-pending" } });
    await applyPendingTaint(kube, p, "n1", true);
    await applyPendingTaint(kube, p, "n1", true);
    assert.deepEqual(kube.nodes.get("n1")!.taints, [{ key: "other", effect: "NoSchedule" }, { key: "rollcall.io/reboot-pending", effect: "PreferNoSchedule" }]);
    await applyPendingTaint(kube, p, "n1", false);
    assert.deepEqual(kube.nodes.get("n1")!.taints, [{ key: "other", effect: "NoSchedule" }]);
  });

  it("does not taint when the option is off", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("n1");
    await applyPendingTaint(kube, policy(), "n1", true);
    assert.equal(kube.nodes.get("n1")!.taints, undefined);
  });

  it("swaps pre-reboot labels for post-reboot labels", async () => {
    const kube = new FakeClusterApi();
    kube.addNode("n1", { labels: { keep: "me" } });
    const p = policy({ nodeLabels: { preReboot: { "rollcall.io/rebooting": "true" }, postReboot: { "rollcall.io/rebooted": "true" } } });
    await kube.updateNode((await kube.getNode("n1"))!, { labels: preRebootLabels(p) });
    assert.deepEqual(kube.nodes.get("n1")!.labels, { keep: "me", "rollcall.io/rebooting": "true" });
    await kube.updateNode((await kube.getNode("n1"))!, { labels: postRebootLabels(p) });
    assert.deepEqual(kube.nodes.get("n1")!.labels, { keep: "me", "rollcall.io/rebooted": "true" });
  });

  it("backs off a failed drain exponentially up to the maximum", () => {
    const p = policy();
    const delays = [1, 2, 3, 4, 5].map((n) => {
      const d = drainFailureDecision(p, n, now);
      return d.action === "retry" ? (d.retryAt.getTime() - now.getTime()) / MIN : -1;
    });
    assert.deepEqual(delays, [30, 60, 120, 240, 240]);
  });

  it("quarantines a failed drain when the policy says so, and forces the reboot after the deadline", () => {
    assert.equal(drainFailureDecision(policy({ drainFailure: { mode: "quarantine", label: "rollcall.io/quarantined" } }), 1, now).action, "quarantine");
    const force = policy({ drainFailure: { mode: "force-after", deadlineMs: 60 * MIN } });
    const first = new Date(now.getTime() - 30 * MIN);
    assert.equal(drainFailureDecision(force, 2, now, first).action, "retry");
    assert.equal(drainFailureDecision(force, 3, new Date(now.getTime() + 31 * MIN), first).action, "force-reboot");
  });

  it("quarantines at once when the sentinel survives a confirmed reboot, unless an operator asked", () => {
    const node = { rebootRequired: true, reasons: ["kernel"] } as Pick<NodeRecord, "rebootRequired" | "reasons" | "request">;
    assert.match(sentinelSurvivedReason(node) ?? "", /sentinel is still present after a confirmed reboot \(kernel\)/);
    assert.equal(sentinelSurvivedReason({ ...node, rebootRequired: false }), undefined);
    const request = { id: "r", reason: "x", requestedBy: "alice", requestedAt: now.toISOString(), mode: "reboot", priority: 0 } as const;
    assert.equal(sentinelSurvivedReason({ ...node, request }), undefined);
  });

  it("holds a node that asks again after the allowed reboots in a row, each within a day of the one before", () => {
    const recently = { consecutiveReboots: 3, lastRebootAt: new Date(now.getTime() - 60 * MIN).toISOString() };
    assert.match(rebootLoopReason(policy(), recently, now) ?? "", /after 3 reboots in a row.*maxConsecutiveReboots is 3/);
    assert.equal(rebootLoopReason(policy(), { ...recently, consecutiveReboots: 2 }, now), undefined);
    assert.equal(rebootLoopReason(policy(), recently, new Date(now.getTime() + 24 * 60 * MIN)), undefined, "a day later the chain is broken");
  });

  it("waits the delay before the reboot order, and forces a reboot after a drain timeout only when opted in", () => {
    const p = policy({ drain: { ...policy().drain, delayBeforeRebootMs: 60_000, forceRebootAfterTimeout: true } });
    assert.match(delayBeforeRebootReason(p, new Date(now.getTime() - 20_000), now) ?? "", /waiting 40 s more/);
    assert.equal(delayBeforeRebootReason(p, new Date(now.getTime() - 60_000), now), undefined);
    assert.equal(onDrainTimeout(p), "force-reboot");
    assert.equal(onDrainTimeout(policy()), "drain-failed");
  });
});
