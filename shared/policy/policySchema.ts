import { IANAZone } from "luxon";
import { z } from "zod";
import { MAX_SLOTS } from "../lock/tableLock";
import { parseLabelSelector, isLabelKey, isLabelValue } from "./labelSelector";
import { SECRET_SETTING_PREFIX, secretSettingProblem, tokenScopeProblem } from "../outbound/outbound";
import {
  NOTIFY_EVENTS,
  POLICY_DEFAULTS,
  WEEKDAYS,
  withPolicyDefaults,
  type AksMaintenanceConfigurationName,
  type DrainFailurePolicy,
  type Policy,
  type Weekday,
  type WeeklyWindow,
} from "./policy";

/**
 * The per-cluster reboot policy as operators write it (`PUT /api/clusters/{cluster}/policy`, one
 * Table Storage row): every option optional, units an operator thinks in (minutes, seconds), and
 * every error naming the option and the values it accepts. What the document leaves out comes from
 * the app settings (`policyFromConfig`); `resolvePolicy` merges the two into a `Policy`.
 */

/** A PromQL expression longer than this is not a blocker someone wrote by hand. */
export const MAX_PROMQL_CHARS = 4000;

/** Placeholders a notification template may use. */
export const TEMPLATE_PLACEHOLDERS = ["cluster", "node", "event", "state", "from", "why", "reasons", "time", "lease", "failures"] as const;

/** A strict object whose unknown-key error lists the options accepted at that level. */
function options<T extends z.ZodRawShape>(shape: T) {
  const accepted = Object.keys(shape).join(", ");
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === "unrecognized_keys" ? `unknown option ${issue.keys.map((k) => `"${k}"`).join(", ")}; accepted options here: ${accepted}` : undefined,
  });
}

const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: () => `must be one of ${values.join(", ")}` });
const int = (min: number, max: number, unit = "") =>
  z
    .number({ error: () => `must be a whole number${unit} from ${min} to ${max}` })
    .int({ error: () => `must be a whole number${unit} from ${min} to ${max}` })
    .min(min, { error: () => `must be a whole number${unit} from ${min} to ${max}` })
    .max(max, { error: () => `must be a whole number${unit} from ${min} to ${max}` });
const bool = z.boolean({ error: () => "must be true or false" });

const DAY_NAMES: Record<string, Weekday> = {};
for (const [i, full] of ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"].entries()) {
  const short = WEEKDAYS[i]!;
  DAY_NAMES[full] = short;
  DAY_NAMES[short] = short;
  DAY_NAMES[full.slice(0, 2)] = short;
}
const day = z.string({ error: () => "must be a day name such as mon, tuesday or su" }).transform((text, ctx) => {
  const found = DAY_NAMES[text.trim().toLowerCase()];
  if (!found) {
    ctx.addIssue({ code: "custom", message: `"${text}" is not a day; accepted: mon, tue, wed, thu, fri, sat, sun (or full names, or kured's su, mo, …)` });
    return z.NEVER;
  }
  return found;
});

const clock = z
  .string({ error: () => "must be a time HH:MM (24-hour), e.g. 22:30" })
  .regex(/^([01]\d|2[0-3]):[0-5]\d$|^24:00$/, { error: () => "must be a time HH:MM (24-hour, 00:00 to 23:59, or 24:00 as an end), e.g. 22:30" });

const timeZone = z
  .string({ error: () => "must be an IANA time zone name such as Europe/Berlin or UTC" })
  .refine((zone) => IANAZone.isValidZone(zone), { error: (issue) => `"${String(issue.input)}" is not an IANA time zone; use a name such as Europe/Berlin, America/New_York or UTC` });

export const WindowSchema = options({
  days: z.array(day).min(1, { error: () => "must list at least one day (mon … sun)" }).default([...WEEKDAYS]),
  start: clock,
  end: clock,
  timeZone: timeZone.default("UTC"),
}).refine((w) => w.start !== "24:00", { error: () => "start must be 00:00 to 23:59", path: ["start"] });

