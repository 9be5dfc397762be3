/**
 * Kubernetes label selectors, as text (`app=web,tier!=test,job in (a,b),!canary`) and as the
 * structured `{ matchLabels, matchExpressions }` of a PodDisruptionBudget. Used by the pod blockers,
 * the drain pod selector, the PDB pre-check and the health gate, and by the fake cluster API.
 */

export type Requirement =
  | { key: string; op: "=" | "!="; value: string }
  | { key: string; op: "in" | "notin"; values: string[] }
  | { key: string; op: "exists" | "!exists" };

/** The structured selector of `policy/v1` objects. */
export interface StructuredSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

const KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

export function isLabelKey(key: string): boolean {
  return KEY.test(key) && key.length <= 317;
}

export function isLabelValue(value: string): boolean {
  return VALUE.test(value);
}

/** Splits at commas outside parentheses. */
function clauses(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = "";
  for (const ch of text) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      parts.push(current);
      current = "";
    } else current += ch;
  }
  parts.push(current);
  return parts.map((p) => p.trim());
}

/**
 * Parses a label selector as `kubectl -l` takes it. Throws an Error naming the bad clause and the
 * accepted forms. An empty selector selects everything.
 */
export function parseLabelSelector(text: string): Requirement[] {
  if (text.trim() === "") return [];
  return clauses(text).map((clause) => {
    const fail = (why: string) =>
      new Error(`invalid label selector clause "${clause}": ${why}; accepted forms: key=value, key==value, key!=value, key in (a,b), key notin (a,b), key, !key`);
    let match: RegExpExecArray | null;
    let requirement: Requirement;
    if ((match = /^(\S+?)\s+(in|notin)\s+\(([^()]*)\)$/.exec(clause))) {
      const values = match[3]!.split(",").map((v) => v.trim()).filter((v) => v !== "");
      requirement = { key: match[1]!, op: match[2] as "in" | "notin", values };
      for (const v of values) if (!isLabelValue(v)) throw fail(`"${v}" is not a label value`);
    } else if ((match = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(clause))) {
      requirement = { key: match[1]!, op: match[2] === "!=" ? "!=" : "=", value: match[3]! };
      if (!isLabelValue(match[3]!)) throw fail(`"${match[3]}" is not a label value`);
    } else if ((match = /^!\s*(\S+)$/.exec(clause))) {
      requirement = { key: match[1]!, op: "!exists" };
    } else if ((match = /^(\S+)$/.exec(clause))) {
      requirement = { key: match[1]!, op: "exists" };
    } else {
      throw fail("not a selector clause");
    }
    if (!isLabelKey(requirement.key)) throw fail(`"${requirement.key}" is not a label key`);
    return requirement;
  });
}

export function matchesRequirements(requirements: readonly Requirement[], labels: Record<string, string>): boolean {
  return requirements.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    const value = labels[r.key];
    switch (r.op) {
      case "=":
        return has && value === r.value;
      case "!=":
        return !has || value !== r.value;
      case "in":
        return has && r.values.includes(value!);
      case "notin":
        return !has || !r.values.includes(value!);
      case "exists":
        return has;
      case "!exists":
        return !has;
    }
  });
}

/** True when the text selector selects these labels. */
export function matchesLabelSelector(selector: string, labels: Record<string, string>): boolean {
  return matchesRequirements(parseLabelSelector(selector), labels);
}

/**
 * True when a structured selector selects these labels. As in `policy/v1`, an empty selector `{}`
 * selects every pod; an absent one (`undefined`) selects none.
 */
export function matchesStructuredSelector(selector: StructuredSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return false;
  const requirements: Requirement[] = Object.entries(selector.matchLabels ?? {}).map(([key, value]) => ({ key, op: "=", value }));
  for (const e of selector.matchExpressions ?? []) {
    switch (e.operator) {
      case "In":
        requirements.push({ key: e.key, op: "in", values: e.values ?? [] });
        break;
      case "NotIn":
        requirements.push({ key: e.key, op: "notin", values: e.values ?? [] });
        break;
      case "Exists":
        requirements.push({ key: e.key, op: "exists" });
        break;
      case "DoesNotExist":
        requirements.push({ key: e.key, op: "!exists" });
        break;
      default:
        return false;
    }
  }
  return matchesRequirements(requirements, labels);
}
