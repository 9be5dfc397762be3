import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";

/**
 * App Service authentication for operators (docs/security.md) in infra/main.bicep,
 * infra/modules/functionapp.bicep and the main.json twin: on exactly when a client id is given, and
 * configured so that what Rollcall's own checks rely on holds.
 */

const repo = path.resolve(__dirname, "../..");
const read = (p: string) => fs.readFileSync(path.join(repo, p), "utf8");
type Json = Record<string, any>;
const template: Json = JSON.parse(read("infra/main.json"));
const azd: Json = JSON.parse(read("infra/main.parameters.json")).parameters;
const mainBicep = read("infra/main.bicep");
const moduleBicep = read("infra/modules/functionapp.bicep");
const auth = template.resources.find((r: Json) => r.type === "Microsoft.Web/sites/config" && String(r.name).includes("'authsettingsV2'"));

describe("App Service authentication in the template", () => {
  test("is deployed only when entraClientId is given, for Microsoft Entra ID with that client id", () => {
    assert.ok(auth, "main.json has the authsettingsV2 resource");
    assert.equal(auth.condition, "[not(empty(parameters('entraClientId')))]");
    assert.match(moduleBicep, /resource authSettings 'Microsoft\.Web\/sites\/config@[^']+' = if \(!empty\(entraClientId\)\) \{\n  parent: site\n  name: 'authsettingsV2'/);
    assert.equal(auth.properties.platform.enabled, true);
    const aad = auth.properties.identityProviders.azureActiveDirectory;
    assert.equal(aad.enabled, true);
    assert.equal(aad.registration.clientId, "[parameters('entraClientId')]");
    assert.equal(aad.registration.openIdIssuer, "[format('{0}{1}/v2.0', environment().authentication.loginEndpoint, variables('entraTenant'))]");
    assert.match(moduleBicep, /openIdIssuer: '\$\{environment\(\)\.authentication\.loginEndpoint\}\$\{entraTenantId\}\/v2\.0'/);
    assert.equal(aad.validation.allowedAudiences, "[variables('entraAudiences')]");
    assert.deepEqual(Object.keys(auth.properties.identityProviders), ["azureActiveDirectory"], "no other provider: only Entra principals carry the app roles");
  });

  test("lets requests without a token reach the app, which decides per route (check-ins carry a Kubernetes token, health the key alone)", () => {
    assert.deepEqual(auth.properties.globalValidation, { requireAuthentication: false, unauthenticatedClientAction: "AllowAnonymous" });
    assert.match(moduleBicep, /requireAuthentication: false\n\s+unauthenticatedClientAction: 'AllowAnonymous'/);
    assert.equal(auth.properties.login.tokenStore.enabled, false, "Rollcall needs no stored provider tokens");
  });

  test("takes tenant and audiences from parameters, defaulting to the deployment's tenant and the app's own audiences", () => {
    for (const name of ["entraClientId", "entraTenantId", "entraAllowedAudiences"]) {
      assert.deepEqual(template.parameters[name], { ...template.parameters[name], type: "string", defaultValue: "" }, name);
      assert.ok(new RegExp(`^param ${name} string = ''$`, "m").test(mainBicep), `${name} in main.bicep`);
      assert.match(azd[name]?.value ?? "", /^\$\{ROLLCALL_ENTRA_[A-Z_]+=\}$/, `${name} settable with azd env set`);
    }
    assert.equal(template.variables.entraTenant, "[if(empty(parameters('entraTenantId')), tenant().tenantId, parameters('entraTenantId'))]");
    assert.match(mainBicep, /^var entraTenant = empty\(entraTenantId\) \? tenant\(\)\.tenantId : entraTenantId$/m);
    assert.match(template.variables.entraAudiences, /createArray\(format\('api:\/\/\{0\}', parameters\('entraClientId'\)\), parameters\('entraClientId'\)\)/);
    assert.match(mainBicep, /^var entraAudiences = empty\(trim\(entraAllowedAudiences\)\) \? \['api:\/\/\$\{entraClientId\}', entraClientId\] : /m);
    for (const name of ["entraClientId: entraClientId", "entraTenantId: entraTenant", "entraAllowedAudiences: entraAudiences"]) assert.ok(mainBicep.includes(name), name);
  });
});
