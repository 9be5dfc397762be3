import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

/**
 * Azure RBAC as ARM applies it, for the simulated ARM and for tests that check what the code calls
 * against what `infra/` grants. The grants are read from the Bicep itself, so a role that loses (or
 * never had) an action fails the tests that exercise it.
 *
 * An ARM request's action is its resource provider namespace, the resource types on its path, and
 * `read`/`write`/`delete` by HTTP method, or `<name>/action` for a POST to a resource's operation
 * (Azure resource provider operations: https://learn.microsoft.com/azure/role-based-access-control/resource-provider-operations).
 * A role assignment grants its role's actions at its scope and every scope below it
 * (https://learn.microsoft.com/azure/role-based-access-control/scope-overview).
 */

export interface ArmAction {
  /** `Microsoft.ContainerService/managedClusters/agentPools/upgradeNodeImageVersion/action` */
  action: string;
  /** The path the request addresses, the scope ARM authorizes it at. */
  scope: string;
}

export interface RoleGrant {
  /** Where the grant comes from, for messages: `infra/modules/aks-access.bicep (apply)`. */
  role: string;
  /** Assignment scope: `/subscriptions/…` or a resource id. */
  scope: string;
  /** Actions; a `*` matches any text, as in role definitions. */
  actions: string[];
}

/** The action and scope of one ARM request, or undefined for a path that is not an ARM resource path. */
export function armActionOf(method: string, path: string): ArmAction | undefined {
  const match = /^(\/subscriptions\/[^/]+(?:\/resourceGroups\/[^/]+)?)\/providers\/([^/]+)((?:\/[^/]+)*)$/i.exec(path.replace(/\/+$/, ""));
  if (!match) return undefined;
  const segments = match[3]!.split("/").filter(Boolean);
  const verb = method.toUpperCase();
  const types: string[] = [];
  let operation: string | undefined;
  // A POST's last segment names the operation when it follows a complete type/name pair.
  const body = verb === "POST" && segments.length % 2 === 1 ? segments.slice(0, -1) : segments;
  if (body !== segments) operation = segments.at(-1);
  for (let i = 0; i < body.length; i += 2) types.push(body[i]!);
  if (types.length === 0) return undefined;
  const suffix = operation ? `${operation}/action` : verb === "GET" || verb === "HEAD" ? "read" : verb === "DELETE" ? "delete" : "write";
  return { action: [match[2], ...types, suffix].join("/"), scope: path };
}

function actionPattern(action: string): RegExp {
  return new RegExp(`^${action.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\/]/g, "\\$&")).join(".*")}$`, "i");
}

/** Whether some grant allows `action` at `scope` (action names and scopes are case-insensitive in ARM). */
export function isGranted(grants: RoleGrant[], { action, scope }: ArmAction): boolean {
  const lowerScope = scope.toLowerCase();
  return grants.some(
    (g) => (lowerScope === g.scope.toLowerCase() || lowerScope.startsWith(`${g.scope.toLowerCase()}/`)) && g.actions.some((a) => actionPattern(a).test(action)),
  );
}

/** ARM's answer to a request whose action no grant allows. */
export function authorizationFailed(principalId: string, { action, scope }: ArmAction) {
  return {
    error: {
      code: "AuthorizationFailed",
      message: `The client '${principalId}' with object id '${principalId}' does not have authorization to perform action '${action}' over scope '${scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
    },
  };
}

const INFRA = resolve(__dirname, "../../infra/modules");

/** The quoted strings of a Bicep array variable (`var name = [ 'a' 'b' ]`). */
function bicepArray(text: string, name: string, file: string): string[] {
  const block = text.split(new RegExp(`var ${name} = \\[`))[1]?.split("]")[0];
  if (block === undefined) throw new Error(`${file} has no array variable ${name}`);
  return [...block.matchAll(/'([^']+)'/g)].map((m) => m[1]!);
}

/**
 * Built-in roles infra assigns, by id, with their actions as Azure publishes them
 * (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/containers).
 */
export const builtInRoles: Record<string, { name: string; actions: string[] }> = {
  "4abbcc35-e782-43d8-92c5-2d3f1bd2253f": {
    name: "Azure Kubernetes Service Cluster User Role",
    actions: ["Microsoft.ContainerService/managedClusters/listClusterUserCredential/action", "Microsoft.ContainerService/managedClusters/read"],
  },
};

export interface InfraRoles {
  /** aks-access.bicep's custom role actions in each upgrade mode. */
  cluster: { plan: string[]; apply: string[] };
  /** Built-in role actions aks-access.bicep assigns on the cluster. */
  clusterBuiltIn: string[];
  /** aks-versions-reader.bicep's actions, at subscription scope. */
  subscription: string[];
}

/** The actions infra/modules/aks-access.bicep and aks-versions-reader.bicep grant, parsed from the Bicep. */
export function infraRoles(): InfraRoles {
  const accessFile = join(INFRA, "aks-access.bicep");
  const access = readFileSync(accessFile, "utf8");
  const read = bicepArray(access, "readActions", accessFile);
  const apply = bicepArray(access, "applyActions", accessFile);
  if (!/upgradeMode == 'apply' \? concat\(readActions, applyActions\) : readActions/.test(access)) {
    throw new Error(`${accessFile}: the custom role no longer reads as "readActions, plus applyActions in apply mode"; update local/armSim/roles.ts`);
  }
  const clusterBuiltIn = Object.entries(builtInRoles)
    .filter(([id]) => access.includes(id))
    .flatMap(([, role]) => role.actions);
  const versionsFile = join(INFRA, "aks-versions-reader.bicep");
  return {
    cluster: { plan: read, apply: [...read, ...apply] },
    clusterBuiltIn,
    subscription: bicepArray(readFileSync(versionsFile, "utf8"), "actions", versionsFile),
  };
}

/** What infra grants the app's identity: the cluster roles on each cluster, the versions reader on each cluster's subscription. */
export function infraGrants(clusterIds: string[], upgradeMode: "plan" | "apply"): RoleGrant[] {
  const roles = infraRoles();
  const subscriptions = [...new Set(clusterIds.map((id) => /^\/subscriptions\/[^/]+/i.exec(id)![0]))];
  return [
    ...clusterIds.flatMap((scope) => [
      { role: `infra/modules/aks-access.bicep (${upgradeMode})`, scope, actions: roles.cluster[upgradeMode] },
      { role: "infra/modules/aks-access.bicep (built-in roles)", scope, actions: roles.clusterBuiltIn },
    ]),
    ...subscriptions.map((scope) => ({ role: "infra/modules/aks-versions-reader.bicep", scope, actions: roles.subscription })),
  ];
}
