import type { NodeRecord } from "../../shared/node/nodeRecord";

/**
 * What `npm start` shows while it runs: a per-node table redrawn in place on a terminal, or one plain
 * line per event when the output is a pipe or a file (CI logs, the smoke test).
 */
export interface NodeRow {
  node: string;
  record?: NodeRecord;
  ready?: boolean;
  cordoned?: boolean;
  pods?: number;
  bootId?: string;
  reboots?: number;
  marked?: boolean;
}

const COLUMNS = process.env.COLUMNS ? Number(process.env.COLUMNS) : undefined;

export class LiveView {
  private drawn = 0;
  private readonly recent: string[] = [];
  private readonly tty: boolean;

  constructor(
    private readonly out: NodeJS.WritableStream & { columns?: number },
    tty: boolean,
    private readonly header: () => string,
  ) {
    this.tty = tty;
    if (tty) out.write("\x1b[?25l");
  }

  get isTty(): boolean {
    return this.tty;
  }

  /** A log line: printed at once in plain mode, kept in the view's tail in a terminal. */
  line(text: string): void {
    if (!this.tty) {
      this.out.write(`${text}\n`);
      return;
    }
    this.recent.push(text);
    if (this.recent.length > 8) this.recent.shift();
  }

  render(rows: NodeRow[]): void {
    if (!this.tty) return;
    const width = Math.max(60, this.out.columns || COLUMNS || 120) - 1;
    const lines = [this.header(), "", table(rows, width), "", ...wrap(LEGEND, width), "", ...this.recent.map((l) => clip(`  ${l}`, width))].join("\n").split("\n");
    let text = this.drawn > 0 ? `\x1b[${this.drawn}A` : "";
    for (const line of lines) text += `\x1b[2K${line}\n`;
    // Clear what is left of a longer previous frame.
    for (let i = lines.length; i < this.drawn; i++) text += "\x1b[2K\n";
    if (this.drawn > lines.length) text += `\x1b[${this.drawn - lines.length}A`;
    this.drawn = lines.length;
    this.out.write(text);
  }

  /** Leaves the last frame on screen and gives the cursor back. */
  close(): void {
    if (this.tty) this.out.write("\x1b[?25h");
  }
}

/** What each column means; WHY is the one people misread (a hold reason now, or why the state began). */
export const LEGEND =
  "* marked reboot-required · STATE: Rollcall's state of the node · KUBERNETES: the node object (Ready or NotReady, cordoned) · " +
  "PODS: pods on the node · BOOT ID: changes with each reboot · REBOOTS: reboots its agent carried out · " +
  "WHY: what holds the node right now (holdReason), else why it entered its state";

function table(rows: NodeRow[], width: number): string {
  const head = ["NODE", "STATE", "KUBERNETES", "PODS", "BOOT ID", "REBOOTS", "WHY"];
  const body = rows.map((r) => [
    r.node + (r.marked ? " *" : ""),
    r.record?.state ?? "(no check-in)",
    r.ready === undefined ? "" : `${r.ready ? "Ready" : "NotReady"}${r.cordoned ? ",cordoned" : ""}`,
    r.pods === undefined ? "" : String(r.pods),
    (r.bootId ?? r.record?.bootId ?? "").slice(0, 8),
    r.reboots === undefined ? "" : String(r.reboots),
    r.record ? (r.record.holdReason ?? r.record.why) : "",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  // The WHY column wraps onto continuation lines under itself (a hold reason cut short says something
  // else); on a terminal too narrow for a readable column, it goes onto indented lines under the row.
  const columnAt = widths.slice(0, 6).reduce((a, b) => a + b + 2, 0);
  const below = width - columnAt < MIN_WHY_WIDTH;
  const whyAt = below ? WHY_INDENT : columnAt;
  const fmt = (row: string[], header = false): string => {
    const cells = row.slice(0, 6).map((cell, i) => cell.padEnd(widths[i]!));
    if (below && header) return `${clip(cells.join("  ").trimEnd(), width)}\n${" ".repeat(whyAt)}WHY`;
    if (below) return [clip(cells.join("  ").trimEnd(), width), ...wrap(row[6]!, width - whyAt).map((l) => `${" ".repeat(whyAt)}${l}`)].join("\n");
    const [first = "", ...more] = wrap(row[6]!, width - whyAt);
    return [[...cells, first].join("  "), ...more.map((rest) => `${" ".repeat(whyAt)}${rest}`)].join("\n");
  };
  return [fmt(head, true), ...body.map((row) => fmt(row))].join("\n");
}

const MIN_WHY_WIDTH = 30;
const WHY_INDENT = 4;

/** Words into lines of at most `width` characters; a word longer than that is split. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (let word of text.split(/\s+/).filter(Boolean)) {
    while (word.length > width) {
      if (line) lines.push(line), (line = "");
      lines.push(word.slice(0, width));
      word = word.slice(width);
    }
    if (!line) line = word;
    else if (line.length + 1 + word.length <= width) line += ` ${word}`;
    else lines.push(line), (line = word);
  }
  if (line || lines.length === 0) lines.push(line);
  return lines;
}

function clip(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, Math.max(0, width - 1))}…` : text;
}

export function seconds(ms: number | undefined): string {
  return ms === undefined ? "-" : `${(ms / 1000).toFixed(1)} s`;
}
