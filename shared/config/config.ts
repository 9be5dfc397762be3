import { z } from "zod";
import { clusterName } from "../protocol/names";
import { unsafeOnAzure } from "./hosting";
import { parseHostPatterns, type OutboundRules } from "../outbound/outbound";

/**
 * Every app setting Rollcall reads, in one place. Read once per process (`getConfig()`), validated
 * with a schema, and a bad value fails fast with the setting's name in the message.
 */

const bool = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");
const positiveInt = z.coerce.number().int().positive();
const nonNegativeInt = z.coerce.number().int().nonnegative();
/** Six-field NCRONTAB (`{second} {minute} {hour} {day} {month} {day-of-week}`), as Functions timers take. */
const ncrontab = z.string().regex(/^\S+( \S+){5}$/, { message: "must be a six-field NCRONTAB expression such as 0 0 3 * * *" });
export const DEFAULT_UPGRADE_SCHEDULE = "0 0 3 * * *";
export const DEFAULT_UPGRADE_APPLY_SCHEDULE = "0 */15 * * * *";

/** The shipped agent manifests (node-agent/manifests): namespace `rollcall`, ServiceAccount and DaemonSet `rollcall-agent`. */
export const DEFAULT_AGENT = { namespace: "rollcall", serviceAccount: "rollcall-agent", daemonSet: "rollcall-agent" } as const;
const dnsLabel = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, { message: "must be a DNS-1123 label (a namespace name)" });
const dnsSubdomain = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, { message: "must be a DNS-1123 subdomain (a Kubernetes object name)" });

/** How Rollcall reaches one cluster's Kubernetes API. Exactly one source per cluster. */
export const ClusterConnection = z
  .object({
    name: clusterName,
    /** Path to a kubeconfig file. */
    kubeconfigFile: z.string().min(1).optional(),
    /** A kubeconfig document, YAML or JSON, inline or base64. */
    kubeconfig: z.string().min(1).optional(),
    /** ARM id of an AKS cluster: `/subscriptions/…/resourceGroups/…/providers/Microsoft.ContainerService/managedClusters/…`. */
    aksResourceId: z
      .string()
      .regex(/^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.ContainerService\/managedClusters\/[^/]+$/i, {
        message: "must be an AKS cluster resource id (/subscriptions/…/resourceGroups/…/providers/Microsoft.ContainerService/managedClusters/…)",
      })
      .optional(),
    /**
     * Who may check in for this cluster's nodes: pods of this DaemonSet, running as this ServiceAccount,
     * in this namespace; unset: the shipped manifests' names (DEFAULT_AGENT). See docs/security.md.
     */
    agent: z
      .object({
        namespace: dnsLabel.default(DEFAULT_AGENT.namespace),
        serviceAccount: dnsSubdomain.default(DEFAULT_AGENT.serviceAccount),
        daemonSet: dnsSubdomain.default(DEFAULT_AGENT.daemonSet),
      })
      .strict()
      .optional(),
    /** With `aksResourceId`: `token` uses an Entra ID token for the AKS server scope; `credentials` fetches the user kubeconfig. */
    aksAuth: z.enum(["token", "credentials"]).default("token"),
    /** Upgrade planning for an AKS cluster (needs `aksResourceId`); see docs/upgrade-planner.md. */
    upgrade: z
      .object({
        /** Never plan beyond this version: `1.31` (latest patch of that minor) or `1.31.2`. */
        target: z
          .string()
          .regex(/^\d+\.\d+(\.\d+)?$/, { message: "must be a Kubernetes version such as 1.31 or 1.31.2" })
          .optional(),
        /** patch: latest patch of the current minor; stable: latest patch of minor N-1; rapid: latest patch of the latest minor. */
        channel: z.enum(["patch", "stable", "rapid"]).default("stable"),
        allowPreview: z.boolean().default(false),
        /** Opt-in: start the plan's steps through ARM in their maintenance windows; `approve`: each step waits for an operator's approval first. */
        apply: z.union([z.boolean(), z.literal("approve")]).default(false),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((c) => [c.kubeconfigFile, c.kubeconfig, c.aksResourceId].filter(Boolean).length === 1, {
    message: "needs exactly one of kubeconfigFile, kubeconfig or aksResourceId",
  });
export type ClusterConnection = z.infer<typeof ClusterConnection>;

const clusters = z
  .string()
  .transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: "custom", message: "must be a JSON array of clusters" });
      return z.NEVER;
    }
  })
  .pipe(z.array(ClusterConnection))
  .refine((list) => new Set(list.map((c) => c.name)).size === list.length, { message: "cluster names must be unique" });

