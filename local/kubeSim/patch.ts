import { isPlainObject, jsonEqual } from "./json";
import { badRequest, patchNotApplicable, unsupportedMediaType } from "./status";

/**
 * The three PATCH formats kube-apiserver takes for built-in types (server-side apply aside):
 * JSON merge patch (RFC 7386), strategic merge patch, and JSON Patch (RFC 6902).
 */

const patchContentTypes = {
  json: "application/json-patch+json",
  merge: "application/merge-patch+json",
  strategic: "application/strategic-merge-patch+json",
} as const;

type PatchType = keyof typeof patchContentTypes;

export function patchTypeOf(contentType: string | undefined): PatchType {
  const mediaType = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  const found = (Object.keys(patchContentTypes) as PatchType[]).find((t) => patchContentTypes[t] === mediaType);
  if (!found) throw unsupportedMediaType([...Object.values(patchContentTypes), "application/apply-patch+yaml"]);
  return found;
}

export function applyPatch(type: PatchType, target: unknown, patch: unknown): unknown {
  switch (type) {
    case "merge":
      if (!isPlainObject(patch)) throw badRequest("json: cannot unmarshal array into Go value of type map[string]interface {}");
      return mergePatch(target, patch);
    case "strategic":
      if (!isPlainObject(patch)) throw badRequest("json: cannot unmarshal array into Go value of type map[string]interface {}");
      return strategicMerge(target, patch);
    case "json":
      return jsonPatch(target, patch);
  }
}

function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return structuredClone(patch);
  const result: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/**
 * The merge keys of the built-in types' `patchStrategy: merge` lists the simulated objects have.
 * Every other list is atomic (replaced whole) — notably `spec.taints` of a Node, which is
 * `+listType=atomic` upstream, so a strategic patch of taints replaces the list.
 */
const mergeKeys: Record<string, string> = {
  conditions: "type",
  addresses: "type",
  ownerReferences: "uid",
  containers: "name",
  initContainers: "name",
  volumes: "name",
  env: "name",
  tolerations: "key",
};

const SET_ELEMENT_ORDER = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/";

function strategicMerge(target: unknown, patch: Record<string, unknown>): unknown {
  const directive = patch.$patch;
  if (directive === "delete") return undefined;
  const base: Record<string, unknown> = directive === "replace" || !isPlainObject(target) ? {} : { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (key === "$patch" || key === "$retainKeys" || key.startsWith(SET_ELEMENT_ORDER)) continue;
    if (key.startsWith(DELETE_FROM_PRIMITIVE_LIST)) {
      const field = key.slice(DELETE_FROM_PRIMITIVE_LIST.length);
      const doomed = Array.isArray(value) ? value : [];
      if (Array.isArray(base[field])) base[field] = (base[field] as unknown[]).filter((item) => !doomed.some((d) => jsonEqual(d, item)));
      continue;
    }
    if (value === null) {
      delete base[key];
    } else if (Array.isArray(value)) {
      const mergeKey = mergeKeys[key];
      base[key] = mergeKey && Array.isArray(base[key]) ? mergeList(base[key] as unknown[], value, mergeKey) : withoutDirectives(value);
    } else if (isPlainObject(value)) {
      const merged = strategicMerge(base[key], value);
      if (merged === undefined) delete base[key];
      else base[key] = merged;
    } else {
      base[key] = value;
    }
  }
  return base;
}

function mergeList(current: unknown[], patch: unknown[], mergeKey: string): unknown[] {
  if (patch.some((item) => isPlainObject(item) && item.$patch === "replace")) return withoutDirectives(patch);
  const result = [...current];
  for (const item of patch) {
    if (!isPlainObject(item)) continue;
    const index = result.findIndex((existing) => isPlainObject(existing) && existing[mergeKey] === item[mergeKey]);
    if (item.$patch === "delete") {
      if (index >= 0) result.splice(index, 1);
    } else if (index >= 0) {
      result[index] = strategicMerge(result[index], item);
    } else {
      result.push(strategicMerge({}, item));
    }
  }
  return result;
}

