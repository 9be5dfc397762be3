import { test, describe } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";

/**
 * The network rows of docs/deploy.md: each a parameter set in infra/parameters/ that fits
 * infra/main.json (parameters exist, types and allowed values match), and the resources each row
 * needs. Facts followed: Flex Consumption integrates only with a subnet delegated to
 * Microsoft.App/environments (learn.microsoft.com/azure/azure-functions/flex-consumption-how-to);
 * a NAT gateway on the integration subnet fixes the outbound IP
 * (learn.microsoft.com/azure/app-service/overview-nat-gateway-integration); a private cluster's FQDN
 * resolves through its private DNS zone, which must be linked to the caller's virtual network
 * (learn.microsoft.com/azure/aks/private-clusters).
 */

const repo = path.resolve(__dirname, "../..");
const read = (p: string) => fs.readFileSync(path.join(repo, p), "utf8");
type Json = Record<string, any>;
const template: Json = JSON.parse(read("infra/main.json"));
const sets = fs.readdirSync(path.join(repo, "infra/parameters")).filter((f) => f.endsWith(".json"));
const setOf = (f: string): Json => JSON.parse(read(`infra/parameters/${f}`));
const byType = (type: string) => template.resources.filter((r: Json) => r.type === type);
const deployGuide = read("docs/deploy.md");

function armType(value: unknown): string {
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "int" : "number";
  if (typeof value === "boolean") return "bool";
  if (value !== null && typeof value === "object") return "object";
  return typeof value;
}

