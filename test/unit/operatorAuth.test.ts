import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { authorizeOperator, hasRole, operatorLabel, parsePrincipal } from "../../shared/auth/operator";
import { parseConfig, resetConfigForTests } from "../../shared/config/config";
import { HttpError } from "../../shared/http/http";

const OID = "6f0c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f";
const ROLE_TYP = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";
const NAME_TYP = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";
const OID_TYP = "http://schemas.microsoft.com/identity/claims/objectidentifier";

const encode = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64");

/** A principal shaped as App Service authentication writes it for a Microsoft Entra caller. */
function principal(claims: { typ: string; val: string }[], extra: Record<string, unknown> = {}) {
  return { auth_typ: "aad", name_typ: NAME_TYP, role_typ: ROLE_TYP, claims, ...extra };
}

function refusal(run: () => unknown): HttpError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof HttpError, `an HttpError, not ${String(error)}`);
    return error;
  }
  assert.fail("expected a refusal");
}

const headers = (values: Record<string, string>) => ({ headers: new Headers(values) });

const BASE = { ROLLCALL_STORAGE_CONNECTION: "UseDevelopmentStorage=true" };

function withSettings(settings: Record<string, string>): void {
  for (const key of ["ROLLCALL_OPERATOR_AUTH", "WEBSITE_AUTH_ENABLED", "ROLLCALL_STORAGE_CONNECTION"]) delete process.env[key];
  Object.assign(process.env, BASE, settings);
  resetConfigForTests();
}

afterEach(() => withSettings({}));

describe("decoding App Service authentication's X-MS-CLIENT-PRINCIPAL", () => {
  it("reads the name, the object id and the Rollcall app roles (which Easy Auth passes as `roles`)", () => {
    const parsed = parsePrincipal(
      encode(
        principal([
          { typ: NAME_TYP, val: "Alice Admin" },
          { typ: "preferred_username", val: "alice@contoso.com" },
          { typ: OID_TYP, val: OID.toUpperCase() },
          { typ: "roles", val: "Rollcall.Read" },
          { typ: "roles", val: "Something.Else" },
        ]),
      ),
    );
    assert.deepEqual(parsed, { kind: "entra", name: "Alice Admin", objectId: OID, roles: ["Rollcall.Read"] });
  });

  it("takes roles under role_typ too, and the short oid claim", () => {
    const parsed = parsePrincipal(encode(principal([{ typ: "oid", val: OID }, { typ: ROLE_TYP, val: "Rollcall.Operate" }])));
    assert.deepEqual(parsed.roles, ["Rollcall.Operate"]);
    assert.equal(parsed.objectId, OID);
  });

  it("names a service principal by its application id, and falls back to the object id", () => {
    const app = parsePrincipal(encode(principal([{ typ: OID_TYP, val: OID }, { typ: "appid", val: "11111111-2222-4333-8444-555555555555" }])));
    assert.equal(app.name, "11111111-2222-4333-8444-555555555555");
    const bare = parsePrincipal(encode(principal([{ typ: OID_TYP, val: OID }])));
    assert.equal(bare.name, OID);
    assert.deepEqual(bare.roles, []);
  });

  it("keeps a name printable, whole-charactered and at most 200 characters, so it stays storable", () => {
    const name = `Eve\u0000\n\u2028${"é😀".repeat(150)}\ud800`;
    const parsed = parsePrincipal(encode(principal([{ typ: NAME_TYP, val: name }, { typ: OID_TYP, val: OID }])));
    assert.equal(Array.from(parsed.name).length, 200);
    assert.ok(parsed.name.startsWith("Eve"));
    assert.doesNotMatch(parsed.name, /[\u0000-\u001f\u2028]/);
    assert.equal(Buffer.from(parsed.name, "utf8").toString("utf8"), parsed.name, "no lone surrogate");
  });

  it("refuses with 401 what is not base64 of JSON, or not a principal", () => {
    for (const header of ["%%%", "not base64!", encode("{not json"), encode("null"), encode("[1,2]"), encode({ claims: [] }), encode({ auth_typ: "aad", claims: "x" })]) {
      const error = refusal(() => parsePrincipal(header));
      assert.equal(error.status, 401, header);
      assert.equal(error.code, "invalid_principal");
    }
    assert.equal(refusal(() => parsePrincipal("A".repeat(70_000))).status, 401, "oversized");
  });

  it("refuses with 401 a principal without a GUID object id, and one from another identity provider", () => {
    assert.match(refusal(() => parsePrincipal(encode(principal([{ typ: NAME_TYP, val: "nobody" }])))).message, /object id/);
    assert.match(refusal(() => parsePrincipal(encode(principal([{ typ: "oid", val: "not-a-guid" }])))).message, /object id/);
    const google = encode(principal([{ typ: OID_TYP, val: OID }, { typ: "roles", val: "Rollcall.Operate" }], { auth_typ: "google" }));
    assert.match(refusal(() => parsePrincipal(google)).message, /not Microsoft Entra ID/);
  });
});

