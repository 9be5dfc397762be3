import type { ContainerServiceClient } from "@azure/arm-containerservice" with { "resolution-mode": "import" };
import type { TableClient } from "@azure/data-tables";
import type { ClusterConnection } from "../config/config";
import { parseAksResourceId } from "../azure/arm";
import { describeArmError } from "./armFacts";
import { isSettled } from "./pauses";
import {
  claimActive,
  clearActive,
  loadActive,
  loadApplyState,
  loadPlan,
  recordOutcome,
  updateActive,
  updateApplyState,
  type ActiveOperation,
  type ApplyState,
  type StepOutcome,
} from "./planStore";
import type { PlanStep, UpgradePlan } from "./planner";
import { planCluster, type UpgradeDeps } from "./service";

/**
 * Apply mode (opt-in per cluster): in a step's window, start it through ARM, follow its long-running
 * operation across invocations (the poller's serialized state is kept in `upgrade:active`), and record
 * the outcome. One operation per cluster at a time, one step per window occurrence (what the plan shows).
 *
 * What ARM answers decides:
 * - a failed poll (404/429/5xx from the operation URL, a network error) says nothing about the
 *   operation: the resource's own provisioningState does, and while AKS still works on it the
 *   operation is followed and the reboot pause stays;
 * - 409 OperationNotAllowed is "another operation is in progress" (try later) only when ARM shows one
 *   in progress; otherwise AKS refuses this upgrade, which is recorded once and not retried until the
 *   plan changes or an operator resumes apply mode.
 */

export type ApplyAction =
  | "off"
  | "idle"
  | "waiting"
  | "awaiting-approval"
  | "paused"
  | "blocked"
  | "busy"
  | "started"
  | "following"
  | "succeeded"
  | "failed"
  | "deferred"
  | "refused";

export interface ApplyResult {
  cluster: string;
  action: ApplyAction;
  stepId?: string;
  message: string;
}

export interface ApplyOptions {
  /** How long one invocation keeps polling a started operation before leaving it to the next one. */
  followBudgetMs?: number;
  pollIntervalMs?: number;
  /** A claimed slot without a started operation is released after this long (a crash between claim and start). */
  orphanAfterMs?: number;
}

/** The key a refusal is kept under: the same step from the same version. */
export const refusalKey = (step: Pick<PlanStep, "id" | "from">) => `${step.id}@${step.from}`;

/**
 * Steps whose predecessor is done (plans are recomputed after each step, so: chain heads) with their
 * window open at `now`, in an occurrence no earlier step used, and not refused by ARM.
 */
export function dueSteps(plan: UpgradePlan, now: Date, state?: ApplyState): PlanStep[] {
  return plan.steps.filter((s) => {
    if (s.after) return false;
    if (state?.refused[refusalKey(s)]) return false;
    if (s.window.kind === "anyTime") return true;
    if (s.window.kind === "none") return false;
    if (state?.occupiedUntil && Date.parse(s.window.start) < Date.parse(state.occupiedUntil)) return false;
    return Date.parse(s.window.start) <= now.getTime() && now.getTime() < Date.parse(s.window.end);
  });
}

export async function applyCluster(deps: UpgradeDeps, connection: ClusterConnection, options: ApplyOptions = {}): Promise<ApplyResult> {
  const cluster = connection.name;
  const now = deps.now?.() ?? new Date();
  if (!connection.upgrade?.apply || !connection.aksResourceId) return { cluster, action: "off", message: "apply mode is off for this cluster" };
  const client = await deps.arm(parseAksResourceId(connection.aksResourceId).subscriptionId);

  const active = await loadActive(deps.table, cluster);
  if (active) {
    if (!active.pollerState) {
      if (now.getTime() - Date.parse(active.startedAt) < (options.orphanAfterMs ?? 10 * 60_000)) {
        return { cluster, action: "busy", stepId: active.stepId, message: `step ${active.stepId} is being started by another invocation` };
      }
      await clearActive(deps.table, cluster);
    } else {
      return follow(deps, connection, client, active, options);
    }
  }

  const state = await loadApplyState(deps.table, cluster);
  if (state.paused) return { cluster, action: "paused", message: `apply mode paused by ${state.paused.by} at ${state.paused.at}${state.paused.reason ? `: ${state.paused.reason}` : ""}` };
  const stored = (await loadPlan(deps.table, cluster))?.plan;
  if (!stored || dueSteps(stored, now, state).length === 0) return notDue(cluster, stored, state, now);
  // A step is due by the stored plan: re-read the facts so that the step started matches the cluster now.
  const fresh = await planCluster(deps, connection);
  if (!fresh.ok) return { cluster, action: "deferred", message: `could not re-read the cluster before starting: ${fresh.error.failure.explanation}` };
  if (fresh.plan.applyBlocked) return { cluster, action: "blocked", message: `not applying: ${fresh.plan.applyBlocked}` };
  const step = dueSteps(fresh.plan, now, state)[0];
  if (!step) return notDue(cluster, fresh.plan, state, now);
  let approvedBy: string | undefined;
  if (connection.upgrade.apply === "approve") {
    const approval = state.approvals[step.id];
    if (!approval) {
      return { cluster, action: "awaiting-approval", stepId: step.id, message: `${step.id} waits for approval: POST upgrade-plan/steps/${encodeURIComponent(step.id)}/approve` };
    }
    approvedBy = approval.by;
  }
  return start(deps, connection, client, step, now, options, approvedBy);
}

