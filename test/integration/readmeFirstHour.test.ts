import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { runStart } from "../../local/start";
import { collector } from "../support/output";

/**
 * Issue 13 item 6: the README's curl examples, run as printed (bash expands them; only `curl` and
 * `jq` are stood in for, `curl` by a fetch of the same request) against `npm start`, with the
 * variables `npm start` prints; and `npm start`'s own start-up failures.
 */

const README = readFileSync(resolve(__dirname, "../../README.md"), "utf8");

/** The README's `curl … $ROLLCALL …` commands (continuation lines joined), in order, with the JSON block that follows each. */
function readmeCurls(): { command: string; nextJson?: string }[] {
  const blocks = [...README.matchAll(/```(sh|json)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1]!, body: m[2]! }));
  const commands: { command: string; nextJson?: string }[] = [];
  blocks.forEach((block, i) => {
    if (block.lang !== "sh") return;
    const joined = block.body.replace(/\\\n\s*/g, "").split("\n");
    for (const line of joined) {
      const command = line.replace(/\s+#[^'"]*$/, "").trim();
      if (command.startsWith("curl ") && command.includes("$ROLLCALL")) commands.push({ command, nextJson: blocks[i + 1]?.lang === "json" ? blocks[i + 1]!.body : undefined });
    }
  });
  return commands;
}

/** What bash makes of a command's words: `curl` records its arguments, `jq` swallows its input. */
function curlArgs(command: string, env: Record<string, string>, cwd: string): string[] {
  const file = join(cwd, "args");
  writeFileSync(file, "");
  const script = `curl() { printf '%s\\0' "$@" >> "${file}"; }; jq() { cat > /dev/null; }; ${command}`;
  execFileSync("bash", ["-c", script], { cwd, env: { ...process.env, ...env }, stdio: "pipe" });
  return readFileSync(file, "utf8").split("\0").slice(0, -1);
}

async function asCurl(args: string[], cwd: string): Promise<{ status: number; text: string; method: string; url: string }> {
  let method: string | undefined;
  let url = "";
  let body: string | undefined;
  let get = false;
  const headers: Record<string, string> = {};
  const query: [string, string][] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "-sS" || arg === "-s" || arg === "-S") continue;
    else if (arg === "-X") method = args[++i];
    else if (arg === "-H") {
      const header = args[++i]!;
      headers[header.slice(0, header.indexOf(":")).trim()] = header.slice(header.indexOf(":") + 1).trim();
    } else if (arg === "-d" || arg === "--data") {
      const data = args[++i]!;
      body = data.startsWith("@") ? readFileSync(join(cwd, data.slice(1)), "utf8") : data;
    } else if (arg === "-G") get = true;
    else if (arg === "--data-urlencode") {
      const pair = args[++i]!;
      query.push([pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)]);
    } else if (!arg.startsWith("-")) url = arg;
    else throw new Error(`the README's curl uses ${arg}, which this test does not know`);
  }
  const target = new URL(url);
  for (const [k, v] of query) target.searchParams.append(k, v);
  const verb = method ?? (body !== undefined && !get ? "POST" : "GET");
  const response = await fetch(target, { method: verb, headers, body });
  return { status: response.status, text: await response.text(), method: verb, url: target.pathname };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("the README's first hour against npm start", () => {
  it("finds the curl examples it runs", () => {
    const commands = readmeCurls().map((c) => c.command);
    assert.ok(commands.length >= 15, commands.join("\n"));
    assert.ok(!commands.some((c) => /clusters\/prod\//.test(c)), "no example hard-codes a cluster name that npm start does not have");
    assert.ok(!/"notBefore": "20\d\d-/.test(README), "no fixed notBefore date, which would soon be in the past");
  });

  it("runs every curl example as printed, and the summary counts an operator's reboot as asked for, not as a failure", async () => {
    const output = collector();
    const controller = new AbortController();
    const run = runStart({ argv: ["--nodes", "2", "--reboot", "1", "--port", "0", "--down-ms", "200"], out: output.stream, tty: false, signal: controller.signal });
    const cwd = mkdtempSync(join(tmpdir(), "readme-curl-"));
    try {
      for (let i = 0; i < 1200 && !/Rollout complete/.test(output.text()); i++) await sleep(100);
      assert.match(output.text(), /Rollout complete/);
      const exported = output.text().match(/export (ROLLCALL=\S+ KEY=\S+ CLUSTER=\S+ N=\S+)/);
      assert.ok(exported, `npm start prints the variables the README's examples use:\n${output.text()}`);
      const env = Object.fromEntries(exported[1]!.split(" ").map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)]));
      assert.equal(env.CLUSTER, "sim");
      assert.match(README, /export ROLLCALL=http:\/\/127\.0\.0\.1:7071\/api KEY=<key> CLUSTER=sim N=aks-nodepool1-12345678-vmss000004/, "the README names what npm start prints");

      const results: { command: string; status: number; text: string; method: string; url: string }[] = [];
      for (const { command, nextJson } of readmeCurls()) {
        if (nextJson && command.includes("@policy.json")) writeFileSync(join(cwd, "policy.json"), nextJson);
        const answer = await asCurl(curlArgs(command, env, cwd), cwd);
        results.push({ command, ...answer });
      }
      const report = results.map((r) => `${r.status} ${r.method} ${r.url}  ${r.text.slice(0, 160)}`).join("\n");
      for (const r of results) {
        assert.ok(r.status < 500 && r.status !== 404 && r.status !== 401, `${r.command}\n${report}`);
        if (r.status === 400) {
          // Only the full policy example may be refused locally, and only with the settings to change named.
          assert.match(r.command, /@policy\.json/, `${r.command}\n${report}`);
          assert.match(r.text, /drain\.timeoutMinutes.*ROLLCALL_LOCK_TTL_MINUTES/, report);
        }
      }
      const reboot = results.find((r) => r.method === "POST" && /\/reboot$/.test(r.url) && /notBefore/.test(r.command));
      assert.equal(reboot?.status, 202, report);
      const localPolicy = results.find((r) => r.method === "PUT" && !r.command.includes("@policy.json"));
      assert.equal(localPolicy?.status, 200, report);

      // An operator reboots the node no sentinel marked: the summary must not call that a failure.
      const nodeUrl = `${env.ROLLCALL}/clusters/${env.CLUSTER}/nodes/${env.N}`;
      const headers = { "x-functions-key": env.KEY!, "content-type": "application/json" };
      const asked = await fetch(`${nodeUrl}/reboot`, { method: "POST", headers, body: JSON.stringify({ reason: "first hour", notBefore: "now" }) });
      assert.equal(asked.status, 202, await asked.text());
      let completed = false;
      for (let i = 0; i < 600 && !completed; i++) {
        await sleep(100);
        const node = (await (await fetch(nodeUrl, { headers })).json()) as { history: { outcome: string; requestId?: string }[] };
        completed = node.history.some((e) => e.outcome === "completed" && e.requestId !== undefined);
      }
      assert.ok(completed, "the operator's reboot completed");
      controller.abort();
      const result = await run;
      assert.deepEqual(result.summary?.extraReboots, [], output.text());
      assert.doesNotMatch(output.text(), /FAILED/);
      assert.match(output.text(), /OK: every invariant held/);
    } finally {
      controller.abort();
      await run;
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});

describe("npm start's start-up failures", () => {
  it("names --port in one line when the port is taken", async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as { port: number }).port;
    try {
      const output = collector();
      const result = await runStart({ argv: ["--nodes", "1", "--port", String(port)], out: output.stream, tty: false });
      assert.equal(result.exitCode, 1);
      const failure = output.text().split("\n").filter((l) => /failed/.test(l));
      assert.equal(failure.length, 1, output.text());
      assert.match(failure[0]!, new RegExp(`port ${port} is already taken.*--port`));
      assert.doesNotMatch(output.text(), /\n\s+at /, "no stack trace");
    } finally {
      server.close();
    }
  });

  it("names --kubeconfig in one line when the file does not exist", async () => {
    const output = collector();
    const result = await runStart({ argv: ["--kubeconfig", "/nonexistent/kubeconfig"], out: output.stream, tty: false });
    assert.equal(result.exitCode, 2);
    assert.equal(output.text().trim().split("\n").length, 1, output.text());
    assert.match(output.text(), /kubeconfig \/nonexistent\/kubeconfig does not exist: pass --kubeconfig PATH \(or ROLLCALL_KUBECONFIG\)/);
  });

  it("names --storage-connection in one line when the storage account does not answer", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", () => r()));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const output = collector();
    const connection = `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:${port}/devstoreaccount1;`;
    const result = await runStart({ argv: ["--nodes", "1", "--port", "0", "--storage-connection", connection], out: output.stream, tty: false });
    assert.equal(result.exitCode, 1);
    assert.equal(output.text().trim().split("\n").length, 1, output.text());
    assert.match(output.text(), new RegExp(`storage account at http://127.0.0.1:${port}/devstoreaccount1 did not answer \\(ECONNREFUSED\\): check --storage-connection`));
  });
});
