import type { NodeRecord } from "../node/nodeRecord";

/** The logging half of `InvocationContext`, so the domain logs through the Functions host without depending on it. */
export interface Logger {
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

/** One logfmt line per transition, the whole story in one place: `kubectl logs`-style grep works on it. */
export function logTransition(log: Logger, from: string, next: NodeRecord): void {
  const fields = [
    `transition cluster=${next.cluster}`,
    `node=${next.node}`,
    `from=${from}`,
    `to=${next.state}`,
    next.leaseId ? `lease=${next.leaseId}` : undefined,
    `why=${JSON.stringify(next.why)}`,
  ];
  const line = fields.filter(Boolean).join(" ");
  if (next.state === "stuck" || next.state === "drain-failed" || next.state === "quarantined") log.warn(line);
  else log.info(line);
}
