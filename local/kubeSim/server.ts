import type { IncomingMessage, ServerResponse } from "node:http";
import type { Controllers } from "./controllers";
import { evict } from "./eviction";
import { eventFromV1, eventsV1FieldSelector, eventToV1, validateEventCreate } from "./events";
import { isPlainObject } from "./json";
import { applyPatch, patchTypeOf } from "./patch";
import { apiVersionOf, findResource, type Resource, resources, type Verb } from "./resources";
import { parseFieldSelector, parseLabelSelector } from "./selectors";
import { ApiError, badRequest, internalError, methodNotAllowed, notFound, pathNotFound, successStatus, unauthorized } from "./status";
import type { Json, KubeObject, Store } from "./store";
import type { TokenAuthority } from "./tokens";
import { isWatch, serveWatch } from "./watch";

/** The HTTP face of the simulator: kube-apiserver's URL layout, verbs, status codes and JSON. */

export interface RequestRecord {
  at: number;
  method: string;
  path: string;
  /** The query string, without `?`. */
  query: string;
  contentType?: string;
  status: number;
}

export interface ApiServerContext {
  store: Store;
  controllers: Controllers;
  tokens: TokenAuthority;
  adminToken: string;
  retryAfterSeconds(): number | undefined;
  requestLog: RequestRecord[];
}

interface Reply {
  code: number;
  body: unknown;
}

/** The version this sim claims to be: AKS's default minor at the time of writing. */
const VERSION = { major: "1", minor: "32", gitVersion: "v1.32.6", platform: "linux/amd64" };

export function apiServer(context: ApiServerContext): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    void serve(context, request, response);
  };
}

