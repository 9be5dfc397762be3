import { describe, it } from "node:test";
import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { rollOut, SERVED_CLUSTER, SERVED_KEY, useServedRollcall } from "../support/servedRollcall";
import { asEntra, EASY_AUTH_ON } from "../support/entra";

/**
 * GET /api/metrics through the local Functions host, after a real rollout against Azurite and the
 * simulated API server, read by parse-prometheus-text-format (a port of Prometheus's own Go text
 * parser: it refuses what a Prometheus scrape would refuse).
 */

interface Family {
  name: string;
  help: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string; sum?: string }[];
}

const served = useServedRollcall();

async function scrape(headers: Record<string, string> = { "x-functions-key": SERVED_KEY }): Promise<{ status: number; type: string | null; text: string }> {
  const response = await fetch(`${served.apiUrl}/metrics`, { headers });
  return { status: response.status, type: response.headers.get("content-type"), text: await response.text() };
}

function families(text: string): Map<string, Family> {
  return new Map((parsePrometheusTextFormat(text) as Family[]).map((f) => [f.name, f]));
}

/**
 * The series of a labelled histogram. The parser reads every line (and refuses a malformed one) but
 * folds a histogram's series into one object keyed by `le` alone, losing the other labels; typed
 * `untyped`, its `_bucket`, `_sum` and `_count` lines come back as samples with all their labels.
 */
function histogramSeries(text: string, name: string, labels: Record<string, string>): { buckets: Map<string, number>; count: number; sum: number } {
  const untyped = parsePrometheusTextFormat(text.replace(`# TYPE ${name} histogram`, `# TYPE ${name} untyped`)) as Family[];
  // Each series' lines come back as families of their own name, one after the other.
  const matching = (suffix: string) =>
    untyped
      .filter((f) => f.name === `${name}${suffix}`)
      .flatMap((f) => f.metrics)
      .filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  const one = (suffix: string) => {
    const [sample, ...more] = matching(suffix);
    assert.ok(sample && more.length === 0, `one ${name}${suffix} sample for ${JSON.stringify(labels)}`);
    return Number(sample.value);
  };
  return { buckets: new Map(matching("_bucket").map((m) => [m.labels!.le!, Number(m.value)])), count: one("_count"), sum: one("_sum") };
}

function value(all: Map<string, Family>, name: string, labels: Record<string, string>): number | undefined {
  const family = all.get(name);
  assert.ok(family, `${name} is exposed`);
  const sample = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return sample?.value === undefined ? undefined : Number(sample.value);
}

