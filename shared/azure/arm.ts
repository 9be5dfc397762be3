// The ESM build is what `await import()` loads at run time, so its types are the ones to name.
import type { ContainerServiceClient, ContainerServiceClientOptionalParams } from "@azure/arm-containerservice" with { "resolution-mode": "import" };
import type { TokenCredential } from "@azure/core-auth";
import type { Config } from "../config/config";

/**
 * Rollcall's way into Azure Resource Manager: the app's identity and one AKS management client per
 * subscription. Used by the cluster connection (AKS credentials), the upgrade planner and the AKS
 * maintenance-window reader. @azure/identity and the ARM SDK are imported lazily, on first use.
 */

export interface AksResource {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
}

export function parseAksResourceId(id: string): AksResource {
  const match = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.ContainerService\/managedClusters\/([^/]+)$/i.exec(id);
  if (!match) throw new Error(`Not an AKS cluster resource id: ${id}`);
  return { subscriptionId: match[1]!, resourceGroup: match[2]!, name: match[3]! };
}


export type ArmClientFactory = (subscriptionId: string) => Promise<ContainerServiceClient>;

export interface ArmClientOverrides {
  /** Tests pass a fake credential (`{ getToken: async () => ({ token, expiresOnTimestamp }) }`). */
  credential?: TokenCredential;
  endpoint?: string;
  /** A CA certificate (PEM) to trust for the endpoint, e.g. the local ARM simulator's self-signed one. */
  ca?: string;
  retryOptions?: ContainerServiceClientOptionalParams["retryOptions"];
}

/**
 * One client per subscription. Production: DefaultAzureCredential (the app's managed identity; the
 * user-assigned one when AZURE_CLIENT_ID is set), the ARM endpoint and token scope of ROLLCALL_AZURE_CLOUD
 * (the SDK would otherwise ask for a https://management.azure.com token whatever the endpoint).
 */
let localArm: ArmClientOverrides = {};

/**
 * `npm start` points every ARM client and credential of the process at the local ARM simulator (its
 * endpoint, its CA and a stand-in credential); `undefined` restores the app identity. Nothing in the
 * function app calls it.
 */
export function useLocalArm(overrides: ArmClientOverrides | undefined): void {
  localArm = overrides ?? {};
}

export function armClientFactory(config: Config, explicit: ArmClientOverrides = {}): ArmClientFactory {
  const overrides = { ...localArm, ...explicit };
  const clients = new Map<string, Promise<ContainerServiceClient>>();
  return (subscriptionId) => {
    let client = clients.get(subscriptionId);
    if (!client) {
      client = createClient(config, overrides, subscriptionId);
      clients.set(subscriptionId, client);
      client.catch(() => clients.delete(subscriptionId));
    }
    return client;
  };
}

async function createClient(config: Config, overrides: ArmClientOverrides, subscriptionId: string): Promise<ContainerServiceClient> {
  const { ContainerServiceClient } = await import("@azure/arm-containerservice");
  const credential = await azureCredential(config, overrides);
  const options: ContainerServiceClientOptionalParams = { endpoint: overrides.endpoint ?? config.azure.armEndpoint, credentials: { scopes: [config.azure.armScope] } };
  if (overrides.ca) options.tlsOptions = { ca: overrides.ca };
  if (overrides.retryOptions) options.retryOptions = overrides.retryOptions;
  return new ContainerServiceClient(credential, subscriptionId, options);
}

let defaultCredential: Promise<TokenCredential> | undefined;

/** The overriding credential of a test, else DefaultAzureCredential: the app's managed identity in Azure (the user-assigned one when AZURE_CLIENT_ID is set). */
export function azureCredential(config: Config, overrides: ArmClientOverrides = {}): Promise<TokenCredential> {
  const credential = overrides.credential ?? localArm.credential;
  if (credential) return Promise.resolve(credential);
  defaultCredential ??= import("@azure/identity").then(({ DefaultAzureCredential }) => new DefaultAzureCredential(credentialOptions(config)));
  return defaultCredential;
}

/** The app identity's options: which managed identity, and the cloud's Entra authority. */
export function credentialOptions(config: Config): { managedIdentityClientId?: string; authorityHost: string } {
  return { managedIdentityClientId: config.storage.managedIdentityClientId, authorityHost: config.azure.authorityHost };
}