function notDue(cluster: string, plan: UpgradePlan | undefined, state: ApplyState, now: Date): ApplyResult {
  if (!plan?.steps.length) return { cluster, action: "idle", message: "nothing to apply" };
  const refused = plan.steps.find((s) => !s.after && state.refused[refusalKey(s)]);
  if (refused) {
    const r = state.refused[refusalKey(refused)]!;
    return { cluster, action: "blocked", stepId: refused.id, message: `ARM refused ${refused.id} at ${r.at} (${r.message}); not retried until the plan changes or apply mode is resumed` };
  }
  const used = state.occupiedUntil && Date.parse(state.occupiedUntil) > now.getTime() ? `; this window occurrence already ran a step (next after ${state.occupiedUntil})` : "";
  return { cluster, action: "waiting", message: `no step's window is open${used}` };
}

async function start(
  deps: UpgradeDeps,
  connection: ClusterConnection,
  client: ContainerServiceClient,
  step: PlanStep,
  now: Date,
  options: ApplyOptions,
  approvedBy: string | undefined,
): Promise<ApplyResult> {
  const cluster = connection.name;
  const { resourceGroup, name } = parseAksResourceId(connection.aksResourceId!);
  const operation: ActiveOperation = { stepId: step.id, kind: step.kind, pool: step.pool, from: step.from, to: step.to, startedAt: now.toISOString(), approvedBy };
  if (!(await claimActive(deps.table, cluster, operation))) {
    return { cluster, action: "busy", stepId: step.id, message: "another invocation holds the cluster's upgrade slot" };
  }
  const outcome = (result: StepOutcome["result"], message?: string, operationId?: string): StepOutcome => ({
    stepId: step.id,
    kind: step.kind,
    pool: step.pool,
    to: step.to,
    result,
    at: now.toISOString(),
    message,
    startedAt: result === "started" ? now.toISOString() : undefined,
    approvedBy,
    operationId,
  });
  let pollerState: string;
  try {
    const { poller } = await begin(client, resourceGroup, name, step, options);
    pollerState = await poller.serialize();
  } catch (error) {
    await clearActive(deps.table, cluster);
    const failure = describeArmError(error, `starting ${step.id}`);
    const result = await classifyRefusal(client, resourceGroup, name, failure);
    const text = `${failure.explanation}: ${failure.message}`;
    await recordOutcome(deps.table, cluster, outcome(result, text));
    if (result === "refused") {
      await updateApplyState(deps.table, cluster, (s) => void (s.refused[refusalKey(step)] = { at: now.toISOString(), message: `${failure.code}: ${failure.message}` }));
    }
    deps.log?.(`upgrade-apply cluster=${cluster} step=${step.id} ${result}: ${failure.explanation}`);
    const lead = result === "deferred" ? "try later" : result === "refused" ? "ARM refused this upgrade; not retried until the plan changes or apply mode is resumed" : "failed";
    return { cluster, action: result, stepId: step.id, message: `${lead}: ${text}` };
  }
  const operationId = /\/operations\/([^/?"\\]+)/i.exec(pollerState)?.[1];
  const started = { ...operation, pollerState, operationId };
  await updateActive(deps.table, cluster, started);
  if (step.window.kind === "window") {
    const end = step.window.end;
    await updateApplyState(deps.table, cluster, (s) => void (s.occupiedUntil = end));
  }
  await recordOutcome(deps.table, cluster, outcome("started", undefined, operationId));
  deps.log?.(`upgrade-apply cluster=${cluster} step=${step.id} started: ${step.from} → ${step.to}`);
  const followed = await follow(deps, connection, client, started, options);
  return followed.action === "following" ? { ...followed, action: "started", message: `started ${step.id}; ${followed.message}` } : followed;
}

/**
 * What a refused start means. 412 (changed since our GET), 429 and 5xx are transient. 409
 * OperationNotAllowed is transient only while an operation is in progress, which ARM's provisioning
 * states show (or AKS's message says); otherwise AKS will not do this upgrade, however often asked.
 */
async function classifyRefusal(client: ContainerServiceClient, resourceGroup: string, name: string, failure: ReturnType<typeof describeArmError>): Promise<"deferred" | "refused" | "failed"> {
  if (failure.status === 412 || failure.status === 429 || (failure.status ?? 0) >= 500 || failure.status === undefined) return "deferred";
  if (failure.status !== 409) return "failed";
  if (/in progress|another operation|wait for it to finish/i.test(failure.message)) return "deferred";
  try {
    const mc = await client.managedClusters.get(resourceGroup, name);
    const busy = !isSettled(mc.provisioningState) || (mc.agentPoolProfiles ?? []).some((p) => !isSettled(p.provisioningState));
    return busy ? "deferred" : "refused";
  } catch {
    // ARM cannot tell us now: asking again later costs one call, refusing for good could be wrong.
    return "deferred";
  }
}

/**
 * Version changes are a full PUT from a fresh GET, conditional on its ETag; node images have their own action.
 * The poller is wrapped: it is a thenable, and returning it bare from an async function would wait for the whole operation.
 */
async function begin(client: ContainerServiceClient, resourceGroup: string, name: string, step: PlanStep, options: ApplyOptions) {
  const updateIntervalInMs = options.pollIntervalMs;
  if (step.kind === "controlPlane") {
    const mc = await client.managedClusters.get(resourceGroup, name);
    // Control plane only: every pool keeps the version it has.
    const parameters = {
      ...mc,
      kubernetesVersion: step.to,
      agentPoolProfiles: mc.agentPoolProfiles?.map((p) => ({ ...p, orchestratorVersion: p.orchestratorVersion ?? p.currentOrchestratorVersion })),
    };
    const poller = client.managedClusters.createOrUpdate(resourceGroup, name, parameters, { ifMatch: mc.eTag, updateIntervalInMs });
    await poller.submitted();
    return { poller };
  }
  if (step.kind === "poolVersion") {
    const pool = await client.agentPools.get(resourceGroup, name, step.pool!);
    const poller = client.agentPools.createOrUpdate(resourceGroup, name, step.pool!, { ...pool, orchestratorVersion: step.to }, { ifMatch: pool.eTag, updateIntervalInMs });
    await poller.submitted();
    return { poller };
  }
  const poller = client.agentPools.upgradeNodeImageVersion(resourceGroup, name, step.pool!, { updateIntervalInMs });
  await poller.submitted();
  return { poller };
}

async function follow(deps: UpgradeDeps, connection: ClusterConnection, client: ContainerServiceClient, active: ActiveOperation, options: ApplyOptions): Promise<ApplyResult> {
  const cluster = connection.name;
  const { restorePoller } = await import("@azure/arm-containerservice");
  const source =
    active.kind === "controlPlane" ? client.managedClusters.createOrUpdate : active.kind === "poolVersion" ? client.agentPools.createOrUpdate : client.agentPools.upgradeNodeImageVersion;
  const poller = restorePoller(client, active.pollerState!, source as never);
  const deadline = Date.now() + (options.followBudgetMs ?? 20_000);
  const interval = options.pollIntervalMs ?? 5_000;
  let error: unknown;
  for (;;) {
    try {
      await poller.poll();
    } catch (e) {
      error = e;
    }
    if (poller.isDone || error !== undefined || Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, interval));
  }
  const now = (deps.now?.() ?? new Date()).toISOString();
  let succeeded: boolean;
  let failure: ReturnType<typeof describeArmError> | undefined;
  if (error !== undefined) {
    // The SDK's poller marks the operation failed on any error, a 404 or 500 from the status URL
    // included: the resource's own state says whether AKS is still at work, and on what.
    const settled = await resourceOutcome(client, connection, active);
    const failed = describeArmError(error, `following ${active.stepId}`);
    if (!settled) {
      return { cluster, action: "following", stepId: active.stepId, message: `${active.stepId} still running (ARM shows it in progress; polling failed: ${failed.explanation})` };
    }
    succeeded = settled.succeeded;
    failure = succeeded ? undefined : { ...failed, message: `${failed.message}; ARM shows ${settled.state}` };
  } else {
    const status = poller.operationState?.status;
    const done = poller.isDone || status === "failed" || status === "canceled";
    if (!done) {
      await updateActive(deps.table, cluster, { ...active, pollerState: await poller.serialize() });
      return { cluster, action: "following", stepId: active.stepId, message: `${active.stepId} still running` };
    }
    succeeded = status === "succeeded";
    failure = succeeded ? undefined : describeArmError(poller.operationState?.error, active.stepId);
  }
  await clearActive(deps.table, cluster);
  const message = succeeded ? `${active.stepId} succeeded: ${active.from} → ${active.to}` : `${active.stepId} failed: ${failure!.code}: ${failure!.message}`;
  await recordOutcome(deps.table, cluster, {
    stepId: active.stepId,
    kind: active.kind,
    pool: active.pool,
    to: active.to,
    result: succeeded ? "succeeded" : "failed",
    at: now,
    message,
    startedAt: active.startedAt,
    approvedBy: active.approvedBy,
    operationId: active.operationId,
  });
  deps.log?.(`upgrade-apply cluster=${cluster} ${message}`);
  // The cluster changed: the stored plan is stale either way.
  await planCluster(deps, connection);
  return { cluster, action: succeeded ? "succeeded" : "failed", stepId: active.stepId, message };
}

/**
 * The resource an operation changes, read directly: undefined while it is still in progress (or
 * cannot be read), else whether it settled where the step was going.
 */
async function resourceOutcome(client: ContainerServiceClient, connection: ClusterConnection, active: ActiveOperation): Promise<{ succeeded: boolean; state: string } | undefined> {
  const { resourceGroup, name } = parseAksResourceId(connection.aksResourceId!);
  try {
    if (active.kind === "controlPlane") {
      const mc = await client.managedClusters.get(resourceGroup, name);
      if (!isSettled(mc.provisioningState)) return undefined;
      return { succeeded: mc.provisioningState === "Succeeded" && mc.currentKubernetesVersion === active.to, state: `provisioningState ${mc.provisioningState}, version ${mc.currentKubernetesVersion}` };
    }
    const pool = await client.agentPools.get(resourceGroup, name, active.pool!);
    if (!isSettled(pool.provisioningState)) return undefined;
    const at = active.kind === "poolVersion" ? pool.currentOrchestratorVersion : pool.nodeImageVersion;
    return { succeeded: pool.provisioningState === "Succeeded" && at === active.to, state: `provisioningState ${pool.provisioningState}, ${active.kind === "poolVersion" ? "version" : "node image"} ${at}` };
  } catch {
    return undefined;
  }
}

/** Approves one step of an `apply: "approve"` cluster; it then starts in its window. */
export async function approveStep(table: TableClient, cluster: string, stepId: string, by: string, now = new Date()): Promise<ApplyState> {
  return updateApplyState(table, cluster, (s) => void (s.approvals[stepId] = { by, at: now.toISOString() }));
}

/** Stops apply mode from starting steps (a running one is still followed to its end). */
export async function pauseApply(table: TableClient, cluster: string, by: string, reason?: string, now = new Date()): Promise<ApplyState> {
  return updateApplyState(table, cluster, (s) => void (s.paused = { by, at: now.toISOString(), reason }));
}

/** Lifts a pause, and forgets ARM's refusals: the operator says the cause is dealt with. */
export async function resumeApply(table: TableClient, cluster: string, by: string, now = new Date()): Promise<ApplyState> {
  return updateApplyState(table, cluster, (s) => {
    delete s.paused;
    s.refused = {};
    s.resumed = { by, at: now.toISOString() };
  });
}
