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

/** Settings under which the app trusts App Service authentication's principal (as App Service injects when it is on). */
export const EASY_AUTH_ON = { WEBSITE_AUTH_ENABLED: "True" } as const;

export const OPERATOR_OBJECT_ID = "6f0c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f";

/**
 * The `x-ms-client-principal` header App Service authentication adds for a Microsoft Entra caller
 * named `name` holding `roles`, with the claim types Easy Auth really uses (app roles as `roles`).
 */
export function clientPrincipal(name: string, roles: string[] = ["Rollcall.Operate"], objectId = OPERATOR_OBJECT_ID): string {
  return Buffer.from(
    JSON.stringify({
      auth_typ: "aad",
      name_typ: "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
      role_typ: "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
      claims: [
        { typ: "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", val: name },
        { typ: "http://schemas.microsoft.com/identity/claims/objectidentifier", val: objectId },
        ...roles.map((role) => ({ typ: "roles", val: role })),
      ],
    }),
  ).toString("base64");
}

/** The headers of a call made through App Service authentication by `name` with `roles`. */
export function asEntra(name: string, roles?: string[], objectId?: string): Record<string, string> {
  return { "x-ms-client-principal": clientPrincipal(name, roles, objectId), "x-ms-client-principal-name": name };
}

/** How the app records that caller in history, node records and logs. */
export function entraLabel(name: string, objectId = OPERATOR_OBJECT_ID): string {
  return `${name} (oid ${objectId})`;
}
