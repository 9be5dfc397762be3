import { readFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { checkinPath, type CheckinRequest, CheckinResponse } from "../shared/protocol/checkin";

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
    };
    if (this.options.tokenFile) {
      let token: string;
      try {
        token = (await readFile(this.options.tokenFile, "utf8")).trim();
      } catch (error) {
        throw new RejectedError(0, `cannot read the service-account token ${this.options.tokenFile}: ${(error as Error).message}`);
      }
      if (!token) throw new RejectedError(0, `the service-account token file ${this.options.tokenFile} is empty`);
      headers.authorization = `Bearer ${token}`;
    }
    let response: { status: number; text: string };
    try {
      response = await postJson(this.endpoint, headers, JSON.stringify(request), this.options.timeoutMs);
    } catch (error) {
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
    const parsed = CheckinResponse.safeParse(body);
    if (!parsed.success) throw new RejectedError(200, `the orchestrator's answer is not a check-in answer: ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  }
}

function errorMessage(text: string): string {
  try {
    const message = (JSON.parse(text) as { error?: { message?: string } }).error?.message;
    return message ? `: ${message}` : "";
  } catch {
    return text ? `: ${text.slice(0, 200)}` : "";
  }
}

class RequestTimeout extends Error {}

function postJson(url: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<{ status: number; text: string }> {
  const send = url.startsWith("https:") ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const request = send(url, { method: "POST", headers: { ...headers, "content-length": Buffer.byteLength(body) } }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
      response.on("error", reject);
    });
    request.setTimeout(timeoutMs, () => request.destroy(new RequestTimeout()));
    request.on("error", reject);
    request.end(body);
  });
}

function describeRequestError(error: unknown): string {
  if (error instanceof RequestTimeout) return "the check-in timed out";
  const code = (error as { code?: string }).code;
  return `cannot reach the orchestrator: ${code ?? (error as Error).message}`;
}