const selectorText = (what: string) =>
  z.string({ error: () => `must be a label selector string such as app=backup` }).superRefine((text, ctx) => {
    try {
      parseLabelSelector(text);
    } catch (error) {
      ctx.addIssue({ code: "custom", message: `${what}: ${(error as Error).message}` });
    }
  });

const regex = z.string({ error: () => "must be a regular expression" }).superRefine((text, ctx) => {
  try {
    new RegExp(text);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: `is not a valid regular expression: ${(error as Error).message}` });
  }
});

const httpUrl = z
  .string({ error: () => "must be an http:// or https:// URL" })
  .refine((text) => URL.canParse(text) && /^https?:$/.test(new URL(text).protocol), { error: () => "must be an http:// or https:// URL" });

/** A secret a policy uses comes from an app setting declared for policies (shared/outbound/outbound.ts). */
const secretSetting = z
  .string({ error: () => `must be the name of an app setting starting with ${SECRET_SETTING_PREFIX}` })
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: () => "must be the name of an app setting (letters, digits, _)" })
  .superRefine((name, ctx) => {
    const problem = secretSettingProblem(name);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });

const labels = z.record(
  z.string().refine(isLabelKey, { error: (issue) => `"${String(issue.input)}" is not a label key (name or prefix/name, at most 63 characters per name)` }),
  z.string({ error: () => "must be a label value string" }).refine(isLabelValue, {
    error: (issue) => `"${String(issue.input)}" is not a label value (at most 63 letters, digits, - _ . starting and ending alphanumeric)`,
  }),
);

const template = z.string({ error: () => "must be a message template string" }).superRefine((text, ctx) => {
  for (const [, name] of text.matchAll(/\{\{\s*([^}]*?)\s*\}\}/g)) {
    if (!(TEMPLATE_PLACEHOLDERS as readonly string[]).includes(name!)) {
      ctx.addIssue({ code: "custom", message: `unknown placeholder {{${name}}}; accepted: ${TEMPLATE_PLACEHOLDERS.map((p) => `{{${p}}}`).join(", ")}` });
    }
  }
});

const MAX_UNAVAILABLE = 'must be a whole number of nodes (1 or more) or a percentage string from "1%" to "100%"';
const maxUnavailable = z.union([int(1, 100_000), z.string().regex(/^([1-9]\d?|100)%$/, { error: () => MAX_UNAVAILABLE })], { error: () => MAX_UNAVAILABLE });

const podBlocker = z.union(
  [selectorText("podSelectors").transform((selector) => ({ selector, scope: "node" as const })), options({ selector: selectorText("selector"), scope: oneOf(["node", "cluster"]).default("node") })],
  { error: () => 'must be a label selector string (pods on the node) or { "selector": "...", "scope": "node" | "cluster" }' },
);

const drainFailurePolicy = z.discriminatedUnion(
  "mode",
  [
    options({ mode: z.literal("retry"), backoffMinutes: int(1, 10_080, " of minutes").optional(), maxBackoffMinutes: int(1, 10_080, " of minutes").optional() }),
    options({ mode: z.literal("quarantine"), label: z.string().refine(isLabelKey, { error: () => "must be a label key" }).default(POLICY_DEFAULTS.quarantineLabel) }),
    options({ mode: z.literal("force-after"), deadlineMinutes: int(1, 10_080, " of minutes") }),
  ],
  { error: () => 'mode must be one of retry, quarantine, force-after' },
);