function withoutDirectives(list: unknown[]): unknown[] {
  return list.filter((item) => !(isPlainObject(item) && item.$patch !== undefined && Object.keys(item).length === 1));
}

interface Operation {
  op: string;
  path: string;
  value?: unknown;
  from?: string;
}

function jsonPatch(target: unknown, patch: unknown): unknown {
  if (!Array.isArray(patch)) throw badRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch");
  let document = structuredClone(target);
  for (const operation of patch as Operation[]) {
    if (!isPlainObject(operation) || typeof operation.path !== "string") throw patchNotApplicable("invalid JSON Patch operation");
    switch (operation.op) {
      case "add":
        document = addAt(document, operation.path, structuredClone(operation.value), "add");
        break;
      case "remove":
        document = removeAt(document, operation.path, "remove").document;
        break;
      case "replace":
        removeAt(document, operation.path, "replace");
        document = addAt(document, operation.path, structuredClone(operation.value), "replace");
        break;
      case "move": {
        const removed = removeAt(document, operation.from ?? "", "move");
        document = addAt(removed.document, operation.path, removed.value, "move");
        break;
      }
      case "copy":
        document = addAt(document, operation.path, structuredClone(valueAt(document, operation.from ?? "", "copy")), "copy");
        break;
      case "test":
        if (!jsonEqual(valueAtOrUndefined(document, operation.path), operation.value)) {
          throw patchNotApplicable(`testing value ${operation.path} failed: test failed`);
        }
        break;
      default:
        throw patchNotApplicable(`Unexpected kind: ${String(operation.op)}`);
    }
  }
  return document;
}

function tokens(path: string): string[] {
  if (path === "") return [];
  if (!path.startsWith("/")) throw patchNotApplicable(`invalid JSON pointer: ${path}`);
  return path
    .slice(1)
    .split("/")
    .map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function missing(op: string, path: string): Error {
  return patchNotApplicable(`${op} operation does not apply: doc is missing path: "${path}": missing value`);
}

/** The container of the last token, which must exist for every operation. */
function parentOf(document: unknown, path: string, op: string): { parent: unknown; last: string } {
  const parts = tokens(path);
  const last = parts.pop();
  if (last === undefined) throw missing(op, path);
  let parent = document;
  for (const part of parts) {
    parent = child(parent, part);
    if (parent === undefined) throw missing(op, path);
  }
  if (!Array.isArray(parent) && !isPlainObject(parent)) throw missing(op, path);
  return { parent, last };
}

function child(container: unknown, token: string): unknown {
  if (Array.isArray(container)) return /^\d+$/.test(token) ? container[Number(token)] : undefined;
  if (isPlainObject(container)) return Object.hasOwn(container, token) ? container[token] : undefined;
  return undefined;
}

function valueAtOrUndefined(document: unknown, path: string): unknown {
  let current = document;
  for (const part of tokens(path)) current = child(current, part);
  return current;
}

function valueAt(document: unknown, path: string, op: string): unknown {
  const value = valueAtOrUndefined(document, path);
  if (value === undefined) throw missing(op, path);
  return value;
}

function addAt(document: unknown, path: string, value: unknown, op: string): unknown {
  if (path === "") return value;
  const { parent, last } = parentOf(document, path, op);
  if (Array.isArray(parent)) {
    const index = last === "-" ? parent.length : Number(last);
    if (!Number.isInteger(index) || index < 0 || index > parent.length) throw missing(op, path);
    parent.splice(index, 0, value);
  } else {
    (parent as Record<string, unknown>)[last] = value;
  }
  return document;
}

function removeAt(document: unknown, path: string, op: string): { document: unknown; value: unknown } {
  const { parent, last } = parentOf(document, path, op);
  const value = child(parent, last);
  if (value === undefined) throw missing(op, path);
  if (Array.isArray(parent)) parent.splice(Number(last), 1);
  else delete (parent as Record<string, unknown>)[last];
  return { document, value };
}
