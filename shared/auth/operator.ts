import type { HttpRequest } from "@azure/functions";
import { z } from "zod";
import { getConfig } from "../config/config";
import { HttpError } from "../http/http";

/**
 * Who an operator is, and what they may do.
 *
 * `entra` (App Service authentication, "Easy Auth", in front of the app): the platform validates the
 * caller's Microsoft Entra token and passes its claims in `X-MS-CLIENT-PRINCIPAL` (base64 JSON:
 * `auth_typ`, `name_typ`, `role_typ`, `claims: [{typ, val}]`); it strips that header from what
 * clients send, so the header is trusted only then. The app roles in the claims decide:
 * `Rollcall.Read` reads, `Rollcall.Operate` changes something and includes reading (an operator who
 * may reboot a node may see it). https://learn.microsoft.com/azure/app-service/configure-authentication-user-identities
 *
 * `function-key`: nothing strips `x-ms-client-principal*`, so anyone could send them; the only fact
 * is that the Functions host accepted a function key, and the caller is recorded as `function-key`.
 */

export const OPERATOR_ROLES = ["Rollcall.Read", "Rollcall.Operate"] as const;
export type OperatorRole = (typeof OPERATOR_ROLES)[number];

export type OperatorPrincipal =
  | { kind: "entra"; name: string; objectId: string; roles: OperatorRole[] }
  | { kind: "function-key" };

const FUNCTION_KEY_CALLER = "function-key";

/** Easy Auth names the Entra provider `aad`; a principal from any other provider carries no Entra app roles. */
const ENTRA_AUTH_TYPE = "aad";
const MAX_NAME_LENGTH = 200;
/** Far above any real principal; a header this large is not one App Service wrote. */
const MAX_HEADER_LENGTH = 64 * 1024;

const OBJECT_ID_CLAIMS = ["http://schemas.microsoft.com/identity/claims/objectidentifier", "oid"];
/** Easy Auth passes app roles as `roles` whatever `role_typ` says (the v2 endpoint's claim name). */
const ROLE_CLAIMS = ["roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"];
/** A person's sign-in name first, then a service principal's application id. */
const NAME_CLAIMS = [
  "preferred_username",
  "upn",
  "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
  "name",
  "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
  "email",
  "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
  "appid",
  "azp",
];
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const ClientPrincipal = z.object({
  auth_typ: z.string(),
  name_typ: z.string().optional(),
  role_typ: z.string().optional(),
  claims: z.array(z.object({ typ: z.string(), val: z.string() })),
});

/**
 * The caller of an operator route, if it holds `role`; otherwise an HttpError: 401 when there is no
 * usable principal, 403 naming the missing role. Call it first, before anything is read or written.
 */
export function authorizeOperator(request: Pick<HttpRequest, "headers">, role: OperatorRole): OperatorPrincipal {
  if (getConfig().operatorAuth.mode === "function-key") return { kind: "function-key" };
  const header = request.headers.get("x-ms-client-principal");
  if (!header) {
    throw new HttpError(
      401,
      "unauthenticated",
      `This route needs a Microsoft Entra ID token for Rollcall's app registration with the app role ${role} (Authorization: Bearer …)`,
      { requiredRole: role },
    );
  }
  const principal = parsePrincipal(header);
  if (!hasRole(principal, role)) {
    throw new HttpError(
      403,
      "missing_role",
      `${principal.name} (object id ${principal.objectId}) lacks the app role ${role}; assign it to the caller in the Enterprise application of Rollcall's app registration`,
      { requiredRole: role, roles: principal.roles },
    );
  }
  return principal;
}

/** `Rollcall.Operate` includes `Rollcall.Read`. */
export function hasRole(principal: OperatorPrincipal, role: OperatorRole): boolean {
  if (principal.kind === "function-key") return true;
  return principal.roles.includes(role) || (role === "Rollcall.Read" && principal.roles.includes("Rollcall.Operate"));
}

/** How history rows, node records and log lines name the caller: bounded, printable, with the object id. */
export function operatorLabel(principal: OperatorPrincipal): string {
  return principal.kind === "function-key" ? FUNCTION_KEY_CALLER : `${principal.name} (oid ${principal.objectId})`;
}

/** Decodes Easy Auth's `X-MS-CLIENT-PRINCIPAL`; anything that is not a whole Entra principal with an object id is a 401. */
export function parsePrincipal(header: string): Extract<OperatorPrincipal, { kind: "entra" }> {
  const refuse = (why: string) =>
    new HttpError(401, "invalid_principal", `The X-MS-CLIENT-PRINCIPAL header is not a usable Microsoft Entra principal: ${why}`);
  if (header.length > MAX_HEADER_LENGTH || !/^[A-Za-z0-9+/]+={0,2}$/.test(header.trim())) throw refuse("not base64");
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(header.trim(), "base64").toString("utf8"));
  } catch {
    throw refuse("not base64 of JSON");
  }
  const parsed = ClientPrincipal.safeParse(decoded);
  if (!parsed.success) throw refuse("not an object with auth_typ and claims [{typ, val}]");
  const { auth_typ, name_typ, role_typ, claims } = parsed.data;
  if (auth_typ.toLowerCase() !== ENTRA_AUTH_TYPE) throw refuse(`signed in through ${JSON.stringify(clean(auth_typ) ?? "")}, not Microsoft Entra ID (aad)`);
  const values = (types: string[]) => claims.filter((c) => types.includes(c.typ)).map((c) => c.val);
  const objectId = values(OBJECT_ID_CLAIMS).find((v) => GUID.test(v));
  if (!objectId) throw refuse("no object id (oid) claim");
  const roleTypes = role_typ ? [role_typ, ...ROLE_CLAIMS] : ROLE_CLAIMS;
  const granted = new Set(values(roleTypes));
  const roles = OPERATOR_ROLES.filter((r) => granted.has(r));
  const nameTypes = name_typ ? [name_typ, ...NAME_CLAIMS] : NAME_CLAIMS;
  const name = nameTypes.map((t) => clean(values([t])[0])).find(Boolean) ?? objectId;
  return { kind: "entra", name, objectId: objectId.toLowerCase(), roles };
}

/** Printable, trimmed and short: the name ends up in logs, history rows and node records. */
function clean(value: string | undefined): string | undefined {
  // eslint-disable-next-line no-control-regex
  const text = value
    ?.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, "")
    // A JSON escape can carry half a surrogate pair, which Table Storage would refuse.
    .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "")
    .trim();
  return text ? Array.from(text).slice(0, MAX_NAME_LENGTH).join("") : undefined;
}