export const PolicyDocument = options({
  /** Nodes rebooting at once (kured's --concurrency): at most the slots the lock row holds. */
  concurrency: int(1, MAX_SLOTS).optional(),
  lockTtlMinutes: int(1, 10_080, " of minutes").optional(),
  checkinIdleSeconds: int(10, 86_400, " of seconds").optional(),
  checkinBusySeconds: int(1, 3_600, " of seconds").optional(),
  windows: z.array(WindowSchema).max(50).optional(),
  useAksMaintenanceConfiguration: oneOf(["aksManagedNodeOSUpgradeSchedule", "default"]).optional(),
  maxPerZone: int(1, 1000).optional(),
  maxPerPool: int(1, 1000).optional(),
  maxUnavailable: maxUnavailable.optional(),
  blockers: options({
    podSelectors: z.array(podBlocker).max(50).default([]),
    prometheus: options({
      url: httpUrl,
      /** A PromQL expression that blocks while it returns any series; default: the firing (or pending) `ALERTS`. */
      query: z.string({ error: () => "must be a PromQL expression string" }).trim().min(1, { error: () => "must be a PromQL expression" }).max(MAX_PROMQL_CHARS, { error: () => `must be at most ${MAX_PROMQL_CHARS} characters` }).optional(),
      alertFilterRegex: regex.optional(),
      alertFilterMatchOnly: bool.default(false),
      // Unset means true (issue 14 asks for `ALERTS{alertstate="firing"}` by default; kured's
      // `--alert-firing-only` defaults to false); left unset here so that only an explicit one clashes with `query`.
      firingOnly: bool.optional(),
      auth: oneOf(["none", "azure-managed-identity"]).default("none"),
      tokenScope: z.string({ error: () => tokenScopeProblem("")! }).superRefine((scope, ctx) => {
        const problem = tokenScopeProblem(scope);
        if (problem) ctx.addIssue({ code: "custom", message: problem });
      }).default(POLICY_DEFAULTS.prometheusTokenScope),
      bearerTokenSetting: secretSetting.optional(),
      timeoutSeconds: int(1, 60, " of seconds").default(POLICY_DEFAULTS.prometheusTimeoutMs / 1000),
    })
      .refine((p) => !(p.query && (p.alertFilterRegex !== undefined || p.alertFilterMatchOnly || p.firingOnly !== undefined)), {
        error: () => "alertFilterRegex, alertFilterMatchOnly and firingOnly filter the built-in ALERTS query; with your own query, put the filter in the query",
        path: ["query"],
      })
      .refine((p) => !(p.auth === "azure-managed-identity" && p.bearerTokenSetting), {
        error: () => "set either auth azure-managed-identity or bearerTokenSetting, not both",
        path: ["bearerTokenSetting"],
      })
      .optional(),
    pdbPrecheck: bool.default(true),
  }).optional(),
  health: options({
    waitForHealthy: bool.default(true),
    lockReleaseDelaySeconds: int(0, 86_400, " of seconds").default(0),
  }).optional(),
  preferNoScheduleTaint: options({
    enabled: bool.default(true),
    key: z.string().refine(isLabelKey, { error: () => "must be a taint key (name or prefix/name)" }).default(POLICY_DEFAULTS.preferNoScheduleTaintKey),
  }).optional(),
  drain: options({
    gracePeriodSeconds: int(0, 86_400, " of seconds").optional(),
    timeoutMinutes: int(1, 10_080, " of minutes").optional(),
    skipWaitForDeleteSeconds: int(0, 86_400, " of seconds").optional(),
    deleteEmptyDirData: bool.optional(),
    forceUnmanaged: bool.optional(),
    podSelector: selectorText("podSelector").optional(),
    delayBeforeRebootSeconds: int(0, 86_400, " of seconds").optional(),
    forceRebootAfterTimeout: bool.optional(),
  }).optional(),
  pendingOrder: oneOf(["priority-then-oldest", "oldest-first"]).optional(),
  drainFailurePolicy: drainFailurePolicy.optional(),
  rebootLoop: options({ maxConsecutiveReboots: int(1, 100) }).optional(),
  nodeLabels: options({ preReboot: labels.default({}), postReboot: labels.default({}) }).optional(),
  notifications: options({
    webhookUrl: httpUrl.optional(),
    webhookUrlSetting: secretSetting.optional(),
    format: oneOf(["teams", "slack", "generic"]).default("generic"),
    templates: options({ drainStart: template, reboot: template, complete: template, failure: template, stuck: template, upgrade: template }).partial().default({}),
    events: z.array(oneOf(NOTIFY_EVENTS)).default([...NOTIFY_EVENTS]),
    timeoutSeconds: int(1, 30, " of seconds").default(POLICY_DEFAULTS.notifyTimeoutMs / 1000),
  })
    .refine((n) => (n.webhookUrl === undefined) !== (n.webhookUrlSetting === undefined), {
      error: () => "needs exactly one of webhookUrl or webhookUrlSetting",
    })
    .optional(),
  /** `shadow` runs beside kured: every decision is made and shown, nothing is written to the cluster. */
  mode: oneOf(["active", "shadow"]).optional(),
  kuredAnnotations: bool.optional(),
}).refine((doc) => !(doc.windows?.length && doc.useAksMaintenanceConfiguration), {
  error: () => "set either windows or useAksMaintenanceConfiguration, not both",
  path: ["useAksMaintenanceConfiguration"],
});

