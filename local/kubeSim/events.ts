import { isPlainObject } from "./json";
import { ApiError } from "./status";
import type { Json, KubeObject } from "./store";

/**
 * Events, as kube-apiserver serves them: one storage (core/v1 `Event`) behind two APIs, core/v1 and
 * events.k8s.io/v1, each object readable and writable through either. The field mapping is
 * k8s.io/kubernetes pkg/apis/events/v1/conversion.go (regarding ↔ involvedObject, note ↔ message,
 * reportingController ↔ reportingComponent, deprecated* ↔ the legacy fields); the checks are
 * pkg/apis/core/validation/events.go (ValidateEventCreate) for the two API versions.
 */

/** events.k8s.io/v1 field name → core/v1 field name; the fields of the same name are left out. */
const V1_TO_CORE: Readonly<Record<string, string>> = {
  regarding: "involvedObject",
  note: "message",
  reportingController: "reportingComponent",
  deprecatedSource: "source",
  deprecatedFirstTimestamp: "firstTimestamp",
  deprecatedLastTimestamp: "lastTimestamp",
  deprecatedCount: "count",
};
const CORE_TO_V1: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(V1_TO_CORE).map(([v1, core]) => [core, v1]));

function rename(object: Record<string, Json>, names: Readonly<Record<string, string>>): Record<string, Json> {
  return Object.fromEntries(Object.entries(object).map(([field, value]) => [names[field] ?? field, value]));
}

/** An events.k8s.io/v1 body in storage's (core/v1) shape. */
export function eventFromV1(body: Json): Json {
  if (!isPlainObject(body)) return body;
  const { apiVersion: _apiVersion, kind: _kind, ...rest } = body;
  return { apiVersion: "v1", kind: "Event", ...rename(rest, V1_TO_CORE) };
}

/** A stored event as events.k8s.io/v1 serves it. */
export function eventToV1(stored: KubeObject, withType = true): KubeObject {
  const { apiVersion: _apiVersion, kind: _kind, ...rest } = stored as unknown as Record<string, Json>;
  return { ...(withType ? { apiVersion: "events.k8s.io/v1", kind: "Event" } : {}), ...rename(rest, CORE_TO_V1) } as unknown as KubeObject;
}

/** Field selectors of events.k8s.io/v1 are those of core/v1 under the v1 names. */
export function eventsV1FieldSelector(text: string): string {
  return text
    .split(",")
    .map((term) => term.replace(/^(\s*)([^=!\s.]+)(\.[^=!\s]*)?/, (_m, space: string, head: string, tail = "") => `${space}${V1_TO_CORE[head] ?? head}${tail}`))
    .join(",");
}

/** ValidateEventCreate: what kube-apiserver answers 422 for, through the API version `v1Api` says. */
export function validateEventCreate(event: Json, v1Api: boolean): void {
  const causes: { field: string; message: string }[] = [];
  const meta = isPlainObject(event) && isPlainObject(event.metadata) ? event.metadata : {};
  const involved = isPlainObject(event?.involvedObject) ? event.involvedObject : {};
  const eventNamespace = (meta.namespace as string | undefined) ?? "";
  const objectNamespace = (involved.namespace as string | undefined) ?? "";
  const field = `${v1Api ? "regarding" : "involvedObject"}.namespace`;
  // An object without a namespace (a Node) has its events in "default" (or none, for old clients);
  // a namespaced object's events are in its own namespace.
  const allowed = objectNamespace === "" ? eventNamespace === "" || eventNamespace === "default" : eventNamespace === objectNamespace;
  if (!allowed) causes.push({ field, message: "does not match event.namespace" });
  if (v1Api) {
    // events.k8s.io/v1 requires the fields the new API is built on (validateV1EventSeries and friends).
    if (!event?.eventTime) causes.push({ field: "eventTime", message: "Required value" });
    if (!event?.reportingComponent) causes.push({ field: "reportingController", message: "Required value" });
    if (!event?.reportingInstance) causes.push({ field: "reportingInstance", message: "Required value" });
    if (!event?.action) causes.push({ field: "action", message: "Required value" });
    if (event?.type !== "Normal" && event?.type !== "Warning") causes.push({ field: "type", message: `Unsupported value: "${event?.type ?? ""}"` });
  }
  if (causes.length === 0) return;
  const name = (meta.name as string | undefined) ?? "";
  throw new ApiError(422, "Invalid", `Event "${name}" is invalid: ${causes.map((c) => `${c.field}: ${c.message}`).join(", ")}`, {
    name,
    kind: "Event",
    causes: causes.map((c) => ({ reason: "FieldValueInvalid", message: c.message, field: c.field })),
  });
}
