import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { selfSignedCertificate } from "../tls/selfSigned";
import { armActionOf, authorizationFailed, infraGrants, isGranted, type RoleGrant } from "./roles";

/**
 * A local stand-in for Azure Resource Manager's Microsoft.ContainerService endpoints, serving bodies
 * shaped exactly like ARM's for the installed SDK's api-version, over https with a self-signed
 * certificate made at start (openssl). Clients trust it through `tlsOptions: { ca }` in their options
 * (NODE_EXTRA_CA_CERTS is read only at process start). It requires a bearer token (any) and, like ARM,
 * authorizes every request's action against role grants: by default what `infra/` grants in apply
 * mode (./roles.ts reads it from the Bicep); a request whose action no grant holds gets 403
 * `AuthorizationFailed`. Bodies have the shapes of the service's own examples (../shared/aks-arm-examples).
 *
 * Long-running operations answer with `Azure-AsyncOperation` and move from InProgress to a terminal
 * status after `operationPolls` polls. Upgrades AKS would refuse (skipping a minor, a pool ahead of
 * the control plane, a version not offered) get 409 `OperationNotAllowed`, as do changes while an
 * operation runs. Faults can be injected per request pattern.
 */

/** The api-version @azure/arm-containerservice 25.5.0 sends. */
export const ARM_API_VERSION = "2026-06-01";

export interface SimPool {
  name: string;
  mode?: "System" | "User";
  osType?: string;
  count?: number;
  orchestratorVersion: string;
  currentOrchestratorVersion: string;
  nodeImageVersion: string;
  latestNodeImageVersion: string;
  provisioningState?: string;
  upgradeSettings?: Record<string, unknown>;
  eTag?: string;
}

export interface SimCluster {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  kubernetesVersion: string;
  currentKubernetesVersion: string;
  provisioningState?: string;
  powerState?: "Running" | "Stopped";
  upgradeChannel?: string;
  nodeOSUpgradeChannel?: string;
  supportPlan?: string;
  eTag?: string;
  pools: SimPool[];
  /** Raw wire `properties` per maintenance configuration name. */
  maintenance?: Record<string, Record<string, unknown>>;
  /** How the cluster upgrade profile carries `agentPoolProfiles`: a list (default), `null`, or omitted. */
  upgradeProfilePools?: "list" | "null" | "omit";
  /** The kubeconfig `listClusterUserCredential` hands out (e.g. a simulated API server's). */
  userKubeconfig?: string;
}

export interface SimVersion {
  version: string;
  isPreview?: boolean;
  isDefault?: boolean;
  supportPlan?: string[];
  patches: string[];
}

export interface SimState {
  clusters: SimCluster[];
  /** Versions AKS offers per location. */
  versions: Record<string, SimVersion[]>;
}

export interface SimFault {
  method?: string;
  path: RegExp;
  status: number;
  code: string;
  message?: string;
  headers?: Record<string, string>;
  /** How many requests it answers; unlimited when absent. */
  times?: number;
}

export interface SimRequest {
  method: string;
  path: string;
  apiVersion: string | null;
  headers: Record<string, string | string[] | undefined>;
  body?: unknown;
  /** The RBAC action ARM authorizes this request as (see ./roles.ts), when the path is a resource path. */
  action?: string;
  /** The status the simulator answered. */
  status?: number;
}

interface SimOperation {
  id: string;
  location: string;
  pollsLeft: number;
  result: "Succeeded" | "Failed";
  error?: { code: string; message: string };
  complete: (result: "Succeeded" | "Failed") => void;
  status: "InProgress" | "Succeeded" | "Failed";
  /** What the operation's Location answers once it ended (200 and this body; 204 when absent). */
  resultBody?: () => unknown;
}

export interface ArmSim {
  readonly endpoint: string;
  /** The self-signed certificate (PEM) to trust. */
  readonly ca: string;
  readonly state: SimState;
  readonly requests: SimRequest[];
  readonly faults: SimFault[];
  /** InProgress polls before an operation ends. */
  operationPolls: number;
  /** The next long-running operation ends Failed with this error. */
  failNextOperation?: { code: string; message: string };
  /** Role grants every request is authorized against; replace them to simulate another identity. */
  grants: RoleGrant[];
  /** The distinct actions the requests so far needed, for tests that compare the code's calls with the roles. */
  actionsUsed(): string[];
  cluster(name: string): SimCluster;
  /** Lets every running operation end at its next poll. */
  finishOperations(): void;
  stop(): Promise<void>;
}

