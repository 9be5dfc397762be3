import { app, type HttpRequest, type InvocationContext } from "@azure/functions";
import { z } from "zod";
import { authorizeOperator, operatorLabel } from "../shared/auth/operator";
import { HttpError, httpHandler, json, parseJsonBody, parseRoute } from "../shared/http/http";
import { clusterName } from "../shared/protocol/names";
import { approveStep, pauseApply, resumeApply } from "../shared/upgrade/applier";
import { configuredAksCluster, getUpgradeDeps } from "../shared/upgrade/fromConfig";
import { loadPlan } from "../shared/upgrade/planStore";

/**
 * A human in the loop of apply mode (Rollcall.Operate):
 * POST /api/clusters/{cluster}/upgrade-plan/steps/{step}/approve — `apply: "approve"`: this step may start in its window;
 * POST /api/clusters/{cluster}/upgrade-plan/pause   — no new step starts (body optional: `{ "reason": "…" }`);
 * POST /api/clusters/{cluster}/upgrade-plan/resume  — steps start again; ARM's refusals are forgotten (retried).
 */

/** Step ids as the planner writes them: `controlPlane:1.31.3`, `poolVersion:user:1.31.3`, `nodeImage:user`. */
const stepRoute = z.object({ cluster: clusterName, step: z.string().regex(/^(controlPlane|poolVersion|nodeImage):[a-z0-9.:]{1,64}$/, { message: "must be a step id of the plan, e.g. poolVersion:user:1.31.3" }) });
const clusterOnly = z.object({ cluster: clusterName });
const PauseBody = z.object({ reason: z.string().max(500).optional() }).strict();
const MAX_BODY_BYTES = 2048;

export const approveUpgradeStep = httpHandler(async (request: HttpRequest, context: InvocationContext) => {
  const by = operatorLabel(authorizeOperator(request, "Rollcall.Operate"));
  const { cluster, step } = parseRoute(request, stepRoute);
  const connection = configuredAksCluster(cluster);
  if (connection.upgrade?.apply !== "approve") {
    throw new HttpError(409, "not_approve_mode", `Cluster ${cluster} does not wait for approvals (upgrade.apply is ${JSON.stringify(connection.upgrade?.apply ?? false)}); set it to "approve"`);
  }
  const { table } = await getUpgradeDeps(context);
  const plan = (await loadPlan(table, cluster))?.plan;
  if (!plan?.steps.some((s) => s.id === step)) {
    throw new HttpError(404, "unknown_step", `The stored plan of ${cluster} has no step ${step}; GET upgrade-plan lists the steps (POST it to re-plan)`, {
      steps: plan?.steps.map((s) => s.id) ?? [],
    });
  }
  const state = await approveStep(table, cluster, step, by);
  context.info(`upgrade-apply cluster=${cluster} step=${step} approved by=${JSON.stringify(by)}`);
  return json(200, { cluster, step, approval: state.approvals[step] });
});

export const pauseUpgradeApply = httpHandler(async (request: HttpRequest, context: InvocationContext) => {
  const by = operatorLabel(authorizeOperator(request, "Rollcall.Operate"));
  const { cluster } = parseRoute(request, clusterOnly);
  configuredAksCluster(cluster);
  const body = request.body ? await parseJsonBody(request, PauseBody, MAX_BODY_BYTES) : {};
  const { table } = await getUpgradeDeps(context);
  const state = await pauseApply(table, cluster, by, body.reason);
  context.info(`upgrade-apply cluster=${cluster} paused by=${JSON.stringify(by)}`);
  return json(200, { cluster, paused: state.paused });
});

export const resumeUpgradeApply = httpHandler(async (request: HttpRequest, context: InvocationContext) => {
  const by = operatorLabel(authorizeOperator(request, "Rollcall.Operate"));
  const { cluster } = parseRoute(request, clusterOnly);
  configuredAksCluster(cluster);
  if (request.body) await parseJsonBody(request, z.object({}).strict(), MAX_BODY_BYTES);
  const { table } = await getUpgradeDeps(context);
  await resumeApply(table, cluster, by);
  context.info(`upgrade-apply cluster=${cluster} resumed by=${JSON.stringify(by)}`);
  return json(200, { cluster, paused: null });
});

app.http("approveUpgradeStep", { route: "clusters/{cluster}/upgrade-plan/steps/{step}/approve", methods: ["POST"], authLevel: "function", handler: approveUpgradeStep });
app.http("pauseUpgradeApply", { route: "clusters/{cluster}/upgrade-plan/pause", methods: ["POST"], authLevel: "function", handler: pauseUpgradeApply });
app.http("resumeUpgradeApply", { route: "clusters/{cluster}/upgrade-plan/resume", methods: ["POST"], authLevel: "function", handler: resumeUpgradeApply });