/** The document as written (before defaults). */
export type PolicyDocumentInput = z.input<typeof PolicyDocument>;
/** The document with its nested defaults applied. */
export type PolicyDocument = z.output<typeof PolicyDocument>;

export interface PolicyProblem {
  /** Dotted path of the option, e.g. `windows.0.timeZone`. */
  field: string;
  message: string;
}

/** A policy that was refused; `problems` name each option and what it accepts. */
export class PolicyValidationError extends Error {
  override name = "PolicyValidationError";
  constructor(readonly problems: PolicyProblem[]) {
    super(`Invalid policy: ${problems.map((p) => `${p.field || "policy"}: ${p.message}`).join("; ")}`);
  }
}

/** Validates a document; throws `PolicyValidationError` naming every bad option. */
export function parsePolicyDocument(input: unknown): PolicyDocument {
  const result = PolicyDocument.safeParse(input);
  if (!result.success) {
    throw new PolicyValidationError(result.error.issues.map((issue) => ({ field: issue.path.map(String).join("."), message: issue.message })));
  }
  return result.data;
}

const MIN = 60_000;

function minutesOf(clockText: string): number {
  const [h, m] = clockText.split(":").map(Number);
  return h! * 60 + m!;
}

/** Nominal length of a window in minutes (end <= start spans midnight; equal means 24 h). */
export function windowLengthMinutes(window: Pick<WeeklyWindow, "start" | "end">): number {
  const length = minutesOf(window.end) - minutesOf(window.start);
  return length > 0 ? length : length + 24 * 60;
}

/**
 * The policy a cluster runs with: the app-setting `defaults` overridden by its `document`.
 * Throws `PolicyValidationError` when the combination is unworkable (a drain timeout as long as the
 * lock TTL, a window shorter than the drain timeout).
 */
