import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { renderMetrics } from "../../shared/metrics/rollcallMetrics";

/** The shipped Grafana dashboard queries only what GET /api/metrics serves, so no panel stays empty. */

const dashboard = JSON.parse(readFileSync(join(__dirname, "../../infra/grafana/rollcall-dashboard.json"), "utf8")) as {
  panels: { title: string; targets: { expr: string }[] }[];
  templating: { list: { name: string; query: unknown }[] };
};

/** Every metric name the endpoint can serve: the HELP lines of an empty exposition name them all. */
const served = new Set([...renderMetrics([]).matchAll(/^# HELP (\S+)/gm)].map((m) => m[1]!));
/** A histogram's series: name_bucket, name_sum, name_count. */
const seriesOf = (name: string) => name.replace(/_(bucket|sum|count)$/, "");

describe("the Grafana dashboard", () => {
  const queries = [
    ...dashboard.panels.flatMap((p) => p.targets.map((t) => ({ where: p.title, expr: t.expr }))),
    ...dashboard.templating.list.filter((v) => typeof v.query === "string" && v.name !== "datasource").map((v) => ({ where: `variable ${v.name}`, expr: v.query as string })),
  ];

  it("has panels for the reboot-required count, states, the queue, stuck nodes and phase durations", () => {
    const all = queries.map((q) => q.expr).join("\n");
    for (const metric of ["rollcall_reboot_required", "rollcall_node_state", "rollcall_queue_length", "rollcall_nodes_stuck", "rollcall_phase_duration_seconds_bucket"]) {
      assert.ok(all.includes(metric), `a panel queries ${metric}`);
    }
  });

  it("names only metrics the endpoint serves, each filtered by the cluster variable", () => {
    assert.ok(served.size >= 10, [...served].join(", "));
    for (const { where, expr } of queries) {
      const names = [...expr.matchAll(/\brollcall_[a-z_]+/g)].map((m) => m[0]);
      assert.ok(names.length > 0, `${where}: ${expr}`);
      for (const name of names) assert.ok(served.has(seriesOf(name)), `${where}: ${name} is not served by GET /api/metrics`);
      if (!where.startsWith("variable")) assert.match(expr, /cluster=~"\$cluster"/, `${where} follows the cluster variable`);
    }
  });
});
