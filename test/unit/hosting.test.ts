import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../shared/config/config";
import { azureHostSignal, unsafeOnAzure } from "../../shared/config/hosting";

const local = { ROLLCALL_STORAGE_CONNECTION: "UseDevelopmentStorage=true", ROLLCALL_AGENT_AUTH: "off" };

describe("telling Azure from a local run", () => {
  // The markers the Functions host itself reads (azure-functions-host EnvironmentExtensions.cs).
  const plans: [string, Record<string, string>][] = [
    ["App Service and Premium plans", { WEBSITE_INSTANCE_ID: "0f3d…" }],
    ["Flex Consumption, by its SKU", { WEBSITE_SKU: "FlexConsumption" }],
    ["Flex Consumption, by its Legion host", { LEGION_SERVICE_HOST: "10.0.0.4" }],
    ["Linux Consumption, by the site name every plan sets", { CONTAINER_NAME: "rollcall-fn", WEBSITE_SITE_NAME: "rollcall-fn" }],
  ];
  for (const [plan, env] of plans) {
    it(`recognises ${plan} and refuses ROLLCALL_AGENT_AUTH=off there`, () => {
      assert.ok(azureHostSignal(env));
      assert.throws(() => parseConfig({ ...local, ...env }), /ROLLCALL_AGENT_AUTH=off .* refused on Azure \(detected by /);
      assert.match(unsafeOnAzure({ ...local, ...env }) ?? "", /remove the setting/);
    });
  }

  it("does not take a container name alone, which any container may set, for Azure", () => {
    assert.equal(azureHostSignal({ CONTAINER_NAME: "ci-runner-42" }), undefined);
    assert.equal(parseConfig({ ...local, CONTAINER_NAME: "ci-runner-42" }).agentAuth.mode, "off");
  });

  it("allows authenticated check-ins on Azure", () => {
    assert.equal(unsafeOnAzure({ WEBSITE_SKU: "FlexConsumption", ROLLCALL_AGENT_AUTH: "tokenreview" }), undefined);
  });
});

describe("the agent identity setting of a cluster", () => {
  const cluster = (agent?: unknown) =>
    JSON.stringify([{ name: "prod", kubeconfigFile: "/k", ...(agent === undefined ? {} : { agent }) }]);

  it("fills in the shipped manifests' names for whatever is not given", () => {
    const [prod] = parseConfig({ ...local, ROLLCALL_CLUSTERS: cluster({ namespace: "ops" }) }).clusters;
    assert.deepEqual(prod?.agent, { namespace: "ops", serviceAccount: "rollcall-agent", daemonSet: "rollcall-agent" });
  });

  it("names the field of a bad agent namespace or name", () => {
    assert.throws(() => parseConfig({ ...local, ROLLCALL_CLUSTERS: cluster({ namespace: "Not_A_Namespace" }) }), /ROLLCALL_CLUSTERS\.0\.agent\.namespace/);
    assert.throws(() => parseConfig({ ...local, ROLLCALL_CLUSTERS: cluster({ serviceAccount: "x", extra: 1 }) }), /ROLLCALL_CLUSTERS\.0\.agent/);
  });
});
