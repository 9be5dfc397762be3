import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ClusterFacts, PoolFacts } from "../../shared/upgrade/armFacts";
import { defaultPolicy, planUpgrade, type UpgradePolicy } from "../../shared/upgrade/planner";

const now = new Date("2026-03-02T12:00:00Z");

const pool = (name: string, version: string, extra: Partial<PoolFacts> = {}): PoolFacts => ({
  name,
  mode: "User",
  currentOrchestratorVersion: version,
  orchestratorVersion: version,
  nodeImageVersion: "AKSUbuntu-2204gen2containerd-202602.10.0",
  latestNodeImageVersion: "AKSUbuntu-2204gen2containerd-202602.10.0",
  upgradeSettings: { maxSurge: "10%" },
  ...extra,
});

const catalogue = [
  { version: "1.29", isPreview: false, isDefault: false, supportPlan: ["KubernetesOfficial", "AKSLongTermSupport"], patches: ["1.29.7", "1.29.9"] },
  { version: "1.30", isPreview: false, isDefault: false, supportPlan: ["KubernetesOfficial"], patches: ["1.30.4", "1.30.6"] },
  { version: "1.31", isPreview: false, isDefault: true, supportPlan: ["KubernetesOfficial"], patches: ["1.31.1", "1.31.3"] },
  { version: "1.32", isPreview: false, isDefault: false, supportPlan: ["KubernetesOfficial"], patches: ["1.32.0", "1.32.2"] },
  { version: "1.33", isPreview: true, isDefault: false, supportPlan: ["KubernetesOfficial"], patches: ["1.33.0"] },
];

const facts = (extra: Partial<ClusterFacts> = {}): ClusterFacts => ({
  cluster: "prod",
  resourceId: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/prod",
  location: "westeurope",
  currentKubernetesVersion: "1.29.7",
  kubernetesVersion: "1.29",
  provisioningState: "Succeeded",
  powerState: "Running",
  nodeOSUpgradeChannel: "Unmanaged",
  controlPlaneUpgrades: [],
  availableVersions: catalogue,
  pools: [pool("system", "1.29.7", { mode: "System" }), pool("user", "1.29.7")],
  maintenance: {},
  pdbs: { checked: true, blocking: [] },
  readAt: now.toISOString(),
  ...extra,
});

const policy = (extra: Partial<UpgradePolicy> = {}): UpgradePolicy => ({ ...defaultPolicy, ...extra });
const ids = (f: ClusterFacts, p = policy()) => planUpgrade(f, p, now).steps.map((s) => s.id);

