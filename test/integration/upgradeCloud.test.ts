import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startArmSim, type ArmSim } from "../../local/armSim/armSim";
import { infraGrants } from "../../local/armSim/roles";
import { armClientFactory, credentialOptions } from "../../shared/azure/arm";
import { ConfigError, parseConfig } from "../../shared/config/config";

/**
 * ROLLCALL_AZURE_CLOUD sets the ARM endpoint, the token scope and the Entra authority together: a
 * token for https://management.azure.com sent to another cloud's ARM fails with
 * InvalidAuthenticationTokenAudience (https://learn.microsoft.com/azure/china/resources-developer-guide,
 * https://learn.microsoft.com/azure/azure-government/compare-azure-government-global-azure).
 */

const SUB = "00000000-0000-0000-0000-000000000004";
const base = { ROLLCALL_STORAGE_CONNECTION: "UseDevelopmentStorage=true" };

describe("the Azure cloud setting", () => {
  for (const [cloud, arm, authority] of [
    ["AzureCloud", "https://management.azure.com", "https://login.microsoftonline.com"],
    ["AzureChinaCloud", "https://management.chinacloudapi.cn", "https://login.chinacloudapi.cn"],
    ["AzureUSGovernment", "https://management.usgovcloudapi.net", "https://login.microsoftonline.us"],
  ] as const) {
    it(`${cloud}: ARM ${arm}, token scope ${arm}/.default, authority ${authority}`, () => {
      const config = parseConfig({ ...base, ROLLCALL_AZURE_CLOUD: cloud });
      assert.deepEqual(config.azure, { cloud, armEndpoint: arm, armScope: `${arm}/.default`, authorityHost: authority });
      assert.equal(credentialOptions(config).authorityHost, authority);
    });
  }

  it("defaults to AzureCloud and refuses an unknown cloud naming the setting", () => {
    assert.equal(parseConfig(base).azure.cloud, "AzureCloud");
    assert.throws(() => parseConfig({ ...base, ROLLCALL_AZURE_CLOUD: "AzureGermanCloud" }), (e: unknown) => e instanceof ConfigError && /ROLLCALL_AZURE_CLOUD/.test(e.message));
  });

  it("lets ROLLCALL_ARM_ENDPOINT move only the host (a local simulator), keeping the cloud's scope", () => {
    const config = parseConfig({ ...base, ROLLCALL_AZURE_CLOUD: "AzureUSGovernment", ROLLCALL_ARM_ENDPOINT: "https://127.0.0.1:9999" });
    assert.equal(config.azure.armEndpoint, "https://127.0.0.1:9999");
    assert.equal(config.azure.armScope, "https://management.usgovcloudapi.net/.default");
    assert.equal(parseConfig({ ...base, ROLLCALL_ARM_ENDPOINT: "" }).azure.armEndpoint, "https://management.azure.com");
  });

  describe("through the real SDK", () => {
    let sim: ArmSim;
    before(async () => {
      const grants = infraGrants([`/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/cn`], "plan");
      sim = await startArmSim({ clusters: [], versions: { chinaeast2: [{ version: "1.31", patches: ["1.31.3"] }] } }, { grants });
    });
    after(() => sim?.stop());

    it("asks the credential for a token of the configured cloud's ARM audience", async () => {
      const scopes: string[][] = [];
      const credential = {
        getToken: async (s: string | string[]) => {
          scopes.push(Array.isArray(s) ? s : [s]);
          return { token: "t", expiresOnTimestamp: Date.now() + 3_600_000 };
        },
      };
      const config = parseConfig({ ...base, ROLLCALL_AZURE_CLOUD: "AzureChinaCloud", ROLLCALL_ARM_ENDPOINT: sim.endpoint });
      const client = await armClientFactory(config, { credential, ca: sim.ca })(SUB);
      const versions = await client.managedClusters.listKubernetesVersions("chinaeast2");
      assert.equal(versions.values?.[0]?.version, "1.31");
      assert.deepEqual(scopes.at(-1), ["https://management.chinacloudapi.cn/.default"]);
    });
  });
});
