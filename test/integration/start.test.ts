import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { runStart } from "../../local/start";
import { collector } from "../support/output";

/** Children of this process, from /proc (no `ps`, which would be a child itself). */
function childProcesses(): string[] {
  const children: string[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid) children.push(`${entry} ${readFileSync(`/proc/${entry}/cmdline`, "utf8").replace(/\0/g, " ").slice(0, 120)}`);
    } catch {
      // The process ended while we looked.
    }
  }
  return children;
}

describe("npm start in simulation mode", () => {
  it("rolls every marked node of a small simulated cluster once, prints the summary and exits cleanly", async () => {
    const output = collector();
    const result = await runStart({ argv: ["--once", "--nodes", "3", "--port", "0"], out: output.stream, tty: false });
    const text = output.text();
    assert.equal(result.exitCode, 0, text);
    const summary = result.summary!;
    assert.equal(summary.marked.length, 2, "all nodes but one are marked by default");
    assert.deepEqual([...summary.rebooted].sort(), [...summary.marked].sort());
    assert.deepEqual(summary.extraReboots, []);
    assert.equal(summary.pdbViolations, 0);
    assert.equal(summary.maxNodesUnavailable, 1, "one node at a time with concurrency 1");
    assert.equal(summary.handoffs.count, 1, "the lock passed once from the first node to the second");
    for (const phase of ["wait", "cordon", "drain", "reboot", "return"] as const) assert.equal(summary.phases[phase].count, 2, `${phase} measured for both nodes`);
    assert.match(text, /Summary: 2 of 2 marked nodes rebooted/);
    assert.match(text, /PDB violations: 0/);
    assert.match(text, /OK: every invariant held/);
    assert.match(text, /pending → cordoning/, "plain progress lines outside a terminal");
  });

  it("without --once keeps serving after the rollout until it is stopped, like Ctrl-C", async () => {
    const output = collector();
    const controller = new AbortController();
    const run = runStart({ argv: ["--nodes", "2", "--reboot", "1", "--port", "0"], out: output.stream, tty: false, signal: controller.signal });
    for (let i = 0; i < 1200 && !/Rollout complete/.test(output.text()); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(output.text(), /Still serving; Ctrl-C to stop/);
    controller.abort();
    const result = await run;
    assert.equal(result.exitCode, 0);
    assert.deepEqual(result.summary?.notRebooted, []);
  });

  it("leaves no child process behind (Azurite is stopped)", () => {
    // tsx's own esbuild service is the test runner's, not the run's.
    assert.deepEqual(childProcesses().filter((p) => !p.includes("esbuild --service")), []);
  });

  it("restores the app settings it set for the handlers", () => {
    assert.equal(process.env.ROLLCALL_CLUSTERS, undefined);
    assert.equal(process.env.ROLLCALL_STORAGE_CONNECTION, undefined);
  });

  it("refuses --once together with --kubeconfig, naming the problem", async () => {
    const output = collector();
    const result = await runStart({ argv: ["--once", "--kubeconfig", "/tmp/none"], out: output.stream, tty: false });
    assert.equal(result.exitCode, 2);
    assert.match(output.text(), /--once rolls the simulated cluster/);
  });
});
