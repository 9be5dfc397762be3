import { app, type HttpRequest, type InvocationContext } from "@azure/functions";
import { z } from "zod";
import { authorizeOperator, operatorLabel } from "../shared/auth/operator";
import { HttpError, httpHandler, json, parseJsonBody, parseRoute } from "../shared/http/http";
import { getRollcall } from "../shared/orchestrator/fromConfig";
import { nodeRoute } from "../shared/protocol/names";
import { requireConfiguredCluster } from "./checkin";

/**
 * POST   /api/clusters/{cluster}/nodes/{node}/reboot — ask for a reboot (or a drain-only maintenance)
 * DELETE /api/clusters/{cluster}/nodes/{node}/reboot — withdraw it before its drain begins
 *
 * A request waits its turn under the same lock and policy as a sentinel-driven reboot. Asking again
 * while one stands returns the same request: a node is never rebooted twice for it.
 */

const MAX_BODY_BYTES = 8 * 1024;
/** A request further ahead than this is almost certainly a mistake (a year typed wrong). */
const MAX_NOT_BEFORE_MS = 366 * 24 * 3600_000;

export const RebootRequestBody = z
  .object({
    reason: z
      .string()
      .trim()
      .min(1, { message: "is required: say why the node needs a reboot" })
      .max(500, { message: "must be at most 500 characters" })
      .regex(/^[^\u0000-\u001f\u007f]*$/, { message: "must not contain control characters" }),
    // A time already past would start the node at once, which is rarely what a scheduled request meant: say so, and "now" says it on purpose.
    notBefore: z
      .union([
        z.literal("now"),
        z.iso
          .datetime({ offset: true, message: 'must be an ISO 8601 date-time with a time zone, e.g. 2026-11-24T22:00:00Z, or "now"' })
          .refine((value) => Date.parse(value) >= Date.now(), {
            message: 'is in the past: give a later date-time, or "now" to start as soon as the lock and the policy allow',
          })
          .refine((value) => Date.parse(value) - Date.now() <= MAX_NOT_BEFORE_MS, { message: "must be within a year from now" }),
      ])
      .optional(),
    mode: z.enum(["reboot", "drain-only"]).default("reboot"),
    priority: z.number().int().min(0).max(100).default(0),
  })
  .strict();

export function nodeStatusUrl(cluster: string, node: string): string {
  return `/api/clusters/${encodeURIComponent(cluster)}/nodes/${encodeURIComponent(node)}`;
}

export const requestReboot = httpHandler(async (request: HttpRequest, context: InvocationContext) => {
  const requestedBy = operatorLabel(authorizeOperator(request, "Rollcall.Operate"));
  const { cluster, node } = parseRoute(request, nodeRoute);
  const body = await parseJsonBody(request, RebootRequestBody, MAX_BODY_BYTES);
  requireConfiguredCluster(cluster);
  const { requests } = await getRollcall();
  const notBefore = body.notBefore === undefined || body.notBefore === "now" ? undefined : new Date(body.notBefore).toISOString();
  const result = await requests.request(cluster, node, { reason: body.reason, requestedBy, mode: body.mode, priority: body.priority, notBefore }, context);
  const statusUrl = nodeStatusUrl(cluster, node);
  switch (result.kind) {
    case "accepted":
    case "existing":
      if (result.kind === "existing" && result.request.mode !== body.mode) {
        throw new HttpError(
          409,
          "conflicting_request",
          `Node ${node} already has a ${result.request.mode} request (${result.request.id}) by ${result.request.requestedBy}; cancel it before asking for ${body.mode}`,
          { requestId: result.request.id, state: result.state, statusUrl },
        );
      }
      return json(
        202,
        {
          requestId: result.request.id,
          state: result.state,
          statusUrl,
          created: result.kind === "accepted",
          request: result.request,
          // The request waits out the drain-failure back-off like the node's own turn: say how not to wait.
          ...(result.state === "drain-failed" && {
            message: `Node ${node} is drain-failed: the request waits until its drain-failure back-off ends; POST ${statusUrl}/retry starts it now`,
          }),
        },
        { location: statusUrl },
      );
    case "in-progress":
      return json(
        202,
        {
          requestId: null,
          state: result.state,
          statusUrl,
          created: false,
          leaseId: result.leaseId,
          message: `A reboot of node ${node} is already under way (state ${result.state}); it satisfies this request`,
        },
        { location: statusUrl },
      );
    case "unknown-node":
      throw new HttpError(404, "unknown_node", `Cluster ${cluster} has no node named ${node}`);
    case "no-agent":
      throw new HttpError(
        409,
        "no_agent",
        `No Rollcall agent has checked in from node ${node} yet, so nothing could reboot it; deploy the agent there, or ask for mode "drain-only"`,
      );
  }
});

export const cancelReboot = httpHandler(async (request: HttpRequest, context: InvocationContext) => {
  const cancelledBy = operatorLabel(authorizeOperator(request, "Rollcall.Operate"));
  const { cluster, node } = parseRoute(request, nodeRoute);
  requireConfiguredCluster(cluster);
  const { requests } = await getRollcall();
  const result = await requests.cancel(cluster, node, cancelledBy, context);
  switch (result.kind) {
    case "cancelled":
      return json(200, { cancelled: true, requestId: result.request.id, state: result.state, statusUrl: nodeStatusUrl(cluster, node) });
    case "nothing-to-cancel":
      throw new HttpError(404, "nothing_to_cancel", `Node ${node} in cluster ${cluster} has no reboot request to cancel`);
    case "too-late":
      throw new HttpError(409, "too_late", `The request can no longer be cancelled: node ${node} is ${result.state} since ${result.since}`, {
        state: result.state,
        since: result.since,
      });
  }
});

app.http("rebootRequest", {
  route: "clusters/{cluster}/nodes/{node}/reboot",
  methods: ["POST"],
  authLevel: "function",
  handler: requestReboot,
});

app.http("rebootCancel", {
  route: "clusters/{cluster}/nodes/{node}/reboot",
  methods: ["DELETE"],
  authLevel: "function",
  handler: cancelReboot,
});
