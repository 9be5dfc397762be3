import { test, describe } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { parseConfig } from "../../shared/config/config";
import { appSettingsOf } from "../support/armTemplate";

/**
 * No Bicep compiler can be installed on the development machines (none is published on the npm
 * registry, the only registry reachable), so infra/main.json is the hand-maintained ARM twin of
 * infra/main.bicep. These tests validate main.json's structure and check it against the Bicep source.
 */

const repo = path.resolve(__dirname, "../..");
const infra = path.join(repo, "infra");
const read = (p: string) => fs.readFileSync(path.join(repo, p), "utf8");

type Json = Record<string, any>;
const template: Json = JSON.parse(read("infra/main.json"));
const bicepFiles = ["infra/main.bicep", ...fs.readdirSync(path.join(infra, "modules")).filter((f) => f.endsWith(".bicep")).map((f) => `infra/modules/${f}`)];
const bicep = Object.fromEntries(bicepFiles.map((f) => [f, read(f)]));

/** Every resource, including those of nested deployments' inline templates, with the template it belongs to. */
function allResources(t: Json, owner = "main"): { resource: Json; template: Json; owner: string }[] {
  const out: { resource: Json; template: Json; owner: string }[] = [];
  for (const r of t.resources ?? []) {
    out.push({ resource: r, template: t, owner });
    if (r.type === "Microsoft.Resources/deployments" && r.properties?.template) out.push(...allResources(r.properties.template, `${owner}/${r.copy?.name ?? r.name}`));
  }
  return out;
}

/** Every string in a JSON value, skipping nested deployments' inline templates (they have their own parameters). */
function strings(value: unknown, out: string[] = []): string[] {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) value.forEach((v) => strings(v, out));
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (k === "template" && v && typeof v === "object" && "resources" in v) continue;
      strings(v, out);
    }
  }
  return out;
}

const resources = allResources(template);
const byType = (type: string) => resources.filter((r) => r.resource.type === type).map((r) => r.resource);
const site = byType("Microsoft.Web/sites")[0]!;
const appSettings = appSettingsOf(template);

const roleIds = {
  storageTableDataContributor: "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
  storageBlobDataOwner: "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
  monitoringMetricsPublisher: "3913510d-42f4-4e42-8a64-420c390055eb",
  aksClusterUser: "4abbcc35-e782-43d8-92c5-2d3f1bd2253f",
  keyVaultSecretsUser: "4633458b-17de-408a-b874-0445c86b69e6",
};
/** What each custom role may do is checked against the calls the code makes in test/integration/rolesFromCode.test.ts; here only that both templates agree. */
const bicepList = (file: string, name: string) => [...bicep[file]!.split(`var ${name} = [`)[1]!.split("]")[0]!.matchAll(/'([^']+)'/g)].map((m) => m[1]);

