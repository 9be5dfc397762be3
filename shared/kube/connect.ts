import type * as k8s from "@kubernetes/client-node";
import { armClientFactory, type ArmClientOverrides, azureCredential, parseAksResourceId } from "../azure/arm";
import type { ClusterConnection, Config } from "../config/config";
import type { ClusterApi } from "./clusterApi";
import { KubeClusterApi } from "./kubeClusterApi";

/**
 * Turns a configured cluster into a `ClusterApi`. client-node, @azure/identity and the ARM SDK are
 * imported here, lazily, so that an idle check-in never pays for loading them.
 */

/** The AKS AAD server application: the audience of Entra ID tokens that AKS API servers accept. */
const AKS_SERVER_SCOPE = "6dae42f8-4368-4678-94ff-3960e28e3630/.default";
/** Kubeconfigs built from Entra tokens are rebuilt before the token's typical one-hour life ends. */
const TOKEN_REFRESH_MS = 45 * 60_000;

interface CachedApi {
  api: Promise<ClusterApi>;
  expiresAt: number;
}

export type ClusterApiFactory = (cluster: string) => Promise<ClusterApi>;

/**
 * A factory that connects to the clusters named in the configuration, caching one client per cluster.
 * `azure` lets tests reach AKS clusters through the local ARM simulator with a fake credential.
 */
export function clusterApiFactory(config: Config, azure: ArmClientOverrides = {}): ClusterApiFactory {
  const cache = new Map<string, CachedApi>();
  return (name) => {
    const connection = config.clusters.find((c) => c.name === name);
    if (!connection) throw new Error(`Cluster ${name} is not configured in ROLLCALL_CLUSTERS`);
    const cached = cache.get(name);
    if (cached && cached.expiresAt > Date.now()) return cached.api;
    const entry: CachedApi = {
      api: connect(connection, config, azure),
      expiresAt: Date.now() + (connection.aksResourceId ? TOKEN_REFRESH_MS : Number.POSITIVE_INFINITY),
    };
    entry.api.catch(() => cache.delete(name));
    cache.set(name, entry);
    return entry.api;
  };
}

async function connect(connection: ClusterConnection, config: Config, azure: ArmClientOverrides): Promise<ClusterApi> {
  const lib = await import("@kubernetes/client-node");
  const kubeConfig = new lib.KubeConfig();
  if (connection.kubeconfigFile) kubeConfig.loadFromFile(connection.kubeconfigFile);
  else if (connection.kubeconfig) kubeConfig.loadFromString(decodeKubeconfig(connection.kubeconfig));
  else await loadFromAks(kubeConfig, connection, config, azure);
  return new KubeClusterApi(lib, kubeConfig, kubeRequestTimeoutMs(config.stepBudgetMs));
}

/**
 * Each Kubernetes request may take at most 80% of a step's budget (ROLLCALL_STEP_BUDGET_MS): a slow
 * or partitioned API server then fails the step, which runs again later, instead of holding the
 * check-in past its answer; a busy but healthy one still gets most of the budget. A write abandoned
 * this way may still land, which is why node writes carry a resourceVersion precondition.
 */
export function kubeRequestTimeoutMs(stepBudgetMs: number): number {
  return Math.max(300, Math.floor(stepBudgetMs * 0.8));
}

/** Accepts a kubeconfig as YAML/JSON text or base64 of it (app settings often carry base64). */
export function decodeKubeconfig(value: string): string {
  const trimmed = value.trim();
  if (/^[A-Za-z0-9+/=\s]+$/.test(trimmed) && !trimmed.includes(":")) return Buffer.from(trimmed, "base64").toString("utf8");
  return trimmed;
}

async function loadFromAks(kubeConfig: k8s.KubeConfig, connection: ClusterConnection, config: Config, azure: ArmClientOverrides): Promise<void> {
  const id = parseAksResourceId(connection.aksResourceId!);
  const arm = await armClientFactory(config, azure)(id.subscriptionId);
  const result = await arm.managedClusters.listClusterUserCredentials(id.resourceGroup, id.name);
  const value = result.kubeconfigs?.[0]?.value;
  if (!value) throw new Error(`AKS returned no user kubeconfig for ${connection.aksResourceId}`);
  kubeConfig.loadFromString(Buffer.from(value).toString("utf8"));
  if (connection.aksAuth === "token") {
    // The user kubeconfig of an Entra-enabled cluster wants kubelogin; use the app's own token instead.
    const token = await (await azureCredential(config, azure)).getToken(AKS_SERVER_SCOPE);
    if (!token) throw new Error(`No Entra ID token for the AKS server scope; check the identity of ${connection.aksResourceId}`);
    const current = kubeConfig.getCurrentCluster();
    if (!current) throw new Error(`The kubeconfig of ${connection.aksResourceId} names no cluster`);
    kubeConfig.loadFromOptions({
      clusters: [current],
      users: [{ name: "rollcall", token: token.token }],
      contexts: [{ name: "rollcall", cluster: current.name, user: "rollcall" }],
      currentContext: "rollcall",
    });
  }
}

