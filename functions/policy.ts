import { app, type HttpRequest, type InvocationContext } from "@azure/functions";
import { authorizeOperator, operatorLabel } from "../shared/auth/operator";
import { getConfig } from "../shared/config/config";
import { HttpError, httpHandler, json, parseRoute } from "../shared/http/http";
import { getRollcall } from "../shared/orchestrator/fromConfig";
import { policyFromConfig } from "../shared/policy/policy";
import { outboundPolicyProblems } from "../shared/policy/outboundPolicy";
import { describePolicy, parsePolicyDocument, PolicyValidationError, resolvePolicy } from "../shared/policy/policySchema";
import { policyStoreFor } from "../shared/policy/policyStore";
import { clusterRoute } from "../shared/protocol/names";
import { requireConfiguredCluster } from "./checkin";

/** A policy document is small; anything larger is refused before parsing. */
export const MAX_POLICY_BYTES = 64 * 1024;

async function store() {
  const { table } = await getRollcall();
  return policyStoreFor(table, policyFromConfig(getConfig()));
}

/** What the policy would make the app call, against the app's outbound settings and DNS (shared/policy/outboundPolicy.ts). */
async function refuseOutboundProblems(input: unknown): Promise<void> {
  const config = getConfig();
  const problems = await outboundPolicyProblems(resolvePolicy(policyFromConfig(config), parsePolicyDocument(input)), config.outbound);
  if (problems.length) throw new PolicyValidationError(problems);
}

/**
 * GET /api/clusters/{cluster}/policy — the cluster's stored policy document (what was PUT, or
 * null when it runs on the app-setting defaults) and the effective policy after merging.
 */
export const getPolicy = httpHandler(async (request: HttpRequest) => {
  authorizeOperator(request, "Rollcall.Read");
  const { cluster } = parseRoute(request, clusterRoute);
  requireConfiguredCluster(cluster);
  const policies = await store();
  const stored = await policies.read(cluster);
  const effective = await policies.load(cluster).catch((error: unknown) => {
    if (error instanceof PolicyValidationError) throw new HttpError(500, "stored_policy_invalid", `The stored policy no longer validates: ${error.message}`);
    throw error;
  });
  return json(200, {
    cluster,
    policy: stored?.document ?? null,
    updatedAt: stored?.updatedAt ?? null,
    updatedBy: stored?.updatedBy ?? null,
    effective: describePolicy(effective),
  });
});

/**
 * PUT /api/clusters/{cluster}/policy — replaces the cluster's policy document. Invalid → 400 with
 * `problems: [{ field, message }]` naming each option and what it accepts; the stored policy is
 * unchanged. `{}` means "the app-setting defaults".
 */
export const putPolicy = httpHandler(async (request: HttpRequest, context: InvocationContext) => {
  const updatedBy = operatorLabel(authorizeOperator(request, "Rollcall.Operate"));
  const { cluster } = parseRoute(request, clusterRoute);
  requireConfiguredCluster(cluster);
  const text = await request.text();
  if (Buffer.byteLength(text) > MAX_POLICY_BYTES) throw new HttpError(413, "body_too_large", `The body is larger than ${MAX_POLICY_BYTES} bytes`);
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, "invalid_json", `The body is not valid JSON: ${(error as Error).message}`);
  }
  try {
    await refuseOutboundProblems(input);
    const result = await (await store()).write(cluster, input, updatedBy);
    context.info(`policy cluster=${cluster} updatedBy=${JSON.stringify(updatedBy)}`);
    return json(200, { cluster, policy: input, updatedAt: result.updatedAt, updatedBy, effective: describePolicy(result.policy) });
  } catch (error) {
    if (error instanceof PolicyValidationError) {
      throw new HttpError(400, "invalid_policy", error.message, { problems: error.problems });
    }
    throw error;
  }
});

app.http("getPolicy", {
  route: "clusters/{cluster}/policy",
  methods: ["GET"],
  authLevel: "function",
  handler: getPolicy,
});

app.http("putPolicy", {
  route: "clusters/{cluster}/policy",
  methods: ["PUT"],
  authLevel: "function",
  handler: putPolicy,
});
