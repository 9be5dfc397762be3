import type { ClusterFacts, KubernetesMinor, PoolFacts } from "./armFacts";
import { describeSchedule, nextOccurrence, type MaintenanceSchedule } from "./maintenanceWindow";
import { compareNodeImages, compareVersions, maxVersion, minorOf, minorsBetween, mustParse, parseVersion } from "./versions";

/**
 * Pure planning: from ARM facts and a cluster's upgrade policy to ordered steps AKS will accept.
 * No I/O here; `now` is a parameter so that every rule is testable.
 */

export interface UpgradePolicy {
  channel: "patch" | "stable" | "rapid";
  target?: string;
  allowPreview: boolean;
  apply: boolean;
}

export const defaultPolicy: UpgradePolicy = { channel: "stable", allowPreview: false, apply: false };

export type StepKind = "controlPlane" | "poolVersion" | "nodeImage";

export type StepWindow =
  | { kind: "anyTime" }
  | { kind: "window"; schedule: string; start: string; end: string }
  /** A schedule exists but has no usable occurrence (e.g. everything blocked by not-allowed dates). */
  | { kind: "none"; schedule: string };

export interface PlanStep {
  /** Stable within a plan: `controlPlane:1.30.5`, `poolVersion:nodepool1:1.31.2`, `nodeImage:nodepool1`. */
  id: string;
  kind: StepKind;
  pool?: string;
  from: string;
  to: string;
  reason: string;
  window: StepWindow;
  /** The step that must finish first; steps without one can start as soon as their window opens. */
  after?: string;
}

export interface NodeOsChannelAdvice {
  channel: string;
  /** False when AKS itself patches and reimages nodes (SecurityPatch, NodeImage). */
  rollcallNeeded: boolean;
  note: string;
}

export interface PlanInputs {
  readAt: string;
  clusterETag?: string;
  controlPlane: string;
  pools: Record<string, { version: string; nodeImage?: string; latestNodeImage?: string; eTag?: string }>;
  availableMinors: string[];
}

export interface UpgradePlan {
  cluster: string;
  resourceId: string;
  computedAt: string;
  policy: UpgradePolicy;
  controlPlane: { current: string; target: string; why: string };
  steps: PlanStep[];
  warnings: string[];
  notes: string[];
  nodeOsChannel: NodeOsChannelAdvice;
  /** Why apply mode must not start steps now, if it must not. */
  applyBlocked?: string;
  inputs: PlanInputs;
  summary: string[];
}

/** AKS: pools may trail the control plane by at most three minors from Kubernetes 1.28 (two before), never lead it. */
export function maxPoolSkew(controlPlane: string): number {
  const v = mustParse(controlPlane);
  return v.major > 1 || v.minor >= 28 ? 3 : 2;
}

const LONG_TERM_SUPPORT = "AKSLongTermSupport";

function usableMinors(facts: ClusterFacts, policy: UpgradePolicy): KubernetesMinor[] {
  const previewVersions = new Set(facts.controlPlaneUpgrades.filter((u) => u.isPreview).map((u) => u.kubernetesVersion));
  return facts.availableVersions
    .filter((m) => parseVersion(m.version))
    .filter((m) => policy.allowPreview || !m.isPreview)
    .filter((m) => m.supportPlan.length === 0 || m.supportPlan.includes("KubernetesOfficial") || facts.supportPlan === LONG_TERM_SUPPORT)
    .map((m) => ({ ...m, version: minorOf(m.version), patches: m.patches.filter((p) => parseVersion(p) && (policy.allowPreview || !previewVersions.has(p))) }))
    .filter((m) => m.patches.length > 0)
    .sort((a, b) => compareVersions(a.version, b.version));
}

interface Target {
  version: string;
  why: string;
  warnings: string[];
}

