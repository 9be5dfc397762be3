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

type Minor = { version: string; isPreview: boolean; isDefault: boolean; supportPlan: string[]; patches: string[] };
const catalogueOf = (minors: Minor[]) => minors.map((m) => ({ ...m, patchUpgrades: Object.fromEntries(m.patches.map((p) => [p, armUpgrades(minors, p)])) }));
const minorNo = (v: string) => Number(v.split(".")[1]);
const patchNo = (v: string) => Number(v.split(".")[2] ?? 0);
/** What ARM's lists say (kubernetesVersions patchVersions[…].upgrades, upgrade profiles): the next patches of the minor and the next minor; from an unsupported minor, the oldest supported one. */
function armUpgrades(minors: Minor[], from: string, ceiling?: string): string[] {
  const offered = minors.flatMap((m) => m.patches.map((p) => ({ p, preview: m.isPreview })));
  const supported = offered.some((o) => minorNo(o.p) === minorNo(from));
  const next = supported ? minorNo(from) + 1 : Math.min(...offered.filter((o) => minorNo(o.p) > minorNo(from) && !o.preview).map((o) => minorNo(o.p)));
  return offered
    .filter((o) => (minorNo(o.p) === minorNo(from) && patchNo(o.p) > patchNo(from)) || minorNo(o.p) === next)
    .filter((o) => !ceiling || minorNo(o.p) < minorNo(ceiling) || (minorNo(o.p) === minorNo(ceiling) && patchNo(o.p) <= patchNo(ceiling)))
    .map((o) => o.p);
}

const catalogue: Minor[] = [
  { version: "1.29", isPreview: false, isDefault: false, supportPlan: ["KubernetesOfficial", "AKSLongTermSupport"], patches: ["1.29.7", "1.29.9"] },
  { version: "1.30", isPreview: false, isDefault: false, supportPlan: ["KubernetesOfficial"], patches: ["1.30.4", "1.30.6"] },
  { version: "1.31", isPreview: false, isDefault: true, supportPlan: ["KubernetesOfficial"], patches: ["1.31.1", "1.31.3"] },
  { version: "1.32", isPreview: false, isDefault: false, supportPlan: ["KubernetesOfficial"], patches: ["1.32.0", "1.32.2"] },
  { version: "1.33", isPreview: true, isDefault: false, supportPlan: ["KubernetesOfficial"], patches: ["1.33.0"] },
];

/** Facts as ARM would give them: the upgrade profiles' lists derived from the catalogue unless a test sets them. */
function facts(extra: Partial<ClusterFacts> = {}): ClusterFacts {
  const base = rawFacts(extra);
  const minors = base.availableVersions as Minor[];
  const isPreview = (v: string) => minors.some((m) => m.isPreview && m.patches.includes(v));
  return {
    ...base,
    availableVersions: catalogueOf(minors),
    controlPlaneUpgrades: extra.controlPlaneUpgrades ?? armUpgrades(minors, base.currentKubernetesVersion).map((v) => ({ kubernetesVersion: v, isPreview: isPreview(v) })),
    pools: base.pools.map((p) => ({
      ...p,
      upgrades: p.upgrades ?? armUpgrades(minors, p.currentOrchestratorVersion, base.currentKubernetesVersion).map((v) => ({ kubernetesVersion: v, isPreview: isPreview(v) })),
    })),
  };
}

