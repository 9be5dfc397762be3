import { test, describe } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { parseConfig, Settings } from "../../shared/config/config";
import { SECRET_SETTING_PREFIX } from "../../shared/outbound/outbound";
import { appSettingsOf } from "../support/armTemplate";

/**
 * `Microsoft.Web/sites/config/appsettings` replaces the whole collection on every deployment, so a
 * setting the template does not write vanishes at the next `azd up`. These tests hold the template
 * to exactly the settings shared/config/config.ts reads (the keys of its zod schema), both ways:
 * a setting added to config.ts without a Bicep parameter fails here, and so does a template setting
 * nobody reads.
 */

const repo = path.resolve(__dirname, "../..");
const read = (p: string) => fs.readFileSync(path.join(repo, p), "utf8");
type Json = Record<string, any>;
const template: Json = JSON.parse(read("infra/main.json"));
const azdParameters: Json = JSON.parse(read("infra/main.parameters.json")).parameters;
const mainBicep = read("infra/main.bicep");
const appSettings = appSettingsOf(template);
const site = template.resources.find((r: Json) => r.type === "Microsoft.Web/sites");

/** Settings config.ts reads that the template must not write, and why. */
const notWritten: Record<string, string> = {
  ROLLCALL_STORAGE_CONNECTION: "a connection string carries the account key; the template reaches storage with the identity",
  AzureWebJobsStorage: "the host's storage is identity-based (AzureWebJobsStorage__accountName/__credential/__clientId)",
  ROLLCALL_AGENT_AUTH: "tokenreview, the default, is the only mode Rollcall accepts on Azure",
  ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK: "local runs only; refused on Azure",
};
/** App Service injects these itself; an app setting of the same name would shadow the platform's value. */
const platformInjected = (name: string) => name.startsWith("WEBSITE_");
/** Written from what the deployment creates, not chosen by the operator. */
const derived = new Set(["AZURE_CLIENT_ID", "ROLLCALL_STORAGE_TABLE_ENDPOINT"]);
/** The Functions host's own settings, not Rollcall's. */
const hostSetting = (name: string) => name.startsWith("AzureWebJobsStorage__") || name.startsWith("APPLICATIONINSIGHTS_");

const settingNames = Object.keys(Settings.shape);
const operatorSettings = settingNames.filter((n) => !(n in notWritten) && !platformInjected(n) && !derived.has(n));

/** What ARM makes of the deployment-time defaults the template uses, in public Azure. */
const deployedValue: Record<string, string> = { "[environment().name]": "AzureCloud" };

