import type { ClusterFacts, KubernetesMinor, PoolFacts } from "./armFacts";
import { describeSchedule, nextOccurrence, type MaintenanceSchedule } from "./maintenanceWindow";
import { compareNodeImages, compareVersions, maxVersion, minorOf, minorsBetween, mustParse, parseVersion, splitNodeImage } from "./versions";

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

  // The channels count generally available minors only: AKS's stable is "N-1 where N is the latest
  // supported minor", and a preview minor is not supported (allowPreview only lets a target name one).
  const ga = minors.filter((m) => !m.isPreview);
  const latestMinor = (ga.at(-1) ?? minors.at(-1)!).version;
  let minor: string;
  let why: string;
  if (policy.channel === "patch") {
    minor = currentMinor;
    why = `channel patch: latest patch of ${currentMinor}`;
  } else if (policy.channel === "rapid") {
    minor = latestMinor;
    why = `channel rapid: latest patch of the latest generally available minor ${latestMinor}`;
  } else {
    minor = ga.length >= 2 ? ga[ga.length - 2]!.version : latestMinor;
    why = `channel stable: latest patch of minor N-1 (${minor}; N is ${latestMinor})`;
  }
  let exact: string | undefined;
  if (policy.target) {
    const targetMinor = minorOf(policy.target);
    if (minorsBetween(targetMinor, minor) > 0 || (policy.allowPreview && byMinor.get(targetMinor)?.isPreview)) {
      minor = targetMinor;
      why += `, capped at the configured target ${policy.target}`;
    }
    if (minor === targetMinor && policy.target.split(".").length === 3) {
      exact = policy.target;
      if (!byMinor.get(minor)?.patches.includes(exact)) {
        warnings.push(`The configured target ${exact} is not offered in ${facts.location}; planning to the newest offered patch below it instead`);
        exact = maxVersion(minors.flatMap((m) => m.patches).filter((p) => compareVersions(p, policy.target!) <= 0 && compareVersions(p, current) >= 0)) ?? current;
      }
    }
  }
  if (minorsBetween(currentMinor, minor) < 0) {
    warnings.push(`The cluster (${current}) is already beyond the ${policy.target ? `configured target ${policy.target}` : `${policy.channel} channel`}; only patches of ${currentMinor} are planned`);
    minor = currentMinor;
    exact = undefined;
    why = `cluster beyond the channel/target: latest patch of ${currentMinor}`;
  }
  let version = exact ?? latestPatch(minor) ?? current;
  // A target is a ceiling: never plan past it, even when every offered patch of its minor is above it.
  if (policy.target && policy.target.split(".").length === 3 && compareVersions(version, policy.target) > 0) version = current;
  return { version: compareVersions(version, current) < 0 ? current : version, why, warnings };
}

/**
 * One hop as ARM offers it: from `from`, the versions ARM lists as direct upgrades (`offered`), not
 * above `ceiling`. Within a minor, the latest patch; across minors, the latest patch of the next one
 * (the lists only name the next minor, or for an unsupported version the oldest supported one).
 * With `patchFirst` (the control plane), the current minor's latest patch goes first when the journey
 * continues past it; pools go straight to the next minor, which their lists allow from any patch.
 */
function nextHop(from: string, offered: string[], ceiling: string, patchFirst: boolean): string | undefined {
  const candidates = offered.filter((v) => parseVersion(v) && compareVersions(v, from) > 0 && compareVersions(v, ceiling) <= 0);
  const sameMinor = candidates.filter((v) => minorOf(v) === minorOf(from));
  return maxVersion(patchFirst && sameMinor.length > 0 && minorOf(ceiling) !== minorOf(from) ? sameMinor : candidates);
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
  if (facts.supportPlan === LONG_TERM_SUPPORT && offered.supportPlan.includes(LONG_TERM_SUPPORT)) {
    return [];
  }
  if (offered.supportPlan.length > 0 && !offered.supportPlan.includes("KubernetesOfficial")) {
    return [`Kubernetes ${currentMinor} is only available under ${offered.supportPlan.join(", ")} (out of community support)`];
  }
  if (ga.length > 1 && ga[0]!.version === currentMinor) {
    return [`Kubernetes ${currentMinor} is the oldest minor AKS still supports in ${facts.location}; it leaves support with the next minor release`];
  }
  return [];
}

/** Short windows: AKS recommends at least four hours; the legacy `default` configuration is built of one-hour slots. */
function windowWarnings(facts: ClusterFacts): string[] {
  const warnings: string[] = [];
  for (const schedule of [facts.maintenance.autoUpgrade, facts.maintenance.nodeOS]) {
    if (schedule?.kind === "window" && schedule.window.durationHours < MIN_WINDOW_HOURS) {
      warnings.push(`${schedule.name} lasts ${schedule.window.durationHours} h; AKS recommends at least ${MIN_WINDOW_HOURS} hours so that an upgrade fits`);
    }
  }
  const legacy = facts.maintenance.default;
  if (legacy?.kind === "legacy") {
    const longest = Math.max(0, ...legacy.legacy.timeInWeek.map((d) => longestRun(d.hourSlots)));
    if (longest < MIN_WINDOW_HOURS) {
      warnings.push(
        `The default maintenance configuration's longest slot is ${longest} h; AKS recommends at least ${MIN_WINDOW_HOURS} hours. It governs AKS's weekly releases only: Rollcall places version steps in aksManagedAutoUpgradeSchedule and node images in aksManagedNodeOSUpgradeSchedule`,
      );
    }
  }
  return warnings;
}

