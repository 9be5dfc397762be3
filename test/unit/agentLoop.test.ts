import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentLoop, type AgentParts, type CycleOutcome } from "../../node-agent/agentLoop";
import { SentinelFileChecker } from "../../node-agent/checker";
import { UnavailableError } from "../../node-agent/client";
import { MemoryLeaseStore } from "../../node-agent/leaseFile";
import type { Level } from "../../node-agent/log";
import type { CheckinRequest, CheckinResponse } from "../../shared/protocol/checkin";

const LEASE = "7a1c1f64-5b0e-4a55-9d1c-0e6f1c2b3a4d";
const OTHER_LEASE = "0b7e6c2a-1111-4c3d-8e9f-2a3b4c5d6e7f";

interface Harness {
  loop: AgentLoop;
  requests: CheckinRequest[];
  answers: (CheckinResponse | Error)[];
  lines: { level: Level; msg: string }[];
  leases: MemoryLeaseStore;
  rebootCalls: string[];
  setBootId(id: string): void;
  setRequired(required: boolean): void;
}

function harness(options: { answers?: (CheckinResponse | Error)[]; failReboot?: boolean; leases?: MemoryLeaseStore } = {}): Harness {
  const requests: CheckinRequest[] = [];
  const answers = options.answers ?? [];
  const lines: Harness["lines"] = [];
  const rebootCalls: string[] = [];
  const leases = options.leases ?? new MemoryLeaseStore();
  let bootId = "b0000001";
  let required = true;
  const parts: AgentParts = {
    checker: { describe: "fake", check: async () => ({ required, reasons: required ? ["linux-image-azure"] : [] }) },
    rebooter: {
      describe: "fake reboot",
      reboot: async (leaseId) => {
        rebootCalls.push(leaseId);
        if (options.failReboot) throw new Error("systemctl: not found");
      },
    },
    bootId: { read: async () => bootId },
    client: {
      checkin: async (request) => {
        requests.push(structuredClone(request));
        const next = answers.length > 1 ? answers.shift()! : answers[0];
        if (!next) throw new Error("no answer scripted");
        if (next instanceof Error) throw next;
        return next;
      },
    },
    leases,
    log: (level, msg) => lines.push({ level, msg }),
    random: () => 0.5,
  };
  const loop = new AgentLoop({ agentVersion: "0.1.0", jitter: 0.1, backoffBaseMs: 1000, backoffMaxMs: 8000, intervalScale: 1 }, parts);
  return { loop, requests, answers, lines, leases, rebootCalls, setBootId: (id) => (bootId = id), setRequired: (r) => (required = r) };
}

const wait: CheckinResponse = { action: "wait", state: "pending", reason: "waiting for a free lock slot (held by node-2)", nextCheckinSeconds: 10 };
const reboot: CheckinResponse = { action: "reboot", leaseId: LEASE, state: "reboot-ordered", reason: "drained; reboot ordered", nextCheckinSeconds: 10 };

