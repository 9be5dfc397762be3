/**
 * The interval, shortened by up to `fraction` at random, so that a fleet of agents does not move in
 * lockstep; never lengthened: the orchestrator's
 * `nextCheckinSeconds` stays the latest the agent checks in again, which is what its promises rest
 * on (an operator's request on an idle node waits at most the idle interval; an agent counts as
 * engaged for twice the busy interval). Jitter of ± that lengthened some intervals broke both.
 */
export function withJitter(ms: number, fraction: number, random: () => number = Math.random): number {
  return Math.max(0, Math.round(ms * (1 - fraction * random())));
}

/**
 * Exponential backoff with "equal jitter": attempt 0 waits between base/2 and base, each further
 * attempt doubles that, never more than `maxMs`. Never zero, so a down orchestrator is not hammered.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, attempt)));
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}
