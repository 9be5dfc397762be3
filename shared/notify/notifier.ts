import { getConfig } from "../config/config";
import type { NodeRecord } from "../node/nodeRecord";
import type { Logger } from "../orchestrator/transitionLog";
import { POLICY_DEFAULTS, type NotificationPolicy, type NotifyEvent, type Policy } from "../policy/policy";
import { fetchOutbound, readSecretSetting, type OutboundRules } from "../outbound/outbound";
import { payloadFor, type NotificationMessage } from "./formats";

/**
 * Webhook notifications of node transitions: Teams, Slack or generic JSON, with per-event message
 * templates. A failure to notify is logged and never thrown, and a call never takes longer than the
 * policy's timeout (default 5 s), so notifying can never block or fail a reboot.
 */

/** The built-in message of each event; `{{placeholders}}` as in `TEMPLATE_PLACEHOLDERS`. */
export const DEFAULT_TEMPLATES: Record<NotifyEvent, string> = {
  drainStart: "Draining node {{node}} in cluster {{cluster}} before its reboot: {{why}}",
  reboot: "Rebooting node {{node}} in cluster {{cluster}}",
  complete: "Node {{node}} in cluster {{cluster}} rebooted and is back in service",
  failure: "Reboot of node {{node}} in cluster {{cluster}} failed ({{state}}): {{why}}",
  stuck: "Node {{node}} in cluster {{cluster}} did not come back after its reboot: {{why}}",
  upgrade: "Cluster {{cluster}}: {{why}}",
};

/**
 * The event a transition announces, if any: cordoning → draining is `drainStart`; entering
 * `reboot-ordered` is `reboot`; entering `releasing` with outcome `completed` is `complete` and with
 * `drain-failed` is `failure`; entering `quarantined` is `failure`; entering `stuck` is `stuck`.
 */
export function eventFor(from: string, record: NodeRecord): NotifyEvent | undefined {
  if (from === record.state) return undefined;
  switch (record.state) {
    case "draining":
      return from === "cordoning" ? "drainStart" : undefined;
    case "reboot-ordered":
      return "reboot";
    case "releasing":
      return record.outcome === "completed" ? "complete" : record.outcome === "drain-failed" ? "failure" : undefined;
    case "quarantined":
      return "failure";
    case "stuck":
      return "stuck";
    default:
      return undefined;
  }
}

/** Fills `{{name}}` placeholders; unknown ones are left as written. */
export function renderTemplate(template: string, values: Record<string, string>): string {
  return template.replace(/\{\{\s*([^}]*?)\s*\}\}/g, (whole, name: string) => (Object.hasOwn(values, name) ? values[name]! : whole));
}

export function templateValues(event: NotifyEvent, from: string, record: NodeRecord, at: Date): Record<string, string> {
  return {
    cluster: record.cluster,
    node: record.node,
    event,
    state: record.state,
    from,
    why: record.why,
    reasons: record.reasons.join(", "),
    time: at.toISOString(),
    lease: record.leaseId ?? "",
    failures: String(record.failures ?? 0),
  };
}

export interface NotifierDeps {
  fetch?: typeof fetch;
  /** Where `webhookUrlSetting` is looked up; defaults to process.env. */
  env?: Record<string, string | undefined>;
  now?: Date;
  /** What the app's settings allow to be called; defaults to the app's configuration at call time. */
  rules?: OutboundRules;
}

/**
 * Posts one message under the app's outbound rules (shared/outbound/outbound.ts: an allowed https
 * host, no redirect followed). Resolves true when the webhook answered 2xx; false (logged) on any failure.
 */
