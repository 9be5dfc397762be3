import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { backoffDelay, withJitter } from "../../node-agent/backoff";
import { FileBootIdReader } from "../../node-agent/bootId";
import { SentinelCommandChecker, SentinelFileChecker, parseReasons } from "../../node-agent/checker";
import { HttpOrchestratorClient, RejectedError, UnavailableError } from "../../node-agent/client";
import { DamagedLeaseError, LeaseFile } from "../../node-agent/leaseFile";
import { isoTime } from "../../node-agent/isoTime";
import { formatLine } from "../../node-agent/log";
import { MAX_REASON_LENGTH, MAX_REASONS, MAX_REASONS_JSON_BYTES, reasonsJsonBytes } from "../../shared/protocol/checkin";
import { CommandRebooter } from "../../node-agent/rebooter";
import type { Transport } from "../../node-agent/transport";
import { curlTransport } from "../../node-agent/transportCurl";
import { nodeHttpTransport } from "../../node-agent/transportNodeHttp";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "rollcall-agent-"));
  dirs.push(dir);
  return dir;
}
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe("the sentinel file checker", () => {
  it("reports no reboot while the sentinel is absent", async () => {
    const dir = await tempDir();
    assert.deepEqual(await new SentinelFileChecker(join(dir, "reboot-required")).check(), { required: false, reasons: [] });
  });

  it("reports a reboot with the packages of the .pkgs companion as reasons", async () => {
    const dir = await tempDir();
    const sentinel = join(dir, "reboot-required");
    await writeFile(sentinel, "*** System restart required ***\n");
    assert.deepEqual(await new SentinelFileChecker(sentinel).check(), { required: true, reasons: [] });
    await writeFile(`${sentinel}.pkgs`, "linux-image-azure\nlibc6\n\nlibc6\n");
    assert.deepEqual(await new SentinelFileChecker(sentinel).check(), { required: true, reasons: ["linux-image-azure", "libc6"] });
  });

  it("keeps reasons within the protocol's limits", () => {
    const reasons = parseReasons(Array.from({ length: 600 }, (_, i) => `pkg${i}-${"x".repeat(300)}`).join("\n"));
    assert.ok(reasons.length > 0 && reasons.length <= MAX_REASONS);
    assert.ok(reasons.every((r) => r.length <= MAX_REASON_LENGTH));
    assert.ok(reasonsJsonBytes(reasons) <= MAX_REASONS_JSON_BYTES, "the list as a whole fits the protocol's byte budget");
    assert.equal(parseReasons(Array.from({ length: 600 }, (_, i) => `p${i}`).join("\n")).length, MAX_REASONS);
  });
});

describe("files the agent reads from the host", () => {
  it("read the head of a huge .pkgs companion only, and still give reasons within the protocol's limits", async () => {
    const dir = await tempDir();
    const sentinel = join(dir, "reboot-required");
    await writeFile(sentinel, "");
    // 3 GiB (sparse): more than Node can read into one buffer, so reading it whole fails.
    await writeFile(`${sentinel}.pkgs`, "linux-image-azure\nlibc6\n");
    await truncate(`${sentinel}.pkgs`, 3 * 2 ** 30);
    const status = await new SentinelFileChecker(sentinel).check();
    assert.deepEqual(status.reasons.slice(0, 2), ["linux-image-azure", "libc6"]);
    assert.ok(reasonsJsonBytes(status.reasons) <= MAX_REASONS_JSON_BYTES);
  });

  it("refuse a boot id file that is far larger than a boot id", async () => {
    const dir = await tempDir();
    const file = join(dir, "boot_id");
    await writeFile(file, `0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0${" ".repeat(2 ** 20)}`);
    await assert.rejects(new FileBootIdReader(file).read(), /larger than/);
  });
});

describe("the sentinel command checker", () => {
  it("reports a reboot when the command exits 0 and none otherwise", async () => {
    assert.equal((await new SentinelCommandChecker([process.execPath, "-e", "process.exit(0)"]).check()).required, true);
    assert.equal((await new SentinelCommandChecker([process.execPath, "-e", "process.exit(1)"]).check()).required, false);
  });

  it("fails when the command cannot be started", async () => {
    await assert.rejects(new SentinelCommandChecker(["/nonexistent/command"]).check());
  });
});