describe("the agent loop", () => {
  it("reports the boot id, the sentinel and its reasons, and waits the answered interval", async () => {
    const h = harness({ answers: [wait] });
    const outcome = await h.loop.cycle();
    assert.deepEqual(h.requests[0], { bootId: "b0000001", rebootRequired: true, reasons: ["linux-image-azure"], agentVersion: "0.1.0" });
    assert.equal(outcome.kind, "answered");
    assert.equal(outcome.nextMs, 10_000);
    assert.equal(h.rebootCalls.length, 0);
    assert.equal(h.lines.length, 1, "one log line per decision");
  });

  it("reboots on a reboot answer with a lease, recording the lease first", async () => {
    const h = harness({ answers: [reboot] });
    const outcome = await h.loop.cycle();
    assert.equal(outcome.kind === "answered" && outcome.rebooted, true);
    assert.deepEqual(h.rebootCalls, [LEASE]);
    assert.equal(h.leases.lease?.leaseId, LEASE);
    assert.equal(h.leases.lease?.bootId, "b0000001");
  });

  it("reboots at most once per lease, even when told again", async () => {
    const h = harness({ answers: [reboot] });
    await h.loop.cycle();
    await h.loop.cycle();
    await h.loop.cycle();
    assert.deepEqual(h.rebootCalls, [LEASE]);
    assert.equal(h.requests[1]!.leaseId, LEASE, "the acted lease is echoed");
  });

  it("does not reboot again after a restart for a lease it already acted on", async () => {
    const leases = new MemoryLeaseStore();
    await harness({ answers: [reboot], leases }).loop.cycle();
    const restarted = harness({ answers: [reboot], leases });
    await restarted.loop.cycle();
    assert.deepEqual(restarted.rebootCalls, []);
    assert.match(restarted.lines[0]!.msg, /already rebooted for this lease/);
  });

  it("reboots again for a new lease", async () => {
    const h = harness({ answers: [reboot, { ...reboot, leaseId: OTHER_LEASE }] });
    await h.loop.cycle();
    h.setBootId("b0000002");
    await h.loop.cycle();
    assert.deepEqual(h.rebootCalls, [LEASE, OTHER_LEASE]);
  });

  it("never reboots on a reboot answer without a lease", async () => {
    const h = harness({ answers: [{ ...reboot, leaseId: undefined }] });
    await h.loop.cycle();
    assert.deepEqual(h.rebootCalls, []);
    assert.equal(h.lines[0]!.level, "warn");
  });

  it("does not reboot when the lease cannot be recorded", async () => {
    const leases = new MemoryLeaseStore();
    leases.write = async () => {
      throw new Error("read-only file system");
    };
    const h = harness({ answers: [reboot], leases });
    await h.loop.cycle();
    assert.deepEqual(h.rebootCalls, []);
    assert.match(h.lines[0]!.msg, /cannot record the lease/);
  });

  it("does not retry a failed reboot for the same lease", async () => {
    const h = harness({ answers: [reboot], failReboot: true });
    await h.loop.cycle();
    await h.loop.cycle();
    assert.deepEqual(h.rebootCalls, [LEASE]);
    assert.ok(h.lines.some((l) => l.level === "error" && /the reboot failed/.test(l.msg)));
  });

  it("backs off exponentially while the orchestrator is unavailable, and resets after an answer", async () => {
    const down = new UnavailableError("cannot reach the orchestrator: ECONNREFUSED");
    const h = harness({ answers: [down, down, down, wait] });
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) delays.push((await h.loop.cycle()).nextMs);
    assert.deepEqual(delays, [750, 1500, 3000, 10_000]);
    assert.deepEqual(h.rebootCalls, []);
  });

  it("checks in after a reboot with the new boot id and the lease it acted on", async () => {
    const h = harness({ answers: [reboot, { action: "none", state: "idle", reason: "rebooted and back in service", nextCheckinSeconds: 300 }] });
    await h.loop.cycle();
    h.setBootId("b0000002");
    h.setRequired(false);
    await h.loop.cycle();
    assert.deepEqual(h.requests[1], { bootId: "b0000002", rebootRequired: false, reasons: [], agentVersion: "0.1.0", leaseId: LEASE });
  });
});

describe("the running agent", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("checks in at once when the sentinel appears, without waiting for the interval", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rollcall-watch-"));
    dirs.push(dir);
    const sentinel = join(dir, "reboot-required");
    const h = harness({ answers: [{ action: "none", state: "idle", reason: "no reboot required", nextCheckinSeconds: 3600 }] });
    const checker = new SentinelFileChecker(sentinel);
    const loop = new AgentLoop(
      { agentVersion: "0.1.0", jitter: 0, backoffBaseMs: 1000, backoffMaxMs: 8000, intervalScale: 1, watchFile: sentinel },
      { checker, rebooter: { describe: "x", reboot: async () => {} }, bootId: { read: async () => "b0000001" }, client: { checkin: async (r) => (h.requests.push(r), h.answers[0] as CheckinResponse) }, leases: new MemoryLeaseStore(), log: () => {} },
    );
    const outcomes: CycleOutcome[] = [];
    const next = () => new Promise<void>((resolve) => {
      const off = loop.onCycle((o) => {
        outcomes.push(o);
        off();
        resolve();
      });
    });
    let seen = next();
    loop.start();
    await seen;
    assert.equal(h.requests.at(-1)!.rebootRequired, false);
    seen = next();
    await writeFile(sentinel, "");
    await seen;
    assert.equal(h.requests.at(-1)!.rebootRequired, true, "checked in with the sentinel long before the hour-long interval");
    seen = next();
    await unlink(sentinel);
    await seen;
    assert.equal(h.requests.at(-1)!.rebootRequired, false);
    await loop.stop();
  });
});
