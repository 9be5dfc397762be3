import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import type { z } from "zod";
import { ConfigError } from "../config/config";

/**
 * The HTTP edge shared by every function: parse, validate, and turn failures into JSON errors.
 * Bad input never reaches the domain, and no response ever carries a stack trace.
 */

export interface FieldProblem {
  field: string;
  message: string;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): HttpResponseInit {
  return { status, jsonBody: body, headers: { "content-type": "application/json; charset=utf-8", ...headers } };
}

function problems(error: z.ZodError, prefix: string): FieldProblem[] {
  return error.issues.map((issue) => ({
    field: [prefix, ...issue.path.map(String)].filter(Boolean).join("."),
    message: issue.message,
  }));
}

function invalid(what: string, fieldProblems: FieldProblem[]): HttpError {
  const first = fieldProblems[0];
  const summary = first ? `${first.field || what}: ${first.message}` : `invalid ${what}`;
  return new HttpError(400, "invalid_request", `Invalid ${what}: ${summary}`, { problems: fieldProblems });
}

export function parseRoute<T extends z.ZodType>(request: HttpRequest, schema: T): z.infer<T> {
  const result = schema.safeParse(request.params);
  if (!result.success) throw invalid("route", problems(result.error, ""));
  return result.data;
}

export function parseQuery<T extends z.ZodType>(request: HttpRequest, schema: T): z.infer<T> {
  const result = schema.safeParse(Object.fromEntries(request.query.entries()));
  if (!result.success) throw invalid("query", problems(result.error, ""));
  return result.data;
}

/** Reads a JSON body of at most `maxBytes`, then validates it; oversized bodies are refused before parsing. */
export async function parseJsonBody<T extends z.ZodType>(request: HttpRequest, schema: T, maxBytes: number): Promise<z.infer<T>> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw tooLarge(maxBytes);
  const text = await request.text();
  if (Buffer.byteLength(text) > maxBytes) throw tooLarge(maxBytes);
  let data: unknown;
  try {
    data = text.length === 0 ? undefined : JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, "invalid_json", `The body is not valid JSON: ${(error as Error).message}`);
  }
  if (data === undefined) throw new HttpError(400, "invalid_json", "The body is empty; a JSON object is required");
  const result = schema.safeParse(data);
  if (!result.success) throw invalid("body", problems(result.error, ""));
  return result.data;
}

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(413, "body_too_large", `The body is larger than ${maxBytes} bytes`);
}

type Handler = (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>;

/** Wraps a handler so that every failure becomes a JSON error and unexpected ones are logged, not leaked. */
export function httpHandler(handler: Handler): Handler {
  return async (request, context) => {
    try {
      return await handler(request, context);
    } catch (error) {
      if (error instanceof HttpError) {
        return json(error.status, { error: { code: error.code, message: error.message, ...error.details } });
      }
      if (error instanceof ConfigError) {
        context.error(error.message);
        return json(500, { error: { code: "misconfigured", message: error.message } });
      }
      context.error(`Unhandled error in ${context.functionName}:`, error);
      return json(500, {
        error: { code: "internal", message: "Rollcall failed to handle this request; see its logs", invocationId: context.invocationId },
      });
    }
  };
}
