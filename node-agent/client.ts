import type { CheckinRequest, CheckinResponse } from "../shared/protocol/checkin";
import { checkinPath, parseCheckinAnswer, preferWait } from "../shared/protocol/wire";
import { MAX_ANSWER_BYTES } from "./bounds";
import { readHead } from "./files";
import { AnswerTooLarge, RequestTimeout, type Transport } from "./transport";

/** What of the request timeout a held check-in leaves for the answer's own way back. */
const HOLD_MARGIN_SECONDS = 5;

/** A projected service-account token is one or two KiB; Node refuses request headers over 16 KiB anyway. */
const MAX_TOKEN_BYTES = 16 * 1024;

export interface OrchestratorClient {
  checkin(request: CheckinRequest): Promise<CheckinResponse>;
}

/** The orchestrator could not be reached, timed out, or answered 5xx: retry with backoff. */
export class UnavailableError extends Error {
  override name = "UnavailableError";
}

/** The orchestrator refused the check-in (4xx) or answered something that is not the protocol. */
export class RejectedError extends Error {
  override name = "RejectedError";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface HttpClientOptions {
  url: string;
  cluster: string;
  node: string;
  functionKey: string;
  /** Read on every check-in: the kubelet rotates projected tokens well before they expire. */
  tokenFile?: string;
  timeoutMs: number;
  userAgent: string;
  transport: Transport;
}

/** Check-ins over HTTPS: the function key, and the pod's token as its identity. */
export class HttpOrchestratorClient implements OrchestratorClient {
  readonly endpoint: string;

  constructor(private readonly options: HttpClientOptions) {
    this.endpoint = `${options.url.replace(/\/+$/, "")}${checkinPath(options.cluster, options.node)}`;
  }

  async checkin(request: CheckinRequest): Promise<CheckinResponse> {
    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept: "application/json",
      "user-agent": this.options.userAgent,
      "x-functions-key": this.options.functionKey,
      // A queued node's check-in may be held until its turn: the answer then comes with it, not after an interval.
      prefer: preferWait(this.options.timeoutMs / 1000 - HOLD_MARGIN_SECONDS),
    };
    if (this.options.tokenFile) {
      let token: string;
      let truncated: boolean;
      try {
        ({ text: token, truncated } = await readHead(this.options.tokenFile, MAX_TOKEN_BYTES));
        token = token.trim();
      } catch (error) {
        throw new RejectedError(0, `cannot read the service-account token ${this.options.tokenFile}: ${(error as Error).message}`);
      }
      if (truncated) throw new RejectedError(0, `the service-account token file ${this.options.tokenFile} is larger than ${MAX_TOKEN_BYTES} bytes: not a token`);
      if (!token) throw new RejectedError(0, `the service-account token file ${this.options.tokenFile} is empty`);
      if (!/^[\x21-\x7e]+$/.test(token)) throw new RejectedError(0, `the service-account token file ${this.options.tokenFile} holds spaces or control characters: not a token`);
      // Its own header, not Authorization: App Service authentication (Entra ID on the operator API)
      // would take a bearer token for an Entra token and refuse the check-in before Rollcall sees it.
      headers["x-rollcall-agent-token"] = token;
    }
    let response: { status: number; text: string };
    try {
      response = await this.options.transport.post(this.endpoint, headers, JSON.stringify(request), this.options.timeoutMs);
    } catch (error) {
      if (error instanceof AnswerTooLarge) throw new RejectedError(error.status, `the orchestrator's answer is larger than ${MAX_ANSWER_BYTES} bytes: not read`);
      throw new UnavailableError(describeRequestError(error));
    }
    const { text } = response;
    if (response.status >= 500 || response.status === 429 || response.status === 408) {
      throw new UnavailableError(`the orchestrator answered ${response.status}${errorMessage(text)}`);
    }
    if (response.status !== 200) throw new RejectedError(response.status, `the orchestrator refused the check-in with ${response.status}${errorMessage(text)}`);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new RejectedError(200, "the orchestrator's answer is not JSON");
    }
    const parsed = parseCheckinAnswer(body);
    if ("problem" in parsed) throw new RejectedError(200, `the orchestrator's answer is not a check-in answer: ${parsed.problem}`);
    return parsed.answer;
  }
}

function errorMessage(text: string): string {
  try {
    const message = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
    return typeof message === "string" && message ? `: ${message.slice(0, 500)}` : "";
  } catch {
    return text ? `: ${text.slice(0, 200)}` : "";
  }
}

function describeRequestError(error: unknown): string {
  if (error instanceof RequestTimeout) return error.message;
  return `cannot reach the orchestrator: ${(error as Error).message}`;
}