const hostPatterns = z.string().transform((text, ctx) => {
  try {
    return parseHostPatterns(text);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: `${(error as Error).message}; expected host names or *.suffix, comma-separated` });
    return z.NEVER;
  }
});

/** Every app setting Rollcall reads; infra/ writes exactly these (test/unit/infraSettings.test.ts). */
export const Settings = z.object({
  /** A storage connection string; falls back to the Functions host's own `AzureWebJobsStorage`. */
  ROLLCALL_STORAGE_CONNECTION: z.string().min(1).optional(),
  /** A table endpoint (`https://<account>.table.core.windows.net`) reached with the app's managed identity instead. */
  ROLLCALL_STORAGE_TABLE_ENDPOINT: z.string().url().optional(),
  AzureWebJobsStorage: z.string().optional(),
  ROLLCALL_TABLE: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9]{2,62}$/, { message: "must be a table name: 3-63 letters and digits, starting with a letter" })
    .default("rollcall"),
  ROLLCALL_CLUSTERS: clusters.default([]),
  /** Client id of a user-assigned managed identity; unset means the system identity or developer credentials. */
  AZURE_CLIENT_ID: z.string().optional(),

  ROLLCALL_CONCURRENCY: positiveInt.max(1000).default(1),
  ROLLCALL_LOCK_TTL_MINUTES: positiveInt.default(60),
  ROLLCALL_DRAIN_TIMEOUT_MINUTES: positiveInt.default(15),
  ROLLCALL_DRAIN_GRACE_PERIOD_SECONDS: nonNegativeInt.optional(),
  ROLLCALL_DRAIN_DELETE_EMPTYDIR_DATA: bool.default(false),
  ROLLCALL_DRAIN_FORCE_UNMANAGED: bool.default(false),
  /** Pods terminating for longer than this count as gone (kubectl's --skip-wait-for-delete-timeout); 0 waits forever. */
  ROLLCALL_DRAIN_SKIP_WAIT_FOR_DELETE_SECONDS: nonNegativeInt.default(0),
  ROLLCALL_DRAIN_FAILURE_BACKOFF_MINUTES: positiveInt.default(30),
  /** Also how long an operator request on an idle node waits for the agent (issue 15); stays under the check-in review cache (REVIEW_CACHE_MS). */
  ROLLCALL_CHECKIN_IDLE_SECONDS: positiveInt.default(60),
  /** While a node waits for or holds a slot: a turn advances at the agent's check-ins, so every 2 s. */
  ROLLCALL_CHECKIN_BUSY_SECONDS: positiveInt.default(2),
  /** Longest a single invocation spends advancing one node before answering; keeps HTTP calls short. */
  ROLLCALL_STEP_BUDGET_MS: positiveInt.default(5000),
  /**
   * Longest a step waits within one invocation for what it waits on (evicted pods, a refusing budget,
   * the node's Ready) so that a turn advances on the event, not at the next check-in; always capped to
   * leave 40% of the step budget. 0: never wait (each waiting check-in is billed execution time).
   */
  ROLLCALL_STEP_WAIT_MS: nonNegativeInt.default(3000),
  /**
   * Longest a queued node's check-in is held open for its turn when the agent offers to wait
   * (`Prefer: wait`), so the turn starts the moment a slot frees. 0: never held. At most 200 s, inside
   * the 230 s an HTTP request to a function app may take before Azure's front end answers 502.
   */
  ROLLCALL_CHECKIN_HOLD_SECONDS: nonNegativeInt.max(200).default(20),
  /** NCRONTAB schedule of the upgrade planner timer; default daily at 03:00 UTC. */
  ROLLCALL_UPGRADE_SCHEDULE: ncrontab.default(DEFAULT_UPGRADE_SCHEDULE),
  /** NCRONTAB schedule of the upgrade apply timer (starts due steps, follows running ones). */
  ROLLCALL_UPGRADE_APPLY_SCHEDULE: ncrontab.default(DEFAULT_UPGRADE_APPLY_SCHEDULE),
  /** Least time between two re-plans of one cluster through POST …/upgrade-plan (each reads ARM); 0: no limit. */
  ROLLCALL_UPGRADE_REPLAN_SECONDS: nonNegativeInt.default(60),
  /** The Azure cloud: sets the ARM endpoint, the ARM token scope and the Entra authority together. */
  ROLLCALL_AZURE_CLOUD: z.enum(["AzureCloud", "AzureChinaCloud", "AzureUSGovernment"]).default("AzureCloud"),
  /** Another host for ARM (a local ARM simulator); the token scope stays the cloud's. Default: the cloud's ARM endpoint. */
  ROLLCALL_ARM_ENDPOINT: z.string().url().optional(),
  /** How check-ins prove their node: `tokenreview` (the agent's projected service-account token) or `off` (local simulation only). */
  ROLLCALL_AGENT_AUTH: z.enum(["tokenreview", "off"]).default("tokenreview"),
  /** The audience the agent's projected service-account token must carry. */
  ROLLCALL_AGENT_AUDIENCE: z
    .string()
    .min(1)
    .max(253)
    .regex(/^[\x21-\x7e]+$/, { message: "must be a token audience without spaces" })
    .default("rollcall"),
  /** Hosts the Prometheus blocker may call (https): names or `*.suffix`, comma-separated. See shared/outbound/outbound.ts. */
  ROLLCALL_PROMETHEUS_HOSTS: hostPatterns.default(["*.prometheus.monitor.azure.com"]),
  /** Hosts notification webhooks may be posted to (https): names or `*.suffix`, comma-separated; none by default. */
  ROLLCALL_WEBHOOK_HOSTS: hostPatterns.default([]),
  /** Local runs only: policies may call http(s)://127.0.0.1, [::1] and localhost. Refused on Azure. */
  ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK: bool.default(false),
  /**
   * Who operators are: `entra` trusts the caller App Service authentication (Easy Auth) puts in
   * `X-MS-CLIENT-PRINCIPAL` and enforces the app roles; `function-key` trusts no caller header and
   * records `function-key`. Unset: `entra` exactly when App Service says Easy Auth is on.
   */
  ROLLCALL_OPERATOR_AUTH: z.enum(["entra", "function-key"]).optional(),
  /**
   * Read-only, injected by App Service: whether its authentication is on ("True"/"False").
   * https://learn.microsoft.com/azure/app-service/reference-app-settings (Authentication & authorization)
   */
  WEBSITE_AUTH_ENABLED: z.string().optional(),
});