export function resolvePolicy(defaults: Policy, document: PolicyDocument): Policy {
  const base = withPolicyDefaults(defaults);
  const d = document.drain ?? {};
  const drain: Policy["drain"] = {
    ...base.drain,
    ...(d.timeoutMinutes !== undefined && { timeoutMs: d.timeoutMinutes * MIN }),
    ...(d.gracePeriodSeconds !== undefined && { gracePeriodSeconds: d.gracePeriodSeconds }),
    ...(d.skipWaitForDeleteSeconds !== undefined && { skipWaitForDeleteMs: d.skipWaitForDeleteSeconds * 1000 }),
    ...(d.deleteEmptyDirData !== undefined && { deleteEmptyDirData: d.deleteEmptyDirData }),
    ...(d.forceUnmanaged !== undefined && { forceUnmanaged: d.forceUnmanaged }),
    ...(d.podSelector !== undefined && { podSelector: d.podSelector }),
    ...(d.delayBeforeRebootSeconds !== undefined && { delayBeforeRebootMs: d.delayBeforeRebootSeconds * 1000 }),
    ...(d.forceRebootAfterTimeout !== undefined && { forceRebootAfterTimeout: d.forceRebootAfterTimeout }),
  };
  const backoffMs = document.drainFailurePolicy?.mode === "retry" && document.drainFailurePolicy.backoffMinutes !== undefined
    ? document.drainFailurePolicy.backoffMinutes * MIN
    : base.drainFailureBackoffMs;
  let drainFailure: DrainFailurePolicy;
  const f = document.drainFailurePolicy;
  if (!f || f.mode === "retry") {
    const maxBackoffMs = f?.maxBackoffMinutes !== undefined ? f.maxBackoffMinutes * MIN : Math.max(backoffMs, POLICY_DEFAULTS.maxBackoffMs);
    drainFailure = { mode: "retry", backoffMs, maxBackoffMs: Math.max(maxBackoffMs, backoffMs) };
  } else if (f.mode === "quarantine") drainFailure = { mode: "quarantine", label: f.label };
  else drainFailure = { mode: "force-after", deadlineMs: f.deadlineMinutes * MIN };

  const n = document.notifications;
  const b = document.blockers;
  const policy: Policy = {
    ...base,
    concurrency: document.concurrency ?? base.concurrency,
    lockTtlMs: document.lockTtlMinutes !== undefined ? document.lockTtlMinutes * MIN : base.lockTtlMs,
    checkinIdleSeconds: document.checkinIdleSeconds ?? base.checkinIdleSeconds,
    checkinBusySeconds: document.checkinBusySeconds ?? base.checkinBusySeconds,
    drain,
    drainFailureBackoffMs: backoffMs,
    windows: document.windows ? document.windows.map((w) => ({ ...w, days: [...new Set(w.days)] })) : base.windows,
    useAksMaintenanceConfiguration: (document.useAksMaintenanceConfiguration as AksMaintenanceConfigurationName | undefined) ?? (document.windows?.length ? undefined : base.useAksMaintenanceConfiguration),
    maxPerZone: document.maxPerZone ?? base.maxPerZone,
    maxPerPool: document.maxPerPool ?? base.maxPerPool,
    maxUnavailable: document.maxUnavailable ?? base.maxUnavailable,
    blockers: b
      ? {
          podSelectors: b.podSelectors,
          pdbPrecheck: b.pdbPrecheck,
          prometheus: b.prometheus && {
            url: b.prometheus.url,
            query: b.prometheus.query,
            alertFilterRegex: b.prometheus.alertFilterRegex,
            alertFilterMatchOnly: b.prometheus.alertFilterMatchOnly,
            firingOnly: b.prometheus.firingOnly ?? true,
            auth: b.prometheus.auth,
            tokenScope: b.prometheus.tokenScope,
            bearerTokenSetting: b.prometheus.bearerTokenSetting,
            timeoutMs: b.prometheus.timeoutSeconds * 1000,
          },
        }
      : base.blockers,
    health: document.health ? { waitForHealthy: document.health.waitForHealthy, lockReleaseDelayMs: document.health.lockReleaseDelaySeconds * 1000 } : base.health,
    preferNoScheduleTaint: document.preferNoScheduleTaint ?? base.preferNoScheduleTaint,
    pendingOrder: document.pendingOrder ?? base.pendingOrder,
    drainFailure,
    rebootLoop: document.rebootLoop ?? base.rebootLoop,
    nodeLabels: document.nodeLabels ?? base.nodeLabels,
    notifications: n
      ? { webhookUrl: n.webhookUrl, webhookUrlSetting: n.webhookUrlSetting, format: n.format, templates: n.templates, events: n.events, timeoutMs: n.timeoutSeconds * 1000 }
      : base.notifications,
    mode: (document.mode as Policy["mode"]) ?? base.mode,
    kuredAnnotations: document.kuredAnnotations ?? base.kuredAnnotations,
  };
  for (const key of Object.keys(policy) as (keyof Policy)[]) if (policy[key] === undefined) delete policy[key];

  const problems: PolicyProblem[] = [];
  if (policy.drain.timeoutMs >= policy.lockTtlMs) {
    problems.push({
      field: document.drain?.timeoutMinutes !== undefined ? "drain.timeoutMinutes" : "lockTtlMinutes",
      message: `the drain timeout (${policy.drain.timeoutMs / MIN} min) must be shorter than the lock TTL (${policy.lockTtlMs / MIN} min), or a slow drain would look like a stuck node: lower drain.timeoutMinutes, or raise lockTtlMinutes in the policy (or the app setting ROLLCALL_LOCK_TTL_MINUTES)`,
    });
  }
  for (const [i, w] of (policy.windows ?? []).entries()) {
    if (windowLengthMinutes(w) * MIN < policy.drain.timeoutMs) {
      problems.push({
        field: `windows.${i}`,
        message: `the window ${w.start}–${w.end} is ${windowLengthMinutes(w)} min long, shorter than the drain timeout (${policy.drain.timeoutMs / MIN} min): no drain could ever start in it`,
      });
    }
  }
  if (problems.length) throw new PolicyValidationError(problems);
  return policy;
}

