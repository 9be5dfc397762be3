import { azureCredential } from "../../azure/arm";
import { getConfig } from "../../config/config";
import { fetchOutbound, OutboundRefused, readSecretSetting, tokenScopeProblem, type OutboundRules } from "../../outbound/outbound";
import type { GateContext, PrometheusBlocker } from "../policy";
import { describeError, listShort, type NamedGate } from "./gate";

/**
 * The Prometheus blocker (kured's --prometheus-url), asked through the query API that both an
 * in-cluster Prometheus and Azure Monitor managed Prometheus serve: `GET {url}/api/v1/query`. Azure
 * Monitor's workspace query endpoint does not serve `/api/v1/alerts` (Microsoft Learn, "Query
 * Prometheus metrics using the API and PromQL": query, query_range, series, labels), so kured's
 * alerts call would never work from the Function App.
 *
 * Blocked while the expression returns any series (a non-empty instant vector or matrix). The
 * default expression is kured's rule in PromQL: every alert in Prometheus's `ALERTS` series
 * (`ALERTS{alertstate="firing"}` with `firingOnly`), then kured's name filter applied here to the
 * `alertname` label with the same unanchored regular expression semantics as kured's
 * `regexp.MatchString`. An operator's own expression (`query`) is asked as written; Azure Monitor's
 * rule groups may not write an `ALERTS` series, so there a metric condition such as
 * `kube_node_status_condition{condition="Ready",status="true"} == 0` is what to give.
 */

export interface PrometheusAlert {
  name: string;
  state: string;
}

/** One series of a query answer: its labels (with `__name__` when it has one). */
export type PrometheusSeries = Record<string, string>;

export interface PrometheusGateDeps {
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /** An Entra ID access token for `scope` (auth `azure-managed-identity`); defaults to the app's credential. */
  token?: (scope: string) => Promise<string>;
  /** Where `bearerTokenSetting` is looked up; defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** What the app's settings allow to be called; defaults to the app's configuration at call time. */
  rules?: OutboundRules;
}

async function defaultToken(scope: string): Promise<string> {
  const token = await (await azureCredential(getConfig())).getToken(scope);
  if (!token) throw new Error(`no Entra ID token for ${scope}`);
  return token.token;
}

/** The instant-query endpoint of a Prometheus-compatible base URL (a path prefix is kept). */
export function queryUrl(base: string, expression: string): URL {
  const url = new URL("api/v1/query", base.endsWith("/") ? base : `${base}/`);
  url.searchParams.set("query", expression);
  return url;
}

/** The expression Rollcall asks: the operator's, or the `ALERTS` series (firing only with `firingOnly`). */
export function blockerQuery(options: Pick<PrometheusBlocker, "query" | "firingOnly">): string {
  return options.query ?? (options.firingOnly ? 'ALERTS{alertstate="firing"}' : "ALERTS");
}

/**
 * Evaluates `expression` at `{url}/api/v1/query` under the app's outbound rules and returns the
 * series it found. Throws with the endpoint and the cause on a refused URL or credential, a network
 * error, a timeout, a redirect, a non-2xx answer, or a body that is not a vector or matrix answer.
 */