function chooseTarget(facts: ClusterFacts, policy: UpgradePolicy, minors: KubernetesMinor[]): Target {
  const current = facts.currentKubernetesVersion;
  const currentMinor = minorOf(current);
  const warnings: string[] = [];
  const byMinor = new Map(minors.map((m) => [m.version, m]));
  const latestPatch = (minor: string) => maxVersion(byMinor.get(minor)?.patches ?? []);
  if (minors.length === 0) return { version: current, why: "AKS offers no usable version in this region", warnings };

  const latestMinor = minors[minors.length - 1]!.version;
  let minor: string;
  let why: string;
  if (policy.channel === "patch") {
    minor = currentMinor;
    why = `channel patch: latest patch of ${currentMinor}`;
  } else if (policy.channel === "rapid") {
    minor = latestMinor;
    why = `channel rapid: latest patch of the latest minor ${latestMinor}`;
  } else {
    minor = minors.length >= 2 ? minors[minors.length - 2]!.version : latestMinor;
    why = `channel stable: latest patch of minor N-1 (${minor}; latest is ${latestMinor})`;
  }
  let exact: string | undefined;
  if (policy.target) {
    const targetMinor = minorOf(policy.target);
    if (minorsBetween(targetMinor, minor) > 0) {
      minor = targetMinor;
      why += `, capped at the configured target ${policy.target}`;
    }
    if (minor === targetMinor && policy.target.split(".").length === 3) {
      exact = policy.target;
      if (!byMinor.get(minor)?.patches.includes(exact)) {
        warnings.push(`The configured target ${exact} is not offered in ${facts.location}; planning to the newest offered patch below it instead`);
        exact = maxVersion((byMinor.get(minor)?.patches ?? []).filter((p) => compareVersions(p, policy.target!) <= 0));
      }
    }
  }
  if (minorsBetween(currentMinor, minor) < 0) {
    warnings.push(`The cluster (${current}) is already beyond the ${policy.target ? `configured target ${policy.target}` : `${policy.channel} channel`}; only patches of ${currentMinor} are planned`);
    minor = currentMinor;
    exact = undefined;
    why = `cluster beyond the channel/target: latest patch of ${currentMinor}`;
  }
  // Never skip a minor: stop before the first minor AKS does not offer (or that is preview and not allowed).
  let reachable = currentMinor;
  for (let m = mustParse(currentMinor).minor + 1; m <= mustParse(minor).minor; m++) {
    const next = `${mustParse(currentMinor).major}.${m}`;
    if (!byMinor.has(next)) {
      const raw = facts.availableVersions.find((v) => minorOf(v.version) === next);
      warnings.push(
        `Cannot plan beyond ${reachable}: minor ${next} is ${raw?.isPreview ? "preview only (allowPreview is off)" : "not offered"}, and AKS does not allow skipping a minor`,
      );
      break;
    }
    reachable = next;
  }
  if (reachable !== minor) {
    minor = reachable;
    exact = undefined;
  }
  const version = exact ?? latestPatch(minor) ?? current;
  return { version: compareVersions(version, current) < 0 ? current : version, why, warnings };
}

function windowFor(schedule: MaintenanceSchedule | undefined, after: Date): { window: StepWindow; next: Date } {
  if (!schedule) return { window: { kind: "anyTime" }, next: after };
  const occurrence = nextOccurrence(schedule, after);
  if (!occurrence) return { window: { kind: "none", schedule: describeSchedule(schedule) }, next: after };
  return {
    window: { kind: "window", schedule: describeSchedule(schedule), start: occurrence.start.toISOString(), end: occurrence.end.toISOString() },
    next: occurrence.end,
  };
}

function nodeOsAdvice(channel: string | undefined): NodeOsChannelAdvice {
  switch (channel) {
    case "SecurityPatch":
    case "NodeImage":
      return {
        channel,
        rollcallNeeded: false,
        note: `Node OS channel ${channel}: AKS itself patches and reimages nodes in its node OS window, so Rollcall's sentinel reboots are mostly redundant on this cluster`,
      };
    case "None":
      return {
        channel,
        rollcallNeeded: false,
        note: "Node OS channel None: nodes get no OS security updates at all; prefer Unmanaged (with Rollcall for reboots) or NodeImage",
      };
    default:
      return {
        channel: channel ?? "Unmanaged",
        rollcallNeeded: true,
        note: `Node OS channel ${channel ?? "Unmanaged (default)"}: nodes patch themselves through unattended-upgrades and need reboots, which is what Rollcall does`,
      };
  }
}

