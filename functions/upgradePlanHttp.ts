import { app, type HttpRequest, type InvocationContext } from "@azure/functions";
import { authorizeOperator, operatorLabel } from "../shared/auth/operator";
import { getConfig } from "../shared/config/config";
import { z } from "zod";
import { HttpError, httpHandler, json, parseJsonBody, parseRoute } from "../shared/http/http";
import { clusterRoute } from "../shared/protocol/names";
import { configuredAksCluster, getUpgradeDeps } from "../shared/upgrade/fromConfig";
import { pausedPools } from "../shared/upgrade/pauses";
import { loadActive, loadApplyState, loadHistory, loadPlan } from "../shared/upgrade/planStore";
import { NotAnAksClusterError, planCluster } from "../shared/upgrade/service";

/**
 * GET  /api/clusters/{cluster}/upgrade-plan — the stored plan (JSON and a human summary), the last ARM error, the running step.
 * POST /api/clusters/{cluster}/upgrade-plan — re-plan now from ARM's facts and return the new plan. No
 *      body or `{}`; at most one re-plan per cluster per ROLLCALL_UPGRADE_REPLAN_SECONDS (each reads ARM).
 */

/** A re-plan takes no options: the plan follows the cluster's configured policy. */
const ReplanBody = z.object({}).strict();
const MAX_REPLAN_BODY_BYTES = 1024;

export const getUpgradePlan = httpHandler(async (request: HttpRequest, context: InvocationContext) => {
  authorizeOperator(request, "Rollcall.Read");
  const { cluster } = parseRoute(request, clusterRoute);
  const connection = configuredAksCluster(cluster);
  const { table } = await getUpgradeDeps(context);
  const [stored, active, history, paused, applyState] = await Promise.all([
    loadPlan(table, cluster),
    loadActive(table, cluster),
    loadHistory(table, cluster),
    pausedPools(table, cluster),
    loadApplyState(table, cluster),
  ]);
  if (!stored?.plan && !stored?.lastError) {
    throw new HttpError(404, "no_plan", `No upgrade plan for ${cluster} yet; POST to this route to compute one`);
  }
  return json(200, {
    cluster,
    summary: stored.plan?.summary ?? [],
    plan: stored.plan ?? null,
    lastError: stored.lastError ?? null,
    activeOperation: active
      ? { stepId: active.stepId, kind: active.kind, pool: active.pool, from: active.from, to: active.to, startedAt: active.startedAt, approvedBy: active.approvedBy, operationId: active.operationId }
      : null,
    rebootsPausedOnPools: paused.map((p) => p.pool),
    rebootPauses: paused,
    apply: { mode: connection.upgrade?.apply ?? false, paused: applyState.paused ?? null, approvals: applyState.approvals, refused: applyState.refused, occupiedUntil: applyState.occupiedUntil ?? null },
    history,
  });
});

export const postUpgradePlan = httpHandler(async (request: HttpRequest, context: InvocationContext) => {
  const plannedBy = operatorLabel(authorizeOperator(request, "Rollcall.Operate"));
  const { cluster } = parseRoute(request, clusterRoute);
  const connection = configuredAksCluster(cluster);
  if (request.body) await parseJsonBody(request, ReplanBody, MAX_REPLAN_BODY_BYTES);
  const deps = await getUpgradeDeps(context);
  const stored = await loadPlan(deps.table, cluster);
  const last = Math.max(Date.parse(stored?.plan?.computedAt ?? "") || 0, Date.parse(stored?.lastError?.at ?? "") || 0);
  const wait = last + getConfig().upgrade.replanIntervalMs - Date.now();
  if (wait > 0) {
    const seconds = Math.ceil(wait / 1000);
    return json(
      429,
      {
        error: {
          code: "replan_too_soon",
          message: `${cluster} was planned at ${new Date(last).toISOString()}; re-plan again in ${seconds} s (ROLLCALL_UPGRADE_REPLAN_SECONDS), or GET this route for the stored plan`,
        },
        summary: stored?.plan?.summary ?? [],
        plan: stored?.plan ?? null,
      },
      { "retry-after": String(seconds) },
    );
  }
  context.info(`upgrade plan requested cluster=${cluster} by=${JSON.stringify(plannedBy)}`);
  let result;
  try {
    result = await planCluster(deps, connection);
  } catch (error) {
    if (error instanceof NotAnAksClusterError) throw new HttpError(409, "not_aks", error.message);
    throw error;
  }
  if (result.ok) return json(200, { cluster, summary: result.plan.summary, plan: result.plan });
  const failure = result.error.failure;
  const headers: Record<string, string> = failure.retryAfterSeconds !== undefined ? { "retry-after": String(failure.retryAfterSeconds) } : {};
  return json(
    failure.status === 429 ? 503 : 502,
    {
      error: { code: "arm_error", message: failure.explanation, arm: failure },
      previousPlan: result.previous ?? null,
      previousSummary: result.previous?.summary ?? [],
    },
    headers,
  );
});

app.http("getUpgradePlan", { route: "clusters/{cluster}/upgrade-plan", methods: ["GET"], authLevel: "function", handler: getUpgradePlan });
app.http("postUpgradePlan", { route: "clusters/{cluster}/upgrade-plan", methods: ["POST"], authLevel: "function", handler: postUpgradePlan });