async function serve(context: ApiServerContext, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const url = new URL(request.url ?? "/", "http://kube-sim");
  const method = request.method ?? "GET";
  let reply: Reply;
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  try {
    const raw = await readBody(request);
    if (request.headers.authorization !== `Bearer ${context.adminToken}`) throw unauthorized();
    // Timers may have changed the cluster since the last request; controllers react before anyone reads it.
    context.controllers.settle();
    if (method === "GET" && isWatch(url.searchParams)) {
      serveWatch(context.store, watchTarget(url), url.searchParams, response);
      context.requestLog.push({ at: Date.now(), method, path: url.pathname, query: url.search.replace(/^\?/, ""), status: 200 });
      return;
    }
    reply = route(context, method, url, request.headers["content-type"], raw);
  } catch (error) {
    const failure = error instanceof ApiError ? error : internalError(error instanceof Error ? error.message : String(error));
    if (failure.details?.retryAfterSeconds) headers["Retry-After"] = String(failure.details.retryAfterSeconds);
    reply = { code: failure.code, body: failure.toStatus() };
  } finally {
    context.controllers.settle();
  }
  context.requestLog.push({
    at: Date.now(),
    method,
    path: url.pathname,
    query: url.search.replace(/^\?/, ""),
    ...(request.headers["content-type"] ? { contentType: request.headers["content-type"] } : {}),
    status: reply.code,
  });
  response.writeHead(reply.code, headers);
  response.end(JSON.stringify(reply.body));
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function parseJson(raw: string): Json {
  if (raw.trim() === "") return undefined;
  try {
    return JSON.parse(raw);
  } catch (error) {
    throw badRequest(`the body of the request could not be decoded as JSON: ${(error as Error).message}`);
  }
}

interface Target {
  resource: Resource;
  namespace?: string;
  name?: string;
  subresource?: string;
}

function route(context: ApiServerContext, method: string, url: URL, contentType: string | undefined, raw: string): Reply {
  const segments = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  if (method === "GET" && segments.length === 1 && segments[0] === "version") return { code: 200, body: VERSION };
  if (segments.join("/") === "apis/authentication.k8s.io/v1/tokenreviews") {
    if (method !== "POST") throw methodNotAllowed();
    return { code: 201, body: context.tokens.review(parseJson(raw)) };
  }
  // TokenRequest: the serviceaccounts/token subresource (service accounts themselves are not simulated).
  if (segments.length === 7 && segments.slice(0, 3).join("/") === "api/v1/namespaces" && segments[4] === "serviceaccounts" && segments[6] === "token") {
    if (method !== "POST") throw methodNotAllowed();
    return { code: 201, body: context.tokens.request(segments[3]!, segments[5]!, parseJson(raw)) };
  }
  const target = parseTarget(segments);
  if (target.resource === resources.eventsV1) return eventsV1Route(context, method, url, contentType, raw, target);
  const { resource, namespace, name, subresource } = target;
  const allow = (verb: Verb) => {
    if (!resource.verbs.has(verb)) throw methodNotAllowed();
  };

  if (name === undefined) {
    if (method === "GET") {
      allow("list");
      return { code: 200, body: list(context.store, target, url.searchParams) };
    }
    if (method === "POST" && (namespace !== undefined || !resource.namespaced)) {
      allow("create");
      const body = parseJson(raw);
      if (resource === resources.events) validateEventCreate({ ...body, metadata: { ...body?.metadata, namespace } }, false);
      return { code: 201, body: create(context.store, target, body) };
    }
    throw methodNotAllowed();
  }

  if (subresource === "eviction") {
    if (method !== "POST") throw methodNotAllowed();
    return { code: 201, body: evict(context, namespace!, name, parseJson(raw)) };
  }

  const status = subresource === "status";
  switch (method) {
    case "GET":
      allow("get");
      return { code: 200, body: context.store.peekOne(resource, namespace, name) };
    case "PUT":
      allow("update");
      return { code: 200, body: update(context.store, target, parseJson(raw), status) };
    case "PATCH": {
      allow("patch");
      const current = context.store.require(resource, namespace, name);
      const patched = applyPatch(patchTypeOf(contentType), current, parseJson(raw));
      if (!isPlainObject(patched) || !isPlainObject(patched.metadata)) throw badRequest("the patch removed the object's metadata");
      return { code: 200, body: write(context.store, target, current, patched as unknown as KubeObject, status) };
    }
    case "DELETE":
      if (status) throw methodNotAllowed();
      allow("delete");
      return { code: 200, body: remove(context, target, url.searchParams, parseJson(raw)) };
    default:
      throw methodNotAllowed();
  }
}

/** A collection that can be watched: whatever can be listed, but events.k8s.io/v1 (not simulated for watches). */
function watchTarget(url: URL): Target {
  const target = parseTarget(url.pathname.split("/").filter(Boolean).map(decodeURIComponent));
  if (target.name !== undefined || target.resource === resources.eventsV1 || !target.resource.verbs.has("list")) throw methodNotAllowed();
  return target;
}

/** events.k8s.io/v1: the core/v1 events' storage, each request and answer converted (see events.ts). */
function eventsV1Route(context: ApiServerContext, method: string, url: URL, contentType: string | undefined, raw: string, target: Target): Reply {
  const stored: Target = { ...target, resource: resources.events };
  const { namespace, name } = target;
  if (name === undefined) {
    if (method === "GET") {
      const query = new URLSearchParams(url.searchParams);
      if (query.has("fieldSelector")) query.set("fieldSelector", eventsV1FieldSelector(query.get("fieldSelector")!));
      const body = list(context.store, stored, query) as { items: KubeObject[] };
      return { code: 200, body: { ...body, apiVersion: "events.k8s.io/v1", items: body.items.map((item) => eventToV1(item, false)) } };
    }
    if (method === "POST" && namespace !== undefined) {
      const body = eventFromV1(parseJson(raw));
      validateEventCreate({ ...body, metadata: { ...body?.metadata, namespace } }, true);
      return { code: 201, body: eventToV1(create(context.store, stored, body)) };
    }
    throw methodNotAllowed();
  }
  const current = context.store.require(resources.events, namespace, name);
  switch (method) {
    case "GET":
      return { code: 200, body: eventToV1(current) };
    case "PUT":
      return { code: 200, body: eventToV1(update(context.store, stored, eventFromV1(parseJson(raw)), false)) };
    case "PATCH": {
      const patched = eventFromV1(applyPatch(patchTypeOf(contentType), eventToV1(current), parseJson(raw)));
      if (!isPlainObject(patched) || !isPlainObject(patched.metadata)) throw badRequest("the patch removed the object's metadata");
      return { code: 200, body: eventToV1(write(context.store, stored, current, patched as unknown as KubeObject, false)) };
    }
    case "DELETE":
      return { code: 200, body: remove(context, stored, url.searchParams, parseJson(raw)) };
    default:
      throw methodNotAllowed();
  }
}

/** `/api/v1[/namespaces/{ns}]/{plural}[/{name}[/{subresource}]]` and the same under `/apis/{group}/{version}`. */
function parseTarget(segments: string[]): Target {
  let rest: string[];
  let group: string;
  let version: string | undefined;
  if (segments[0] === "api") {
    group = "";
    version = segments[1];
    rest = segments.slice(2);
  } else if (segments[0] === "apis") {
    group = segments[1] ?? "";
    version = segments[2];
    rest = segments.slice(3);
  } else throw pathNotFound();
  if (rest[0] === "watch") throw new ApiError(405, "MethodNotAllowed", "the simulated API server does not implement watch", {});
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [plural, name, subresource, ...extra] = rest;
  const resource = version && plural ? findResource(group, version, plural) : undefined;
  if (!resource || extra.length > 0 || (namespace !== undefined && !resource.namespaced)) throw pathNotFound();
  if (resource.namespaced && name !== undefined && namespace === undefined) throw pathNotFound();
  const subresources = resource === resources.pods ? ["status", "eviction"] : resource.statusSubresource ? ["status"] : [];
  if (subresource !== undefined && !subresources.includes(subresource)) throw pathNotFound();
  return { resource, namespace, name, subresource };
}

function list(store: Store, { resource, namespace }: Target, query: URLSearchParams): Json {
  const labels = parseLabelSelector(query.get("labelSelector") ?? "");
  const fields = parseFieldSelector(resource.plural, query.get("fieldSelector") ?? "");
  // Items of a list carry no kind or apiVersion of their own, as kube-apiserver serves them.
  const items = store
    .peek(resource, namespace)
    .filter((o) => labels(o.metadata.labels) && fields(o))
    .sort(byNamespaceAndName)
    // No deep copy: the answer is serialised before anything can change the stored objects.
    .map(({ kind: _kind, apiVersion: _apiVersion, ...item }) => item);
  return { kind: `${resource.kind}List`, apiVersion: apiVersionOf(resource), metadata: { resourceVersion: store.resourceVersion }, items };
}

/** etcd key order, in which the apiserver lists. */
function byNamespaceAndName(a: KubeObject, b: KubeObject): number {
  const ka = `${a.metadata.namespace ?? ""}/${a.metadata.name}`;
  const kb = `${b.metadata.namespace ?? ""}/${b.metadata.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function create(store: Store, { resource, namespace }: Target, body: Json): KubeObject {
  if (!isPlainObject(body) || !isPlainObject(body.metadata)) throw badRequest("the request body must be an object with metadata");
  if (body.kind !== undefined && body.kind !== resource.kind) throw badRequest(`the API version in the data (${body.apiVersion}) does not match the expected API version (${apiVersionOf(resource)})`);
  const object = body as unknown as KubeObject;
  // Pods and PDBs start with the status their controllers own; nodes may be created with one (kubelet registration).
  if (resource === resources.pods) {
    object.spec = { restartPolicy: "Always", terminationGracePeriodSeconds: 30, schedulerName: "default-scheduler", ...object.spec };
    object.status = { phase: "Pending", qosClass: "BestEffort" };
  } else if (resource !== resources.nodes) {
    object.status = {};
  }
  return store.create(resource, object, namespace);
}

function update(store: Store, target: Target, body: Json, status: boolean): KubeObject {
  if (!isPlainObject(body) || !isPlainObject(body.metadata)) throw badRequest("the request body must be an object with metadata");
  if (body.metadata.name !== undefined && body.metadata.name !== target.name) {
    throw badRequest(`the name of the object (${body.metadata.name}) does not match the name on the URL (${target.name})`);
  }
  const current = store.require(target.resource, target.namespace, target.name!);
  return write(store, target, current, body as unknown as KubeObject, status);
}

/** A write to the main resource leaves `status` alone and a write to `/status` changes nothing else, as with real status subresources. */
function write(store: Store, target: Target, current: KubeObject, next: KubeObject, status: boolean): KubeObject {
  const identity = { name: current.metadata.name, ...(current.metadata.namespace ? { namespace: current.metadata.namespace } : {}) };
  const object: KubeObject = status
    ? { ...current, status: next.status, metadata: { ...current.metadata, resourceVersion: next.metadata.resourceVersion ?? "" } }
    : { ...next, metadata: { ...next.metadata, ...identity }, ...(target.resource.statusSubresource ? { status: current.status } : {}) };
  if (!status && object.status === undefined) delete object.status;
  return store.update(target.resource, object);
}

function remove(context: ApiServerContext, { resource, namespace, name }: Target, query: URLSearchParams, body: Json): unknown {
  if (resource === resources.pods) {
    const fromQuery = query.get("gracePeriodSeconds");
    const grace = fromQuery !== null ? Number(fromQuery) : body?.gracePeriodSeconds;
    return context.controllers.deletePod(namespace!, name!, typeof grace === "number" && Number.isFinite(grace) ? grace : undefined);
  }
  const gone = context.store.remove(resource, namespace, name!);
  if (!gone) throw notFound(resource, name!);
  return successStatus(undefined, { name, ...(resource.group ? { group: resource.group } : {}), kind: resource.plural, uid: gone.metadata.uid });
}
