/** Spreads an interval by ± `fraction`, so that a fleet of agents does not move in lockstep. */
export function withJitter(ms: number, fraction: number, random: () => number = Math.random): number {
  return Math.max(0, Math.round(ms * (1 + fraction * (2 * random() - 1))));
}

/**
 * Exponential backoff with "equal jitter": attempt 0 waits between base/2 and base, each further
 * attempt doubles that, never more than `maxMs`. Never zero, so a down orchestrator is not hammered.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, attempt)));
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}
