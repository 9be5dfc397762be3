import { describeError } from "./gates/gate";
import { hostOf, outboundUrlProblem, readSecretSetting, resolveHost, type OutboundRules } from "../outbound/outbound";
import type { Policy } from "./policy";
import type { PolicyProblem } from "./policySchema";

/**
 * What a policy would make the app call, checked against the app's outbound rules when it is PUT
 * (shared/outbound/outbound.ts): the Prometheus URL and the webhook URL (or the secret setting that
 * holds it) must be allowed, the secret settings it names must be set, and the Prometheus host must
 * resolve from here. A blocker that can never be asked holds every node (it fails closed), so it is
 * refused now rather than found later as "no node ever reboots". The gate and the notifier check the
 * rules again on every call.
 */
export async function outboundPolicyProblems(policy: Policy, rules: OutboundRules, env: Record<string, string | undefined> = process.env): Promise<PolicyProblem[]> {
  const problems: PolicyProblem[] = [];
  const prometheus = policy.blockers?.prometheus;
  if (prometheus) {
    const problem = outboundUrlProblem(prometheus.url, "prometheus", rules);
    if (problem) problems.push({ field: "blockers.prometheus.url", message: problem });
    else {
      const host = hostOf(new URL(prometheus.url));
      try {
        await resolveHost(host);
      } catch (error) {
        problems.push({ field: "blockers.prometheus.url", message: `the host ${host} does not resolve from the app (${describeError(error)}); every check-in would be blocked. Use a name the Function App can resolve` });
      }
    }
    if (prometheus.bearerTokenSetting) secretProblem(problems, "blockers.prometheus.bearerTokenSetting", prometheus.bearerTokenSetting, env);
  }
  const notifications = policy.notifications;
  if (notifications?.webhookUrl !== undefined) {
    const problem = outboundUrlProblem(notifications.webhookUrl, "webhook", rules);
    if (problem) problems.push({ field: "notifications.webhookUrl", message: problem });
  } else if (notifications?.webhookUrlSetting) {
    const url = secretProblem(problems, "notifications.webhookUrlSetting", notifications.webhookUrlSetting, env);
    const problem = url === undefined ? undefined : outboundUrlProblem(url, "webhook", rules);
    if (problem) problems.push({ field: "notifications.webhookUrlSetting", message: `the URL in ${notifications.webhookUrlSetting} ${problem}` });
  }
  return problems;
}

/** The secret's value, or undefined with the problem recorded. */
function secretProblem(problems: PolicyProblem[], field: string, name: string, env: Record<string, string | undefined>): string | undefined {
  try {
    return readSecretSetting(name, env, field.split(".").at(-1)!);
  } catch (error) {
    problems.push({ field, message: `${(error as Error).message}; set it in the app's settings first` });
    return undefined;
  }
}
