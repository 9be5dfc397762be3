import { app, type HttpRequest, type InvocationContext } from "@azure/functions";
import { authorizeOperator } from "../shared/auth/operator";
import { getConfig } from "../shared/config/config";
import { readHistory } from "../shared/history/history";
import { httpHandler } from "../shared/http/http";
import { EXPOSITION_CONTENT_TYPE } from "../shared/metrics/exposition";
import { type ClusterSnapshot, PHASE_WINDOW_ENTRIES, renderMetrics } from "../shared/metrics/rollcallMetrics";
import { getRollcall } from "../shared/orchestrator/fromConfig";

/**
 * GET /api/metrics — every configured cluster's nodes, lock and queue, and its recent phase
 * durations, in the Prometheus text exposition format for a scraper (docs/monitoring.md). It reads
 * Table Storage only: no cluster API and no ARM call, so a scrape costs a few table queries.
 */
export const metrics = httpHandler(async (request: HttpRequest, _context: InvocationContext) => {
  authorizeOperator(request, "Rollcall.Read");
  const { store, lock, policy, table } = await getRollcall();
  const clusters = await Promise.all(
    getConfig().clusters.map(async ({ name: cluster }): Promise<ClusterSnapshot> => {
      const [records, view, rules, history] = await Promise.all([
        store.list(cluster),
        lock.view(cluster),
        policy(cluster),
        readHistory(table, cluster, { limit: PHASE_WINDOW_ENTRIES }),
      ]);
      return { cluster, nodes: records.map((r) => r.value), holders: view.holders, slots: rules.concurrency, history: history.entries };
    }),
  );
  return { status: 200, body: renderMetrics(clusters), headers: { "content-type": EXPOSITION_CONTENT_TYPE, "cache-control": "no-store" } };
});

app.http("metrics", {
  route: "metrics",
  methods: ["GET"],
  authLevel: "function",
  handler: metrics,
});
