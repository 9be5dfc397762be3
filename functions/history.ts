import { app, type HttpRequest, type InvocationContext } from "@azure/functions";
import { z } from "zod";
import { authorizeOperator } from "../shared/auth/operator";
import { isHistoryToken, readHistory } from "../shared/history/history";
import { HttpError, httpHandler, json, parseQuery, parseRoute } from "../shared/http/http";
import { getRollcall } from "../shared/orchestrator/fromConfig";
import { clusterRoute, nodeName } from "../shared/protocol/names";
import { requireConfiguredCluster } from "./checkin";

/**
 * GET /api/clusters/{cluster}/history?limit=&continuationToken=&node= — finished reboots, drains and
 * maintenances, newest first, with per-phase durations (seconds) and who asked. Paged: pass the
 * `continuationToken` of one page to get the next.
 */

export const HistoryQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(20),
    continuationToken: z
      .string()
      .min(1)
      .max(4096)
      .regex(/^[A-Za-z0-9+/=_-]+$/, { message: "must be the continuationToken of a previous page" })
      .optional(),
    node: nodeName.optional(),
  })
  // Not strict: `code` (the function key) may travel in the query string too.
  .strip();

export const history = httpHandler(async (request: HttpRequest, _context: InvocationContext) => {
  authorizeOperator(request, "Rollcall.Read");
  const { cluster } = parseRoute(request, clusterRoute);
  const query = parseQuery(request, HistoryQuery);
  requireConfiguredCluster(cluster);
  if (query.continuationToken !== undefined && !isHistoryToken(query.continuationToken)) throw badToken();
  const { table } = await getRollcall();
  let page;
  try {
    page = await readHistory(table, cluster, query);
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 400 && query.continuationToken) throw badToken();
    throw error;
  }
  const next = page.continuationToken
    ? `/api/clusters/${encodeURIComponent(cluster)}/history?${new URLSearchParams({
        limit: String(query.limit),
        continuationToken: page.continuationToken,
        ...(query.node ? { node: query.node } : {}),
      }).toString()}`
    : undefined;
  return json(200, { cluster, entries: page.entries, continuationToken: page.continuationToken, next });
});

function badToken(): HttpError {
  return new HttpError(400, "invalid_continuation_token", "continuationToken is not one this API returned; start again without it");
}

app.http("history", {
  route: "clusters/{cluster}/history",
  methods: ["GET"],
  authLevel: "function",
  handler: history,
});
