/**
 * Functions route templates (ASP.NET Core attribute routing, the subset Functions apps use):
 * literal segments, `{name}`, `{name?}`, `{name:constraint}` and a trailing catch-all `{*rest}`.
 * When several templates match, the more specific wins: literal before constrained parameter before
 * parameter before optional before catch-all, segment by segment, as in the Functions host.
 */

type Segment =
  | { kind: "literal"; text: string }
  | { kind: "param"; name: string; optional: boolean; constraints: string[]; catchAll: boolean };

export interface CompiledRoute {
  template: string;
  segments: Segment[];
}

export function compileRoute(template: string): CompiledRoute {
  const trimmed = template.replace(/^\/+|\/+$/g, "");
  const segments: Segment[] = trimmed === "" ? [] : trimmed.split("/").map(parseSegment);
  segments.forEach((s, i) => {
    if (s.kind === "param" && s.catchAll && i !== segments.length - 1) throw new Error(`Route ${template}: a catch-all parameter must be the last segment`);
  });
  return { template: trimmed, segments };
}

function parseSegment(text: string): Segment {
  const match = text.match(/^\{(\*{1,2})?([A-Za-z_][A-Za-z0-9_]*)((?::[^:}?]+(?:\([^)]*\))?)*)(\?)?\}$/);
  if (!match) {
    if (text.includes("{") || text.includes("}")) throw new Error(`Unsupported route segment ${text}: only whole-segment parameters are supported`);
    return { kind: "literal", text: text.toLowerCase() };
  }
  const constraints = match[3] ? match[3].slice(1).split(":") : [];
  return { kind: "param", name: match[2]!, catchAll: Boolean(match[1]), optional: Boolean(match[4]) || Boolean(match[1]), constraints };
}

const CONSTRAINTS: Record<string, (value: string) => boolean> = {
  int: (v) => /^-?\d+$/.test(v),
  long: (v) => /^-?\d+$/.test(v),
  bool: (v) => /^(true|false)$/i.test(v),
  guid: (v) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v),
  alpha: (v) => /^[a-z]+$/i.test(v),
  double: (v) => v !== "" && Number.isFinite(Number(v)),
  float: (v) => v !== "" && Number.isFinite(Number(v)),
  decimal: (v) => v !== "" && Number.isFinite(Number(v)),
  datetime: (v) => !Number.isNaN(Date.parse(v)),
};

function satisfies(value: string, constraint: string): boolean {
  const [name, arg] = constraint.match(/^([a-z]+)(?:\((.*)\))?$/i)?.slice(1) ?? [constraint];
  switch (name?.toLowerCase()) {
    case "minlength":
      return value.length >= Number(arg);
    case "maxlength":
      return value.length <= Number(arg);
    case "length":
      return value.length === Number(arg);
    case "min":
      return Number(value) >= Number(arg);
    case "max":
      return Number(value) <= Number(arg);
    case "regex":
      return new RegExp(arg ?? "").test(value);
    default: {
      const check = CONSTRAINTS[name?.toLowerCase() ?? ""];
      return check ? check(value) : true;
    }
  }
}

/** The route's parameters if `path` (without the route prefix, no leading slash) matches, else undefined. */
export function matchRoute(route: CompiledRoute, path: string): Record<string, string> | undefined {
  const parts = path === "" ? [] : path.replace(/\/+$/, "").split("/");
  const params: Record<string, string> = {};
  for (let i = 0; i < route.segments.length; i++) {
    const segment = route.segments[i]!;
    const part = parts[i];
    if (segment.kind === "literal") {
      if (part === undefined || decode(part).toLowerCase() !== segment.text) return undefined;
      continue;
    }
    if (segment.catchAll) {
      const rest = parts.slice(i).map(decode).join("/");
      if (rest !== "") params[segment.name] = rest;
      return params;
    }
    if (part === undefined || part === "") {
      if (segment.optional) continue;
      return undefined;
    }
    const value = decode(part);
    if (!segment.constraints.every((c) => satisfies(value, c))) return undefined;
    params[segment.name] = value;
  }
  return parts.length <= route.segments.length ? params : undefined;
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function rank(segment: Segment | undefined): number {
  if (!segment) return 5;
  if (segment.kind === "literal") return 0;
  if (segment.catchAll) return 4;
  if (segment.optional) return 3;
  return segment.constraints.length > 0 ? 1 : 2;
}

/** Orders routes so that the first match is the most specific one. */
export function compareRoutes(a: CompiledRoute, b: CompiledRoute): number {
  const length = Math.max(a.segments.length, b.segments.length);
  for (let i = 0; i < length; i++) {
    const diff = rank(a.segments[i]) - rank(b.segments[i]);
    if (diff !== 0) return diff;
  }
  return 0;
}
