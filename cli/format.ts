/**
 * Output: `-o json` prints the API's answer as it came, `-o yaml` the same as YAML, `-o table`
 * (the default) columns like `kubectl get`: upper-case headers, columns padded with three spaces,
 * `<none>` for an empty cell, ages as `45s`, `12m`, `3h`, `2d`.
 */

export type OutputFormat = "table" | "json" | "yaml";
export const OUTPUT_FORMATS: readonly OutputFormat[] = ["table", "json", "yaml"];

export function table(headers: readonly string[], rows: readonly (readonly (string | number | undefined | null)[])[]): string {
  const cells = rows.map((row) => headers.map((_, i) => cell(row[i])));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: readonly string[]) =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!)))
      .join("   ")
      .trimEnd();
  return [line(headers), ...cells.map(line)].join("\n");
}

function cell(value: string | number | undefined | null): string {
  if (value === undefined || value === null || value === "") return "<none>";
  // One line per row: a value with line breaks would break the columns.
  return String(value).replace(/\s*\n\s*/g, " ");
}

/** How long ago (or, with a future time, how long until: `in 5m`), like kubectl's AGE column. */
export function age(iso: string | undefined, now = Date.now()): string | undefined {
  if (!iso) return undefined;
  const ms = now - Date.parse(iso);
  if (!Number.isFinite(ms)) return undefined;
  return ms < 0 ? `in ${duration(-ms / 1000)}` : duration(ms / 1000);
}

export function duration(seconds: number | undefined): string | undefined {
  if (seconds === undefined) return undefined;
  const s = Math.round(seconds);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

/** YAML 1.2 for JSON values: block style, strings quoted whenever a plain scalar could read as something else. */
export function yaml(value: unknown): string {
  return `${emit(value, 0).replace(/^\n/, "")}\n`;
}

function emit(value: unknown, indent: number): string {
  const pad = "  ".repeat(indent);
  if (Array.isArray(value)) {
    if (value.length === 0) return " []";
    return value.map((item) => `\n${pad}-${isBlock(item) ? emit(item, indent + 1).replace(/^\n\s*/, " ") : emit(item, indent + 1)}`).join("");
  }
  if (value && typeof value === "object") {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return " {}";
    return entries.map(([key, v]) => `\n${pad}${scalar(key)}:${emit(v, indent + 1)}`).join("");
  }
  return ` ${scalar(value)}`;
}

const isBlock = (value: unknown) => value !== null && typeof value === "object" && (Array.isArray(value) ? value.length > 0 : Object.keys(value).length > 0);

function scalar(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : value > 0 ? ".inf" : value < 0 ? "-.inf" : ".nan";
  if (typeof value === "boolean") return String(value);
  const text = String(value);
  // Plain only where YAML cannot read it as a number, boolean, null, date or indicator.
  const plain = /^[A-Za-z_/][A-Za-z0-9_ ./()-]*$/.test(text) && !/^(true|false|yes|no|on|off|null|y|n)$/i.test(text) && !/[ ]$/.test(text) && !/: | #/.test(text);
  return plain ? text : JSON.stringify(text);
}
