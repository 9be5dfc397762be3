import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { baseUrl, CliError } from "../../cli/api";
import { age, duration, table, yaml } from "../../cli/format";
import { notBefore, planText } from "../../cli/main";

describe("the CLI's output formats", () => {
  it("pads table columns like kubectl get, with <none> for empty cells and one line per row", () => {
    assert.equal(
      table(["NODE", "STATE", "WHY"], [["a-long-node", "idle", "first\ncheck-in"], ["b", undefined, ""]]),
      ["NODE          STATE    WHY", "a-long-node   idle     first check-in", "b             <none>   <none>"].join("\n"),
    );
  });

  it("writes ages and durations in kubectl's units, future times as 'in'", () => {
    const now = Date.parse("2026-01-01T12:00:00Z");
    assert.equal(age("2026-01-01T11:59:15Z", now), "45s");
    assert.equal(age("2026-01-01T11:00:00Z", now), "60m");
    assert.equal(age("2026-01-01T13:00:00Z", now), "in 60m");
    assert.equal(age(undefined, now), undefined);
    assert.deepEqual([5, 119, 600, 7200, 86400 * 3].map(duration), ["5s", "119s", "10m", "2h", "3d"]);
  });

  it("quotes every YAML string that a plain scalar would read as something else", () => {
    const text = yaml({ a: "true", b: "123", c: "", d: "x: y", e: "-dash", f: "two\nlines", g: "plain words", h: null, i: 1.5, j: false, k: "2026-01-01T00:00:00Z" });
    assert.equal(
      text,
      ['a: "true"', 'b: "123"', 'c: ""', 'd: "x: y"', 'e: "-dash"', 'f: "two\\nlines"', "g: plain words", "h: null", "i: 1.5", "j: false", 'k: "2026-01-01T00:00:00Z"', ""].join("\n"),
    );
  });

  it("writes nested objects and lists in block style, empty ones in flow style", () => {
    assert.equal(
      yaml({ nodes: [{ node: "a", reasons: ["x", "z"] }, { node: "b", reasons: [] }], lists: [[1, 2], []], empty: {} }),
      ["nodes:", "  - node: a", "    reasons:", "      - x", "      - z", "  - node: b", "    reasons: []", "lists:", "  - - 1", "    - 2", "  - []", "empty: {}", ""].join("\n"),
    );
  });
});

describe("the CLI's arguments", () => {
  it("takes --not-before as a date-time with a zone or a delay from now", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    assert.equal(notBefore("90m", now), "2026-01-01T01:30:00.000Z");
    assert.equal(notBefore("1d", now), "2026-01-02T00:00:00.000Z");
    assert.equal(notBefore("2026-03-01T22:00:00+01:00", now), "2026-03-01T22:00:00+01:00");
    for (const bad of ["tomorrow", "2026-03-01T22:00:00", "5 m", "2026-13-45T99:00:00Z"]) assert.throws(() => notBefore(bad, now), CliError, bad);
  });

  it("adds the default route prefix /api to a URL without a path, and refuses what is not an http(s) URL", () => {
    assert.equal(baseUrl("https://app.azurewebsites.net"), "https://app.azurewebsites.net/api");
    assert.equal(baseUrl("https://app.azurewebsites.net/api/"), "https://app.azurewebsites.net/api");
    assert.equal(baseUrl("http://127.0.0.1:7071/custom"), "http://127.0.0.1:7071/custom");
    for (const bad of [undefined, "app.azurewebsites.net", "ftp://x/api"]) assert.throws(() => baseUrl(bad), (e: CliError) => e.exitCode === 1);
  });
});

describe("the CLI's upgrade plan", () => {
  it("prints the planner's summary, the running step, ARM's last refusal and the paused pools", () => {
    const text = planText("prod", {
      summary: ["1. control plane 1.30.5 → 1.31.2", "2. pool np1 1.30.5 → 1.31.2"],
      plan: { computedAt: "2026-01-01T00:00:00Z" },
      activeOperation: { stepId: "s2", kind: "poolVersion", pool: "np1", from: "1.30.5", to: "1.31.2", startedAt: "2026-01-01T01:00:00Z" },
      lastError: { at: "2026-01-01T00:30:00Z", failure: { status: 409, explanation: "another operation is in progress" } },
      rebootsPausedOnPools: ["np1"],
    });
    assert.equal(
      text,
      [
        "Upgrade plan of prod (computed 2026-01-01T00:00:00Z):",
        "  1. control plane 1.30.5 → 1.31.2",
        "  2. pool np1 1.30.5 → 1.31.2",
        "Running: poolVersion of pool np1 1.30.5 → 1.31.2 since 2026-01-01T01:00:00Z",
        "Last ARM error (2026-01-01T00:30:00Z): another operation is in progress",
        "Sentinel reboots paused on pools being upgraded: np1",
      ].join("\n"),
    );
    assert.equal(planText("prod", { summary: [], plan: null }), "Upgrade plan of prod:\n  nothing to do");
  });
});
