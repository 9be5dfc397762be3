import type { HttpRequest } from "@azure/functions";

/**
 * Who is asking, for operator calls: recorded with each request and in the history.
 *
 * With App Service authentication (Easy Auth) in front of the app, the platform authenticates the
 * caller and passes the principal in `x-ms-client-principal-name` (and the full claims, base64 JSON,
 * in `x-ms-client-principal`); it strips those headers from what clients send. Without it, the only
 * thing Rollcall knows is that the caller held a function key: `function-key`.
 */

export const FUNCTION_KEY_CALLER = "function-key";

const MAX_LENGTH = 200;

/** Claim types that name a person or a service principal, in order of preference. */
const NAME_CLAIMS = [
  "name",
  "preferred_username",
  "upn",
  "email",
  "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
  "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
  "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
  "appid",
  "oid",
  "http://schemas.microsoft.com/identity/claims/objectidentifier",
];

interface ClientPrincipal {
  /** App Service: the claim type that holds the name. */
  name_typ?: unknown;
  claims?: unknown;
  /** Static Web Apps' shape of the same header. */
  userDetails?: unknown;
}

export function requester(request: Pick<HttpRequest, "headers">): string {
  const named = clean(request.headers.get("x-ms-client-principal-name"));
  if (named) return named;
  const fromClaims = principalName(request.headers.get("x-ms-client-principal"));
  if (fromClaims) return fromClaims;
  return FUNCTION_KEY_CALLER;
}

function principalName(header: string | null): string | undefined {
  if (!header) return undefined;
  let principal: ClientPrincipal;
  try {
    principal = JSON.parse(Buffer.from(header, "base64").toString("utf8")) as ClientPrincipal;
  } catch {
    return undefined;
  }
  if (typeof principal !== "object" || principal === null) return undefined;
  const claims = Array.isArray(principal.claims)
    ? principal.claims.filter((c): c is { typ: string; val: string } => typeof c?.typ === "string" && typeof c?.val === "string")
    : [];
  const types = typeof principal.name_typ === "string" ? [principal.name_typ, ...NAME_CLAIMS] : NAME_CLAIMS;
  for (const type of types) {
    const value = clean(claims.find((c) => c.typ === type)?.val);
    if (value) return value;
  }
  return typeof principal.userDetails === "string" ? clean(principal.userDetails) : undefined;
}

/** Printable, trimmed and short: the value ends up in logs, history rows and node annotations' reasons. */
function clean(value: string | null | undefined): string | undefined {
  // eslint-disable-next-line no-control-regex
  const text = value?.replace(/[\u0000-\u001f\u007f]/g, "").trim();
  return text ? text.slice(0, MAX_LENGTH) : undefined;
}