describe("the reboot command", () => {
  it("succeeds when the command exits 0 and fails with its stderr otherwise", async () => {
    await new CommandRebooter([process.execPath, "-e", "process.exit(0)"]).reboot();
    await assert.rejects(new CommandRebooter([process.execPath, "-e", "console.error('no systemd'); process.exit(3)"]).reboot(), /code 3: no systemd/);
  });
});

describe("the boot id reader", () => {
  it("reads the kernel's boot id and refuses anything else", async () => {
    const dir = await tempDir();
    const file = join(dir, "boot_id");
    await writeFile(file, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n");
    assert.equal(await new FileBootIdReader(file).read(), "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
    await writeFile(file, "not a boot id");
    await assert.rejects(new FileBootIdReader(file).read(), /does not hold a boot id/);
  });
});

describe("the lease file", () => {
  it("has no lease before the first reboot and remembers the last one across instances", async () => {
    const dir = join(await tempDir(), "state");
    assert.equal(await new LeaseFile(dir).read(), undefined);
    const lease = { leaseId: "7a1c1f64-5b0e-4a55-9d1c-0e6f1c2b3a4d", bootId: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", rebootedAt: "2026-01-01T00:00:00.000Z" };
    await new LeaseFile(dir).write(lease);
    assert.deepEqual(await new LeaseFile(dir).read(), lease);
  });

  it("reports a damaged file as damaged, with when it was written, instead of guessing", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "lease.json"), "{");
    await assert.rejects(new LeaseFile(dir).read(), (e) => e instanceof DamagedLeaseError && Math.abs(e.writtenAt.getTime() - Date.now()) < 60_000);
  });

  it("puts a damaged file aside, keeping it for inspection", async () => {
    const dir = await tempDir();
    const file = new LeaseFile(dir);
    await writeFile(file.path, "null");
    await file.putAside();
    assert.equal(await file.read(), undefined);
    assert.equal(await readFile(`${file.path}.damaged`, "utf8"), "null");
  });
});

describe("intervals", () => {
  it("spread below the answered interval by up to the jitter fraction, never past it", () => {
    assert.equal(withJitter(10_000, 0.1, () => 0), 10_000);
    assert.equal(withJitter(10_000, 0.1, () => 0.999), 9_001);
    assert.equal(withJitter(10_000, 0, Math.random), 10_000);
    for (let i = 0; i < 1_000; i++) assert.ok(withJitter(60_000, 0.5) <= 60_000, "an idle agent is back within the idle interval");
  });

  it("back off exponentially with jitter up to the maximum, never to zero", () => {
    assert.equal(backoffDelay(0, 1000, 60_000, () => 0), 500);
    assert.equal(backoffDelay(0, 1000, 60_000, () => 1), 1000);
    assert.equal(backoffDelay(3, 1000, 60_000, () => 1), 8000);
    assert.equal(backoffDelay(20, 1000, 60_000, () => 1), 60_000);
    assert.equal(backoffDelay(20, 1000, 60_000, () => 0), 30_000);
  });
});

describe("the agent's timestamps", () => {
  it("read as toISOString's, without V8's toISOString and the time zones it loads", () => {
    const dates = [0, Date.UTC(2024, 1, 29, 23, 59, 59, 999), Date.UTC(1999, 11, 31, 0, 0, 0, 7), Date.UTC(9999, 11, 31, 23, 59, 59, 999), Date.now()];
    for (const ms of dates) assert.equal(isoTime(new Date(ms)), new Date(ms).toISOString());
    const year0 = new Date(Date.UTC(2000, 0, 1));
    year0.setUTCFullYear(0);
    assert.equal(isoTime(year0), "0000-01-01T00:00:00.000Z");
  });

  it("defer to V8's outside years 0 to 9999, and refuse an invalid date as it does", () => {
    for (const ms of [Date.UTC(10000, 0, 1), Date.UTC(-1, 5, 1)]) assert.equal(isoTime(new Date(ms)), new Date(ms).toISOString());
    assert.throws(() => isoTime(new Date(NaN)), RangeError);
  });
});

