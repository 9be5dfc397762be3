import { describe, it } from "node:test";
import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { escapeHelp, escapeLabelValue, Exposition, formatValue } from "../../shared/metrics/exposition";
import { renderMetrics } from "../../shared/metrics/rollcallMetrics";
import type { NodeRecord } from "../../shared/node/nodeRecord";

describe("the Prometheus text exposition", () => {
  it("escapes backslash, double quote and line feed in label values, so a parser reads the value back unchanged", () => {
    const tricky = 'a\\b"c\nd';
    assert.equal(escapeLabelValue(tricky), 'a\\\\b\\"c\\nd');
    const text = new Exposition().gauge("t_value", "help", [{ labels: { v: tricky, w: "plain" }, value: 1 }]).text();
    const [family] = parsePrometheusTextFormat(text);
    assert.deepEqual(family!.metrics[0]!.labels, { v: tricky, w: "plain" });
  });

  it("escapes backslash and line feed in HELP, and writes HELP and TYPE before the samples", () => {
    assert.equal(escapeHelp("one\\two\nthree"), "one\\\\two\\nthree");
    const text = new Exposition().gauge("t_help", 'one\\two\nthree "quoted"', [{ labels: {}, value: 2 }]).text();
    assert.equal(text, '# HELP t_help one\\\\two\\nthree "quoted"\n# TYPE t_help gauge\nt_help 2\n');
    assert.equal(parsePrometheusTextFormat(text)[0]!.help, 'one\\two\nthree "quoted"');
  });

  it("spells special values as Go's parser does", () => {
    assert.deepEqual([NaN, Infinity, -Infinity, 0.5, 3].map(formatValue), ["NaN", "+Inf", "-Inf", "0.5", "3"]);
  });

  it("writes cumulative buckets ending in +Inf, then _sum and _count", () => {
    const text = new Exposition().histogram("t_seconds", "h", [1, 10], [{ labels: {}, observations: [0.5, 1, 5, 50] }]).text();
    assert.deepEqual(text.trim().split("\n").slice(2), [
      't_seconds_bucket{le="1"} 2',
      't_seconds_bucket{le="10"} 3',
      't_seconds_bucket{le="+Inf"} 4',
      "t_seconds_sum 56.5",
      "t_seconds_count 4",
    ]);
    const [family] = parsePrometheusTextFormat(text);
    assert.deepEqual(family, { name: "t_seconds", help: "h", type: "HISTOGRAM", metrics: [{ buckets: { "1": "2", "10": "3", "+Inf": "4" }, count: "4", sum: "56.5" }] });
  });

  it("refuses invalid metric and label names, reserved labels, a family written twice and unordered buckets", () => {
    assert.throws(() => new Exposition().gauge("9bad", "h", []), /metric name/);
    assert.throws(() => new Exposition().gauge("ok", "h", [{ labels: { "bad-name": "x" }, value: 1 }]), /label name/);
    assert.throws(() => new Exposition().gauge("ok", "h", [{ labels: { __name__: "x" }, value: 1 }]), /label name/);
    assert.throws(() => new Exposition().gauge("ok", "h", []).gauge("ok", "h", []), /twice/);
    assert.throws(() => new Exposition().histogram("ok", "h", [10, 1], []), /increasing/);
    assert.throws(() => new Exposition().histogram("ok", "h", [1], [{ labels: { le: "1" }, observations: [] }]), /le/);
  });
});

describe("Rollcall's metrics", () => {
  const record = (node: string, state: NodeRecord["state"], rebootRequired: boolean): NodeRecord =>
    ({ cluster: "c1", node, state, since: "2026-01-01T00:00:00Z", why: "test", rebootRequired, reasons: [] }) as NodeRecord;

  it("print every family with HELP and TYPE even for a cluster with nothing in it", () => {
    const families = parsePrometheusTextFormat(renderMetrics([{ cluster: "empty", nodes: [], holders: [], slots: 1, history: [] }]));
    for (const name of ["rollcall_reboot_required", "rollcall_node_state", "rollcall_lock_holders", "rollcall_queue_length", "rollcall_nodes_stuck", "rollcall_phase_duration_seconds"]) {
      const family = families.find((f) => f.name === name);
      assert.ok(family && family.help && family.type !== "UNTYPED", `${name} has HELP and TYPE`);
    }
  });

  it("count the queue and the stuck nodes, and give each node one state series per state", () => {
    const text = renderMetrics([
      { cluster: "c1", nodes: [record("a", "pending", true), record("b", "pending", true), record("c", "stuck", false)], holders: [], slots: 2, history: [] },
    ]);
    const families = parsePrometheusTextFormat(text);
    const gauge = (name: string) => families.find((f) => f.name === name)!.metrics.map((m) => m.value);
    assert.deepEqual(gauge("rollcall_queue_length"), ["2"]);
    assert.deepEqual(gauge("rollcall_nodes_stuck"), ["1"]);
    assert.deepEqual(gauge("rollcall_reboot_required"), ["1", "1", "0"]);
    const states = families.find((f) => f.name === "rollcall_node_state")!.metrics;
    assert.equal(states.length, 3 * 11);
    assert.deepEqual(states.filter((m) => m.value === "1").map((m) => `${m.labels!.node}=${m.labels!.state}`), ["a=pending", "b=pending", "c=stuck"]);
  });
});
