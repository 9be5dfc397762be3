/**
 * The Prometheus text exposition format, version 0.0.4: what a Prometheus server (and Azure Monitor
 * managed Prometheus, which scrapes with the same parser) reads at a scrape.
 * https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
 *
 * One `# HELP` and one `# TYPE` line per family, then its samples; label values escape `\`, `"` and
 * the line feed, HELP text escapes `\` and the line feed. A family with no samples still prints its
 * HELP and TYPE lines, so a dashboard sees the metric exists when nothing is there to count.
 */

export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export type Labels = Readonly<Record<string, string>>;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
/** Names starting with `__` are reserved for Prometheus itself. */
const LABEL_NAME = /^(?!__)[a-zA-Z_][a-zA-Z0-9_]*$/;

export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

export function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** Go's ParseFloat spellings for the values JavaScript prints differently. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function labelText(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  for (const [name] of entries) if (!LABEL_NAME.test(name)) throw new Error(`invalid Prometheus label name ${JSON.stringify(name)}`);
  return `{${entries.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(",")}}`;
}

export interface HistogramSeries {
  labels: Labels;
  /** The observations (not yet bucketed). */
  observations: readonly number[];
}

export class Exposition {
  private readonly lines: string[] = [];
  private readonly names = new Set<string>();

  private family(name: string, help: string, type: "gauge" | "counter" | "histogram"): void {
    if (!METRIC_NAME.test(name)) throw new Error(`invalid Prometheus metric name ${JSON.stringify(name)}`);
    // Two blocks of one family are invalid to the parser: each family is written once, whole.
    if (this.names.has(name)) throw new Error(`metric family ${name} written twice`);
    this.names.add(name);
    this.lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
  }

  private sample(name: string, labels: Labels, value: number): void {
    this.lines.push(`${name}${labelText(labels)} ${formatValue(value)}`);
  }

  gauge(name: string, help: string, samples: readonly { labels: Labels; value: number }[]): this {
    this.family(name, help, "gauge");
    for (const s of samples) this.sample(name, s.labels, s.value);
    return this;
  }

  /** Cumulative buckets (`le` upper bounds, `+Inf` last), `_sum` and `_count` per series. */
  histogram(name: string, help: string, bounds: readonly number[], series: readonly HistogramSeries[]): this {
    if (bounds.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= bounds[i - 1]!))) throw new Error(`${name}: bucket bounds must be finite and increasing`);
    if (series.some((s) => "le" in s.labels)) throw new Error(`${name}: the label le is the histogram's own`);
    this.family(name, help, "histogram");
    for (const { labels, observations } of series) {
      for (const bound of bounds) {
        this.sample(`${name}_bucket`, { ...labels, le: formatValue(bound) }, observations.filter((o) => o <= bound).length);
      }
      this.sample(`${name}_bucket`, { ...labels, le: "+Inf" }, observations.length);
      this.sample(`${name}_sum`, labels, observations.reduce((sum, o) => sum + o, 0));
      this.sample(`${name}_count`, labels, observations.length);
    }
    return this;
  }

  text(): string {
    return this.lines.length ? `${this.lines.join("\n")}\n` : "";
  }
}
