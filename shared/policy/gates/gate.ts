import type { RebootGate } from "../policy";

/** A gate with a name, used in the composite's "blocked: <name> failed: <error>" reasons. */
export interface NamedGate extends RebootGate {
  readonly name: string;
}

/** An error's message with its cause (fetch puts `ECONNREFUSED` there). */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const detail = cause?.code ?? cause?.message;
  return detail && !error.message.includes(detail) ? `${error.message} (${detail})` : error.message;
}

/** "a, b, c and 2 more" */
export function listShort(items: readonly string[], max = 3): string {
  const shown = items.slice(0, max).join(", ");
  return items.length > max ? `${shown} and ${items.length - max} more` : shown;
}