describe("log lines", () => {
  it("are logfmt with quoted values where needed", () => {
    const line = formatLine("info", "checked in: nothing to do", { action: "none", reason: "no reboot required" }, new Date(0));
    assert.equal(line, 'time=1970-01-01T00:00:00.000Z level=info msg="checked in: nothing to do" action=none reason="no reboot required"');
  });
});

const TRANSPORTS: [string, Transport][] = [
  ["curl", curlTransport()],
  ["Node's http module", nodeHttpTransport],
];

for (const [transportName, transport] of TRANSPORTS) describe(`the orchestrator client over ${transportName}`, () => {
  let server: Server;
  let handler: (req: IncomingMessage, body: string) => { status: number; body: unknown };
  const seen: { url?: string; headers: IncomingMessage["headers"]; body: string }[] = [];
  const answer = { action: "none", state: "idle", reason: "no reboot required", nextCheckinSeconds: 300 };

  const CLIENT_TIMEOUT_SECONDS = 30;
  async function client(tokenFile?: string): Promise<HttpOrchestratorClient> {
    server ??= await new Promise<Server>((resolve) => {
      const s = createServer((req, res) => {
        let body = "";
        req.on("data", (c: Buffer) => (body += c.toString()));
        req.on("end", () => {
          seen.push({ url: req.url, headers: req.headers, body });
          const out = handler(req, body);
          res.writeHead(out.status, { "content-type": "application/json" }).end(JSON.stringify(out.body));
        });
      });
      s.listen(0, "127.0.0.1", () => resolve(s));
    });
    const port = (server.address() as { port: number }).port;
    return new HttpOrchestratorClient({ url: `http://127.0.0.1:${port}/`, cluster: "dev", node: "node-1", functionKey: "k3y", tokenFile, timeoutMs: CLIENT_TIMEOUT_SECONDS * 1000, userAgent: "rollcall-agent/test", transport });
  }
  after(() => {
    server?.closeAllConnections();
    server?.close();
  });
  const request = { bootId: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", rebootRequired: false, reasons: [], agentVersion: "0.1.0" };

  it("posts to the check-in route with the function key and the token read fresh from its file", async () => {
    const dir = await tempDir();
    const tokenFile = join(dir, "token");
    await writeFile(tokenFile, "token-one\n");
    handler = () => ({ status: 200, body: answer });
    const c = await client(tokenFile);
    assert.deepEqual(await c.checkin(request), answer);
    await writeFile(tokenFile, "token-two");
    await c.checkin(request);
    const [first, second] = seen.slice(-2);
    assert.equal(first!.url, "/api/clusters/dev/nodes/node-1/checkin");
    assert.equal(first!.headers["x-functions-key"], "k3y");
    assert.equal(first!.headers["x-rollcall-agent-token"], "token-one");
    assert.equal(second!.headers["x-rollcall-agent-token"], "token-two");
    assert.equal(first!.headers.authorization, undefined, "Authorization stays free for App Service authentication");
    assert.equal(first!.headers.prefer, `wait=${CLIENT_TIMEOUT_SECONDS - 5}`, "offers to wait for a held answer, leaving 5 s of its timeout for the way back");
    assert.deepEqual(JSON.parse(first!.body), request);
  });

  it("treats 5xx and an unreachable orchestrator as unavailable, 4xx as refused", async () => {
    const c = await client();
    handler = () => ({ status: 503, body: { error: { message: "overloaded" } } });
    await assert.rejects(c.checkin(request), (e) => e instanceof UnavailableError && /503: overloaded/.test(e.message));
    handler = () => ({ status: 401, body: { error: { message: "bad token" } } });
    await assert.rejects(c.checkin(request), (e) => e instanceof RejectedError && e.status === 401);
    const unreachable = new HttpOrchestratorClient({ url: "http://127.0.0.1:1", cluster: "dev", node: "n", functionKey: "k", timeoutMs: 2000, userAgent: "t", transport });
    await assert.rejects(unreachable.checkin(request), UnavailableError);
  });

  it("refuses an answer that is not the protocol", async () => {
    const c = await client();
    handler = () => ({ status: 200, body: { action: "reboot-now" } });
    await assert.rejects(c.checkin(request), RejectedError);
  });

  it("aborts an answer larger than 64 KiB while reading it, and fails the check-in", async () => {
    let sent = 0;
    let closed!: () => void;
    const gone = new Promise<void>((resolve) => (closed = resolve));
    const flood = await new Promise<Server>((resolve) => {
      const s = createServer((req, res) => {
        req.resume();
        res.writeHead(200, { "content-type": "application/json" });
        res.on("close", closed);
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        const pump = () => {
          while (!res.destroyed && sent < 50 * 2 ** 20) {
            sent += chunk.length;
            if (!res.write(chunk)) return void res.once("drain", pump);
          }
          res.end();
        };
        pump();
      });
      s.listen(0, "127.0.0.1", () => resolve(s));
    });
    try {
      const port = (flood.address() as { port: number }).port;
      const c = new HttpOrchestratorClient({ url: `http://127.0.0.1:${port}`, cluster: "dev", node: "n", functionKey: "k", timeoutMs: 5000, userAgent: "t", transport });
      await assert.rejects(c.checkin(request), (e) => e instanceof RejectedError && /larger than 65536 bytes/.test(e.message));
      await gone;
      assert.ok(sent < 8 * 2 ** 20, `the agent stopped reading long before 50 MB (the server got ${sent} bytes out)`);
    } finally {
      flood.closeAllConnections();
      flood.close();
    }
  });

  it("refuses at once an answer that announces more than 64 KiB", async () => {
    const c = await client();
    handler = () => ({ status: 200, body: { ...answer, reason: "r".repeat(70_000) } });
    await assert.rejects(c.checkin(request), (e) => e instanceof RejectedError && /larger than 65536 bytes/.test(e.message));
  });

  it("gives up on an answer that trickles in past the request timeout", async () => {
    const drip = await new Promise<Server>((resolve) => {
      const s = createServer((req, res) => {
        req.resume();
        res.writeHead(200, { "content-type": "application/json" });
        const timer = setInterval(() => res.write(" "), 50);
        res.on("close", () => clearInterval(timer));
      });
      s.listen(0, "127.0.0.1", () => resolve(s));
    });
    try {
      const port = (drip.address() as { port: number }).port;
      const c = new HttpOrchestratorClient({ url: `http://127.0.0.1:${port}`, cluster: "dev", node: "n", functionKey: "k", timeoutMs: 300, userAgent: "t", transport });
      await assert.rejects(c.checkin(request), (e) => e instanceof UnavailableError && /timed out/.test(e.message));
    } finally {
      drip.closeAllConnections();
      drip.close();
    }
  });

  it("fails without calling when the token file is larger than any token", async () => {
    const dir = await tempDir();
    const tokenFile = join(dir, "token");
    await writeFile(tokenFile, "t".repeat(64 * 1024));
    const before = seen.length;
    const c = await client(tokenFile);
    await assert.rejects(c.checkin(request), (e) => e instanceof RejectedError && /larger than/.test(e.message));
    assert.equal(seen.length, before);
  });

  it("fails without calling when the token file holds a line break or a space, which no header can carry", async () => {
    const dir = await tempDir();
    const tokenFile = join(dir, "token");
    const before = seen.length;
    const c = await client(tokenFile);
    for (const forged of ["a\nx-functions-key: other", "a b", "a\u0000b"]) {
      await writeFile(tokenFile, forged);
      await assert.rejects(c.checkin(request), (e) => e instanceof RejectedError && /not a token/.test(e.message));
    }
    assert.equal(seen.length, before);
  });

  it("fails without calling when the token file is missing", async () => {
    const before = seen.length;
    const c = await client("/nonexistent/token");
    await assert.rejects(c.checkin(request), /service-account token/);
    assert.equal(seen.length, before);
  });
});