describe("network topologies: one parameter set and one decision-table row each", () => {
  test("there is a parameter set for every network mode, and each mode has exactly one", () => {
    const modes = sets.map((f) => setOf(f).parameters.networkMode?.value);
    assert.deepEqual([...modes].sort(), [...template.parameters.networkMode.allowedValues].sort(), sets.join(", "));
  });

  for (const file of sets) {
    test(`infra/parameters/${file} fits main.json: every parameter exists with the declared type and allowed values`, () => {
      const doc = setOf(file);
      assert.match(doc.$schema, /deploymentParameters\.json#$/);
      for (const [name, { value }] of Object.entries(doc.parameters as Record<string, { value: unknown }>)) {
        const declared = template.parameters[name];
        assert.ok(declared, `${file}: ${name} is not a parameter of main.json`);
        assert.equal(armType(value), declared.type, `${file}: ${name}`);
        if (declared.allowedValues) assert.ok(declared.allowedValues.includes(value), `${file}: ${name}=${String(value)}`);
        if (typeof value === "number" && declared.minValue !== undefined) assert.ok(value >= declared.minValue, `${file}: ${name}`);
        if (typeof value === "number" && declared.maxValue !== undefined) assert.ok(value <= declared.maxValue, `${file}: ${name}`);
      }
      const required = Object.entries(template.parameters as Record<string, Json>).filter(([, p]) => !("defaultValue" in p)).map(([n]) => n);
      assert.deepEqual(required, ["environmentName"], "the one parameter without a default is given on the command line (or by azd)");
    });

    test(`docs/deploy.md has the decision-table row for infra/parameters/${file}`, () => {
      const mode = setOf(file).parameters.networkMode.value as string;
      const row = deployGuide.split("\n").find((line) => line.startsWith("|") && line.includes(`infra/parameters/${file}`));
      assert.ok(row, `a table row naming infra/parameters/${file}`);
      assert.ok(row.includes(`\`${mode}\``), `the row names networkMode \`${mode}\``);
    });
  }

  test("authorized IP ranges: the app integrates into its own delegated subnet behind a NAT gateway with one static IP, given as ROLLCALL_EGRESS_IP", () => {
    const own = "[variables('ownNetwork')]";
    assert.equal(template.variables.ownNetwork, "[equals(parameters('networkMode'), 'authorizedIps')]");
    const [pip] = byType("Microsoft.Network/publicIPAddresses");
    const [nat] = byType("Microsoft.Network/natGateways");
    const [vnet] = byType("Microsoft.Network/virtualNetworks");
    for (const r of [pip, nat, vnet]) assert.equal(r.condition, own, r.type);
    assert.deepEqual([pip.sku.name, pip.properties.publicIPAllocationMethod], ["Standard", "Static"]);
    assert.equal(nat.sku.name, "Standard");
    assert.equal(nat.properties.publicIpAddresses[0].id, "[resourceId('Microsoft.Network/publicIPAddresses', variables('egressIpName'))]");
    const subnet = vnet.properties.subnets[0];
    assert.equal(subnet.name, "[variables('appSubnetName')]");
    assert.deepEqual(subnet.properties.delegations.map((d: Json) => d.properties.serviceName), ["Microsoft.App/environments"]);
    assert.equal(subnet.properties.natGateway.id, "[resourceId('Microsoft.Network/natGateways', variables('natName'))]");
    assert.equal(subnet.properties.addressPrefix, "[parameters('appSubnetPrefix')]");
    assert.match(template.outputs.ROLLCALL_EGRESS_IP.value, /publicIPAddresses', variables\('egressIpName'\)\), '2024-05-01'\)\.ipAddress/);
    assert.match(template.variables.appSubnetResourceId, /^\[if\(variables\('ownNetwork'\), resourceId\('Microsoft\.Network\/virtualNetworks\/subnets', variables\('vnetName'\), variables\('appSubnetName'\)\)/);
    const bicep = read("infra/modules/network.bicep");
    assert.ok(bicep.includes("serviceName: 'Microsoft.App/environments'") && bicep.includes("publicIPAllocationMethod: 'Static'"));
  });

  test("every network mode but public integrates the site into a subnet; public leaves it out of any virtual network", () => {
    const [site] = byType("Microsoft.Web/sites");
    assert.equal(site.properties.virtualNetworkSubnetId, "[if(empty(variables('appSubnetResourceId')), null(), variables('appSubnetResourceId'))]");
    const expression = template.variables.appSubnetResourceId as string;
    assert.ok(expression.includes("if(equals(parameters('networkMode'), 'private'), parameters('appSubnetId'), '')"), expression);
    assert.ok(site.dependsOn.includes("[resourceId('Microsoft.Network/virtualNetworks', variables('vnetName'))]"));
  });

  test("private cluster: each private DNS zone is linked to the virtual network of the app's subnet, in the zone's own resource group", () => {
    const links = byType("Microsoft.Resources/deployments").find((d: Json) => d.copy?.name === "privateDnsLinks");
    assert.equal(links.copy.count, "[length(variables('dnsZoneIds'))]");
    assert.match(template.variables.dnsZoneIds, /^\[if\(equals\(parameters\('networkMode'\), 'private'\), filter\(map\(split\(parameters\('privateDnsZoneIds'\), ','\)/);
    assert.equal(links.subscriptionId, "[split(variables('dnsZoneIds')[copyIndex()], '/')[2]]");
    assert.equal(links.resourceGroup, "[split(variables('dnsZoneIds')[copyIndex()], '/')[4]]");
    assert.equal(links.properties.parameters.zoneName.value, "[split(variables('dnsZoneIds')[copyIndex()], '/')[8]]");
    assert.equal(links.properties.parameters.virtualNetworkId.value, "[variables('appVnetId')]");
    const link = links.properties.template.resources[0];
    assert.equal(link.type, "Microsoft.Network/privateDnsZones/virtualNetworkLinks");
    assert.equal(link.properties.registrationEnabled, false);
    assert.equal(link.location, "global");

    // The indexes the expressions use, on the ids of the private parameter set.
    const privateSet = setOf("private.json").parameters;
    const subnetId: string = privateSet.appSubnetId.value;
    assert.match(subnetId, /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Network\/virtualNetworks\/[^/]+\/subnets\/[^/]+$/);
    assert.match(template.variables.appVnetId, /join\(take\(split\(parameters\('appSubnetId'\), '\/'\), 9\), '\/'\)/);
    assert.equal(subnetId.split("/").slice(0, 9).join("/"), subnetId.replace(/\/subnets\/[^/]+$/, ""), "take(…, 9) is the virtual network's id");
    const zoneId: string = privateSet.privateDnsZoneIds.value.split(",")[0].trim();
    const parts = zoneId.split("/");
    assert.deepEqual([parts[1], parts[3], parts[7]], ["subscriptions", "resourceGroups", "privateDnsZones"]);
    assert.match(parts[8]!, /privatelink\.<region>\.azmk8s\.io$/);
  });
});