function supportWarnings(facts: ClusterFacts, minors: KubernetesMinor[]): string[] {
  const currentMinor = minorOf(facts.currentKubernetesVersion);
  const offered = facts.availableVersions.find((v) => minorOf(v.version) === currentMinor);
  const ga = minors.filter((m) => !m.isPreview);
  if (!offered) {
    return [`Kubernetes ${facts.currentKubernetesVersion} is out of support: AKS no longer offers ${currentMinor} in ${facts.location}`];
  }
  if (offered.supportPlan.length > 0 && !offered.supportPlan.includes("KubernetesOfficial")) {
    return [`Kubernetes ${currentMinor} is only available under ${offered.supportPlan.join(", ")} (out of community support)`];
  }
  if (ga.length > 1 && ga[0]!.version === currentMinor) {
    return [`Kubernetes ${currentMinor} is the oldest minor AKS still supports in ${facts.location}; it leaves support with the next minor release`];
  }
  return [];
}

function pdbWarnings(facts: ClusterFacts, poolsTouched: PoolFacts[]): { warnings: string[]; notes: string[] } {
  const pdbs = facts.pdbs;
  if (!pdbs) return { warnings: [], notes: ["PodDisruptionBudgets were not checked (no Kubernetes access for this check)"] };
  if (!pdbs.checked) return { warnings: [], notes: [`PodDisruptionBudgets were not checked: ${pdbs.error ?? "cluster unreachable"}`] };
  if (pdbs.blocking.length === 0 || poolsTouched.length === 0) return { warnings: [], notes: [] };
  const names = pdbs.blocking.map((p) => `${p.namespace}/${p.name}`).join(", ");
  return {
    warnings: poolsTouched.map((pool) => {
      const s = pool.upgradeSettings;
      return (
        `Pool ${pool.name}: maxSurge ${s.maxSurge ?? "10% (default)"}, drainTimeoutInMinutes ${s.drainTimeoutInMinutes ?? "30 (default)"}` +
        ` will meet PodDisruptionBudgets allowing zero disruptions (${names}); the upgrade's drain will stall and ` +
        `${s.undrainableNodeBehavior === "Cordon" ? "leave those nodes cordoned" : "fail"} unless they are relaxed`
      );
    }),
    notes: [],
  };
}

