/**
 * How a check-in's bytes travel, apart from what they mean (client.ts): one POST, bounded in time
 * and in the size of its answer. Two ways with one contract, and the client's tests in
 * test/unit/agentModules.test.ts run over both: curl, the agent's own (transportCurl.ts), and Node's
 * http module, for simulated agents that share one process (transportNodeHttp.ts).
 */
export interface Transport {
  /** Resolves with any HTTP answer; rejects with the errors below, or another when nothing was answered. */
  post(url: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<{ status: number; text: string }>;
}

/** The whole exchange ran past its time: a socket idle timeout alone lets an answer trickled a byte at a time hold the agent for ever. */
export class RequestTimeout extends Error {
  constructor() {
    super("the check-in timed out");
  }
}

/** The answer is larger than the agent reads (a 50 MB answer once cost 256 MB of RSS); the exchange was cut off. */
export class AnswerTooLarge extends Error {
  constructor(
    /** The answer's HTTP status where the transport saw it, otherwise 0. */
    readonly status: number,
  ) {
    super("answer too large");
  }
}