describe("infra/main.json (ARM)", () => {
  test("is a deployment template whose every resource has type, apiVersion and name", () => {
    assert.match(template.$schema, /deploymentTemplate\.json#$/);
    assert.ok(resources.length > 15);
    for (const { resource, owner } of resources) {
      assert.equal(typeof resource.type, "string", `${owner}: ${JSON.stringify(resource).slice(0, 80)}`);
      assert.match(resource.apiVersion, /^\d{4}-\d{2}-\d{2}(-preview)?$/, `${owner}: ${resource.type}`);
      assert.ok(typeof resource.name === "string" && resource.name.length > 0, `${owner}: ${resource.type}`);
    }
  });

  test("every parameter and variable referenced exists, in each template's own scope", () => {
    const check = (t: Json, where: string) => {
      const text = strings({ ...t, parameters: undefined, $schema: undefined }).join("\n");
      for (const [, name] of text.matchAll(/parameters\('([^']+)'\)/g)) assert.ok(name! in (t.parameters ?? {}), `${where}: parameter ${name}`);
      for (const [, name] of text.matchAll(/variables\('([^']+)'\)/g)) assert.ok(name! in (t.variables ?? {}), `${where}: variable ${name}`);
    };
    check(template, "main");
    for (const d of byType("Microsoft.Resources/deployments")) {
      const inner = d.properties.template;
      check(inner, d.name);
      assert.deepEqual(Object.keys(d.properties.parameters).sort(), Object.keys(inner.parameters).sort(), `${d.name}: parameters passed = parameters declared`);
      assert.equal(d.properties.expressionEvaluationOptions?.scope, "inner");
    }
  });

  test("expressions have balanced brackets and parentheses", () => {
    for (const s of strings(template).filter((x) => x.startsWith("[") && !x.startsWith("[["))) {
      assert.ok(s.endsWith("]"), s);
      let depth = 0;
      let inString = false;
      for (let i = 1; i < s.length - 1; i++) {
        const c = s[i];
        if (c === "'") {
          if (inString && s[i + 1] === "'") i++;
          else inString = !inString;
        } else if (!inString && (c === "(" || c === "[")) depth++;
        else if (!inString && (c === ")" || c === "]")) depth--;
        assert.ok(depth >= 0, s);
      }
      assert.equal(depth, 0, s);
      assert.equal(inString, false, s);
    }
  });

  test("the Function App is Flex Consumption on Node 22 with a user-assigned identity and the deployment container", () => {
    const plan = byType("Microsoft.Web/serverfarms")[0]!;
    assert.deepEqual(plan.sku, { name: "FC1", tier: "FlexConsumption" });
    assert.equal(site.kind, "functionapp,linux");
    assert.deepEqual(site.properties.functionAppConfig.runtime, { name: "node", version: "22" });
    assert.equal(site.identity.type, "UserAssigned");
    assert.equal(site.properties.functionAppConfig.deployment.storage.type, "blobContainer");
    assert.equal(site.properties.functionAppConfig.deployment.storage.authentication.type, "UserAssignedIdentity");
    assert.equal(site.properties.httpsOnly, true);
    assert.match(site.tags, /'azd-service-name', 'api'/);
    const storage = byType("Microsoft.Storage/storageAccounts")[0]!;
    assert.equal(storage.properties.allowSharedKeyAccess, false);
    assert.equal(byType("Microsoft.Storage/storageAccounts/tableServices/tables").length, 1);
    assert.equal(byType("Microsoft.Storage/storageAccounts/blobServices/containers").length, 1);
    const ai = byType("Microsoft.Insights/components")[0]!;
    assert.match(ai.properties.WorkspaceResourceId, /Microsoft\.OperationalInsights\/workspaces/);
  });

  test("each instance takes enough concurrent HTTP requests for the check-ins it holds, at the default scale", () => {
    // A held check-in (docs/api.md "Held check-ins") is an open HTTP execution, and Flex Consumption
    // counts open executions against each instance's HTTP concurrency: 16 by default on a 2,048 MB
    // instance (https://learn.microsoft.com/azure/azure-functions/functions-concurrency#http-trigger-concurrency).
    // At that default, 1,000 queued agents, each held, need 63 instances and the default scale stops at 40.
    const scale = site.properties.functionAppConfig.scaleAndConcurrency;
    assert.equal(scale.triggers?.http?.perInstanceConcurrency, "[parameters('httpPerInstanceConcurrency')]");
    const perInstance = template.parameters.httpPerInstanceConcurrency;
    assert.ok(perInstance.maxValue <= 1000, "the platform's most");
    const heldAtOnce = 1_000;
    assert.ok(perInstance.defaultValue * template.parameters.maximumInstanceCount.defaultValue >= 2 * heldAtOnce, `${perInstance.defaultValue} × ${template.parameters.maximumInstanceCount.defaultValue} instances hold fewer than twice 1,000 check-ins`);
  });

  test("app settings carry what config.ts requires and nothing Flex Consumption refuses", () => {
    for (const name of ["ROLLCALL_STORAGE_TABLE_ENDPOINT", "AZURE_CLIENT_ID", "ROLLCALL_CLUSTERS", "APPLICATIONINSIGHTS_CONNECTION_STRING", "ROLLCALL_TABLE"]) {
      assert.ok(name in appSettings, name);
    }
    assert.equal(appSettings.AzureWebJobsStorage__credential, "managedidentity");
    assert.ok("AzureWebJobsStorage__accountName" in appSettings && "AzureWebJobsStorage__clientId" in appSettings);
    assert.match(appSettings.APPLICATIONINSIGHTS_AUTHENTICATION_STRING!, /Authorization=AAD/);
    assert.match(appSettings.ROLLCALL_STORAGE_TABLE_ENDPOINT!, /primaryEndpoints\.table/);
    assert.ok(!("ROLLCALL_STORAGE_CONNECTION" in appSettings) && !("AzureWebJobsStorage" in appSettings), "no keys: identity only");
    for (const refused of ["FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_NODE_DEFAULT_VERSION", "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_CONTENTSHARE"]) {
      assert.ok(!(refused in appSettings), refused);
    }
    // Every ROLLCALL_* setting the template writes is one config.ts reads.
    const configSource = read("shared/config/config.ts");
    for (const name of Object.keys(appSettings).filter((k) => k.startsWith("ROLLCALL_"))) {
      assert.match(configSource, new RegExp(`\\b${name}:`), `${name} is read by config.ts`);
    }
  });

  test("the settings the template produces pass config.ts, defaults included", () => {
    const params = template.parameters;
    // What the template's idClusters lambda makes of aksClusterResourceIds.
    const ids = " /subscriptions/s1/resourceGroups/rg-a/providers/Microsoft.ContainerService/managedClusters/Prod_WEU , ,/subscriptions/s2/resourceGroups/rg-b/providers/Microsoft.ContainerService/managedClusters/dev";
    const idClusters = ids
      .split(",")
      .filter((id) => id.trim() !== "")
      .map((id) => ({ name: id.trim().split("/").at(-1)!.toLowerCase().replaceAll("_", "-"), aksResourceId: id.trim() }));
    assert.match(template.variables.idClusters, /replace\(toLower\(last\(split\(trim\(lambdaVariables\('id'\)\), '\/'\)\)\), '_', '-'\)/);
    const config = parseConfig({
      ROLLCALL_STORAGE_TABLE_ENDPOINT: "https://strollcallabc.table.core.windows.net/",
      AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000000",
      ROLLCALL_TABLE: params.tableName.defaultValue,
      ROLLCALL_CLUSTERS: JSON.stringify([{ name: "edge", kubeconfigFile: "/k" }, ...idClusters]),
      ROLLCALL_LOCK_TTL_MINUTES: String(params.lockTtlMinutes.defaultValue),
      ROLLCALL_DRAIN_TIMEOUT_MINUTES: String(params.drainTimeoutMinutes.defaultValue),
    });
    assert.deepEqual(
      config.clusters.map((c) => c.name),
      ["edge", "prod-weu", "dev"],
    );
    assert.equal(config.storage.tableEndpoint, "https://strollcallabc.table.core.windows.net/");
  });

  test("role assignments use only the intended built-in roles, with the identity as a service principal", () => {
    const builtIns = new Set<string>();
    for (const { resource: ra, template: owner } of resources.filter((r) => r.resource.type === "Microsoft.Authorization/roleAssignments")) {
      assert.equal(ra.properties.principalType, "ServicePrincipal");
      const id = String(ra.properties.roleDefinitionId).replace(/variables\('([^']+)'\)/g, (_, v: string) => String(owner.variables?.[v]));
      for (const [key, guid] of Object.entries(roleIds)) if (id.includes(guid)) builtIns.add(key);
    }
    assert.deepEqual([...builtIns].sort(), Object.keys(roleIds).sort());
    const allText = JSON.stringify(template);
    for (const broad of ["8e3af657-a8ff-443c-a75c-2fe8c4bcb635" /* Owner */, "b24988ac-6180-42a0-ab88-20f7382dd24c" /* Contributor */]) {
      assert.ok(!allText.includes(broad), broad);
    }
    for (const [key, guid] of Object.entries(roleIds)) {
      assert.ok(allText.includes(guid), key);
    }
  });

  test("the custom roles hold the actions their Bicep modules list, writes only in apply mode", () => {
    const defs = byType("Microsoft.Authorization/roleDefinitions");
    assert.equal(defs.length, 2);
    const access = byType("Microsoft.Resources/deployments").find((d) => d.copy?.name === "aksAccess")!.properties.template;
    const upgrade = defs.find((d) => String(d.properties.roleName).includes("upgrade operator"))!;
    assert.equal(upgrade.properties.permissions[0].actions, "[if(equals(parameters('upgradeMode'), 'apply'), concat(variables('readActions'), variables('applyActions')), variables('readActions'))]");
    assert.deepEqual(access.variables.readActions, bicepList("infra/modules/aks-access.bicep", "readActions"));
    assert.deepEqual(access.variables.applyActions, bicepList("infra/modules/aks-access.bicep", "applyActions"));
    for (const action of access.variables.readActions) assert.match(action, /\/read$/, "plan mode only reads");
    assert.deepEqual(upgrade.properties.assignableScopes, ["[resourceGroup().id]"]);
    const versionsOwner = resources.find((r) => String(r.resource.properties?.roleName).includes("versions reader"))!.template;
    const versions = defs.find((d) => String(d.properties.roleName).includes("versions reader"))!;
    const written = versions.properties.permissions[0].actions;
    const variable = String(written).match(/^\[variables\('(\w+)'\)\]$/)?.[1];
    const versionsActions: string[] = variable ? versionsOwner.variables[variable] : written;
    const versionsBicep = bicep["infra/modules/aks-versions-reader.bicep"]!;
    assert.deepEqual(versionsActions, [...versionsBicep.matchAll(/'(Microsoft\.ContainerService\/[^']+)'/g)].map((m) => m[1]));
    for (const action of versionsActions) assert.match(action, /\/read$/);
    for (const d of defs) {
      const p = d.properties.permissions[0];
      assert.deepEqual([p.notActions, p.dataActions, p.notDataActions], [[], [], []]);
    }
    assert.deepEqual(template.parameters.upgradeMode.allowedValues, ["plan", "apply"]);
    assert.equal(template.parameters.upgradeMode.defaultValue, "plan");
  });

  test("alert rules: four, on the Application Insights component, queries from infra/alerts", () => {
    const rules = byType("Microsoft.Insights/scheduledQueryRules");
    assert.deepEqual(
      rules.map((r) => r.name.match(/rollcall-([a-z-]+)-\{0\}/)?.[1]).sort(),
      ["checkin-failures", "drain-timeout", "no-checkins", "stuck-node"],
    );
    for (const r of rules) {
      assert.deepEqual(r.properties.scopes, ["[resourceId('Microsoft.Insights/components', variables('appInsightsName'))]"]);
      assert.equal(r.properties.actions, "[variables('alertActions')]");
      assert.ok(r.properties.criteria.allOf[0].dimensions.some((d: Json) => d.name === "cluster"));
    }
    for (const [variable, file] of [
      ["stuckNodeKql", "stuck-node.kql"],
      ["drainTimeoutKql", "drain-timeout.kql"],
      ["checkinFailuresKql", "checkin-failures.kql"],
      ["noCheckinsKql", "no-checkins.kql"],
    ] as const) {
      assert.equal(template.variables[variable], read(`infra/alerts/${file}`), `${variable} = infra/alerts/${file}`);
      assert.ok(bicep["infra/modules/alerts.bicep"]!.includes(`loadTextContent('../alerts/${file}')`), file);
    }
    const ag = byType("Microsoft.Insights/actionGroups")[0]!;
    assert.equal(ag.condition, "[variables('hasEmail')]");
    assert.equal(ag.properties.emailReceivers[0].emailAddress, "[parameters('alertEmailAddress')]");
  });

  test("the workbook resource embeds infra/workbook/rollcall-workbook.json verbatim", () => {
    const wb = byType("Microsoft.Insights/workbooks")[0]!;
    assert.equal(wb.properties.serializedData, read("infra/workbook/rollcall-workbook.json"));
    assert.ok(bicep["infra/modules/monitoring.bicep"]!.includes("loadTextContent('../workbook/rollcall-workbook.json')"));
  });
});

describe("infra/main.bicep and infra/main.json stay in sync", () => {
  const main = bicep["infra/main.bicep"]!;

  test("same parameters, with the same types and defaults", () => {
    const declared = [...main.matchAll(/^param (\w+) (\w+)(?: = (.+))?$/gm)].map(([, name, type, def]) => ({ name: name!, type: type!, def }));
    assert.deepEqual(declared.map((p) => p.name).sort(), Object.keys(template.parameters).sort());
    for (const p of declared) {
      const arm = template.parameters[p.name];
      assert.equal(arm.type, p.type, p.name);
      if (p.def === undefined) assert.ok(!("defaultValue" in arm), p.name);
      else if (/^\d+$/.test(p.def)) assert.equal(arm.defaultValue, Number(p.def), p.name);
      else if (/^'.*'$/.test(p.def)) assert.equal(arm.defaultValue, p.def.slice(1, -1), p.name);
      else if (p.def === "[]") assert.deepEqual(arm.defaultValue, [], p.name);
      else if (p.def === "{}") assert.deepEqual(arm.defaultValue, {}, p.name);
      else assert.equal(arm.defaultValue, `[${p.def}]`, p.name);
    }
  });

  test("same resource types and API versions", () => {
    const fromBicep = new Set<string>();
    for (const text of Object.values(bicep)) {
      for (const [, type, api, rest] of text.matchAll(/^resource \w+ '([^@']+)@([^']+)'( existing)?/gm)) if (!rest) fromBicep.add(`${type}@${api}`);
    }
    const fromJson = new Set(resources.filter((r) => r.resource.type !== "Microsoft.Resources/deployments").map((r) => `${r.resource.type}@${r.resource.apiVersion}`));
    assert.deepEqual([...fromJson].sort(), [...fromBicep].sort());
  });

  test("same app settings", () => {
    const block = bicep["infra/modules/functionapp.bicep"]!.split("name: 'appsettings'")[1]!;
    const fixed = [...block.matchAll(/^\s{4}(\w+):/gm)].map((m) => m[1]!);
    assert.match(block, /properties: union\(secretSettings, operatorSettings, \{/);
    const operator = [...main.split("var operatorSettings = {")[1]!.split("\n}")[0]!.matchAll(/^\s{2}(\w+): (.+)$/gm)];
    assert.ok(operator.length > 0);
    for (const [, name, value] of operator) {
      const params = [...value!.matchAll(/\b([a-z]\w*)\b(?!\()/g)].map((m) => m[1]!).filter((p) => p in template.parameters);
      assert.ok(params.length > 0, `${name}: ${value}`);
      for (const p of params) assert.ok(appSettings[name!]?.includes(`parameters('${p}')`), `${name} is written from ${p} in both`);
    }
    assert.deepEqual([...fixed, ...operator.map((m) => m[1]!)].sort(), Object.keys(appSettings).sort());
  });

  test("same role actions and built-in roles", () => {
    const access = bicep["infra/modules/aks-access.bicep"]!;
    assert.match(access, /upgradeMode == 'apply' \? concat\(readActions, applyActions\) : readActions/);
    const allBicep = Object.values(bicep).join("\n");
    for (const guid of Object.values(roleIds)) assert.ok(allBicep.includes(guid), guid);
  });

  test("same outputs", () => {
    const outputs = [...main.matchAll(/^output (\w+) /gm)].map((m) => m[1]!);
    assert.deepEqual(outputs.sort(), Object.keys(template.outputs).sort());
  });

  test("same names for the resources that are looked up by name", () => {
    for (const [bicepText, jsonText] of [
      ["'id-rollcall-${resourceToken}'", "format('id-rollcall-{0}', variables('resourceToken'))"],
      ["'log-rollcall-${resourceToken}'", "format('log-rollcall-{0}', variables('resourceToken'))"],
      ["'appi-rollcall-${resourceToken}'", "format('appi-rollcall-{0}', variables('resourceToken'))"],
      ["'strollcall${take(resourceToken, 14)}'", "format('strollcall{0}', take(variables('resourceToken'), 14))"],
      ["'plan-rollcall-${resourceToken}'", "format('plan-rollcall-{0}', variables('resourceToken'))"],
      ["'func-rollcall-${resourceToken}'", "format('func-rollcall-{0}', variables('resourceToken'))"],
      ["'ag-rollcall-${resourceToken}'", "format('ag-rollcall-{0}', variables('resourceToken'))"],
    ]) {
      assert.ok(Object.values(bicep).some((t) => t.includes(bicepText!)), bicepText);
      assert.ok(JSON.stringify(template).includes(jsonText!), jsonText);
    }
    assert.ok(main.includes("uniqueString(subscription().id, resourceGroup().id, environmentName)"));
    assert.ok(template.variables.resourceToken.includes("uniqueString(subscription().id, resourceGroup().id, parameters('environmentName'))"));
  });
});

describe("azd and Kubernetes files", () => {
  test("azure.yaml declares the api service as a TypeScript function app and infra/main.parameters.json fits main.json", async () => {
    const { loadYaml, loadAllYaml } = await import("@kubernetes/client-node");
    const azd = loadYaml<Json>(read("azure.yaml"));
    const { hooks, ...api } = azd.services.api;
    assert.deepEqual(api, { project: ".", language: "ts", host: "function", remoteBuild: false, dist: ".rollcall/package" });
    assert.equal(hooks.prepackage.posix.run, "npm run package");
    assert.match(read("infra/package.mjs"), /path\.join\(root, "\.rollcall\/package"\)/, "the hook builds what dist names");
    // A local build ships compiled JavaScript and its node_modules: the sources stay out, the output stays in.
    const ignored = read(".funcignore").split("\n").map((l) => l.trim()).filter(Boolean);
    for (const out of ["*.ts", "tsconfig.json", "test", "local"]) assert.ok(ignored.includes(out), `.funcignore leaves ${out} out`);
    for (const kept of ["dist", "node_modules", "host.json", "package.json", "dist/functions", "dist/shared"]) assert.ok(!ignored.includes(kept), `.funcignore keeps ${kept}`);
    assert.deepEqual(azd.infra, { provider: "bicep", path: "infra", module: "main" });
    const params = JSON.parse(read("infra/main.parameters.json")).parameters;
    for (const name of Object.keys(params)) assert.ok(name in template.parameters, name);
    assert.ok("environmentName" in params);

    const docs = JSON.parse(JSON.stringify(loadAllYaml(read("infra/kubernetes/rollcall-orchestrator-rbac.yaml")))) as Json[];
    const role = docs.find((d) => d.kind === "ClusterRole")!;
    const grants = role.rules.flatMap((r: Json) => r.resources.flatMap((res: string) => r.verbs.map((v: string) => `${r.apiGroups.join(",")}/${res}:${v}`))).sort();
    assert.deepEqual(grants, [
      "/events:create",
      "/events:patch",
      "/nodes:get",
      "/nodes:list",
      "/nodes:patch",
      "/nodes:watch",
      "/pods/eviction:create",
      "/pods:list",
      "/pods:watch",
      "authentication.k8s.io/tokenreviews:create",
      "policy/poddisruptionbudgets:get",
      "policy/poddisruptionbudgets:list",
      "policy/poddisruptionbudgets:watch",
    ]);
    const binding = docs.find((d) => d.kind === "ClusterRoleBinding")!;
    assert.deepEqual(binding.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role.metadata.name });
    assert.deepEqual(binding.subjects, [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "ROLLCALL_IDENTITY_PRINCIPAL_ID" }]);
    assert.ok(template.outputs.ROLLCALL_IDENTITY_PRINCIPAL_ID, "the placeholder is a deployment output");
  });
});
