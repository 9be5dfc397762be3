import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { formatSummary, startFailure, type StartSummary } from "../../local/start";
import { TransitionLog } from "../../local/demo/transitions";

/** Issue 13 item 5: what `npm start` reports is what it measured. */

function line(log: TransitionLog, at: number, node: string, from: string, to: string): void {
  log.addLine(`transition cluster=local node=${node} from=${from} to=${to} why="x"`, at);
}

function rollout(log: TransitionLog, node: string, pendingAt: number, lockedAt: number): number {
  line(log, pendingAt, node, "idle", "pending");
  line(log, lockedAt, node, "pending", "cordoning");
  line(log, lockedAt + 100, node, "cordoning", "draining");
  line(log, lockedAt + 5_000, node, "draining", "reboot-ordered");
  line(log, lockedAt + 60_000, node, "reboot-ordered", "rebooted");
  line(log, lockedAt + 61_000, node, "rebooted", "releasing");
  line(log, lockedAt + 61_500, node, "releasing", "idle");
  return lockedAt + 61_500;
}

const phases = { wait: { count: 0 }, cordon: { count: 0 }, drain: { count: 0 }, reboot: { count: 0 }, return: { count: 0 } };

describe("lock hand-offs in the npm start summary", () => {
  it("count a freed slot taken by a node that was already waiting, not the gap before a later, separate rollout", () => {
    const log = new TransitionLog();
    // a and b wait together: b takes a's slot 300 ms after it is freed.
    const aDone = rollout(log, "a", 0, 10);
    const bDone = rollout(log, "b", 5, aDone + 200);
    // c asks five minutes after b finished: a separate rollout.
    rollout(log, "c", bDone + 300_000, bDone + 322_000);
    assert.deepEqual(log.handoffs(), [300]);
  });
});

describe("the npm start summary against a real cluster", () => {
  it("claims no invariant it did not check, and lists what it did not check", () => {
    const summary: StartSummary = {
      mode: "cluster",
      nodes: 3,
      marked: [],
      rebooted: [],
      notRebooted: [],
      extraReboots: [],
      totalMs: 120_000,
      phases,
      handoffs: { count: 0 },
      concurrency: 1,
      ok: true,
      problems: [],
    };
    const text = formatSummary(summary);
    assert.doesNotMatch(text, /OK|invariant/);
    assert.match(text, /Summary: 3 nodes seen/);
    assert.match(text, /not checked on a real cluster: reboots per node, PodDisruptionBudget violations, nodes unavailable at once/);
    assert.match(text, /no completed reboot seen/);
    assert.doesNotMatch(text, /PDB violations|max nodes unavailable/);
  });

  it("in simulation still states the invariants it checked", () => {
    const text = formatSummary({ mode: "simulation", nodes: 2, marked: ["a"], rebooted: ["a"], notRebooted: [], extraReboots: [], totalMs: 1, phases, handoffs: { count: 0 }, maxNodesUnavailable: 1, pdbViolations: 0, concurrency: 1, ok: true, problems: [] });
    assert.match(text, /OK: every invariant held/);
  });
});

describe("a start-up failure", () => {
  it("is one line that names the flag to change", () => {
    const taken = Object.assign(new Error("listen EADDRINUSE: address already in use 127.0.0.1:7071"), { code: "EADDRINUSE" });
    const message = startFailure(taken, { port: 7071 });
    assert.match(message, /port 7071 is already taken.*--port/);
    assert.doesNotMatch(message, /\n/);
  });
});
