import { azureCredential } from "../../azure/arm";
import { getConfig } from "../../config/config";
import type { GateContext, PrometheusBlocker } from "../policy";
import { describeError, listShort, type NamedGate } from "./gate";

export interface PrometheusAlert {
  name: string;
  state: string;
}

export interface PrometheusGateDeps {
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /** An Entra ID access token for `scope` (auth `azure-managed-identity`); defaults to DefaultAzureCredential. */
  token?: (scope: string) => Promise<string>;
  /** Where `bearerTokenSetting` is looked up; defaults to process.env. */
  env?: Record<string, string | undefined>;
}

async function defaultToken(scope: string): Promise<string> {
  const token = await (await azureCredential(getConfig())).getToken(scope);
  if (!token) throw new Error(`no Entra ID token for ${scope}`);
  return token.token;
}

/** The alerts endpoint of a Prometheus-compatible base URL (a path prefix is kept). */
export function alertsUrl(base: string): URL {
  return new URL("api/v1/alerts", base.endsWith("/") ? base : `${base}/`);
}

/**
 * `GET {url}/api/v1/alerts`: every alert Prometheus reports, pending and firing. Throws with the URL
 * and the cause on a network error, a timeout, a non-2xx answer or a body that is not the alerts API.
 */
export async function fetchAlerts(options: PrometheusBlocker, deps: PrometheusGateDeps = {}): Promise<PrometheusAlert[]> {
  const url = alertsUrl(options.url);
  const shown = `${url.origin}${url.pathname}`;
  const headers: Record<string, string> = { accept: "application/json" };
  if (options.auth === "azure-managed-identity") {
    headers.authorization = `Bearer ${await (deps.token ?? defaultToken)(options.tokenScope)}`;
  } else if (options.bearerTokenSetting) {
    const token = (deps.env ?? process.env)[options.bearerTokenSetting];
    if (!token) throw new Error(`the app setting ${options.bearerTokenSetting} (bearerTokenSetting) is not set`);
    headers.authorization = `Bearer ${token}`;
  }
  let response: Response;
  try {
    response = await (deps.fetch ?? fetch)(url, { headers, signal: AbortSignal.timeout(options.timeoutMs) });
  } catch (error) {
    const timedOut = (error as Error).name === "TimeoutError";
    throw new Error(`GET ${shown}: ${timedOut ? `no answer within ${options.timeoutMs / 1000} s` : describeError(error)}`);
  }
  if (!response.ok) {
    const text = (await response.text().catch(() => "")).slice(0, 200);
    throw new Error(`GET ${shown} answered ${response.status}${text ? `: ${text}` : ""}`);
  }
  let body: { status?: string; data?: { alerts?: { labels?: Record<string, string>; state?: string }[] }; error?: string };
  try {
    body = (await response.json()) as typeof body;
  } catch {
    throw new Error(`GET ${shown} did not answer JSON`);
  }
  if (body.status !== "success" || !Array.isArray(body.data?.alerts)) {
    throw new Error(`GET ${shown} did not answer the Prometheus alerts API${body.error ? `: ${body.error}` : ""}`);
  }
  return body.data.alerts.map((a) => ({ name: a.labels?.alertname ?? "(unnamed)", state: a.state ?? "unknown" }));
}

/** The alerts that block, after kured's filters: firing-only, then ignore (or match-only) by name regex. */
export function blockingAlerts(alerts: readonly PrometheusAlert[], options: Pick<PrometheusBlocker, "alertFilterRegex" | "alertFilterMatchOnly" | "firingOnly">): PrometheusAlert[] {
  const regex = options.alertFilterRegex ? new RegExp(options.alertFilterRegex) : undefined;
  return alerts.filter((alert) => {
    if (options.firingOnly && alert.state !== "firing") return false;
    if (!regex) return true;
    return options.alertFilterMatchOnly ? regex.test(alert.name) : !regex.test(alert.name);
  });
}

/**
 * The Prometheus blocker (kured's --prometheus-url): while a matching alert is active, no node
 * starts its turn and a drained node is not rebooted. Asked in both phases. An unreachable or failing
 * Prometheus throws, which the composite turns into "blocked: prometheus failed: …".
 */
export function prometheusGate(deps: PrometheusGateDeps = {}): NamedGate {
  return {
    name: "prometheus",
    async holdReason({ policy }: GateContext) {
      const options = policy.blockers?.prometheus;
      if (!options) return undefined;
      const blocking = blockingAlerts(await fetchAlerts(options, deps), options);
      if (blocking.length === 0) return undefined;
      const names = [...new Set(blocking.map((a) => `${a.name} (${a.state})`))];
      return `${blocking.length} active Prometheus alert${blocking.length === 1 ? "" : "s"}: ${listShort(names)}`;
    },
  };
}