/** The effective policy in document form (minutes, seconds), for `GET …/policy` and the status. */
export function describePolicy(policy: Policy): Record<string, unknown> {
  const p = withPolicyDefaults(policy);
  const prom = p.blockers?.prometheus;
  const f = p.drainFailure!;
  return {
    concurrency: p.concurrency,
    lockTtlMinutes: p.lockTtlMs / MIN,
    checkinIdleSeconds: p.checkinIdleSeconds,
    checkinBusySeconds: p.checkinBusySeconds,
    windows: p.windows,
    useAksMaintenanceConfiguration: p.useAksMaintenanceConfiguration,
    maxPerZone: p.maxPerZone,
    maxPerPool: p.maxPerPool,
    maxUnavailable: p.maxUnavailable,
    blockers: {
      podSelectors: p.blockers!.podSelectors,
      pdbPrecheck: p.blockers!.pdbPrecheck,
      prometheus: prom && { ...prom, timeoutMs: undefined, timeoutSeconds: prom.timeoutMs / 1000 },
    },
    health: { waitForHealthy: p.health!.waitForHealthy, lockReleaseDelaySeconds: p.health!.lockReleaseDelayMs / 1000 },
    preferNoScheduleTaint: p.preferNoScheduleTaint,
    drain: {
      gracePeriodSeconds: p.drain.gracePeriodSeconds,
      timeoutMinutes: p.drain.timeoutMs / MIN,
      skipWaitForDeleteSeconds: p.drain.skipWaitForDeleteMs / 1000,
      deleteEmptyDirData: p.drain.deleteEmptyDirData,
      forceUnmanaged: p.drain.forceUnmanaged,
      podSelector: p.drain.podSelector,
      delayBeforeRebootSeconds: (p.drain.delayBeforeRebootMs ?? 0) / 1000,
      forceRebootAfterTimeout: p.drain.forceRebootAfterTimeout ?? false,
    },
    pendingOrder: p.pendingOrder,
    drainFailurePolicy:
      f.mode === "retry"
        ? { mode: "retry", backoffMinutes: f.backoffMs / MIN, maxBackoffMinutes: f.maxBackoffMs / MIN }
        : f.mode === "quarantine"
          ? f
          : { mode: "force-after", deadlineMinutes: f.deadlineMs / MIN },
    rebootLoop: p.rebootLoop,
    nodeLabels: p.nodeLabels,
    notifications: p.notifications && { ...p.notifications, timeoutMs: undefined, timeoutSeconds: p.notifications.timeoutMs / 1000 },
    mode: p.mode ?? "active",
    kuredAnnotations: p.kuredAnnotations ?? false,
  };
}
