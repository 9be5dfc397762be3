import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentLoop, type AgentParts } from "../../node-agent/agentLoop";
import { FileBootIdReader } from "../../node-agent/bootId";
import { SentinelFileChecker } from "../../node-agent/checker";
import { UnavailableError } from "../../node-agent/client";
import { LeaseFile, type LeaseStore, MemoryLeaseStore } from "../../node-agent/leaseFile";
import type { Fields, Level } from "../../node-agent/log";
import type { CheckinRequest, CheckinResponse } from "../../shared/protocol/checkin";

const LEASE = "7a1c1f64-5b0e-4a55-9d1c-0e6f1c2b3a4d";
const OTHER_LEASE = "0b7e6c2a-1111-4c3d-8e9f-2a3b4c5d6e7f";

interface Harness {
  loop: AgentLoop;
  requests: CheckinRequest[];
  answers: (CheckinResponse | Error)[];
  lines: { level: Level; msg: string; fields?: Fields }[];
  leases: LeaseStore;
  rebootCalls: string[];
  setBootId(id: string): void;
  setRequired(required: boolean): void;
}

/** The fake node booted an hour ago unless a test says otherwise. */
function harness(options: { answers?: (CheckinResponse | Error)[]; failReboot?: boolean; leases?: LeaseStore; bootedAt?: Date } = {}): Harness {
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
    bootId: { read: async () => bootId, bootedAt: () => options.bootedAt ?? new Date(Date.now() - 3_600_000) },
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
    log: (level, msg, fields) => lines.push({ level, msg, fields }),
    random: () => 0.5,
  };
  const loop = new AgentLoop({ agentVersion: "0.1.0", jitter: 0, backoffBaseMs: 1000, backoffMaxMs: 8000, intervalScale: 1 }, parts);
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
    assert.equal((await h.leases.read())?.leaseId, LEASE);
    assert.equal((await h.leases.read())?.bootId, "b0000001");
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

describe("the agent's bounds on the orchestrator's answers", () => {
  it("waits at most a day, however long an interval the orchestrator answers", async () => {
    const h = harness({ answers: [{ ...wait, nextCheckinSeconds: 2 ** 31 }] });
    const outcome = await h.loop.cycle();
    assert.equal(outcome.nextMs, 86_400_000);
    assert.ok(h.lines.some((l) => l.level === "warn" && /longer than the agent allows/.test(l.msg)), "the clamp is logged");
  });

  it("logs at most the first 1,000 characters of the answer's reason and 100 of its state", async () => {
    const h = harness({ answers: [{ ...wait, state: "s".repeat(5000), reason: "r".repeat(60_000) }] });
    const outcome = await h.loop.cycle();
    assert.equal(outcome.kind, "answered");
    const fields = h.lines.at(-1)!.fields!;
    assert.equal(String(fields.reason).length, 1000);
    assert.equal(String(fields.state).length, 100);
  });
});