const rawFacts = (extra: Partial<ClusterFacts> = {}): ClusterFacts => ({
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
  it("takes a cluster two minors behind through the latest patch, then one minor at a time, then the pools one minor at a time", () => {
    // stable = latest patch of N-1 where N = 1.32 (1.33 is preview).
    assert.deepEqual(ids(facts()), [
      "controlPlane:1.29.9",
      "controlPlane:1.30.6",
      "controlPlane:1.31.3",
      "poolVersion:system:1.30.6",
      "poolVersion:system:1.31.3",
      "poolVersion:user:1.30.6",
      "poolVersion:user:1.31.3",
    ]);
  });

  it("plans only hops ARM lists: a pool two minors behind goes through the minor between, never 1.23.8 → 1.25.5", () => {
    const minors: Minor[] = [
      { version: "1.23", isPreview: false, isDefault: false, supportPlan: ["KubernetesOfficial"], patches: ["1.23.8", "1.23.15"] },
      { version: "1.24", isPreview: false, isDefault: true, supportPlan: ["KubernetesOfficial"], patches: ["1.24.9"] },
      { version: "1.25", isPreview: false, isDefault: false, supportPlan: ["KubernetesOfficial"], patches: ["1.25.5"] },
    ];
    const f = facts({ availableVersions: minors, currentKubernetesVersion: "1.25.5", pools: [pool("user", "1.23.8")] });
    const plan = planUpgrade(f, policy(), now);
    assert.deepEqual(plan.steps.map((s) => `${s.from} → ${s.to}`), ["1.23.8 → 1.24.9", "1.24.9 → 1.25.5"]);
  });

  it("follows ARM's upgrade profile over its own arithmetic and explains a hop ARM does not offer", () => {
    // ARM offers the control plane nothing (e.g. an upgrade blocked by a deprecated API in use).
    const blocked = planUpgrade(facts({ controlPlaneUpgrades: [] }), policy(), now);
    assert.deepEqual(blocked.steps.map((s) => s.id), []);
    assert.ok(blocked.warnings.some((w) => /ARM offers no control plane upgrade from 1\.29\.7 toward 1\.31\.3 \(offered: none\)/.test(w)), blocked.warnings.join("\n"));
    // A pool whose profile lists nothing gets no step, and the plan says why.
    const f = facts({ currentKubernetesVersion: "1.31.3", pools: [pool("user", "1.30.6", { upgrades: [] })] });
    const plan = planUpgrade(f, policy(), now);
    assert.deepEqual(plan.steps, []);
    assert.ok(plan.warnings.some((w) => /Pool user: ARM offers no upgrade from 1\.30\.6 toward 1\.31\.3/.test(w)));
  });

  it("never plans a pool version missing from the cluster's available agent pool versions", () => {
    const f = facts({ currentKubernetesVersion: "1.31.3", agentPoolVersions: ["1.30.6", "1.31.1"], pools: [pool("user", "1.30.6")] });
    assert.deepEqual(ids(f), ["poolVersion:user:1.31.1"]);
  });

  it("compares currentKubernetesVersion, not the kubernetesVersion alias", () => {
    const plan = planUpgrade(facts({ currentKubernetesVersion: "1.31.3", kubernetesVersion: "1.31", pools: [pool("user", "1.31.3")] }), policy(), now);
    assert.deepEqual(plan.steps, []);
    assert.match(plan.summary[0]!, /up to date/);
  });

  it("never plans a preview version unless preview is allowed", () => {
    const f = facts({ currentKubernetesVersion: "1.32.2", pools: [pool("user", "1.32.2")] });
    assert.deepEqual(ids(f, policy({ channel: "rapid" })), []);
    // allowPreview lets a target name a preview minor; the channels themselves count generally available minors only.
    assert.deepEqual(ids(f, policy({ channel: "rapid", allowPreview: true })), []);
    assert.deepEqual(ids(f, policy({ channel: "rapid", allowPreview: true, target: "1.33" })), ["controlPlane:1.33.0", "poolVersion:user:1.33.0"]);
  });

  it("counts N for the stable channel among generally available minors, also with allowPreview", () => {
    const plan = planUpgrade(facts({ currentKubernetesVersion: "1.31.3", pools: [pool("user", "1.31.3")] }), policy({ allowPreview: true }), now);
    // N = 1.32 (1.33 is preview), so stable is 1.31: nothing to do.
    assert.deepEqual(plan.steps, []);
    assert.equal(plan.controlPlane.target, "1.31.3");
  });

  it("never exceeds a target below every offered patch", () => {
    // Target 1.29.6 while ARM offers 1.29.7 and 1.29.9: nothing, not 1.29.9.
    const f = facts({ currentKubernetesVersion: "1.29.5", kubernetesVersion: "1.29.5", pools: [pool("user", "1.29.5")] });
    const plan = planUpgrade(f, policy({ channel: "patch", target: "1.29.6" }), now);
    assert.deepEqual(plan.steps.map((s) => s.id), []);
    assert.equal(plan.controlPlane.target, "1.29.5");
    assert.deepEqual(ids(f, policy({ channel: "rapid", target: "1.29.6" })), []);
  });

  it("plans an out-of-support cluster straight to the oldest supported minor ARM offers, warning that it has no SLA", () => {
    const f = facts({ currentKubernetesVersion: "1.9.6", kubernetesVersion: "1.9.6", pools: [pool("user", "1.9.6")] });
    const plan = planUpgrade(f, policy(), now);
    assert.equal(plan.steps[0]!.id, "controlPlane:1.29.9");
    assert.equal(plan.steps[0]!.from, "1.9.6");
    assert.ok(plan.warnings.some((w) => /1\.9\.6 is out of support and has no SLA/.test(w)));
    assert.notEqual(plan.summary[0]!.includes("up to date"), true);
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
    // The pool may go straight to the next minor: its list offers 1.30.4 from 1.29.7.
    assert.deepEqual(ids(facts({ pools: [pool("user", "1.29.7")] }), policy({ channel: "rapid", target: "1.30.4" })), [
      "controlPlane:1.29.9",
      "controlPlane:1.30.4",
      "poolVersion:user:1.30.4",
    ]);
  });

  it("never skips a minor AKS does not offer", () => {
    const plan = planUpgrade(facts({ availableVersions: catalogue.filter((m) => m.version !== "1.30"), pools: [] }), policy({ channel: "rapid" }), now);
    assert.deepEqual(plan.steps.map((s) => s.id), ["controlPlane:1.29.9"]);
    assert.ok(plan.warnings.some((w) => /ARM offers no control plane upgrade from 1\.29\.9/.test(w)), plan.warnings.join("\n"));
  });

  it("upgrades a pool that would fall more than three minors behind before the control plane moves on", () => {
    const f = facts({ currentKubernetesVersion: "1.30.6", pools: [pool("old", "1.28.5"), pool("user", "1.30.6")] });
    assert.deepEqual(ids(f, policy({ channel: "rapid" })), [
      "controlPlane:1.31.3",
      "poolVersion:old:1.29.9",
      "poolVersion:old:1.30.6",
      "poolVersion:old:1.31.3",
      "controlPlane:1.32.2",
      "poolVersion:old:1.32.2",
      "poolVersion:user:1.31.3",
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
      ["poolVersion:user:1.30.6", "2026-03-28T21:00:00.000Z", "controlPlane:1.31.3"],
      ["poolVersion:user:1.31.3", "2026-04-04T21:00:00.000Z", "poolVersion:user:1.30.6"],
    ]);
  });

  it("lets the node-image auto-upgrade channel block only node image steps, which are AKS's there", () => {
    const f = facts({ upgradeChannel: "node-image", pools: [pool("system", "1.29.7", { mode: "System", nodeImageVersion: "AKSUbuntu-2204gen2containerd-202601.05.0" }), pool("user", "1.29.7")] });
    const plan = planUpgrade(f, policy({ apply: true, channel: "patch" }), now);
    assert.equal(plan.applyBlocked, undefined);
    assert.ok(plan.steps.some((s) => s.kind === "controlPlane"));
    assert.ok(!plan.steps.some((s) => s.kind === "nodeImage"));
    assert.ok(plan.notes.some((n) => /Auto-upgrade channel node-image: AKS upgrades node images itself/.test(n)));
  });

  it("gives an LTS cluster on an LTS-only minor no out-of-support warning", () => {
    const lts: Minor[] = [
      { version: "1.27", isPreview: false, isDefault: false, supportPlan: ["AKSLongTermSupport"], patches: ["1.27.100"] },
      ...catalogue,
    ];
    const plan = planUpgrade(facts({ availableVersions: lts, supportPlan: "AKSLongTermSupport", currentKubernetesVersion: "1.27.100", pools: [] }), policy({ channel: "patch" }), now);
    assert.deepEqual(plan.warnings.filter((w) => /out of (community )?support/.test(w)), []);
    assert.ok(plan.notes.some((n) => /Long Term Support/.test(n)));
  });

  it("never places steps in the legacy default configuration and flags its short slots against AKS's four hours", () => {
    const f = facts({
      pools: [pool("user", "1.29.9")],
      currentKubernetesVersion: "1.29.9",
      maintenance: { default: { kind: "legacy", name: "default", legacy: { timeInWeek: [{ day: "Sunday", hourSlots: [1, 2] }], notAllowedTime: [] } } },
    });
    const plan = planUpgrade(f, policy(), now);
    assert.ok(plan.steps.every((s) => s.window.kind === "anyTime"), JSON.stringify(plan.steps.map((s) => s.window)));
    assert.ok(plan.warnings.some((w) => /default.*2 h.*at least 4 hours/.test(w)), plan.warnings.join("\n"));
  });

  it("plans a node image step across an image family change and for the colon format, and says so", () => {
    const f = facts({
      currentKubernetesVersion: "1.31.3",
      pools: [
        pool("old", "1.31.3", { nodeImageVersion: "AKSUbuntu-1804gen2containerd-2022.08.10", latestNodeImageVersion: "AKSUbuntu-2204gen2containerd-202307.04.0" }),
        pool("colon", "1.31.3", { nodeImageVersion: "AKSUbuntu:1604:2020.03.11", latestNodeImageVersion: "AKSUbuntu:1604:2020.04.01" }),
      ],
    });
    const plan = planUpgrade(f, policy(), now);
    assert.deepEqual(plan.steps.map((s) => s.id), ["nodeImage:old", "nodeImage:colon"]);
    assert.ok(plan.notes.some((n) => /Pool old: the node image family changes from AKSUbuntu-1804gen2containerd to AKSUbuntu-2204gen2containerd/.test(n)), plan.notes.join("\n"));
  });

  it("writes a readable summary with one line per step", () => {
    const plan = planUpgrade(facts(), policy(), now);
    assert.match(plan.summary[0]!, /prod: 7 step\(s\) — control plane 1\.29\.7 → 1\.31\.3/);
    assert.match(plan.summary[1]!, /^1\. control plane 1\.29\.7 → 1\.29\.9 .*latest patch of 1\.29 first — any time/);
    assert.ok(plan.summary.includes("apply: not applied (apply mode is off for this cluster)"));
  });
});
