import { app, type HttpRequest, type InvocationContext } from "@azure/functions";
import { authorizeOperator, operatorLabel } from "../shared/auth/operator";
import { HttpError, httpHandler, json, parseRoute } from "../shared/http/http";
import { getRollcall } from "../shared/orchestrator/fromConfig";
import { nodeRoute } from "../shared/protocol/names";
import { requireConfiguredCluster } from "./checkin";
import { nodeStatusUrl } from "./rebootRequest";

/**
 * POST /api/clusters/{cluster}/nodes/{node}/retry — end a drain-failed node's back-off now: it goes
 * back to pending and waits its turn like any other. Its failure count stays, so the drain-failure
 * policy (quarantine after N failures) still applies.
 */
export const retryNode = httpHandler(async (request: HttpRequest, context: InvocationContext) => {
  const retriedBy = operatorLabel(authorizeOperator(request, "Rollcall.Operate"));
  const { cluster, node } = parseRoute(request, nodeRoute);
  requireConfiguredCluster(cluster);
  const { requests } = await getRollcall();
  const result = await requests.retry(cluster, node, retriedBy, context);
  switch (result.kind) {
    case "retried":
      return json(200, { retried: true, retriedBy, state: result.state, statusUrl: nodeStatusUrl(cluster, node) });
    case "not-drain-failed":
      throw new HttpError(
        409,
        "not_drain_failed",
        `Node ${node} is ${result.state}: only a drain-failed node can be retried (a stuck, quarantined or maintenance node is released with POST …/release)`,
        { state: result.state },
      );
    case "unknown-node":
      throw new HttpError(404, "unknown_node", `Rollcall has no record of node ${node} in cluster ${cluster}`);
  }
});

app.http("retryNode", {
  route: "clusters/{cluster}/nodes/{node}/retry",
  methods: ["POST"],
  authLevel: "function",
  handler: retryNode,
});