/** The parameters an expression depends on, following variables to their own expressions. */
function parametersOf(expression: unknown, seen = new Set<string>()): Set<string> {
  const out = new Set<string>();
  const text = JSON.stringify(expression);
  for (const [, p] of text.matchAll(/parameters\('([^']+)'\)/g)) out.add(p!);
  for (const [, v] of text.matchAll(/variables\('([^']+)'\)/g)) {
    if (seen.has(v!)) continue;
    seen.add(v!);
    for (const p of parametersOf(template.variables[v!], seen)) out.add(p);
  }
  return out;
}

/** The parameter documented as carrying a setting: its description starts with the setting's name. */
const parameterFor = (setting: string) =>
  Object.entries(template.parameters as Record<string, Json>).filter(([, p]) => new RegExp(`^${setting}\\b`).test(p.metadata?.description ?? "")).map(([name]) => name);

describe("app settings survive a redeploy: the template writes exactly what config.ts reads", () => {
  test("the settings schema is the source: it has the settings everyone knows about", () => {
    for (const known of ["ROLLCALL_CLUSTERS", "ROLLCALL_CONCURRENCY", "ROLLCALL_TABLE", "AZURE_CLIENT_ID"]) assert.ok(settingNames.includes(known), known);
  });

  test("every setting config.ts reads is written by the template, or is named here with the reason it is not", () => {
    const missing = settingNames.filter((n) => !(n in notWritten) && !platformInjected(n) && !(n in appSettings));
    assert.deepEqual(missing, [], `add a Bicep parameter (main.bicep operatorSettings) and its main.json twin for: ${missing.join(", ")}`);
    for (const name of [...Object.keys(notWritten), ...settingNames.filter(platformInjected)]) assert.ok(!(name in appSettings), `${name} must not be written`);
  });

  test("every setting the template writes is one config.ts reads or one of the Functions host's own", () => {
    const unread = Object.keys(appSettings).filter((n) => !hostSetting(n) && !settingNames.includes(n));
    assert.deepEqual(unread, [], "settings nobody reads");
    for (const reason of Object.keys(notWritten)) assert.ok(settingNames.includes(reason), `${reason} is listed as not written but config.ts no longer reads it`);
  });

  test("every setting an operator chooses comes from exactly one parameter named after it", () => {
    for (const setting of operatorSettings) {
      const params = parameterFor(setting);
      assert.equal(params.length, 1, `${setting}: one parameter whose description starts with "${setting}:" (found ${params.join(", ") || "none"})`);
      assert.ok(parametersOf(appSettings[setting]).has(params[0]!), `${setting} is written from parameter ${params[0]}`);
      assert.ok(new RegExp(`^param ${params[0]} `, "m").test(mainBicep), `${params[0]} is a main.bicep parameter`);
    }
    for (const setting of derived) assert.equal(parameterFor(setting).length, 0, `${setting} is derived, not a parameter`);
  });

  test("azd users set every optional setting with `azd env set <SETTING>`: main.parameters.json maps each to its environment variable", () => {
    for (const setting of operatorSettings) {
      const param = parameterFor(setting)[0];
      if (!param) continue; // reported by the test above
      const declared = template.parameters[param];
      if (declared.type !== "string" || declared.defaultValue !== "") continue;
      assert.equal(azdParameters[param]?.value, `\${${setting}=}`, `${param} in infra/main.parameters.json`);
    }
    for (const name of Object.keys(azdParameters)) assert.ok(name in template.parameters, name);
  });

  test("with every optional parameter left empty the app gets config.ts's own defaults, because an empty setting is an unset one", () => {
    const sample: Record<string, string> = {
      AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000000",
      ROLLCALL_STORAGE_TABLE_ENDPOINT: "https://strollcallabc.table.core.windows.net/",
    };
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(appSettings)) {
      if (hostSetting(name)) continue;
      if (name in sample) env[name] = sample[name]!;
      else if (name === "ROLLCALL_CLUSTERS") env[name] = "[]";
      else {
        const param = /^\[(?:string\()?parameters\('([^']+)'\)\)?\]$/.exec(value)?.[1];
        assert.ok(param, `${name}: written from one parameter (${value})`);
        const given = String(template.parameters[param].defaultValue);
        // A default ARM computes at deployment: the one it gets in public Azure.
        env[name] = deployedValue[given] ?? given;
      }
    }
    const emptied = Object.keys(env).filter((k) => env[k] === "");
    assert.ok(emptied.length >= 10, `most optional settings default to '' (${emptied.length})`);
    const written = parseConfig(env);
    const unset = parseConfig(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== "")));
    assert.deepEqual(written, unset);
    assert.equal(written.defaults.drain.gracePeriodSeconds, undefined, "an empty grace period is the pod's own, not 0");
  });

  test("the ROLLCALL_SECRET_* settings policies name are a parameter too, merged first so they cannot replace a Rollcall setting", () => {
    const settings = template.resources.find((r: Json) => r.type === "Microsoft.Web/sites/config").properties as string;
    assert.ok(settings.startsWith("[union(variables('secrets'), "), settings.slice(0, 60));
    assert.equal(
      template.variables.secrets,
      `[toObject(filter(items(parameters('secretSettings')), lambda('s', startsWith(lambdaVariables('s').key, '${SECRET_SETTING_PREFIX}'))), lambda('s', lambdaVariables('s').key), lambda('s', lambdaVariables('s').value))]`,
    );
    assert.deepEqual(template.parameters.secretSettings.defaultValue, {});
    assert.ok(mainBicep.includes(`var secrets = toObject(filter(items(secretSettings), s => startsWith(s.key, '${SECRET_SETTING_PREFIX}')), s => s.key, s => s.value)`));
    assert.ok(mainBicep.includes("secretSettings: secrets"));
  });

  test("Key Vault references resolve with the app's identity: keyVaultReferenceIdentity on the site, Key Vault Secrets User on the optional vault", () => {
    assert.equal(site.properties.keyVaultReferenceIdentity, "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', variables('identityName'))]");
    assert.deepEqual(Object.keys(site.identity.userAssignedIdentities), [site.properties.keyVaultReferenceIdentity]);
    const access = template.resources.find((r: Json) => r.type === "Microsoft.Resources/deployments" && String(r.name).includes("keyvault-access"));
    assert.equal(access.condition, "[not(empty(parameters('keyVaultResourceId')))]");
    assert.equal(access.subscriptionId, "[split(parameters('keyVaultResourceId'), '/')[2]]");
    assert.equal(access.resourceGroup, "[split(parameters('keyVaultResourceId'), '/')[4]]");
    const inner = access.properties.template;
    const assignment = inner.resources[0];
    assert.equal(assignment.type, "Microsoft.Authorization/roleAssignments");
    assert.equal(inner.variables.keyVaultSecretsUser, "4633458b-17de-408a-b874-0445c86b69e6", "Key Vault Secrets User");
    assert.match(assignment.scope, /Microsoft\.KeyVault\/vaults/);
    assert.match(access.properties.parameters.principalId.value, /userAssignedIdentities.*principalId/);
    const module = read("infra/modules/keyvault-access.bicep");
    assert.ok(module.includes("4633458b-17de-408a-b874-0445c86b69e6") && module.includes("scope: vault"));
    assert.match(read("infra/modules/functionapp.bicep"), /keyVaultReferenceIdentity: identityId/);
  });
});
