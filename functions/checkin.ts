import { app, type HttpRequest, type InvocationContext } from "@azure/functions";
import { announceAgentAuthMode, checkinVerifier } from "../shared/auth/tokenReview";
import { ConfigError, getConfig } from "../shared/config/config";
import { unsafeOnAzure } from "../shared/config/hosting";
import { HttpError, httpHandler, json, parseJsonBody, parseRoute } from "../shared/http/http";
import { getRollcall } from "../shared/orchestrator/fromConfig";
import { CheckinRequest, MAX_CHECKIN_BYTES } from "../shared/protocol/checkin";
import { preferredWaitSeconds } from "../shared/protocol/wire";
import { getTelemetry } from "../shared/telemetry/telemetry";
import { nodeRoute } from "../shared/protocol/names";

/** POST /api/clusters/{cluster}/nodes/{node}/checkin — an agent reports its node and learns what to do. */
export const checkin = httpHandler(async (request: HttpRequest, context: InvocationContext) => {
  const { cluster, node } = parseRoute(request, nodeRoute);
  const body = await parseJsonBody(request, CheckinRequest, MAX_CHECKIN_BYTES);
  requireConfiguredCluster(cluster);
  const rollcall = await getRollcall();
  const verify = checkinVerifier(request, cluster, node, context, { kube: rollcall.kube, rejections: rollcall.rejections, telemetry: getTelemetry() });
  return json(200, await rollcall.orchestrator.checkin(cluster, node, body, context, verify, preferredWaitSeconds(request.headers.get("prefer"))));
});

export function requireConfiguredCluster(cluster: string): void {
  if (!getConfig().clusters.some((c) => c.name === cluster)) {
    throw new HttpError(404, "unknown_cluster", `Cluster ${cluster} is not configured in ROLLCALL_CLUSTERS`);
  }
}

// On Azure with check-ins unauthenticated the app refuses to start (the worker logs why) rather than
// answer every check-in with 500; the health route names the setting too.
const unsafe = unsafeOnAzure(process.env);
if (unsafe) throw new ConfigError(unsafe);
announceAgentAuthMode();

app.http("checkin", {
  route: "clusters/{cluster}/nodes/{node}/checkin",
  methods: ["POST"],
  authLevel: "function",
  handler: checkin,
});
