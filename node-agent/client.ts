import type { CheckinRequest, CheckinResponse } from "../shared/protocol/checkin";
import { checkinPath, parseCheckinAnswer, preferWait } from "../shared/protocol/wire";
import { MAX_ANSWER_BYTES } from "./bounds";
import { readHead } from "./files";

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
}

/**
 * Check-ins over HTTPS with Node's http module (global fetch would load undici, some 25 MB more
 * resident memory on every node): the function key, and the pod's token as its identity.
 */
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
      // Its own header, not Authorization: App Service authentication (Entra ID on the operator API)
      // would take a bearer token for an Entra token and refuse the check-in before Rollcall sees it.
      headers["x-rollcall-agent-token"] = token;
    }
    let response: { status: number; text: string };
    try {
      response = await postJson(this.endpoint, headers, JSON.stringify(request), this.options.timeoutMs);
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

class RequestTimeout extends Error {}

class AnswerTooLarge extends Error {
  constructor(readonly status: number) {
    super("answer too large");
  }
}

/**
 * One POST, bounded: `timeoutMs` for the whole exchange (a socket idle timeout alone lets an answer
 * trickled a byte at a time hold the agent for ever), and at most MAX_ANSWER_BYTES of answer, the
 * request aborted as soon as it is exceeded (a 50 MB answer once cost 256 MB of RSS).
 */
function postJson(url: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<{ status: number; text: string }> {
  // Only the scheme in use is loaded: node:https brings TLS (some 4 MB resident), which a loopback
  // http orchestrator (simulation, benchmark) does not need; production's https loads both anyway.
  // require(), not import(): import() starts Node's ESM loader, some 5 MB more resident memory.
  const { request: send } = (url.startsWith("https:") ? require("node:https") : require("node:http")) as typeof import("node:https");
  return new Promise((resolve, reject) => {
    const fail = (error: Error) => {
      clearTimeout(deadline);
      reject(error);
      request.destroy();
    };
    const request = send(url, { method: "POST", headers: { ...headers, "content-length": Buffer.byteLength(body) } }, (response) => {
      const status = response.statusCode ?? 0;
      if (Number(response.headers["content-length"] ?? 0) > MAX_ANSWER_BYTES) return fail(new AnswerTooLarge(status));
      const chunks: Buffer[] = [];
      let size = 0;
      response.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) fail(new AnswerTooLarge(status));
        else chunks.push(chunk);
      });
      response.on("end", () => {
        clearTimeout(deadline);
        resolve({ status, text: Buffer.concat(chunks).toString("utf8") });
      });
      response.on("error", fail);
    });
    const deadline = setTimeout(() => fail(new RequestTimeout()), timeoutMs);
    request.on("error", fail);
    request.end(body);
  });
}

function describeRequestError(error: unknown): string {
  if (error instanceof RequestTimeout) return "the check-in timed out";
  const code = (error as { code?: string }).code;
  return `cannot reach the orchestrator: ${code ?? (error as Error).message}`;
}