describe("a damaged lease file", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  async function leaseFileWith(content: string, writtenAt: Date): Promise<LeaseFile> {
    const dir = await mkdtemp(join(tmpdir(), "rollcall-lease-"));
    dirs.push(dir);
    const file = new LeaseFile(dir);
    await writeFile(file.path, content);
    await utimes(file.path, writtenAt, writtenAt);
    return file;
  }
  const lastBoot = new Date(Date.now() - 3_600_000);
  const beforeLastBoot = new Date(lastBoot.getTime() - 86_400_000);
  const damaged = ["", "{", "null", "[]", "42", '{"bootId":"b0000001"}', `{"leaseId":"not-a-uuid","bootId":"b0000001","rebootedAt":""}`, `{"leaseId":"${LEASE}","bootId":"../etc","rebootedAt":""}`, `{"leaseId":"${LEASE}","bootId":"b0000001","rebootedAt":"${"x".repeat(10_000)}"}`];

  for (const content of damaged) {
    it(`keeps checking in when the lease file holds ${JSON.stringify(content.slice(0, 40))}, logging it and putting it aside`, async () => {
      const leases = await leaseFileWith(content, beforeLastBoot);
      const h = harness({ answers: [wait], leases, bootedAt: lastBoot });
      const first = await h.loop.cycle();
      assert.equal(first.kind, "answered", "the check-in went through");
      assert.equal(h.requests[0]!.leaseId, undefined, "no lease echoed from a damaged record");
      assert.ok(h.lines.some((l) => l.level === "error" && /lease record .* is damaged/.test(l.msg)), JSON.stringify(h.lines));
      assert.equal(await readFile(`${leases.path}.damaged`, "utf8"), content, "the damaged record is kept for inspection");
      assert.equal(await leases.read(), undefined, "replaced: written before this boot, it cannot hold an order still standing");
      assert.equal((await h.loop.cycle()).kind, "answered");
      assert.equal(h.lines.filter((l) => l.level === "error").length, 1, "logged once, not at every check-in");
    });
  }

  it("keeps checking in when the lease file is larger than any lease record, without reading it whole", async () => {
    const leases = await leaseFileWith("{".repeat(5 * 2 ** 20), beforeLastBoot);
    const h = harness({ answers: [wait], leases, bootedAt: lastBoot });
    assert.equal((await h.loop.cycle()).kind, "answered");
    assert.ok(h.lines.some((l) => l.level === "error" && /larger than/.test(l.msg)));
  });

  it("still reboots for a lease when the damaged record was written before this boot", async () => {
    const leases = await leaseFileWith("null", beforeLastBoot);
    const h = harness({ answers: [reboot], leases, bootedAt: lastBoot });
    await h.loop.cycle();
    assert.deepEqual(h.rebootCalls, [LEASE]);
    assert.equal((await leases.read())?.leaseId, LEASE);
  });

  it("does not reboot twice for one lease when the record of it is damaged before the node goes down", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rollcall-lease-"));
    dirs.push(dir);
    const leases = new LeaseFile(dir);
    const h = harness({ answers: [reboot, reboot, { ...reboot, leaseId: OTHER_LEASE }], leases, bootedAt: lastBoot });
    await h.loop.cycle();
    assert.deepEqual(h.rebootCalls, [LEASE]);
    // The reboot has not happened yet (same boot id) and the record is lost.
    await writeFile(leases.path, "null");
    await h.loop.cycle();
    assert.deepEqual(h.rebootCalls, [LEASE], "the lease ordered during the boot the record was damaged in may be the one acted on");
    assert.ok(h.lines.some((l) => l.level === "error" && /recording it without rebooting/.test(l.msg)));
    assert.equal((await leases.read())?.leaseId, LEASE, "adopted as the lease acted on");
    await h.loop.cycle();
    assert.deepEqual(h.rebootCalls, [LEASE, OTHER_LEASE], "a later lease reboots as usual");
  });

  it("reboots as usual once the node booted again after a record damaged during the previous boot", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rollcall-lease-"));
    dirs.push(dir);
    const leases = new LeaseFile(dir);
    await writeFile(leases.path, "");
    const h = harness({ answers: [wait, { ...reboot, leaseId: OTHER_LEASE }], leases, bootedAt: lastBoot });
    await h.loop.cycle();
    h.setBootId("b0000002");
    await h.loop.cycle();
    assert.deepEqual(h.rebootCalls, [OTHER_LEASE]);
  });

  it("checks in without the lease echo when the lease file cannot be read at all, and then refuses to reboot", async () => {
    const unreadable: LeaseStore = {
      read: async () => {
        throw Object.assign(new Error("EIO: i/o error, read"), { code: "EIO" });
      },
      write: async () => {},
      putAside: async () => {},
    };
    const h = harness({ answers: [reboot], leases: unreadable });
    const outcome = await h.loop.cycle();
    assert.equal(outcome.kind, "answered");
    assert.equal(h.requests[0]!.leaseId, undefined);
    assert.deepEqual(h.rebootCalls, []);
    assert.ok(h.lines.some((l) => l.level === "error" && /not rebooting/.test(l.msg)));
  });
});

