import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { freePort } from "../../local/azurite/startAzurite";
import { rollOut, SERVED_CLUSTER, SERVED_KEY, useServedRollcall } from "../support/servedRollcall";

/**
 * The `rollcall` command as an operator runs it: `bin/rollcall.js` in a child process (the launcher
 * runs the TypeScript sources through tsx, as in a fresh clone) against Rollcall served by the local
 * Functions host, Azurite and the simulated API server.
 */

const BIN = resolve(__dirname, "../../bin/rollcall.js");
const served = useServedRollcall();

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Only what the CLI reads, so nothing of the test process's settings leaks in. */
function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, ROLLCALL_URL: served.apiUrl, ROLLCALL_KEY: SERVED_KEY, ...extra };
}

function start(args: string[], env = cliEnv()) {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  const run: Run = { code: null, stdout: "", stderr: "" };
  child.stdout.on("data", (chunk: Buffer) => (run.stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (run.stderr += chunk.toString()));
  const done = new Promise<Run>((resolve) => child.on("close", (code) => resolve({ ...run, code })));
  return { child, run, done };
}

const rollcall = (args: string[], env?: NodeJS.ProcessEnv) => start(args, env).done;

async function checkinNodes(nodes: Record<string, boolean>): Promise<void> {
  for (const [node, required] of Object.entries(nodes)) {
    if (!served.sim.getNode(node)) served.sim.addNode(node);
    const bootId = served.sim.getNode(node)!.status.nodeInfo.bootID as string;
    const answer = await served.checkin(node, { bootId, rebootRequired: required, reasons: required ? ["linux-image-azure"] : [], agentVersion: "test" });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
  }
}

describe("the rollcall CLI against a served Rollcall", () => {
  it("prints the status as tables of nodes, lock holders and the queue with each hold reason, finding the only cluster itself", async () => {
    served.configure({ ROLLCALL_CONCURRENCY: "1" });
    await checkinNodes({ "cli-a": true, "cli-b": true, "cli-c": false });
    const run = await rollcall(["status"]);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.split("\n");
    assert.match(lines[0]!, new RegExp(`^CLUSTER ${SERVED_CLUSTER}   SLOTS 1 \\(0 free\\)   NODES 3$`));
    assert.match(lines[1]!, /^NODE\s+STATE\s+AGE\s+REBOOT-REQUIRED\s+LAST-CHECKIN\s+WHY$/);
    const row = (node: string) => lines.find((l) => l.startsWith(`${node} `))?.split(/\s{3,}/);
    assert.equal(row("cli-b")?.[1], "pending");
    assert.equal(row("cli-b")?.[3], "yes");
    assert.equal(row("cli-c")?.[1], "idle");
    assert.equal(row("cli-c")?.[3], "no");
    const holders = lines.indexOf("LOCK HOLDERS");
    assert.match(lines[holders + 1]!, /^NODE\s+LEASE\s+HELD\s+EXPIRES$/);
    assert.match(lines[holders + 2]!, /^cli-a\s+[0-9a-f-]{36}\s+\d+s\s+in \d+m$/);
    const queue = lines.indexOf("QUEUE");
    assert.match(lines[queue + 1]!, /^#\s+NODE\s+WAITING\s+PRIORITY\s+REQUESTED-BY\s+NOT-BEFORE\s+HOLD-REASON$/);
    const waiting = lines[queue + 2]!.split(/\s{3,}/);
    assert.deepEqual(waiting.slice(0, 2), ["1", "cli-b"]);
    assert.match(waiting.at(-1)!, /cli-a/, "the hold reason names the holder");
  });

  it("prints the API's answer with -o json and -o yaml", async () => {
    const json = await rollcall(["status", "-o", "json", "--cluster", SERVED_CLUSTER]);
    assert.equal(json.code, 0, json.stderr);
    const status = JSON.parse(json.stdout);
    assert.equal(status.cluster, SERVED_CLUSTER);
    assert.deepEqual(status.nodes.map((n: { node: string }) => n.node), ["cli-a", "cli-b", "cli-c"]);
    assert.equal(status.queue[0].node, "cli-b");
    const yaml = await rollcall(["status", "-o", "yaml"]);
    assert.equal(yaml.code, 0, yaml.stderr);
    assert.match(yaml.stdout, new RegExp(`^cluster: ${SERVED_CLUSTER}\\n`));
    assert.match(yaml.stdout, /\nnodes:\n  - node: cli-a\n    state: \S+\n/);
    assert.match(yaml.stdout, /\n    rebootRequired: true\n/);
  });

  it("asks for a drain-only maintenance and cancels it; a second cancel is an API refusal with exit code 2", async () => {
    const asked = await rollcall(["reboot", "cli-c", "--reason", "kernel test", "--drain-only", "--not-before", "2h", "-o", "json"]);
    assert.equal(asked.code, 0, asked.stderr);
    const answer = JSON.parse(asked.stdout);
    assert.equal(answer.created, true);
    assert.equal(answer.request.mode, "drain-only");
    assert.equal(answer.request.reason, "kernel test");
    assert.ok(Date.parse(answer.request.notBefore) > Date.now() + 3600_000, "2h is two hours from now");
    const cancelled = await rollcall(["cancel", "cli-c"]);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.match(cancelled.stdout, new RegExp(`^Request ${answer.requestId} for cli-c cancelled`));
    const again = await rollcall(["cancel", "cli-c"]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /^error: Node cli-c in cluster prod has no reboot request to cancel \(404 nothing_to_cancel\)/);
  });

  it("releases only what can be released, and says which route is missing when retry is not deployed", async () => {
    const release = await rollcall(["release", "cli-c"]);
    assert.equal(release.code, 2);
    assert.match(release.stderr, /only nodes in maintenance, stuck or quarantined can be released \(409 not_releasable\)/);
    const retry = await rollcall(["retry", "cli-c"]);
    assert.equal(retry.code, 2, retry.stderr);
    // Until the route is deployed the host answers an empty 404; once it is, cli-c (idle) is the route's own refusal.
    assert.match(retry.stderr, /no retry route \(POST .*\/api\/clusters\/prod\/nodes\/cli-c\/retry answered 404\)|\((404|409) [a-z_]+\)/);
  });

  it("passes on the upgrade planner's refusal for a cluster that is not AKS", async () => {
    const run = await rollcall(["plan"]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^error: Cluster prod has no aksResourceId; upgrade planning needs an AKS cluster \(409 not_aks\)/);
  });

  it("replaces the policy from a file, and lists each problem of an invalid one with exit code 2", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rollcall-cli-"));
    try {
      await writeFile(join(dir, "good.json"), JSON.stringify({ concurrency: 2 }));
      await writeFile(join(dir, "bad.json"), JSON.stringify({ concurrency: "many" }));
      const set = await rollcall(["policy", "set", "-f", join(dir, "good.json")]);
      assert.equal(set.code, 0, set.stderr);
      assert.match(set.stdout, /^Policy of prod replaced by function-key at /);
      const got = await rollcall(["policy", "get", "-o", "json"]);
      assert.equal(JSON.parse(got.stdout).effective.concurrency, 2);
      const bad = await rollcall(["policy", "set", "-f", join(dir, "bad.json")]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /\(400 invalid_policy\)\n  concurrency: /);
      assert.equal(JSON.parse((await rollcall(["policy", "get", "-o", "json"])).stdout).effective.concurrency, 2, "the stored policy is unchanged");
      const missing = await rollcall(["policy", "set", "-f", join(dir, "none.json")]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /Cannot read .*none\.json: ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("lists finished reboots with their phase durations after a rollout", async () => {
    served.configure();
    await checkinNodes({ "cli-h": false });
    const empty = await rollcall(["history"]);
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(empty.stdout, "No history in cluster prod yet.\n");
    await rollOut(served, ["cli-h"]);
    const run = await rollcall(["history"]);
    assert.equal(run.code, 0, run.stderr);
    const [header, row] = run.stdout.trim().split("\n");
    assert.match(header!, /^NODE\s+OUTCOME\s+FINISHED\s+REQUESTED-BY\s+WAIT\s+CORDON\s+DRAIN\s+REBOOT\s+RETURN\s+REASONS$/);
    assert.match(row!, /^cli-h\s+completed\s+\d+s\s+\S+(\s+\d+s){5}/);
    const json = JSON.parse((await rollcall(["history", "cli-h", "-o", "json", "--limit", "5"])).stdout);
    assert.deepEqual(json.entries.map((e: { node: string; outcome: string }) => [e.node, e.outcome]), [["cli-h", "completed"]]);
  });

  it("watches the status frame after frame, and stops cleanly with exit code 0 on Ctrl-C", async () => {
    const counted = await rollcall(["watch", "--interval", "0.2", "--count", "2"]);
    assert.equal(counted.code, 0, counted.stderr);
    assert.equal(counted.stdout.match(/^Every 0\.2s: rollcall status /gm)?.length, 2);
    const watch = start(["watch", "--interval", "0.2"]);
    for (let i = 0; i < 200 && !/LOCK HOLDERS/.test(watch.run.stdout); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(watch.run.stdout, /CLUSTER prod/);
    watch.child.kill("SIGINT");
    const ended = await watch.done;
    assert.equal(ended.code, 0, ended.stderr);
    assert.equal(ended.stderr, "");
  });

  it("exits 2 with what to set when the function key is wrong or missing", async () => {
    const wrong = await rollcall(["status"], cliEnv({ ROLLCALL_KEY: "not-the-key" }));
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /function key was refused .*set --key or ROLLCALL_KEY/);
    const none = await rollcall(["status", "--cluster", "prod"], cliEnv({ ROLLCALL_KEY: undefined }));
    assert.equal(none.code, 2);
    assert.match(none.stderr, /No function key .*set --key or ROLLCALL_KEY/);
  });

  it("exits 3 naming the URL setting when Rollcall cannot be reached", async () => {
    const port = await freePort();
    const run = await rollcall(["status", "--url", `http://127.0.0.1:${port}/api`]);
    assert.equal(run.code, 3);
    assert.match(run.stderr, new RegExp(`Cannot reach Rollcall at http://127\\.0\\.0\\.1:${port}/api \\(ECONNREFUSED\\): check the URL \\(--url or ROLLCALL_URL\\)`));
  });

  it("exits 1 for bad usage, saying what is wrong", async () => {
    const cases: [string[], RegExp][] = [
      [["frobnicate"], /Unknown command "frobnicate"/],
      [["reboot"], /reboot takes one NODE/],
      [["status", "-o", "xml"], /-o must be one of table, json, yaml/],
      [["status", "--reason", "x"], /status takes no --reason/],
      [["reboot", "cli-a", "--not-before", "tomorrow"], /--not-before must be a date-time/],
      [["policy", "set"], /policy set needs -f FILE/],
      [["reboot", "cli-a", "--priority", "high"], /--priority must be a whole number from 0 to 100/],
      [["status", "--bogus"], /Unknown option '--bogus'/],
    ];
    for (const [args, message] of cases) {
      const run = await rollcall(args);
      assert.equal(run.code, 1, `${args.join(" ")}: ${run.stderr}`);
      assert.match(run.stderr, message, args.join(" "));
      assert.ok(!/\n\s+at /.test(run.stderr), "no stack trace");
    }
    const noUrl = await rollcall(["status"], cliEnv({ ROLLCALL_URL: undefined }));
    assert.equal(noUrl.code, 1);
    assert.match(noUrl.stderr, /No Rollcall URL: set --url or ROLLCALL_URL/);
  });
});

describe("the rollcall CLI against a stand-in for an app under App Service authentication", () => {
  it("sends the Azure CLI's Entra token beside the function key, says what to do on 401, 403 and 5xx, and stops on Ctrl-C", async () => {
    const seen: IncomingHttpHeaders[] = [];
    const server = createServer((request, response) => {
      seen.push(request.headers);
      // A cluster whose status never comes: what Ctrl-C must be able to end.
      if (request.url?.includes("/clusters/slow/")) return;
      const [status, body] = request.url?.includes("/release")
        ? [401, { error: { code: "unauthenticated", message: "This route needs a Microsoft Entra ID token", requiredRole: "Rollcall.Operate" } }]
        : request.url?.includes("/reboot")
          ? [403, { error: { code: "missing_role", message: "Nora (object id x) lacks the app role Rollcall.Operate", requiredRole: "Rollcall.Operate" } }]
          : request.url?.startsWith("/api/health")
            ? [503, { status: "unhealthy", clusters: [{ name: "prod", ok: false }] }]
            : request.url?.includes("/history")
            ? [500, { error: { code: "internal", message: "Rollcall failed to handle this request", invocationId: "inv-1" } }]
            : [200, { cluster: "prod", lock: { slots: 1, free: 1, holders: [] }, nodes: [], queue: [] }];
      response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const dir = await mkdtemp(join(tmpdir(), "rollcall-az-"));
    try {
      // A stand-in for the Azure CLI that records its arguments and prints a token, as `-o tsv` does.
      await writeFile(join(dir, "az"), `#!/bin/sh\necho "$@" > "${join(dir, "args")}"\necho entra-token-123\n`);
      await chmod(join(dir, "az"), 0o755);
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`;
      const env = cliEnv({ ROLLCALL_URL: url, PATH: `${dir}:${dirname(process.execPath)}`, ROLLCALL_ENTRA_APP_ID: "11111111-2222-3333-4444-555555555555" });
      const ok = await rollcall(["status", "--cluster", "prod"], env);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(seen[0]?.authorization, "Bearer entra-token-123");
      assert.equal(seen[0]?.["x-functions-key"], SERVED_KEY);
      const { readFile } = await import("node:fs/promises");
      assert.equal((await readFile(join(dir, "args"), "utf8")).trim(), "account get-access-token --resource api://11111111-2222-3333-4444-555555555555 --query accessToken -o tsv");
      const refused = await rollcall(["release", "n1", "--cluster", "prod"], cliEnv({ ROLLCALL_URL: url }));
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /\(401\): App Service authentication is on: pass --entra APP_ID or set ROLLCALL_ENTRA_APP_ID/);
      const unhealthy = await rollcall(["status", "-o", "json"], cliEnv({ ROLLCALL_URL: url }));
      assert.equal(unhealthy.code, 0, `an unhealthy app still names its clusters: ${unhealthy.stderr}`);
      assert.equal(JSON.parse(unhealthy.stdout).cluster, "prod");
      const forbidden = await rollcall(["reboot", "n1", "--cluster", "prod"], cliEnv({ ROLLCALL_URL: url }));
      assert.equal(forbidden.code, 2);
      assert.match(forbidden.stderr, /lacks the app role Rollcall\.Operate \(403\): ask an administrator for the app role Rollcall\.Operate/);
      const failing = await rollcall(["history", "--cluster", "prod"], cliEnv({ ROLLCALL_URL: url }));
      assert.equal(failing.code, 3, "a 5xx is the server's failure");
      assert.match(failing.stderr, /Rollcall answered 500 to GET .*\/history\?limit=20: Rollcall failed to handle this request \(invocation inv-1\); its logs say why/);
      const hanging = start(["status", "--cluster", "slow"], cliEnv({ ROLLCALL_URL: url }));
      const asked = seen.length;
      for (let i = 0; i < 200 && seen.length === asked; i++) await new Promise((r) => setTimeout(r, 25));
      assert.equal(seen.length, asked + 1, "the CLI asked for the slow status");
      hanging.child.kill("SIGINT");
      const interrupted = await hanging.done;
      assert.equal(interrupted.code, 130, "Ctrl-C ends a waiting command at once, as a shell reports it");
      assert.equal(interrupted.stderr, "");
      const noAz = await rollcall(["status", "--cluster", "prod", "--entra", "app"], cliEnv({ ROLLCALL_URL: url, PATH: dirname(process.execPath) }));
      assert.equal(noAz.code, 1);
      assert.match(noAz.stderr, /Azure CLI \(az\) is not installed or not on PATH\. Run az login/);
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
