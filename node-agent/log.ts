import { isoTime } from "./isoTime";

/**
 * One logfmt line per decision, on stdout (errors on stderr), so `kubectl logs` and grep tell the story.
 * `msg` first after the level, then the fields in the order given.
 */
export type Level = "info" | "warn" | "error";
export type Fields = Record<string, string | number | boolean | undefined>;

export interface AgentLog {
  (level: Level, msg: string, fields?: Fields): void;
}

export function formatLine(level: Level, msg: string, fields: Fields = {}, now = new Date()): string {
  const parts = [`time=${isoTime(now)}`, `level=${level}`, `msg=${quote(msg)}`];
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) parts.push(`${key}=${quote(String(value))}`);
  return parts.join(" ");
}

function quote(value: string): string {
  return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
}

export const consoleLog: AgentLog = (level, msg, fields) => {
  const line = formatLine(level, msg, fields);
  if (level === "error") process.stderr.write(`${line}\n`);
  else process.stdout.write(`${line}\n`);
};

/** Prefixes every line with the node, for several agents sharing one terminal (simulation). */
export function prefixedLog(prefix: string, write: (line: string) => void): AgentLog {
  return (level, msg, fields) => write(`${prefix} ${formatLine(level, msg, fields)}`);
}
