import { HttpRequest, type HttpResponseInit, type InvocationContext } from "@azure/functions";
import { invocation } from "./world";

/** Calls an HTTP function's handler the way the Functions host would, and reads its answer as JSON. */

type Handler = (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>;

export interface Call {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** The path after `/api/`, e.g. `clusters/prod/status`, with the query string if any. */
  path: string;
  params: Record<string, string>;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface Answer {
  status: number;
  body: any;
  headers: Record<string, string>;
  /** The raw text of the answer, to check that nothing leaks into it (stack traces). */
  text: string;
}

export async function call(handler: Handler, { method, path, params, body, headers = {} }: Call): Promise<Answer> {
  const request = new HttpRequest({
    method,
    url: `http://localhost/api/${path}`,
    params,
    headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
    ...(body === undefined ? {} : { body: { string: typeof body === "string" ? body : JSON.stringify(body) } }),
  });
  const response = await handler(request, invocation(path));
  const text = response.jsonBody !== undefined ? JSON.stringify(response.jsonBody) : typeof response.body === "string" ? response.body : "";
  const parsed = response.jsonBody ?? (text ? JSON.parse(text) : undefined);
  return { status: response.status ?? 200, body: parsed, headers: Object.fromEntries(Object.entries(response.headers ?? {})), text };
}

/** A stack trace or a source location in an answer: what no route may ever return. */
export function leaksInternals(text: string): boolean {
  return /\n\s+at |\bat [\w.<>]+ \(|\.ts:\d+|node_modules|\bError: .*\n/.test(text);
}