const newETag = () => `"${randomUUID()}"`;

export interface ArmSimOptions {
  /** Default: what infra grants the app's identity in apply mode on every simulated cluster. */
  grants?: RoleGrant[];
}

/** The object id the simulated identity has in 403 messages. */
export const SIM_PRINCIPAL_ID = "11111111-2222-3333-4444-555555555555";

const clusterIdOf = (c: Pick<SimCluster, "subscriptionId" | "resourceGroup" | "name">) =>
  `/subscriptions/${c.subscriptionId}/resourceGroups/${c.resourceGroup}/providers/Microsoft.ContainerService/managedClusters/${c.name}`;

export async function startArmSim(state: SimState, options: ArmSimOptions = {}): Promise<ArmSim> {
  const { key, cert } = selfSignedCertificate();
  const operations = new Map<string, SimOperation>();
  const requests: SimRequest[] = [];
  const faults: SimFault[] = [];
  for (const c of state.clusters) {
    c.eTag ??= newETag();
    for (const p of c.pools) p.eTag ??= newETag();
  }

  const server = createServer({ key, cert }, (req, res) => {
    let text = "";
    req.on("data", (chunk: Buffer) => (text += chunk.toString()));
    req.on("end", () => {
      try {
        handle(req, res, text);
      } catch (error) {
        send(res, 500, { error: { code: "InternalServerError", message: (error as Error).message } });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const endpoint = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const sim: ArmSim = {
    endpoint,
    ca: cert,
    state,
    requests,
    faults,
    operationPolls: 1,
    grants: options.grants ?? infraGrants(state.clusters.map(clusterIdOf), "apply"),
    actionsUsed: () => [...new Set(requests.map((r) => r.action).filter((a): a is string => a !== undefined))].sort(),
    cluster: (name) => {
      const c = state.clusters.find((x) => x.name === name);
      if (!c) throw new Error(`no simulated cluster ${name}`);
      return c;
    },
    finishOperations: () => {
      for (const op of operations.values()) op.pollsLeft = 0;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  function send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}) {
    const logged = (res as ServerResponse & { simRequest?: SimRequest }).simRequest;
    if (logged) logged.status = status;
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", "x-ms-request-id": randomUUID(), ...headers });
    res.end(body === undefined ? undefined : JSON.stringify(body));
  }
  const notFound = (res: ServerResponse, what: string) =>
    send(res, 404, { error: { code: "ResourceNotFound", message: `The Resource '${what}' was not found.` } });

  function clusterWire(c: SimCluster) {
    return {
      id: clusterId(c),
      location: c.location,
      name: c.name,
      type: "Microsoft.ContainerService/ManagedClusters",
      eTag: c.eTag,
      sku: { name: "Base", tier: c.supportPlan === "AKSLongTermSupport" ? "Premium" : "Standard" },
      properties: {
        provisioningState: c.provisioningState ?? "Succeeded",
        powerState: { code: c.powerState ?? "Running" },
        kubernetesVersion: c.kubernetesVersion,
        currentKubernetesVersion: c.currentKubernetesVersion,
        dnsPrefix: c.name,
        fqdn: `${c.name}-dns.hcp.${c.location}.azmk8s.io`,
        agentPoolProfiles: c.pools.map((p) => ({ name: p.name, ...poolProperties(p) })),
        autoUpgradeProfile: { upgradeChannel: c.upgradeChannel ?? "none", nodeOSUpgradeChannel: c.nodeOSUpgradeChannel ?? "Unmanaged" },
        supportPlan: c.supportPlan ?? "KubernetesOfficial",
        nodeResourceGroup: `MC_${c.resourceGroup}_${c.name}_${c.location}`,
        enableRBAC: true,
      },
    };
  }
  function poolProperties(p: SimPool) {
    return {
      eTag: p.eTag,
      count: p.count ?? 3,
      vmSize: "Standard_D4s_v5",
      osDiskSizeGB: 128,
      type: "VirtualMachineScaleSets",
      mode: p.mode ?? "User",
      osType: p.osType ?? "Linux",
      osSKU: "Ubuntu",
      orchestratorVersion: p.orchestratorVersion,
      currentOrchestratorVersion: p.currentOrchestratorVersion,
      nodeImageVersion: p.nodeImageVersion,
      upgradeSettings: p.upgradeSettings ?? { maxSurge: "10%" },
      provisioningState: p.provisioningState ?? "Succeeded",
      powerState: { code: "Running" },
    };
  }
  const clusterId = clusterIdOf;
  const poolWire = (c: SimCluster, p: SimPool) => ({
    id: `${clusterId(c)}/agentPools/${p.name}`,
    name: p.name,
    type: "Microsoft.ContainerService/managedClusters/agentPools",
    properties: poolProperties(p),
  });
  // AKS's version rules, independent of the planner's code: one minor at a time, except from an
  // unsupported minor, which may go straight to the oldest supported one; pools never above the control plane.
  const parse = (v: string) => v.split(".").map(Number) as [number, number, number];
  const cmp = (a: string, b: string) => {
    const [x, y] = [parse(a), parse(b)];
    return x[0] - y[0] || x[1] - y[1] || (x[2] ?? 0) - (y[2] ?? 0);
  };
  const minorNumber = (v: string) => parse(v)[1];
  const offered = (c: SimCluster) =>
    (state.versions[c.location] ?? []).flatMap((v) => v.patches.map((p) => ({ p, preview: v.isPreview === true, minor: minorNumber(v.version) }))).sort((a, b) => cmp(a.p, b.p));
  const upgradesFrom = (c: SimCluster, version: string, ceiling?: string) => {
    const all = offered(c);
    const from = minorNumber(version);
    const supported = all.some((o) => o.minor === from);
    const nextMinor = supported ? from + 1 : Math.min(...all.filter((o) => o.minor > from && !o.preview).map((o) => o.minor));
    return all
      .filter((o) => (o.minor === from && cmp(o.p, version) > 0) || o.minor === nextMinor)
      .filter((o) => ceiling === undefined || cmp(o.p, ceiling) <= 0)
      .map(({ p, preview }) => (preview ? { kubernetesVersion: p, isPreview: true } : { kubernetesVersion: p }));
  };
  const poolUpgrades = (c: SimCluster, p: SimPool) => upgradesFrom(c, p.currentOrchestratorVersion, c.currentKubernetesVersion);
  const maxSkew = (controlPlane: string) => (minorNumber(controlPlane) >= 28 ? 3 : 2);
  const notAllowed = (res: ServerResponse, message: string) => send(res, 409, { error: { code: "OperationNotAllowed", message } });
  /** Versions may be given as a minor alias (`1.30`): the latest patch of it. */
  const resolveVersion = (c: SimCluster, v: string) =>
    v.split(".").length === 2 ? (offered(c).filter((o) => `${parse(o.p)[0]}.${o.minor}` === v).at(-1)?.p ?? v) : v;

  function startOperation(res: ServerResponse, c: SimCluster, status: number, body: unknown, complete: (result: "Succeeded" | "Failed") => void, resultBody?: () => unknown) {
    const id = randomUUID();
    const fail = sim.failNextOperation;
    sim.failNextOperation = undefined;
    operations.set(id, { id, location: c.location, pollsLeft: sim.operationPolls, result: fail ? "Failed" : "Succeeded", error: fail, complete, status: "InProgress", resultBody });
    const opUrl = `${endpoint}/subscriptions/${c.subscriptionId}/providers/Microsoft.ContainerService/locations/${c.location}/operations/${id}?api-version=${ARM_API_VERSION}`;
    const headers: Record<string, string> = { "azure-asyncoperation": opUrl };
    if (resultBody) headers.location = `${endpoint}/subscriptions/${c.subscriptionId}/providers/Microsoft.ContainerService/locations/${c.location}/operationresults/${id}?api-version=${ARM_API_VERSION}`;
    send(res, status, body, headers);
  }
  const busy = (res: ServerResponse, c: SimCluster) =>
    send(res, 409, {
      error: {
        code: "OperationNotAllowed",
        message: `Operation is not allowed because there's an in progress upgrade operation on managed cluster ${c.name}. Please wait for it to finish before starting a new operation.`,
      },
    });
  const clusterBusy = (c: SimCluster) => (c.provisioningState ?? "Succeeded") !== "Succeeded" || c.pools.some((p) => (p.provisioningState ?? "Succeeded") !== "Succeeded");

  function handle(req: IncomingMessage, res: ServerResponse, text: string) {
    const url = new URL(req.url ?? "/", endpoint);
    const method = req.method ?? "GET";
    const path = url.pathname;
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      return send(res, 400, { error: { code: "InvalidRequestContent", message: "The request content was invalid and could not be deserialized." } });
    }
    const armAction = armActionOf(method, path);
    const logged: SimRequest = { method, path, apiVersion: url.searchParams.get("api-version"), headers: { ...req.headers }, body, action: armAction?.action };
    requests.push(logged);
    (res as ServerResponse & { simRequest?: SimRequest }).simRequest = logged;

    if (!/^Bearer .+/.test(req.headers.authorization ?? "")) {
      return send(res, 401, { error: { code: "AuthenticationFailed", message: "Authentication failed. The 'Authorization' header is missing." } }, { "www-authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common"' });
    }
    if (armAction && !isGranted(sim.grants, armAction)) return send(res, 403, authorizationFailed(SIM_PRINCIPAL_ID, armAction));
    const fault = faults.find((f) => (!f.method || f.method === method) && f.path.test(path) && (f.times === undefined || f.times > 0));
    if (fault) {
      if (fault.times !== undefined) fault.times--;
      return send(res, fault.status, { error: { code: fault.code, message: fault.message ?? `Simulated ${fault.status} ${fault.code}` } }, fault.headers);
    }
    if (url.searchParams.get("api-version") !== ARM_API_VERSION) {
      return send(res, 400, { error: { code: "InvalidApiVersionParameter", message: `The api-version '${url.searchParams.get("api-version")}' is invalid. The supported versions are '${ARM_API_VERSION}'.` } });
    }

    let m: RegExpExecArray | null;
    if ((m = /^\/subscriptions\/[^/]+\/providers\/Microsoft\.ContainerService\/locations\/([^/]+)\/kubernetesVersions$/i.exec(path)) && method === "GET") {
      const versions = state.versions[m[1]!] ?? [];
      return send(res, 200, {
        values: versions.map((v) => ({
          version: v.version,
          capabilities: { supportPlan: v.supportPlan ?? ["KubernetesOfficial"] },
          ...(v.isDefault ? { isDefault: true } : {}),
          isPreview: v.isPreview === true,
          patchVersions: Object.fromEntries(
            v.patches.map((p) => [p, { upgrades: offered({ location: m![1]! } as SimCluster).filter((o) => (o.minor === minorNumber(p) && cmp(o.p, p) > 0) || o.minor === minorNumber(p) + 1).map((o) => o.p) }]),
          ),
        })),
      });
    }
    if ((m = /^\/subscriptions\/[^/]+\/providers\/Microsoft\.ContainerService\/locations\/[^/]+\/(operations|operationresults)\/([^/]+)$/i.exec(path)) && method === "GET") {
      const op = operations.get(m[2]!);
      if (!op) return notFound(res, m[2]!);
      if (op.status === "InProgress") {
        if (op.pollsLeft > 0) op.pollsLeft--;
        else {
          op.status = op.result;
          op.complete(op.result);
        }
      }
      if (m[1] === "operationresults") {
        if (op.status === "InProgress") return send(res, 202, undefined, { location: `${endpoint}${path}?api-version=${ARM_API_VERSION}` });
        return op.resultBody ? send(res, 200, op.resultBody()) : send(res, 204);
      }
      return send(res, 200, {
        id: `${path}`,
        name: op.id,
        status: op.status,
        startTime: new Date().toISOString(),
        ...(op.status !== "InProgress" ? { endTime: new Date().toISOString() } : {}),
        ...(op.status === "Failed" ? { error: op.error } : {}),
      });
    }
    m = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.ContainerService\/managedClusters\/([^/]+)(\/.*)?$/i.exec(path);
    if (!m) return send(res, 404, { error: { code: "NotFound", message: `No route for ${method} ${path}` } });
    const c = state.clusters.find((x) => x.subscriptionId === m![1] && x.resourceGroup.toLowerCase() === m![2]!.toLowerCase() && x.name === m![3]);
    if (!c) return notFound(res, `Microsoft.ContainerService/managedClusters/${m[3]}`);
    const rest = m[4] ?? "";

    if (rest === "" && method === "GET") return send(res, 200, clusterWire(c));
    if (rest === "" && method === "PUT") {
      const ifMatch = req.headers["if-match"];
      if (ifMatch !== undefined && ifMatch !== c.eTag) {
        return send(res, 412, { error: { code: "PreconditionFailed", message: `Operation is not allowed since the request's if-match '${ifMatch}' does not match the cluster's eTag '${c.eTag}'.` } });
      }
      if (clusterBusy(c)) return busy(res, c);
      const props = (body as { properties?: { kubernetesVersion?: string; agentPoolProfiles?: Array<{ name: string; orchestratorVersion?: string }> } }).properties ?? {};
      const target = props.kubernetesVersion ?? c.kubernetesVersion;
      const poolTargets = new Map<string, string>();
      for (const p of props.agentPoolProfiles ?? []) {
        const pool = c.pools.find((x) => x.name === p.name);
        if (pool && p.orchestratorVersion && p.orchestratorVersion !== pool.orchestratorVersion) poolTargets.set(pool.name, p.orchestratorVersion);
      }
      const resolved = resolveVersion(c, target);
      if (cmp(resolved, c.currentKubernetesVersion) !== 0 && !upgradesFrom(c, c.currentKubernetesVersion).some((u) => u.kubernetesVersion === resolved)) {
        // AKS's own words (https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/error-codes/aks-upgrade-blocked).
        const available = upgradesFrom(c, c.currentKubernetesVersion).map((u) => u.kubernetesVersion).reverse().join(" ");
        return notAllowed(res, `Upgrading Kubernetes version ${c.currentKubernetesVersion} to ${resolved} is not allowed. Available upgrades: [${available}]. For more information, see AKS supported Kubernetes versions for version details.`);
      }
      const behind = c.pools.find((p) => minorNumber(resolved) - minorNumber(poolTargets.get(p.name) ?? p.currentOrchestratorVersion) > maxSkew(resolved));
      if (behind) {
        return notAllowed(res, `Upgrading the control plane to ${resolved} is not allowed: node pool ${behind.name} (${behind.currentOrchestratorVersion}) would be more than ${maxSkew(resolved)} minor versions behind it.`);
      }
      c.kubernetesVersion = target;
      c.provisioningState = "Upgrading";
      c.eTag = newETag();
      return startOperation(res, c, 200, clusterWire(c), (result) => {
        c.provisioningState = result;
        if (c.provisioningState === "Succeeded") {
          c.currentKubernetesVersion = resolved;
          for (const [name, v] of poolTargets) {
            const pool = c.pools.find((x) => x.name === name)!;
            pool.orchestratorVersion = pool.currentOrchestratorVersion = v;
          }
        }
        c.eTag = newETag();
      });
    }
    if (rest === "/upgradeProfiles/default" && method === "GET") {
      const properties: Record<string, unknown> = {
        controlPlaneProfile: { name: "master", kubernetesVersion: c.currentKubernetesVersion, osType: "Linux", upgrades: upgradesFrom(c, c.currentKubernetesVersion) },
      };
      if ((c.upgradeProfilePools ?? "list") === "list") {
        properties.agentPoolProfiles = c.pools.map((p) => ({ name: p.name, kubernetesVersion: p.currentOrchestratorVersion, osType: "Linux", upgrades: poolUpgrades(c, p) }));
      } else if (c.upgradeProfilePools === "null") properties.agentPoolProfiles = null;
      return send(res, 200, { id: `${clusterId(c)}/upgradeprofiles/default`, name: "default", type: "Microsoft.ContainerService/managedClusters/upgradeprofiles", properties });
    }
    if (rest === "/agentPools" && method === "GET") return send(res, 200, { value: c.pools.map((p) => poolWire(c, p)) });
    if (rest === "/availableAgentPoolVersions" && method === "GET") {
      const versions = state.versions[c.location] ?? [];
      const defaultPatch = versions.find((v) => v.isDefault)?.patches.at(-1);
      return send(res, 200, {
        id: `${clusterId(c)}/availableagentpoolversions`,
        name: "default",
        type: "Microsoft.ContainerService/managedClusters/availableAgentpoolVersions",
        properties: {
          agentPoolVersions: offered(c).map((o) => ({ kubernetesVersion: o.p, ...(o.p === defaultPatch ? { default: true } : {}), ...(o.preview ? { isPreview: true } : {}) })),
        },
      });
    }
    if (rest === "/listClusterUserCredential" && method === "POST") {
      if (!c.userKubeconfig) return send(res, 404, { error: { code: "NotFound", message: `Cluster ${c.name} has no user credentials in this simulation` } });
      return send(res, 200, { kubeconfigs: [{ name: "clusterUser", value: Buffer.from(c.userKubeconfig).toString("base64") }] });
    }
    if (rest === "/maintenanceConfigurations" && method === "GET") {
      return send(res, 200, {
        value: Object.entries(c.maintenance ?? {}).map(([name, properties]) => ({
          id: `${clusterId(c)}/maintenanceConfigurations/${name}`,
          name,
          type: "Microsoft.ContainerService/managedClusters/maintenanceConfigurations",
          properties,
        })),
      });
    }
    const pm = /^\/agentPools\/([^/]+)(\/.*)?$/i.exec(rest);
    const pool = pm ? c.pools.find((p) => p.name === pm[1]) : undefined;
    if (pm && !pool) return notFound(res, `Microsoft.ContainerService/managedClusters/${c.name}/agentPools/${pm[1]}`);
    if (pool && !pm![2] && method === "GET") return send(res, 200, poolWire(c, pool));
    if (pool && !pm![2] && method === "PUT") {
      const ifMatch = req.headers["if-match"];
      if (ifMatch !== undefined && ifMatch !== pool.eTag) {
        return send(res, 412, { error: { code: "PreconditionFailed", message: `The request's if-match '${ifMatch}' does not match the agent pool's eTag.` } });
      }
      if (clusterBusy(c)) return busy(res, c);
      const target = (body as { properties?: { orchestratorVersion?: string } }).properties?.orchestratorVersion ?? pool.orchestratorVersion;
      const resolved = resolveVersion(c, target);
      if (cmp(resolved, pool.currentOrchestratorVersion) !== 0 && !poolUpgrades(c, pool).some((u) => u.kubernetesVersion === resolved)) {
        return notAllowed(
          res,
          cmp(resolved, c.currentKubernetesVersion) > 0
            ? `Node pool ${pool.name} cannot be upgraded to ${resolved}: it would be newer than the control plane (${c.currentKubernetesVersion}).`
            : `Upgrading node pool ${pool.name} from ${pool.currentOrchestratorVersion} to ${resolved} is not allowed: not one of the versions its upgrade profile offers.`,
        );
      }
      pool.orchestratorVersion = target;
      pool.provisioningState = "Upgrading";
      pool.eTag = newETag();
      return startOperation(res, c, 200, poolWire(c, pool), (result) => {
        pool.provisioningState = result;
        if (pool.provisioningState === "Succeeded") {
          pool.currentOrchestratorVersion = resolved;
          pool.nodeImageVersion = pool.latestNodeImageVersion;
        }
        pool.eTag = newETag();
      });
    }
    if (pool && pm![2] === "/upgradeProfiles/default" && method === "GET") {
      return send(res, 200, {
        id: `${clusterId(c)}/agentPools/${pool.name}/upgradeProfiles/default`,
        name: "default",
        type: "Microsoft.ContainerService/managedClusters/agentPools/upgradeProfiles",
        properties: { kubernetesVersion: pool.currentOrchestratorVersion, osType: "Linux", upgrades: poolUpgrades(c, pool), latestNodeImageVersion: pool.latestNodeImageVersion },
      });
    }
    if (pool && pm![2] === "/upgradeNodeImageVersion" && method === "POST") {
      if (clusterBusy(c)) return busy(res, c);
      pool.provisioningState = "UpgradingNodeImageVersion";
      return startOperation(res, c, 202, poolWire(c, pool), (result) => {
        pool.provisioningState = result;
        if (pool.provisioningState === "Succeeded") pool.nodeImageVersion = pool.latestNodeImageVersion;
      }, () => poolWire(c, pool));
    }
    return send(res, 404, { error: { code: "NotFound", message: `No route for ${method} ${path}` } });
  }

  return sim;
}
