import type { ContainerServiceClient } from "@azure/arm-containerservice" with { "resolution-mode": "import" };
import type { ClusterConnection } from "../config/config";
import { parseAksResourceId } from "../azure/arm";
import { describeArmError } from "./armFacts";
import { claimActive, clearActive, loadActive, loadPlan, recordOutcome, updateActive, type ActiveOperation, type StepOutcome } from "./planStore";
import type { PlanStep, UpgradePlan } from "./planner";
import { planCluster, type UpgradeDeps } from "./service";

/**
 * Apply mode (opt-in per cluster): at the opening of a step's window, start it through ARM, follow its
 * long-running operation across invocations (the poller's serialized state is kept in `upgrade:active`),
 * and record the outcome. One operation per cluster at a time; 409 OperationNotAllowed means "try later".
 */

export type ApplyAction = "off" | "idle" | "waiting" | "blocked" | "busy" | "started" | "following" | "succeeded" | "failed" | "deferred";

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

/** Steps whose predecessor is done (plans are recomputed after each step, so: chain heads) with their window open at `now`. */
export function dueSteps(plan: UpgradePlan, now: Date): PlanStep[] {
  return plan.steps.filter((s) => {
    if (s.after) return false;
    if (s.window.kind === "anyTime") return true;
    if (s.window.kind === "none") return false;
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

  const stored = (await loadPlan(deps.table, cluster))?.plan;
  if (!stored || dueSteps(stored, now).length === 0) {
    return { cluster, action: stored?.steps.length ? "waiting" : "idle", message: stored?.steps.length ? "no step's window is open" : "nothing to apply" };
  }
  // A step is due by the stored plan: re-read the facts so that the step started matches the cluster now.
  const fresh = await planCluster(deps, connection);
  if (!fresh.ok) return { cluster, action: "deferred", message: `could not re-read the cluster before starting: ${fresh.error.failure.explanation}` };
  if (fresh.plan.applyBlocked) return { cluster, action: "blocked", message: `not applying: ${fresh.plan.applyBlocked}` };
  const step = dueSteps(fresh.plan, now)[0];
  if (!step) return { cluster, action: fresh.plan.steps.length ? "waiting" : "idle", message: "no step's window is open" };
  return start(deps, connection, client, step, now, options);
}

async function start(deps: UpgradeDeps, connection: ClusterConnection, client: ContainerServiceClient, step: PlanStep, now: Date, options: ApplyOptions): Promise<ApplyResult> {
  const cluster = connection.name;
  const { resourceGroup, name } = parseAksResourceId(connection.aksResourceId!);
  const operation: ActiveOperation = { stepId: step.id, kind: step.kind, pool: step.pool, from: step.from, to: step.to, startedAt: now.toISOString() };
  if (!(await claimActive(deps.table, cluster, operation))) {
    return { cluster, action: "busy", stepId: step.id, message: "another invocation holds the cluster's upgrade slot" };
  }
  const outcome = (result: StepOutcome["result"], message?: string): StepOutcome => ({ stepId: step.id, kind: step.kind, pool: step.pool, to: step.to, result, at: now.toISOString(), message });
  let pollerState: string;
  try {
    const { poller } = await begin(client, resourceGroup, name, step, options);
    pollerState = await poller.serialize();
  } catch (error) {
    await clearActive(deps.table, cluster);
    const failure = describeArmError(error, `starting ${step.id}`);
    // Another operation in progress (409 OperationNotAllowed) or a change since our GET (412): try again later.
    const later = (failure.status === 409 && failure.code === "OperationNotAllowed") || failure.status === 412 || failure.status === 429 || (failure.status ?? 0) >= 500;
    const result = later ? "deferred" : "failed";
    await recordOutcome(deps.table, cluster, outcome(result, `${failure.explanation}: ${failure.message}`));
    deps.log?.(`upgrade-apply cluster=${cluster} step=${step.id} ${result}: ${failure.explanation}`);
    return { cluster, action: result, stepId: step.id, message: `${later ? "try later" : "failed"}: ${failure.explanation}: ${failure.message}` };
  }
  const started = { ...operation, pollerState };
  await updateActive(deps.table, cluster, started);
  await recordOutcome(deps.table, cluster, outcome("started"));
  deps.log?.(`upgrade-apply cluster=${cluster} step=${step.id} started: ${step.from} → ${step.to}`);
  const followed = await follow(deps, connection, client, started, options);
  return followed.action === "following" ? { ...followed, action: "started", message: `started ${step.id}; ${followed.message}` } : followed;
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
  const status = poller.operationState?.status;
  const done = poller.isDone || status === "failed" || status === "canceled";
  if (!done && error === undefined) {
    await updateActive(deps.table, cluster, { ...active, pollerState: await poller.serialize() });
    return { cluster, action: "following", stepId: active.stepId, message: `${active.stepId} still running` };
  }
  if (!done && error !== undefined) {
    // Polling itself failed (network, throttling): keep following on the next run.
    const failure = describeArmError(error, `following ${active.stepId}`);
    return { cluster, action: "following", stepId: active.stepId, message: `${active.stepId}: ${failure.explanation}` };
  }
  await clearActive(deps.table, cluster);
  const succeeded = status === "succeeded" && error === undefined;
  const failure = succeeded ? undefined : describeArmError(error ?? poller.operationState?.error, active.stepId);
  const message = succeeded ? `${active.stepId} succeeded: ${active.from} → ${active.to}` : `${active.stepId} failed: ${failure!.code}: ${failure!.message}`;
  await recordOutcome(deps.table, cluster, { stepId: active.stepId, kind: active.kind, pool: active.pool, to: active.to, result: succeeded ? "succeeded" : "failed", at: now, message });
  deps.log?.(`upgrade-apply cluster=${cluster} ${message}`);
  // The cluster changed: the stored plan is stale either way.
  await planCluster(deps, connection);
  return { cluster, action: succeeded ? "succeeded" : "failed", stepId: active.stepId, message };
}
