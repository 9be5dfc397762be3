import { app, type HttpRequest, type InvocationContext } from "@azure/functions";
import { authorizeOperator } from "../shared/auth/operator";
import { readHistory } from "../shared/history/history";
import { HttpError, httpHandler, json, parseRoute } from "../shared/http/http";
import { getRollcall } from "../shared/orchestrator/fromConfig";
import { nodeRoute } from "../shared/protocol/names";
import { requireConfiguredCluster } from "./checkin";
import { nodeSummary } from "./clusterStatus";

/** GET /api/clusters/{cluster}/nodes/{node} — one node: its state, record, recent transitions and recent history. */

const RECENT_HISTORY = 10;

export const nodeStatus = httpHandler(async (request: HttpRequest, _context: InvocationContext) => {
  authorizeOperator(request, "Rollcall.Read");
  const { cluster, node } = parseRoute(request, nodeRoute);
  requireConfiguredCluster(cluster);
  const { store, lock, table } = await getRollcall();
  const [current, view, history] = await Promise.all([
    store.get(cluster, node),
    lock.view(cluster),
    readHistory(table, cluster, { limit: RECENT_HISTORY, node }),
  ]);
  if (!current) {
    throw new HttpError(404, "unknown_node", `Rollcall has no record of node ${node} in cluster ${cluster}: no agent checked in from it and nobody asked for it`);
  }
  const record = current.value;
  return json(200, {
    cluster,
    ...nodeSummary(record),
    lease: view.holders.find((h) => h.node === node && h.leaseId === record.leaseId),
    recent: [...(record.recent ?? [])].reverse(),
    history: history.entries,
    historyUrl: `/api/clusters/${encodeURIComponent(cluster)}/history?node=${encodeURIComponent(node)}`,
    record,
  });
});

app.http("nodeStatus", {
  route: "clusters/{cluster}/nodes/{node}",
  methods: ["GET"],
  authLevel: "function",
  handler: nodeStatus,
});