function longestRun(hours: number[]): number {
  const set = new Set(hours);
  let best = 0;
  for (const h of set) {
    if (set.has(h - 1)) continue;
    let n = 0;
    while (set.has(h + n)) n++;
    best = Math.max(best, n);
  }
  return best;
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

export interface PlanOptions {
  /**
   * Apply mode's cursor: the end of the window occurrence in which it last started a step. Steps are
   * placed from here on, so that the plan's timeline (one step per occurrence) is what apply does.
   */
  notBefore?: Date;
}

/** AKS's maintenanceWindow.durationHours: "Length of maintenance window range from 4 to 24 hours" (REST API definition). */
export const MIN_WINDOW_HOURS = 4;

export function planUpgrade(facts: ClusterFacts, policy: UpgradePolicy, now: Date, options: PlanOptions = {}): UpgradePlan {
  const warnings: string[] = [];
  const notes: string[] = [];
  const current = facts.currentKubernetesVersion;
  const minors = usableMinors(facts, policy);
  const target = chooseTarget(facts, policy, minors);
  warnings.push(...target.warnings, ...supportWarnings(facts, minors));
  if (facts.upgradeProfileNote) notes.push(`Upgrade profile: ${facts.upgradeProfileNote}`);
  if (facts.supportPlan === LONG_TERM_SUPPORT) {
    notes.push("Support plan AKS Long Term Support: versions offered under AKSLongTermSupport stay supported beyond community support, and are planned");
  }

  // ARM decides every hop: the upgrade profiles for the first one (the cluster's, each pool's),
  // the region's patchVersions[…].upgrades lists for those after it, which ARM will be asked again
  // about before each starts.
  const usable = new Set(minors.flatMap((m) => m.patches));
  const patchUpgrades = new Map<string, string[]>();
  for (const m of facts.availableVersions) for (const [p, ups] of Object.entries(m.patchUpgrades ?? {})) patchUpgrades.set(p, ups);
  const laterHops = (v: string) => (patchUpgrades.get(v) ?? []).filter((u) => usable.has(u));
  const previewAllowed = (u: { kubernetesVersion: string; isPreview: boolean }) => policy.allowPreview || !u.isPreview;
  const cpOffered = facts.controlPlaneUpgrades.filter(previewAllowed).map((u) => u.kubernetesVersion).filter((v) => usable.has(v));
  if (!minors.some((m) => m.version === minorOf(current)) && cpOffered.length > 0) {
    warnings.push(
      `Kubernetes ${current} is out of support and has no SLA; AKS allows skipping from an unsupported version straight to a supported one, which ARM offers: ${cpOffered.join(", ")}`,
    );
  }

  const steps: PlanStep[] = [];
  const poolVersion = new Map(facts.pools.map((p) => [p.name, p.currentOrchestratorVersion]));
  const agentPoolVersions = facts.agentPoolVersions && facts.agentPoolVersions.length > 0 ? new Set(facts.agentPoolVersions) : undefined;
  for (const pool of facts.pools) {
    if (compareVersions(pool.currentOrchestratorVersion, current) > 0) {
      warnings.push(`Pool ${pool.name} (${pool.currentOrchestratorVersion}) is ahead of the control plane (${current}); AKS does not allow that and no step is planned for it`);
    } else if (minorsBetween(pool.currentOrchestratorVersion, current) > maxPoolSkew(current)) {
      warnings.push(`Pool ${pool.name} (${pool.currentOrchestratorVersion}) is more than ${maxPoolSkew(current)} minors behind the control plane (${current}), outside what AKS supports`);
    }
  }
  let cp = current;
  /** Moves a pool one ARM-offered hop at a time toward `version` (never above the control plane); false when ARM offers no hop. */
  const poolTo = (pool: PoolFacts, version: string, reason: string): void => {
    for (;;) {
      const from = poolVersion.get(pool.name)!;
      if (compareVersions(from, version) >= 0) return;
      // The pool's own upgrade profile is what ARM offers it now; once the control plane has moved,
      // the region's lists may offer more (a pool on a version no longer listed has only its profile).
      const own = from === pool.currentOrchestratorVersion ? (pool.upgrades ?? []).filter(previewAllowed).map((u) => u.kubernetesVersion) : [];
      const offered = [...new Set([...own, ...(cp === current && from === pool.currentOrchestratorVersion ? [] : laterHops(from))])].filter((v) => !agentPoolVersions || agentPoolVersions.has(v));
      const to = nextHop(from, offered, version, false);
      if (!to) {
        warnings.push(`Pool ${pool.name}: ARM offers no upgrade from ${from} toward ${version} (offered: ${offered.join(", ") || "none"}); no step is planned beyond ${from}`);
        return;
      }
      steps.push({ id: `poolVersion:${pool.name}:${to}`, kind: "poolVersion", pool: pool.name, from, to, reason, window: { kind: "anyTime" } });
      poolVersion.set(pool.name, to);
    }
  };
  for (;;) {
    const offered = cp === current ? cpOffered : laterHops(cp);
    const to = nextHop(cp, offered, target.version, true);
    if (!to) {
      if (compareVersions(cp, target.version) < 0) {
        warnings.push(`ARM offers no control plane upgrade from ${cp} toward ${target.version} (offered: ${offered.join(", ") || "none"}); nothing is planned beyond ${cp}`);
      }
      break;
    }
    // Before the control plane moves, pools that would fall outside the allowed skew catch up to it.
    const skew = maxPoolSkew(to);
    for (const pool of facts.pools) {
      if (minorsBetween(poolVersion.get(pool.name)!, to) > skew) poolTo(pool, cp, `must catch up to ${cp} before the control plane goes to ${to} (pools may trail by at most ${skew} minors)`);
    }
    const reason = minorOf(to) === minorOf(cp) && minorOf(target.version) !== minorOf(cp) ? `latest patch of ${minorOf(cp)} first` : `toward ${target.version} (${target.why}), one hop ARM offers`;
    steps.push({ id: `controlPlane:${to}`, kind: "controlPlane", from: cp, to, reason, window: { kind: "anyTime" } });
    cp = to;
  }
  for (const pool of facts.pools) poolTo(pool, cp, `follow the control plane to ${cp}`);

  // Node images: pools whose image is older than the latest and that no version step reimages anyway.
  const reimaged = new Set(steps.filter((s) => s.kind === "poolVersion").map((s) => s.pool));
  const nodeOsChannel = nodeOsAdvice(facts.nodeOSUpgradeChannel);
  notes.push(nodeOsChannel.note);
  const imageSteps: PlanStep[] = [];
  for (const pool of facts.pools) {
    if (!pool.nodeImageVersion || !pool.latestNodeImageVersion || reimaged.has(pool.name)) continue;
    const order = compareNodeImages(pool.nodeImageVersion, pool.latestNodeImageVersion);
    const [from, to] = [splitNodeImage(pool.nodeImageVersion), splitNodeImage(pool.latestNodeImageVersion)];
    const familyChange = order === undefined && from.family !== to.family && from.family !== "" && to.family !== "";
    if (order === undefined && !familyChange) {
      notes.push(`Pool ${pool.name}: cannot compare node image ${pool.nodeImageVersion} with the latest ${pool.latestNodeImageVersion}; no node image step planned`);
      continue;
    }
    if (!familyChange && order! >= 0) continue;
    if (familyChange) {
      notes.push(
        `Pool ${pool.name}: the node image family changes from ${from.family} to ${to.family} (a new OS version or image generation): the node image upgrade reimages every node onto it; test workloads on the new OS first`,
      );
    }
    if (facts.nodeOSUpgradeChannel === "NodeImage" || facts.upgradeChannel === "node-image") {
      notes.push(
        `Pool ${pool.name} runs ${pool.nodeImageVersion}, latest is ${pool.latestNodeImageVersion}: the ${facts.upgradeChannel === "node-image" ? "node-image auto-upgrade channel" : "NodeImage channel"} upgrades it in AKS's node OS window`,
      );
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
  const start = options.notBefore && options.notBefore > now ? options.notBefore : now;
  const place = (chain: PlanStep[], schedule: MaintenanceSchedule | undefined) => {
    let cursor = start;
    chain.forEach((step, i) => {
      const { window, next } = windowFor(schedule, cursor);
      step.window = window;
      if (i > 0) step.after = chain[i - 1]!.id;
      cursor = next;
    });
  };
  // The legacy `default` configuration schedules AKS's own weekly releases, not version or node image
  // upgrades (AKS planned maintenance): it never places a step.
  place(steps, facts.maintenance.autoUpgrade);
  place(imageSteps, facts.maintenance.nodeOS);
  warnings.push(...windowWarnings(facts));
  const allSteps = [...steps, ...imageSteps];
  if (allSteps.some((s) => s.window.kind === "none")) {
    warnings.push("A maintenance window has no usable occurrence in the coming months (check its not-allowed dates); those steps cannot start");
  }

  const blockers: string[] = [];
  if (facts.upgradeChannel === "node-image") {
    notes.push("Auto-upgrade channel node-image: AKS upgrades node images itself (the legacy channel; nodeOSUpgradeChannel NodeImage replaces it); Kubernetes version steps are Rollcall's");
  } else if (facts.upgradeChannel && facts.upgradeChannel.toLowerCase() !== "none") {
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