describe("upgrade planner", () => {
  it("takes a cluster two minors behind through the latest patch, then one minor at a time, then the pools", () => {
    // stable = latest patch of N-1 where N = 1.32 (1.33 is preview).
    assert.deepEqual(ids(facts()), [
      "controlPlane:1.29.9",
      "controlPlane:1.30.6",
      "controlPlane:1.31.3",
      "poolVersion:system:1.31.3",
      "poolVersion:user:1.31.3",
    ]);
  });

  it("compares currentKubernetesVersion, not the kubernetesVersion alias", () => {
    const plan = planUpgrade(facts({ currentKubernetesVersion: "1.31.3", kubernetesVersion: "1.31", pools: [pool("user", "1.31.3")] }), policy(), now);
    assert.deepEqual(plan.steps, []);
    assert.match(plan.summary[0]!, /up to date/);
  });

  it("never plans a preview version unless preview is allowed", () => {
    const f = facts({ currentKubernetesVersion: "1.32.2", pools: [pool("user", "1.32.2")] });
    assert.deepEqual(ids(f, policy({ channel: "rapid" })), []);
    assert.deepEqual(ids(f, policy({ channel: "rapid", allowPreview: true })), ["controlPlane:1.33.0", "poolVersion:user:1.33.0"]);
  });

  it("skips preview patches flagged in the upgrade profile", () => {
    const f = facts({
      currentKubernetesVersion: "1.32.0",
      pools: [pool("user", "1.32.0")],
      controlPlaneUpgrades: [{ kubernetesVersion: "1.32.2", isPreview: true }],
    });
    assert.deepEqual(ids(f, policy({ channel: "patch" })), []);
  });

  it("stays within the patch channel and the configured target", () => {
    assert.deepEqual(ids(facts(), policy({ channel: "patch" })), ["controlPlane:1.29.9", "poolVersion:system:1.29.9", "poolVersion:user:1.29.9"]);
    assert.deepEqual(ids(facts({ pools: [pool("user", "1.29.7")] }), policy({ channel: "rapid", target: "1.30.4" })), [
      "controlPlane:1.29.9",
      "controlPlane:1.30.4",
      "poolVersion:user:1.30.4",
    ]);
  });

  it("never skips a minor AKS does not offer", () => {
    const plan = planUpgrade(facts({ availableVersions: catalogue.filter((m) => m.version !== "1.30"), pools: [] }), policy({ channel: "rapid" }), now);
    assert.deepEqual(plan.steps.map((s) => s.id), ["controlPlane:1.29.9"]);
    assert.ok(plan.warnings.some((w) => /minor 1\.30 is not offered/.test(w)));
  });

  it("upgrades a pool that would fall more than three minors behind before the control plane moves on", () => {
    const f = facts({ currentKubernetesVersion: "1.30.6", pools: [pool("old", "1.28.5"), pool("user", "1.30.6")] });
    assert.deepEqual(ids(f, policy({ channel: "rapid" })), [
      "controlPlane:1.31.3",
      "poolVersion:old:1.31.3",
      "controlPlane:1.32.2",
      "poolVersion:old:1.32.2",
      "poolVersion:user:1.32.2",
    ]);
  });

  it("plans nothing for a pool already at the target and never moves a pool ahead of the control plane", () => {
    const f = facts({ currentKubernetesVersion: "1.31.1", pools: [pool("done", "1.31.3"), pool("user", "1.31.1")] });
    const plan = planUpgrade(f, policy(), now);
    assert.deepEqual(plan.steps.map((s) => s.id), ["controlPlane:1.31.3", "poolVersion:user:1.31.3"]);
    assert.ok(plan.warnings.some((w) => /Pool done .* ahead of the control plane/.test(w)));
  });

  it("plans only a node image upgrade when versions are current and the image is old", () => {
    const f = facts({
      currentKubernetesVersion: "1.31.3",
      pools: [pool("user", "1.31.3", { nodeImageVersion: "AKSUbuntu-2204gen2containerd-202601.05.0" }), pool("system", "1.31.3")],
    });
    const plan = planUpgrade(f, policy(), now);
    assert.deepEqual(plan.steps.map((s) => [s.id, s.from, s.to]), [
      ["nodeImage:user", "AKSUbuntu-2204gen2containerd-202601.05.0", "AKSUbuntu-2204gen2containerd-202602.10.0"],
    ]);
  });

  it("leaves node images to AKS on the NodeImage channel and says Rollcall's reboots are mostly redundant", () => {
    const f = facts({
      currentKubernetesVersion: "1.31.3",
      nodeOSUpgradeChannel: "NodeImage",
      pools: [pool("user", "1.31.3", { nodeImageVersion: "AKSUbuntu-2204gen2containerd-202601.05.0" })],
    });
    const plan = planUpgrade(f, policy(), now);
    assert.deepEqual(plan.steps, []);
    assert.equal(plan.nodeOsChannel.rollcallNeeded, false);
    assert.ok(plan.summary.some((l) => /mostly redundant/.test(l)));
  });

  it("reports no upgrade available when AKS offers nothing newer", () => {
    const f = facts({ currentKubernetesVersion: "1.32.2", pools: [pool("user", "1.32.2")], availableVersions: catalogue.slice(0, 4) });
    const plan = planUpgrade(f, policy({ channel: "rapid" }), now);
    assert.deepEqual(plan.steps, []);
    assert.equal(plan.controlPlane.target, "1.32.2");
  });

  it("warns about a version out of support and one about to leave it", () => {
    const out = planUpgrade(facts({ currentKubernetesVersion: "1.28.9", pools: [] }), policy(), now);
    assert.ok(out.warnings.some((w) => /1\.28\.9 is out of support/.test(w)));
    const oldest = planUpgrade(facts(), policy(), now);
    assert.ok(oldest.warnings.some((w) => /oldest minor AKS still supports/.test(w)));
  });

  it("blocks apply mode for a cluster on an AKS auto-upgrade channel or not in Succeeded state", () => {
    const managed = planUpgrade(facts({ upgradeChannel: "stable" }), policy({ apply: true }), now);
    assert.match(managed.applyBlocked ?? "", /auto-upgrade channel stable/);
    const failed = planUpgrade(facts({ provisioningState: "Failed" }), policy({ apply: true }), now);
    assert.match(failed.applyBlocked ?? "", /provisioning state Failed/);
    assert.equal(planUpgrade(facts(), policy({ apply: true }), now).applyBlocked, undefined);
  });

  it("warns when a pool's drain will meet PodDisruptionBudgets that allow no disruption", () => {
    const plan = planUpgrade(facts({ pdbs: { checked: true, blocking: [{ namespace: "db", name: "postgres" }] } }), policy(), now);
    assert.ok(plan.warnings.some((w) => /Pool user: .*drainTimeoutInMinutes 30 \(default\).*db\/postgres/.test(w)));
  });

  it("places each version step in the next occurrence of the auto-upgrade window, one per occurrence", () => {
    const f = facts({
      pools: [pool("user", "1.29.9")],
      currentKubernetesVersion: "1.29.9",
      maintenance: {
        autoUpgrade: {
          kind: "window",
          name: "aksManagedAutoUpgradeSchedule",
          window: { schedule: { weekly: { intervalWeeks: 1, dayOfWeek: "Saturday" } }, durationHours: 6, utcOffset: "+01:00", startTime: "22:00", notAllowedDates: [{ start: "2026-03-14", end: "2026-03-14" }] },
        },
      },
    });
    const steps = planUpgrade(f, policy(), now).steps;
    assert.deepEqual(steps.map((s) => [s.id, s.window.kind === "window" ? s.window.start : s.window.kind, s.after]), [
      ["controlPlane:1.30.6", "2026-03-07T21:00:00.000Z", undefined],
      // 2026-03-14 is not allowed in +01:00.
      ["controlPlane:1.31.3", "2026-03-21T21:00:00.000Z", "controlPlane:1.30.6"],
      ["poolVersion:user:1.31.3", "2026-03-28T21:00:00.000Z", "controlPlane:1.31.3"],
    ]);
  });

  it("writes a readable summary with one line per step", () => {
    const plan = planUpgrade(facts(), policy(), now);
    assert.match(plan.summary[0]!, /prod: 5 step\(s\) — control plane 1\.29\.7 → 1\.31\.3/);
    assert.match(plan.summary[1]!, /^1\. control plane 1\.29\.7 → 1\.29\.9 .*latest patch of 1\.29 first — any time/);
    assert.ok(plan.summary.includes("apply: not applied (apply mode is off for this cluster)"));
  });
});