export async function queryPrometheus(options: PrometheusBlocker, expression: string, deps: PrometheusGateDeps = {}): Promise<PrometheusSeries[]> {
  const url = queryUrl(options.url, expression);
  const shown = `${url.origin}${url.pathname}`;
  const rules = deps.rules ?? getConfig().outbound;
  const headers: Record<string, string> = { accept: "application/json" };
  try {
    if (options.auth === "azure-managed-identity") {
      // The schema allows only these scopes; a row written before that, or by hand, is checked again here.
      const problem = tokenScopeProblem(options.tokenScope);
      if (problem) throw new OutboundRefused(`tokenScope ${problem}`);
      headers.authorization = `Bearer ${await (deps.token ?? defaultToken)(options.tokenScope)}`;
    } else if (options.bearerTokenSetting) {
      headers.authorization = `Bearer ${readSecretSetting(options.bearerTokenSetting, deps.env ?? process.env, "bearerTokenSetting")}`;
    }
  } catch (error) {
    throw new Error(`GET ${shown} not sent: ${describeError(error)}`);
  }
  let response: Response;
  try {
    response = await fetchOutbound(url.href, { headers, signal: AbortSignal.timeout(options.timeoutMs) }, { purpose: "prometheus", rules, fetch: deps.fetch });
  } catch (error) {
    const timedOut = (error as Error).name === "TimeoutError";
    const refused = error instanceof OutboundRefused && !error.message.startsWith("answered");
    throw new Error(`GET ${shown}${refused ? " not sent" : ""}: ${timedOut ? `no answer within ${options.timeoutMs / 1000} s` : describeError(error)}`);
  }
  if (!response.ok) {
    const text = (await response.text().catch(() => "")).slice(0, 200);
    throw new Error(`GET ${shown} answered ${response.status}${text ? `: ${text}` : ""}`);
  }
  let body: { status?: string; data?: { resultType?: string; result?: { metric?: PrometheusSeries }[] }; error?: string };
  try {
    body = (await response.json()) as typeof body;
  } catch {
    throw new Error(`GET ${shown} did not answer JSON`);
  }
  if (body.status !== "success" || !Array.isArray(body.data?.result)) {
    throw new Error(`GET ${shown} did not answer the Prometheus query API${body.error ? `: ${body.error}` : ""}`);
  }
  if (body.data.resultType !== "vector" && body.data.resultType !== "matrix") {
    throw new Error(`the query ${JSON.stringify(expression)} returned a ${body.data.resultType ?? "typeless"} result; a blocker query must return an instant vector (e.g. up == 0)`);
  }
  return body.data.result.map((r) => r.metric ?? {});
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

/** `up{job="node", instance="a:9100"}` */
export function describeSeries(series: PrometheusSeries): string {
  const { __name__: name = "", ...labels } = series;
  const shown = Object.entries(labels)
    .slice(0, 4)
    .map(([k, v]) => `${k}="${v}"`);
  return `${name}{${shown.join(", ")}${Object.keys(labels).length > 4 ? ", …" : ""}}`;
}

/** Why the blocker holds the node now, or undefined. Throws when Prometheus cannot be asked (the node is held too). */
export async function prometheusHoldReason(options: PrometheusBlocker, deps: PrometheusGateDeps = {}): Promise<string | undefined> {
  const expression = blockerQuery(options);
  const series = await queryPrometheus(options, expression, deps);
  if (options.query) {
    if (series.length === 0) return undefined;
    const shown = [...new Set(series.map(describeSeries))];
    return `Prometheus query ${JSON.stringify(options.query)} returned ${series.length} series: ${listShort(shown)}`;
  }
  const alerts = series.map((s) => ({ name: s.alertname ?? "(unnamed)", state: s.alertstate ?? "unknown" }));
  const blocking = blockingAlerts(alerts, options);
  if (blocking.length === 0) return undefined;
  const names = [...new Set(blocking.map((a) => `${a.name} (${a.state})`))];
  return `${blocking.length} active Prometheus alert${blocking.length === 1 ? "" : "s"}: ${listShort(names)}`;
}

/**
 * The Prometheus gate: while the blocker's query returns a series, no node starts its turn and a
 * drained node is not rebooted. Asked in both phases. An unreachable or failing Prometheus, or a
 * request the outbound rules refuse, throws, which the composite turns into
 * "blocked: prometheus failed: …" (fail closed; the status reports it as a gate error).
 */
export function prometheusGate(deps: PrometheusGateDeps = {}): NamedGate {
  return {
    name: "prometheus",
    async holdReason({ policy }: GateContext) {
      const options = policy.blockers?.prometheus;
      return options ? prometheusHoldReason(options, deps) : undefined;
    },
  };
}