describe("the Prometheus metrics endpoint", () => {
  it("exposes reboot-required, node state, lock, queue and stuck gauges as a Prometheus parser reads them", async () => {
    served.configure({ ROLLCALL_CONCURRENCY: "1" });
    for (const node of ["m-a", "m-b", "m-c"]) served.sim.addNode(node);
    const boot = (node: string) => served.sim.getNode(node)!.status.nodeInfo.bootID as string;
    // m-a needs a reboot and takes the slot; m-b needs one too and waits; m-c needs none.
    for (const [node, required] of [["m-a", true], ["m-b", true], ["m-c", false]] as const) {
      const answer = await served.checkin(node, { bootId: boot(node), rebootRequired: required, reasons: required ? ["linux-image-azure"] : [], agentVersion: "test" });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
    }

    const answer = await scrape();
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.type, "text/plain; version=0.0.4; charset=utf-8");
    const all = families(answer.text);
    const node = (n: string) => ({ cluster: SERVED_CLUSTER, node: n });
    assert.equal(all.get("rollcall_reboot_required")?.type, "GAUGE");
    assert.deepEqual(
      ["m-a", "m-b", "m-c"].map((n) => value(all, "rollcall_reboot_required", node(n))),
      [1, 1, 0],
      "1 for each node whose agent reports the sentinel, as kured_reboot_required",
    );
    const states = all.get("rollcall_node_state")!.metrics.filter((m) => m.labels?.node === "m-b");
    assert.equal(states.length, 11, "one series per state");
    assert.deepEqual(states.filter((m) => m.value === "1").map((m) => m.labels?.state), ["pending"]);
    const current = (n: string) => all.get("rollcall_node_state")!.metrics.find((m) => m.labels?.node === n && m.value === "1")?.labels?.state;
    assert.notEqual(current("m-a"), "pending", "m-a took the slot");
    assert.equal(current("m-c"), "idle");
    const cluster = { cluster: SERVED_CLUSTER };
    assert.equal(value(all, "rollcall_lock_slots", cluster), 1);
    assert.equal(value(all, "rollcall_lock_holders", cluster), 1);
    assert.equal(value(all, "rollcall_queue_length", cluster), 1);
    assert.equal(value(all, "rollcall_nodes_stuck", cluster), 0);
    const expiry = value(all, "rollcall_lock_holder_expiry_timestamp_seconds", node("m-a"))!;
    assert.ok(expiry > Date.now() / 1000, "the holder's lease expires in the future");
    const checkin = value(all, "rollcall_node_last_checkin_timestamp_seconds", node("m-c"))!;
    assert.ok(Math.abs(checkin - Date.now() / 1000) < 120, `the last check-in is recent (${checkin})`);
    for (const family of all.values()) assert.ok(family.help.length > 0, `${family.name} has HELP`);
  });

  it("exposes phase-duration histograms from the finished leases of the history", async () => {
    served.configure({ ROLLCALL_CONCURRENCY: "1" });
    const nodes = ["h-a", "h-b"];
    for (const node of nodes) served.sim.addNode(node);
    const before = families((await scrape()).text);
    assert.equal(value(before, "rollcall_phase_window_entries", { cluster: SERVED_CLUSTER }), 0);
    assert.equal(before.get("rollcall_phase_duration_seconds")?.type, "HISTOGRAM");
    assert.equal(histogramSeries((await scrape()).text, "rollcall_phase_duration_seconds", { cluster: SERVED_CLUSTER, phase: "wait" }).count, 0);

    await rollOut(served, nodes);

    const text = (await scrape()).text;
    const all = families(text);
    assert.equal(value(all, "rollcall_phase_window_entries", { cluster: SERVED_CLUSTER }), 2);
    for (const phase of ["wait", "cordon", "drain", "reboot", "return"]) {
      const series = histogramSeries(text, "rollcall_phase_duration_seconds", { cluster: SERVED_CLUSTER, phase });
      assert.equal(series.count, 2, `${phase} measured for both rebooted nodes`);
      assert.equal(series.buckets.get("+Inf"), 2);
      assert.equal(series.buckets.size, 15, "14 bounds and +Inf");
      const counts = [...series.buckets.values()];
      assert.deepEqual(counts, [...counts].sort((a, b) => a - b), `${phase}'s buckets are cumulative`);
      assert.ok(series.sum >= 0 && series.sum < 60, `${phase} took seconds in the simulation (${series.sum})`);
    }
    const wait = histogramSeries(text, "rollcall_phase_duration_seconds", { cluster: SERVED_CLUSTER, phase: "wait" });
    assert.ok(wait.sum > 0, "the second node waited for the first one's slot");
    assert.deepEqual(
      nodes.map((n) => value(all, "rollcall_reboot_required", { cluster: SERVED_CLUSTER, node: n })),
      [0, 0],
      "no node reports the sentinel after its reboot",
    );
    assert.equal(value(all, "rollcall_lock_holders", { cluster: SERVED_CLUSTER }), 0);
  });

  it("needs the function key, and under App Service authentication the app role Rollcall.Read", async () => {
    assert.equal((await scrape({})).status, 401);
    served.configure(EASY_AUTH_ON);
    const refused = await scrape({ "x-functions-key": SERVED_KEY, ...asEntra("Nora Norole", []) });
    assert.equal(refused.status, 403);
    assert.match(JSON.parse(refused.text).error.message, /Rollcall\.Read/);
    const admitted = await scrape({ "x-functions-key": SERVED_KEY, ...asEntra("Prometheus Scraper", ["Rollcall.Read"]) });
    assert.equal(admitted.status, 200);
    assert.ok(families(admitted.text).has("rollcall_reboot_required"));
    delete process.env.WEBSITE_AUTH_ENABLED;
  });
});