export type Config = {
  storage: { connectionString?: string; tableEndpoint?: string; table: string; managedIdentityClientId?: string };
  clusters: ClusterConnection[];
  defaults: {
    concurrency: number;
    lockTtlMs: number;
    drain: DrainSettings;
    drainFailureBackoffMs: number;
    checkinIdleSeconds: number;
    checkinBusySeconds: number;
  };
  stepBudgetMs: number;
  stepWaitMs: number;
  checkinHoldMs: number;
  upgrade: { schedule: string; applySchedule: string; replanIntervalMs: number };
  /** ROLLCALL_AZURE_CLOUD's endpoints (ROLLCALL_ARM_ENDPOINT may move ARM's host). */
  azure: { cloud: AzureCloudName; armEndpoint: string; armScope: string; authorityHost: string };
  /** Check-in authentication: the agent's service-account token reviewed by its cluster, for `audience`. */
  agentAuth: { mode: "tokenreview" | "off"; audience: string };
  /** Operator authentication; see shared/auth/operator.ts. */
  operatorAuth: { mode: "entra" | "function-key" };
  /** What requests a policy may make the app send (Prometheus, webhooks). */
  outbound: OutboundRules;
};

export interface DrainSettings {
  timeoutMs: number;
  gracePeriodSeconds?: number;
  deleteEmptyDirData: boolean;
  forceUnmanaged: boolean;
  skipWaitForDeleteMs: number;
}

/**
 * ARM endpoint (whose `/.default` is the token scope) and Entra authority per cloud, as Azure publishes
 * them (`az cloud show`; https://learn.microsoft.com/azure/china/resources-developer-guide,
 * https://learn.microsoft.com/azure/azure-government/compare-azure-government-global-azure).
 */
export const azureClouds = {
  AzureCloud: { arm: "https://management.azure.com", authority: "https://login.microsoftonline.com" },
  AzureChinaCloud: { arm: "https://management.chinacloudapi.cn", authority: "https://login.chinacloudapi.cn" },
  AzureUSGovernment: { arm: "https://management.usgovcloudapi.net", authority: "https://login.microsoftonline.us" },
} as const;
export type AzureCloudName = keyof typeof azureClouds;

export class ConfigError extends Error {
  override name = "ConfigError";
}