export function planUpgrade(facts: ClusterFacts, policy: UpgradePolicy, now: Date): UpgradePlan {
  const warnings: string[] = [];
  const notes: string[] = [];
  const current = facts.currentKubernetesVersion;
  const minors = usableMinors(facts, policy);
  const target = chooseTarget(facts, policy, minors);
  warnings.push(...target.warnings, ...supportWarnings(facts, minors));
  if (facts.upgradeProfileNote) notes.push(`Upgrade profile: ${facts.upgradeProfileNote}`);

  // Control plane path: latest patch of the current minor first, then one minor at a time.
  const byMinor = new Map(minors.map((m) => [m.version, m]));
  const path: Array<{ to: string; reason: string }> = [];
  const currentMinor = minorOf(current);
  const patchOfCurrent = minorOf(target.version) === currentMinor ? target.version : maxVersion(byMinor.get(currentMinor)?.patches ?? []);
  if (patchOfCurrent && compareVersions(patchOfCurrent, current) > 0) {
    path.push({ to: patchOfCurrent, reason: `latest patch of ${currentMinor} first` });
  }
  for (let m = mustParse(currentMinor).minor + 1; m <= mustParse(target.version).minor; m++) {
    const minor = `${mustParse(current).major}.${m}`;
    const to = minor === minorOf(target.version) ? target.version : maxVersion(byMinor.get(minor)?.patches ?? [])!;
    path.push({ to, reason: `one minor at a time toward ${target.version} (${target.why})` });
  }

  // Pools follow the control plane: never ahead, never more than the allowed skew behind.
  const steps: PlanStep[] = [];
  const poolVersion = new Map(facts.pools.map((p) => [p.name, p.currentOrchestratorVersion]));
  for (const pool of facts.pools) {
    if (compareVersions(pool.currentOrchestratorVersion, current) > 0) {
      warnings.push(`Pool ${pool.name} (${pool.currentOrchestratorVersion}) is ahead of the control plane (${current}); AKS does not allow that and no step is planned for it`);
    } else if (minorsBetween(pool.currentOrchestratorVersion, current) > maxPoolSkew(current)) {
      warnings.push(`Pool ${pool.name} (${pool.currentOrchestratorVersion}) is more than ${maxPoolSkew(current)} minors behind the control plane (${current}), outside what AKS supports`);
    }
  }
  let cp = current;
  const poolStepsTo = (version: string, reason: (pool: PoolFacts) => string, only: (pool: PoolFacts) => boolean) => {
    for (const pool of facts.pools) {
      const v = poolVersion.get(pool.name)!;
      if (compareVersions(v, version) >= 0 || !only(pool)) continue;
      steps.push({ id: `poolVersion:${pool.name}:${version}`, kind: "poolVersion", pool: pool.name, from: v, to: version, reason: reason(pool), window: { kind: "anyTime" } });
      poolVersion.set(pool.name, version);
    }
  };
  for (const step of path) {
    // Before the control plane moves to `step.to`, pools that would fall outside the skew catch up to the control plane.
    const skew = maxPoolSkew(step.to);
    poolStepsTo(
      cp,
      (pool) => `must catch up to ${cp} before the control plane goes to ${step.to} (pools may trail by at most ${skew} minors)`,
      (pool) => minorsBetween(poolVersion.get(pool.name)!, step.to) > skew,
    );
    steps.push({ id: `controlPlane:${step.to}`, kind: "controlPlane", from: cp, to: step.to, reason: step.reason, window: { kind: "anyTime" } });
    cp = step.to;
  }
  poolStepsTo(cp, () => `follow the control plane to ${cp}`, () => true);

  // Node images: pools whose image is older than the latest and that no version step reimages anyway.
  const reimaged = new Set(steps.filter((s) => s.kind === "poolVersion").map((s) => s.pool));
  const nodeOsChannel = nodeOsAdvice(facts.nodeOSUpgradeChannel);
  notes.push(nodeOsChannel.note);
  const imageSteps: PlanStep[] = [];
  for (const pool of facts.pools) {
    if (!pool.nodeImageVersion || !pool.latestNodeImageVersion || reimaged.has(pool.name)) continue;
    const order = compareNodeImages(pool.nodeImageVersion, pool.latestNodeImageVersion);
    if (order === undefined || order >= 0) continue;
    if (facts.nodeOSUpgradeChannel === "NodeImage") {
      notes.push(`Pool ${pool.name} runs ${pool.nodeImageVersion}, latest is ${pool.latestNodeImageVersion}: the NodeImage channel upgrades it in AKS's node OS window`);
      continue;
    }
    imageSteps.push({
      id: `nodeImage:${pool.name}`,
      kind: "nodeImage",
      pool: pool.name,
      from: pool.nodeImageVersion,
      to: pool.latestNodeImageVersion,
      reason: `node image ${pool.nodeImageVersion} is older than the latest ${pool.latestNodeImageVersion}`,
      window: { kind: "anyTime" },
    });
  }

  // Windows: version steps in the auto-upgrade window, node images in the node OS window; one step per occurrence.
  const place = (chain: PlanStep[], schedule: MaintenanceSchedule | undefined) => {
    let cursor = now;
    chain.forEach((step, i) => {
      const { window, next } = windowFor(schedule, cursor);
      step.window = window;
      if (i > 0) step.after = chain[i - 1]!.id;
      cursor = next;
    });
  };
  place(steps, facts.maintenance.autoUpgrade ?? facts.maintenance.default);
  place(imageSteps, facts.maintenance.nodeOS ?? facts.maintenance.default);
  const allSteps = [...steps, ...imageSteps];
  if (allSteps.some((s) => s.window.kind === "none")) {
    warnings.push("A maintenance window has no usable occurrence in the coming months (check its not-allowed dates); those steps cannot start");
  }

  const blockers: string[] = [];
  if (facts.upgradeChannel && facts.upgradeChannel.toLowerCase() !== "none") {
    warnings.push(`The cluster is managed by the AKS auto-upgrade channel ${facts.upgradeChannel}; Rollcall will not start version upgrades that fight it`);
    blockers.push(`auto-upgrade channel ${facts.upgradeChannel}`);
  }
  if (facts.provisioningState && facts.provisioningState !== "Succeeded") {
    warnings.push(`The cluster is in provisioning state ${facts.provisioningState}, not Succeeded; AKS accepts no upgrade until it is`);
    blockers.push(`provisioning state ${facts.provisioningState}`);
  }
  if (facts.powerState && facts.powerState !== "Running") {
    warnings.push(`The cluster is ${facts.powerState}; upgrades need it Running`);
    blockers.push(`power state ${facts.powerState}`);
  }
  const touched = facts.pools.filter((p) => reimaged.has(p.name) || imageSteps.some((s) => s.pool === p.name));
  const pdb = pdbWarnings(facts, touched);
  warnings.push(...pdb.warnings);
  notes.push(...pdb.notes);

  const plan: UpgradePlan = {
    cluster: facts.cluster,
    resourceId: facts.resourceId,
    computedAt: now.toISOString(),
    policy,
    controlPlane: { current, target: target.version, why: target.why },
    steps: allSteps,
    warnings,
    notes,
    nodeOsChannel,
    applyBlocked: !policy.apply ? "apply mode is off for this cluster" : blockers.length ? blockers.join("; ") : undefined,
    inputs: {
      readAt: facts.readAt,
      clusterETag: facts.eTag,
      controlPlane: current,
      pools: Object.fromEntries(
        facts.pools.map((p) => [p.name, { version: p.currentOrchestratorVersion, nodeImage: p.nodeImageVersion, latestNodeImage: p.latestNodeImageVersion, eTag: p.eTag }]),
      ),
      availableMinors: facts.availableVersions.map((v) => `${v.version}${v.isPreview ? " (preview)" : ""}`),
    },
    summary: [],
  };
  plan.summary = summarizePlan(plan);
  return plan;
}