export async function sendNotification(notifications: NotificationPolicy, message: NotificationMessage, log: Logger, deps: NotifierDeps = {}): Promise<boolean> {
  const context = `notify event=${message.event} cluster=${message.cluster} node=${message.node} format=${notifications.format}`;
  let url: string;
  try {
    url = notifications.webhookUrl ?? readSecretSetting(notifications.webhookUrlSetting ?? "", deps.env ?? process.env, "webhookUrlSetting");
  } catch (error) {
    log.warn(`${context} failed: ${(error as Error).message}`);
    return false;
  }
  const timeoutMs = notifications.timeoutMs ?? POLICY_DEFAULTS.notifyTimeoutMs;
  try {
    const init: RequestInit = {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(payloadFor(notifications.format, message)),
      signal: AbortSignal.timeout(timeoutMs),
    };
    const response = await fetchOutbound(url, init, { purpose: "webhook", rules: deps.rules ?? getConfig().outbound, fetch: deps.fetch });
    if (!response.ok) {
      const text = (await response.text().catch(() => "")).slice(0, 200);
      log.warn(`${context} failed: the webhook answered ${response.status}${text ? `: ${text}` : ""}`);
      return false;
    }
    await response.body?.cancel().catch(() => undefined);
    return true;
  } catch (error) {
    const e = error as Error & { cause?: { code?: string } };
    const why = e.name === "TimeoutError" ? `no answer within ${timeoutMs / 1000} s` : `${e.message}${e.cause?.code ? ` (${e.cause.code})` : ""}`;
    // The URL is a secret (Slack and Teams webhooks carry their key in it): log only its host.
    log.warn(`${context} failed: POST to ${safeHost(url)}: ${why}`);
    return false;
  }
}

function safeHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "an invalid URL";
  }
}

/** Sends `event` for `record` if the policy has notifications and wants this event. Never throws. */
export async function notifyEvent(policy: Policy, event: NotifyEvent, from: string, record: NodeRecord, log: Logger, deps: NotifierDeps = {}): Promise<boolean> {
  const notifications = policy.notifications;
  if (!notifications || !(notifications.events ?? []).includes(event)) return false;
  try {
    const at = deps.now ?? new Date();
    const text = renderTemplate(notifications.templates?.[event] ?? DEFAULT_TEMPLATES[event], templateValues(event, from, record, at));
    const message: NotificationMessage = { event, text, cluster: record.cluster, node: record.node, from, state: record.state, why: record.why, at: at.toISOString() };
    return await sendNotification(notifications, message, log, deps);
  } catch (error) {
    log.warn(`notify event=${event} cluster=${record.cluster} node=${record.node} failed: ${(error as Error).message}`);
    return false;
  }
}

/**
 * Announces something about the whole cluster (`upgrade`: AKS reported a new version or the end of
 * support, and Rollcall re-planned); `node`, `state` and `from` are empty in the templates. Never throws.
 */
export async function notifyCluster(policy: Policy, event: "upgrade", cluster: string, why: string, log: Logger, deps: NotifierDeps = {}): Promise<boolean> {
  const notifications = policy.notifications;
  if (!notifications || !(notifications.events ?? []).includes(event)) return false;
  try {
    const at = (deps.now ?? new Date()).toISOString();
    const values = { cluster, node: "", event, state: "", from: "", why, reasons: "", time: at, lease: "", failures: "0" };
    const text = renderTemplate(notifications.templates?.[event] ?? DEFAULT_TEMPLATES[event], values);
    return await sendNotification(notifications, { event, text, cluster, node: "", from: "", state: "", why, at }, log, deps);
  } catch (error) {
    log.warn(`notify event=${event} cluster=${cluster} failed: ${(error as Error).message}`);
    return false;
  }
}

/**
 * Call after a transition has been written (by ETag, so exactly once per transition), with the state
 * it came `from` and the record as written. Sends the event the transition announces (`eventFor`),
 * if any and if the policy wants it. Never throws; bounded by the policy's timeout. Await it (the
 * Functions host may freeze work left running after the response).
 */
export async function notifyTransition(policy: Policy, from: string, record: NodeRecord, log: Logger, deps: NotifierDeps = {}): Promise<void> {
  const event = eventFor(from, record);
  if (event) await notifyEvent(policy, event, from, record, log, deps);
}