export function parseConfig(env: Record<string, string | undefined>): Config {
  // An empty app setting is an unset one: the template writes every setting, '' where the operator chose none.
  const result = Settings.safeParse(Object.fromEntries(Object.entries(env).filter(([, value]) => value !== "")));
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".") || "settings"}: ${i.message}`);
    throw new ConfigError(`Invalid app settings: ${problems.join("; ")}`);
  }
  const s = result.data;
  const connectionString = s.ROLLCALL_STORAGE_CONNECTION ?? (s.ROLLCALL_STORAGE_TABLE_ENDPOINT ? undefined : s.AzureWebJobsStorage);
  if (!connectionString && !s.ROLLCALL_STORAGE_TABLE_ENDPOINT) {
    throw new ConfigError("Invalid app settings: set ROLLCALL_STORAGE_CONNECTION, ROLLCALL_STORAGE_TABLE_ENDPOINT or AzureWebJobsStorage");
  }
  const unsafe = unsafeOnAzure(env);
  if (unsafe) throw new ConfigError(unsafe);
  const drainTimeoutMs = s.ROLLCALL_DRAIN_TIMEOUT_MINUTES * 60_000;
  const lockTtlMs = s.ROLLCALL_LOCK_TTL_MINUTES * 60_000;
  if (drainTimeoutMs >= lockTtlMs) {
    throw new ConfigError(
      "Invalid app settings: ROLLCALL_DRAIN_TIMEOUT_MINUTES must be shorter than ROLLCALL_LOCK_TTL_MINUTES, or a slow drain would look like a stuck node",
    );
  }
  const easyAuthOn = s.WEBSITE_AUTH_ENABLED?.toLowerCase() === "true";
  const operatorAuth = s.ROLLCALL_OPERATOR_AUTH ?? (easyAuthOn ? "entra" : "function-key");
  if (operatorAuth === "entra" && !easyAuthOn) {
    // Without Easy Auth in front nothing strips a client's own X-MS-CLIENT-PRINCIPAL: trusting it would let anyone name any role.
    throw new ConfigError(
      "Invalid app settings: ROLLCALL_OPERATOR_AUTH is entra but App Service authentication is off (WEBSITE_AUTH_ENABLED is not True); turn on authentication (authsettingsV2) or set ROLLCALL_OPERATOR_AUTH=function-key",
    );
  }
  return {
    storage: {
      connectionString,
      tableEndpoint: s.ROLLCALL_STORAGE_TABLE_ENDPOINT,
      table: s.ROLLCALL_TABLE,
      managedIdentityClientId: s.AZURE_CLIENT_ID,
    },
    clusters: s.ROLLCALL_CLUSTERS,
    defaults: {
      concurrency: s.ROLLCALL_CONCURRENCY,
      lockTtlMs,
      drain: {
        timeoutMs: drainTimeoutMs,
        gracePeriodSeconds: s.ROLLCALL_DRAIN_GRACE_PERIOD_SECONDS,
        deleteEmptyDirData: s.ROLLCALL_DRAIN_DELETE_EMPTYDIR_DATA,
        forceUnmanaged: s.ROLLCALL_DRAIN_FORCE_UNMANAGED,
        skipWaitForDeleteMs: s.ROLLCALL_DRAIN_SKIP_WAIT_FOR_DELETE_SECONDS * 1000,
      },
      drainFailureBackoffMs: s.ROLLCALL_DRAIN_FAILURE_BACKOFF_MINUTES * 60_000,
      checkinIdleSeconds: s.ROLLCALL_CHECKIN_IDLE_SECONDS,
      checkinBusySeconds: s.ROLLCALL_CHECKIN_BUSY_SECONDS,
    },
    stepBudgetMs: s.ROLLCALL_STEP_BUDGET_MS,
    stepWaitMs: s.ROLLCALL_STEP_WAIT_MS,
    checkinHoldMs: s.ROLLCALL_CHECKIN_HOLD_SECONDS * 1000,
    upgrade: { schedule: s.ROLLCALL_UPGRADE_SCHEDULE, applySchedule: s.ROLLCALL_UPGRADE_APPLY_SCHEDULE, replanIntervalMs: s.ROLLCALL_UPGRADE_REPLAN_SECONDS * 1000 },
    azure: {
      cloud: s.ROLLCALL_AZURE_CLOUD,
      armEndpoint: s.ROLLCALL_ARM_ENDPOINT ?? azureClouds[s.ROLLCALL_AZURE_CLOUD].arm,
      armScope: `${azureClouds[s.ROLLCALL_AZURE_CLOUD].arm}/.default`,
      authorityHost: azureClouds[s.ROLLCALL_AZURE_CLOUD].authority,
    },
    agentAuth: { mode: s.ROLLCALL_AGENT_AUTH, audience: s.ROLLCALL_AGENT_AUDIENCE },
    operatorAuth: { mode: operatorAuth },
    outbound: { prometheusHosts: s.ROLLCALL_PROMETHEUS_HOSTS, webhookHosts: s.ROLLCALL_WEBHOOK_HOSTS, allowHttpLoopback: s.ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK },
  };
}

let cached: Config | undefined;

/** The process's configuration, parsed on first use from `process.env`. */
export function getConfig(): Config {
  cached ??= parseConfig(process.env);
  return cached;
}

/** Tests and the local host change settings between runs; production never calls this. */
export function resetConfigForTests(): void {
  cached = undefined;
}
