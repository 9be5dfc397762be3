import type { ServerResponse } from "node:http";
import type { Resource } from "./resources";
import { parseFieldSelector, parseLabelSelector } from "./selectors";
import { ApiError, badRequest } from "./status";
import type { Change, KubeObject, Store } from "./store";

/**
 * kube-apiserver's watch: `GET <collection>?watch=1`, answered 200 with a stream of WatchEvents, one
 * JSON object per line (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes):
 * - no `resourceVersion` (or "0"): a synthetic ADDED for every object that matches now, then changes;
 * - a `resourceVersion`: every change after it; one older than the kept history is answered with an
 *   ERROR event carrying a 410 Expired Status, and the stream ends;
 * - an object that stops matching the selectors is DELETED from the watch, one that starts is ADDED;
 *   a DELETED object is its last state, at the resourceVersion of its deletion (watch-event-v1-meta);
 * - `timeoutSeconds` ends the stream; so does the client going away.
 * Bookmarks are optional for a server and never sent.
 */
export function isWatch(query: URLSearchParams): boolean {
  const watch = query.get("watch");
  return watch === "true" || watch === "1";
}

type EventType = "ADDED" | "MODIFIED" | "DELETED";

export function serveWatch(store: Store, target: { resource: Resource; namespace?: string }, query: URLSearchParams, response: ServerResponse): void {
  const { resource, namespace } = target;
  const labels = parseLabelSelector(query.get("labelSelector") ?? "");
  const fields = parseFieldSelector(resource.plural, query.get("fieldSelector") ?? "");
  const matches = (o: KubeObject | undefined) => o !== undefined && (namespace === undefined || o.metadata.namespace === namespace) && labels(o.metadata.labels) && fields(o);
  const from = query.get("resourceVersion") ?? "";
  if (from !== "" && !/^\d+$/.test(from)) throw badRequest(`invalid resourceVersion ${JSON.stringify(from)}: resource versions are opaque strings this server issued`);
  const timeoutSeconds = query.has("timeoutSeconds") ? Number(query.get("timeoutSeconds")) : 1800;
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds < 0) throw badRequest(`invalid timeoutSeconds ${JSON.stringify(query.get("timeoutSeconds"))}`);
  const replay = from === "" || from === "0" ? undefined : store.changesSince(Number(from));

  response.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" });
  // kube-apiserver sends the headers as the watch starts: a client sees it open before any event.
  response.flushHeaders();
  const send = (type: EventType | "ERROR", object: unknown) => response.write(`${JSON.stringify({ type, object })}\n`);
  if (from !== "" && from !== "0" && replay === undefined) {
    const expired = new ApiError(410, "Expired", `too old resource version: ${from} (${store.resourceVersion})`, {});
    send("ERROR", expired.toStatus());
    response.end();
    return;
  }
  const forward = (change: Change) => {
    if (change.resource !== resource) return;
    const event = eventOf(change, matches);
    if (event) send(event.type, event.object);
  };
  if (replay === undefined) {
    for (const object of store.peek(resource, namespace).filter(matches)) send("ADDED", object);
  } else {
    replay.forEach(forward);
  }
  const stop = store.onChange(forward);
  const timer = setTimeout(() => response.end(), timeoutSeconds * 1000);
  // The response closes when it ends and when the client goes away (the request's own 'close' has
  // already fired: its body was read before the watch began).
  response.once("close", () => {
    stop();
    clearTimeout(timer);
  });
}

function eventOf(change: Change, matches: (o: KubeObject | undefined) => boolean): { type: EventType; object: KubeObject } | undefined {
  const was = matches(change.before);
  if (change.gone) return was ? { type: "DELETED", object: change.gone } : undefined;
  const is = matches(change.after);
  if (is) return { type: was ? "MODIFIED" : "ADDED", object: change.after! };
  return was ? { type: "DELETED", object: change.after! } : undefined;
}