describe("the running agent", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  /** An agent answered "nothing to do, next in an hour", watching a sentinel and a boot id file; `next()` resolves at its next check-in. */
  function watching(files: { sentinel: string; bootIdFile: string; pollMs?: number }) {
    const requests: CheckinRequest[] = [];
    const idle: CheckinResponse = { action: "none", state: "idle", reason: "no reboot required", nextCheckinSeconds: 3600 };
    const loop = new AgentLoop(
      { agentVersion: "0.1.0", jitter: 0, backoffBaseMs: 1000, backoffMaxMs: 8000, intervalScale: 1, watch: { sentinelFile: files.sentinel, bootIdFile: files.bootIdFile, pollMs: files.pollMs ?? 60_000 } },
      {
        checker: new SentinelFileChecker(files.sentinel),
        rebooter: { describe: "x", reboot: async () => {} },
        bootId: new FileBootIdReader(files.bootIdFile),
        client: { checkin: async (r) => (requests.push(r), idle) },
        leases: new MemoryLeaseStore(),
        log: () => {},
      },
    );
    const next = () =>
      new Promise<CheckinRequest>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no check-in within 3 s (the interval is an hour)")), 3000);
        const off = loop.onCycle(() => {
          clearTimeout(timer);
          off();
          resolve(requests.at(-1)!);
        });
      });
    return { loop, next };
  }

  async function nodeFiles(): Promise<{ dir: string; sentinel: string; bootIdFile: string }> {
    const dir = await mkdtemp(join(tmpdir(), "rollcall-watch-"));
    dirs.push(dir);
    const bootIdFile = join(dir, "boot_id");
    await writeFile(bootIdFile, "b0000001\n");
    return { dir, sentinel: join(dir, "reboot-required"), bootIdFile };
  }

  it("checks in at once when the sentinel appears, without waiting for the interval", async () => {
    const files = await nodeFiles();
    const { loop, next } = watching(files);
    let seen = next();
    loop.start();
    assert.equal((await seen).rebootRequired, false);
    seen = next();
    await writeFile(files.sentinel, "");
    assert.equal((await seen).rebootRequired, true, "checked in with the sentinel long before the hour-long interval");
    seen = next();
    await unlink(files.sentinel);
    assert.equal((await seen).rebootRequired, false);
    await loop.stop();
  });

  it("checks in at once when the boot id changes, without waiting for the interval", async () => {
    const files = await nodeFiles();
    const { loop, next } = watching(files);
    let seen = next();
    loop.start();
    assert.equal((await seen).bootId, "b0000001");
    seen = next();
    await writeFile(files.bootIdFile, "b0000002\n");
    assert.equal((await seen).bootId, "b0000002", "checked in with the new boot id long before the hour-long interval");
    await loop.stop();
  });

  it("polls a sentinel whose folder does not exist yet, and checks in at once when it appears", async () => {
    const files = await nodeFiles();
    const sentinel = join(files.dir, "run", "reboot-required");
    const { loop, next } = watching({ ...files, sentinel, pollMs: 50 });
    let seen = next();
    loop.start();
    assert.equal((await seen).rebootRequired, false);
    seen = next();
    await mkdir(join(files.dir, "run"));
    await writeFile(sentinel, "");
    assert.equal((await seen).rebootRequired, true);
    await loop.stop();
  });

  it("leaves no timer behind once stopped, watched or polled", async () => {
    const files = await nodeFiles();
    const before = process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;
    const { loop, next } = watching({ ...files, sentinel: join(files.dir, "run", "reboot-required"), pollMs: 50 });
    const seen = next();
    loop.start();
    await seen;
    await loop.stop();
    assert.equal(process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length, before);
  });

  it("does not hot-loop when the orchestrator answers an interval beyond Node's timer range", async () => {
    // Node fires a setTimeout of more than 2^31-1 ms after 1 ms.
    const h = harness({ answers: [{ ...wait, nextCheckinSeconds: 3_000_000 }] });
    h.loop.start();
    await new Promise((r) => setTimeout(r, 300));
    await h.loop.stop();
    assert.equal(h.requests.length, 1);
  });
});
