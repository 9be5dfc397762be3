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
    const lines = [this.header(), "", table(rows, width), "", ...this.recent.map((l) => clip(`  ${l}`, width))].join("\n").split("\n");
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
  widths[6] = Math.max(10, width - widths.slice(0, 6).reduce((a, b) => a + b + 2, 0));
  const fmt = (row: string[]) => clip(row.map((cell, i) => (i === 6 ? cell : cell.padEnd(widths[i]!))).join("  "), width);
  return [fmt(head), ...body.map(fmt)].join("\n");
}

function clip(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, Math.max(0, width - 1))}…` : text;
}

export function seconds(ms: number | undefined): string {
  return ms === undefined ? "-" : `${(ms / 1000).toFixed(1)} s`;
}
