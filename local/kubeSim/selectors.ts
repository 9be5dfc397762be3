import type { Json, KubeObject } from "./store";
import { badRequest } from "./status";

/**
 * Label selectors (the `labelSelector` query string and `metav1.LabelSelector` objects) and field
 * selectors, with the semantics of k8s.io/apimachinery/pkg/labels and /fields.
 */

type Labels = Record<string, string> | undefined;

interface Requirement {
  key: string;
  operator: "=" | "!=" | "in" | "notin" | "exists" | "!";
  values: string[];
}

export type LabelMatcher = (labels: Labels) => boolean;

/** Parses a `labelSelector` query parameter; a syntax error is a 400, as on the apiserver. */
export function parseLabelSelector(text: string): LabelMatcher {
  const requirements = splitTopLevel(text).map(parseRequirement);
  return (labels) => requirements.every((r) => matches(r, labels ?? {}));
}

function parseRequirement(raw: string): Requirement {
  const text = raw.trim();
  const set = /^([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(text);
  if (set) return { key: set[1]!, operator: set[2] as "in" | "notin", values: set[3]!.split(",").map((v) => v.trim()).filter(Boolean) };
  const comparison = /^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/.exec(text);
  if (comparison) return { key: comparison[1]!, operator: comparison[2] === "!=" ? "!=" : "=", values: [comparison[3]!] };
  const absent = /^!\s*([^\s!=(),]+)$/.exec(text);
  if (absent) return { key: absent[1]!, operator: "!", values: [] };
  if (/^[^\s!=(),<>]+$/.test(text)) return { key: text, operator: "exists", values: [] };
  throw badRequest(`unable to parse requirement: found '${text}', expected: in, notin, =, ==, !=, gt, lt`);
}

function matches(requirement: Requirement, labels: Record<string, string>): boolean {
  const value = labels[requirement.key];
  switch (requirement.operator) {
    case "=":
    case "in":
      return value !== undefined && requirement.values.includes(value);
    // Like the apiserver, `!=` and `notin` also match objects without the label.
    case "!=":
    case "notin":
      return value === undefined || !requirement.values.includes(value);
    case "exists":
      return value !== undefined;
    case "!":
      return value === undefined;
  }
}

/** Splits on commas outside parentheses, so `a in (x,y),b` is two requirements. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = "";
  for (const char of text) {
    if (char === "(") depth++;
    if (char === ")") depth--;
    if (char === "," && depth === 0) {
      parts.push(current);
      current = "";
    } else current += char;
  }
  parts.push(current);
  return parts.filter((p) => p.trim() !== "");
}

/**
 * A `metav1.LabelSelector` as policy/v1 reads it: an absent selector selects nothing,
 * an empty one selects everything.
 */
export function labelSelectorMatcher(selector: Json): LabelMatcher {
  if (selector === undefined || selector === null) return () => false;
  const requirements: Requirement[] = Object.entries((selector.matchLabels ?? {}) as Record<string, string>).map(([key, value]) => ({
    key,
    operator: "=",
    values: [value],
  }));
  for (const expression of (selector.matchExpressions ?? []) as { key: string; operator: string; values?: string[] }[]) {
    const operator = { In: "in", NotIn: "notin", Exists: "exists", DoesNotExist: "!" }[expression.operator] as Requirement["operator"] | undefined;
    if (!operator) return () => false;
    requirements.push({ key: expression.key, operator, values: expression.values ?? [] });
  }
  return (labels) => requirements.every((r) => matches(r, labels ?? {}));
}

/** The fields each resource can be selected by: the apiserver's field label conversion functions. */
const fieldGetters: Record<string, Record<string, (o: KubeObject) => string>> = {
  pods: {
    "metadata.name": (o) => o.metadata.name,
    "metadata.namespace": (o) => o.metadata.namespace ?? "",
    "spec.nodeName": (o) => o.spec?.nodeName ?? "",
    "spec.restartPolicy": (o) => o.spec?.restartPolicy ?? "",
    "spec.schedulerName": (o) => o.spec?.schedulerName ?? "",
    "spec.serviceAccountName": (o) => o.spec?.serviceAccountName ?? "",
    "spec.hostNetwork": (o) => String(o.spec?.hostNetwork === true),
    "status.phase": (o) => o.status?.phase ?? "",
    "status.podIP": (o) => o.status?.podIP ?? "",
    "status.nominatedNodeName": (o) => o.status?.nominatedNodeName ?? "",
  },
  nodes: {
    "metadata.name": (o) => o.metadata.name,
    "spec.unschedulable": (o) => String(o.spec?.unschedulable === true),
  },
  // pkg/apis/core/v1/conversion.go, AddFieldLabelConversionsForEvent (events.k8s.io/v1 maps its names onto these).
  events: {
    "metadata.name": (o) => o.metadata.name,
    "metadata.namespace": (o) => o.metadata.namespace ?? "",
    ...Object.fromEntries(
      ["kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"].map((f) => [`involvedObject.${f}`, (o: Json) => String(o.involvedObject?.[f] ?? "")]),
    ),
    reason: (o: Json) => o.reason ?? "",
    reportingComponent: (o: Json) => o.reportingComponent ?? "",
    source: (o: Json) => o.source?.component ?? "",
    type: (o: Json) => o.type ?? "",
  },
};

const defaultFieldGetters: Record<string, (o: KubeObject) => string> = {
  "metadata.name": (o) => o.metadata.name,
  "metadata.namespace": (o) => o.metadata.namespace ?? "",
};

export type FieldMatcher = (object: KubeObject) => boolean;

/** Parses a `fieldSelector` (`=`, `==`, `!=`, comma meaning AND); unknown fields are a 400. */
export function parseFieldSelector(plural: string, text: string): FieldMatcher {
  const getters = fieldGetters[plural] ?? defaultFieldGetters;
  const terms = text
    .split(",")
    .filter((t) => t.trim() !== "")
    .map((term) => {
      const parsed = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(term);
      if (!parsed) throw badRequest(`invalid selector: '${text}'; can't understand '${term}'`);
      const [, field, operator, value] = parsed as unknown as [string, string, string, string];
      const get = getters[field];
      if (!get) throw badRequest(`field label not supported: ${field}`);
      return (o: KubeObject) => (get(o) === value) === (operator !== "!=");
    });
  return (object) => terms.every((term) => term(object));
}