export function describeStep(step: PlanStep): string {
  const what =
    step.kind === "controlPlane"
      ? `control plane ${step.from} → ${step.to} (control plane only; pools keep their version)`
      : step.kind === "poolVersion"
        ? `pool ${step.pool} ${step.from} → ${step.to}`
        : `pool ${step.pool} node image ${step.from} → ${step.to}`;
  const when =
    step.window.kind === "anyTime"
      ? "any time (no maintenance window)"
      : step.window.kind === "none"
        ? `no usable occurrence of ${step.window.schedule}`
        : `${step.window.start} – ${step.window.end} (${step.window.schedule})`;
  return `${what} — ${step.reason} — ${when}${step.after ? ` — after ${step.after}` : ""}`;
}

/** One line per fact an operator needs, then one per step; also what the function logs. */
export function summarizePlan(plan: UpgradePlan): string[] {
  const lines = [
    plan.steps.length === 0
      ? `${plan.cluster}: up to date — control plane ${plan.controlPlane.current} (${plan.controlPlane.why}), no upgrade available`
      : `${plan.cluster}: ${plan.steps.length} step(s) — control plane ${plan.controlPlane.current} → ${plan.controlPlane.target} (${plan.controlPlane.why})`,
    ...plan.steps.map((s, i) => `${i + 1}. ${describeStep(s)}`),
    ...plan.warnings.map((w) => `warning: ${w}`),
    ...plan.notes.map((n) => `note: ${n}`),
    plan.applyBlocked ? `apply: not applied (${plan.applyBlocked})` : "apply: on — steps start at the opening of their window",
  ];
  return lines;
}