describe("roles", () => {
  const entra = (roles: ("Rollcall.Read" | "Rollcall.Operate")[]) => ({ kind: "entra" as const, name: "n", objectId: OID, roles });

  it("Rollcall.Operate includes Rollcall.Read, Rollcall.Read does not include Rollcall.Operate, no role grants nothing", () => {
    assert.ok(hasRole(entra(["Rollcall.Operate"]), "Rollcall.Read"));
    assert.ok(hasRole(entra(["Rollcall.Operate"]), "Rollcall.Operate"));
    assert.ok(hasRole(entra(["Rollcall.Read"]), "Rollcall.Read"));
    assert.ok(!hasRole(entra(["Rollcall.Read"]), "Rollcall.Operate"));
    assert.ok(!hasRole(entra([]), "Rollcall.Read"));
  });

  it("labels a caller with name and object id, or as function-key", () => {
    assert.equal(operatorLabel(entra([])), `n (oid ${OID})`);
    assert.equal(operatorLabel({ kind: "function-key" }), "function-key");
  });
});

describe("authorizeOperator", () => {
  const reader = encode(principal([{ typ: NAME_TYP, val: "Rita Reader" }, { typ: OID_TYP, val: OID }, { typ: "roles", val: "Rollcall.Read" }]));

  it("under App Service authentication: 401 without a principal, 403 naming the missing role, the principal with it", () => {
    withSettings({ WEBSITE_AUTH_ENABLED: "True" });
    const missing = refusal(() => authorizeOperator(headers({}), "Rollcall.Read"));
    assert.equal(missing.status, 401);
    assert.equal(missing.code, "unauthenticated");
    const forbidden = refusal(() => authorizeOperator(headers({ "x-ms-client-principal": reader }), "Rollcall.Operate"));
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.code, "missing_role");
    assert.match(forbidden.message, /Rollcall\.Operate/);
    assert.equal(forbidden.details?.requiredRole, "Rollcall.Operate");
    assert.deepEqual(authorizeOperator(headers({ "x-ms-client-principal": reader }), "Rollcall.Read"), {
      kind: "entra",
      name: "Rita Reader",
      objectId: OID,
      roles: ["Rollcall.Read"],
    });
  });

  it("x-ms-client-principal-name alone is no principal under App Service authentication", () => {
    withSettings({ WEBSITE_AUTH_ENABLED: "True" });
    assert.equal(refusal(() => authorizeOperator(headers({ "x-ms-client-principal-name": "alice" }), "Rollcall.Read")).status, 401);
  });

  it("without App Service authentication ignores every principal header a client sends: the caller is function-key", () => {
    withSettings({});
    const forged = headers({ "x-ms-client-principal": reader, "x-ms-client-principal-name": "Rita Reader", "x-ms-client-principal-id": OID });
    assert.deepEqual(authorizeOperator(forged, "Rollcall.Operate"), { kind: "function-key" });
    assert.deepEqual(authorizeOperator(headers({ "x-ms-client-principal": "%%%" }), "Rollcall.Read"), { kind: "function-key" });
  });
});

describe("ROLLCALL_OPERATOR_AUTH", () => {
  it("defaults to entra exactly when App Service says its authentication is on", () => {
    assert.equal(parseConfig({ ...BASE }).operatorAuth.mode, "function-key");
    assert.equal(parseConfig({ ...BASE, WEBSITE_AUTH_ENABLED: "False" }).operatorAuth.mode, "function-key");
    assert.equal(parseConfig({ ...BASE, WEBSITE_AUTH_ENABLED: "True" }).operatorAuth.mode, "entra");
    assert.equal(parseConfig({ ...BASE, WEBSITE_AUTH_ENABLED: "true" }).operatorAuth.mode, "entra");
  });

  it("refuses entra without App Service authentication, naming the setting, and allows function-key with it", () => {
    assert.throws(() => parseConfig({ ...BASE, ROLLCALL_OPERATOR_AUTH: "entra" }), /ROLLCALL_OPERATOR_AUTH.*WEBSITE_AUTH_ENABLED/);
    assert.throws(() => parseConfig({ ...BASE, ROLLCALL_OPERATOR_AUTH: "entra", WEBSITE_AUTH_ENABLED: "False" }), /ROLLCALL_OPERATOR_AUTH/);
    assert.equal(parseConfig({ ...BASE, ROLLCALL_OPERATOR_AUTH: "entra", WEBSITE_AUTH_ENABLED: "True" }).operatorAuth.mode, "entra");
    assert.equal(parseConfig({ ...BASE, ROLLCALL_OPERATOR_AUTH: "function-key", WEBSITE_AUTH_ENABLED: "True" }).operatorAuth.mode, "function-key");
    assert.throws(() => parseConfig({ ...BASE, ROLLCALL_OPERATOR_AUTH: "anonymous" }), /ROLLCALL_OPERATOR_AUTH/);
  });
});
