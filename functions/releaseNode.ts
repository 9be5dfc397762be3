import { app, type HttpRequest, type InvocationContext } from "@azure/functions";
import { authorizeOperator, operatorLabel } from "../shared/auth/operator";
import { HttpError, httpHandler, json, parseRoute } from "../shared/http/http";
import { getRollcall } from "../shared/orchestrator/fromConfig";
import { nodeRoute } from "../shared/protocol/names";
import { requireConfiguredCluster } from "./checkin";
import { nodeStatusUrl } from "./rebootRequest";

/**
 * POST /api/clusters/{cluster}/nodes/{node}/release — end a drain-only maintenance (uncordon, free
 * the lock slot), or put a stuck or quarantined node back in rotation.
 */
export const releaseNode = httpHandler(async (request: HttpRequest, context: InvocationContext) => {
  const releasedBy = operatorLabel(authorizeOperator(request, "Rollcall.Operate"));
  const { cluster, node } = parseRoute(request, nodeRoute);
  requireConfiguredCluster(cluster);
  const { requests } = await getRollcall();
  const result = await requests.release(cluster, node, releasedBy, context);
  switch (result.kind) {
    case "released":
      return json(200, { released: true, releasedBy, state: result.state, statusUrl: nodeStatusUrl(cluster, node) });
    case "not-releasable":
      throw new HttpError(
        409,
        "not_releasable",
        result.state === "drain-failed"
          ? `Node ${node} is drain-failed, which is not released but retried: POST ${nodeStatusUrl(cluster, node)}/retry moves it back to pending now`
          : `Node ${node} is ${result.state}: only nodes in maintenance, stuck or quarantined can be released`,
        { state: result.state },
      );
    case "unknown-node":
      throw new HttpError(404, "unknown_node", `Rollcall has no record of node ${node} in cluster ${cluster}`);
  }
});

app.http("releaseNode", {
  route: "clusters/{cluster}/nodes/{node}/release",
  methods: ["POST"],
  authLevel: "function",
  handler: releaseNode,
});
