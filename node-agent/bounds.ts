import type { CheckinResponse } from "../shared/protocol/checkin";

/**
 * What the agent accepts from the orchestrator, whatever it answers: the agent runs on every node
 * with a 96 Mi memory limit, and one bad answer (a bug, a proxy's error page, a hostile endpoint)
 * must not stop it, hot-loop it or exhaust its memory.
 */

/**
 * The longest wait between check-ins: the policy's own maximum idle interval (`checkinIdleSeconds`,
 * shared/policy/policySchema.ts), far inside Node's timer range (a `setTimeout` of more than
 * 2^31−1 ms fires after 1 ms, so an unbounded interval made every agent check in continuously).
 */
export const MAX_INTERVAL_SECONDS = 86_400;

/** The largest answer read; the orchestrator's answers are a few hundred bytes. Past it the request is aborted. */
export const MAX_ANSWER_BYTES = 64 * 1024;

/** The answer's texts are for the log only; longer ones are cut. */
export const MAX_ANSWER_STATE_LENGTH = 100;
export const MAX_ANSWER_REASON_LENGTH = 1000;

export interface BoundedAnswer {
  answer: CheckinResponse;
  /** The interval the orchestrator asked for, when it was longer than the agent allows. */
  askedSeconds?: number;
}

export function boundAnswer(answer: CheckinResponse): BoundedAnswer {
  const bounded: CheckinResponse = {
    ...answer,
    state: answer.state.slice(0, MAX_ANSWER_STATE_LENGTH),
    reason: answer.reason.slice(0, MAX_ANSWER_REASON_LENGTH),
    nextCheckinSeconds: Math.min(answer.nextCheckinSeconds, MAX_INTERVAL_SECONDS),
  };
  return answer.nextCheckinSeconds > MAX_INTERVAL_SECONDS ? { answer: bounded, askedSeconds: answer.nextCheckinSeconds } : { answer: bounded };
}
