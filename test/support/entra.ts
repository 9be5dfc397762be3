/**
 * Callers as App Service authentication (Easy Auth) presents them to the app. No @azure/functions
 * import here: tests that start the local Functions host load this before the host's shim.
 */

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
