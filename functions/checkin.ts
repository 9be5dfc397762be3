import { app, type HttpRequest, type InvocationContext } from "@azure/functions";
import { announceAgentAuthMode, authenticateCheckin } from "../shared/auth/tokenReview";
import { getConfig } from "../shared/config/config";
import { HttpError, httpHandler, json, parseJsonBody, parseRoute } from "../shared/http/http";
import { getRollcall } from "../shared/orchestrator/fromConfig";
import { CheckinRequest, MAX_CHECKIN_BYTES } from "../shared/protocol/checkin";
import { nodeRoute } from "../shared/protocol/names";

/** POST /api/clusters/{cluster}/nodes/{node}/checkin — an agent reports its node and learns what to do. */
export const checkin = httpHandler(async (request: HttpRequest, context: InvocationContext) => {
  const { cluster, node } = parseRoute(request, nodeRoute);
  const body = await parseJsonBody(request, CheckinRequest, MAX_CHECKIN_BYTES);
  requireConfiguredCluster(cluster);
  await authenticateCheckin(request, cluster, node, context, async () => (await getRollcall()).kube);
  const answer = await (await getRollcall()).orchestrator.checkin(cluster, node, body, context);
  return json(200, answer);
});

export function requireConfiguredCluster(cluster: string): void {
  if (!getConfig().clusters.some((c) => c.name === cluster)) {
    throw new HttpError(404, "unknown_cluster", `Cluster ${cluster} is not configured in ROLLCALL_CLUSTERS`);
  }
}

announceAgentAuthMode();

app.http("checkin", {
  route: "clusters/{cluster}/nodes/{node}/checkin",
  methods: ["POST"],
  authLevel: "function",
  handler: checkin,
});
