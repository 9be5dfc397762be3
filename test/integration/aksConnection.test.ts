import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { TokenCredential } from "@azure/core-auth";
import { type ArmSim, startArmSim } from "../../local/armSim/armSim";
import { SimCluster } from "../../local/kubeSim/simCluster";
import { parseConfig } from "../../shared/config/config";
import { clusterApiFactory } from "../../shared/kube/connect";

const RESOURCE_ID = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-prod/providers/Microsoft.ContainerService/managedClusters/aks-prod";
const AKS_SCOPE = "6dae42f8-4368-4678-94ff-3960e28e3630/.default";

let kube: SimCluster;
let arm: ArmSim;

before(async () => {
  kube = await SimCluster.start();
  kube.addNode("aks-nodepool1-00000000-vmss000000");
  arm = await startArmSim({
    clusters: [
      {
        subscriptionId: "00000000-0000-0000-0000-000000000001",
        resourceGroup: "rg-prod",
        name: "aks-prod",
        location: "westeurope",
        kubernetesVersion: "1.31",
        currentKubernetesVersion: "1.31.2",
        pools: [],
        userKubeconfig: kube.kubeconfig,
      },
    ],
    versions: {},
  });
});
after(async () => {
  await arm.stop();
  await kube.stop();
});

/** An identity that answers ARM with a dummy token and the AKS server scope with `aksToken`. */
function identity(aksToken: string): TokenCredential & { scopes: string[] } {
  const scopes: string[] = [];
  return {
    scopes,
    async getToken(scope) {
      const wanted = Array.isArray(scope) ? scope[0]! : scope;
      scopes.push(wanted);
      return { token: wanted === AKS_SCOPE ? aksToken : "arm-token", expiresOnTimestamp: Date.now() + 3_600_000 };
    },
  };
}

function connectTo(aksAuth: "token" | "credentials", credential: TokenCredential) {
  const config = parseConfig({
    ROLLCALL_STORAGE_CONNECTION: "UseDevelopmentStorage=true",
    ROLLCALL_ARM_ENDPOINT: arm.endpoint,
    ROLLCALL_CLUSTERS: JSON.stringify([{ name: "prod", aksResourceId: RESOURCE_ID, aksAuth }]),
  });
  return clusterApiFactory(config, { credential, ca: arm.ca, endpoint: arm.endpoint })("prod");
}

describe("connecting to an AKS cluster by its resource id", () => {
  it("uses the user kubeconfig from listClusterUserCredential with aksAuth credentials", async () => {
    const api = await connectTo("credentials", identity("unused"));
    assert.equal((await api.getNode("aks-nodepool1-00000000-vmss000000"))?.ready, true);
    assert.ok(arm.requests.some((r) => r.method === "POST" && r.path.endsWith("/listClusterUserCredential")));
  });

  it("talks to the API server with the app's Entra ID token for the AKS server scope with aksAuth token", async () => {
    const credential = identity(kube.adminToken);
    const api = await connectTo("token", credential);
    assert.equal((await api.getNode("aks-nodepool1-00000000-vmss000000"))?.name, "aks-nodepool1-00000000-vmss000000");
    assert.ok(credential.scopes.includes(AKS_SCOPE));
  });

  it("fails with the API server's refusal when the identity's token is not accepted", async () => {
    const api = await connectTo("token", identity("not-a-valid-token"));
    await assert.rejects(api.getNode("aks-nodepool1-00000000-vmss000000"), (error: { code?: number }) => error.code === 401);
  });
});
