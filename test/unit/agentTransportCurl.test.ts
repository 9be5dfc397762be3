import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configJson, quote, curlTransport } from "../../node-agent/transportCurl";
import { selfSignedCertificate } from "../../local/tls/selfSigned";

const servers: Server[] = [];
const dirs: string[] = [];
after(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

interface Seen {
  url?: string;
  headers: IncomingMessage["headers"];
  body: string;
}

/** A server that records each request and answers `{"ok":true}`, after `beforeAnswer` if given. */
async function listen(tls?: { key: string; cert: string }, beforeAnswer?: () => Promise<void>): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      seen.push({ url: req.url, headers: req.headers, body });
      void (beforeAnswer?.() ?? Promise.resolve()).then(() => res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}'));
    });
  };
  const server = tls ? createHttpsServer(tls, handle) : createHttpServer(handle);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const scheme = tls ? "https" : "http";
  return { url: `${scheme}://127.0.0.1:${(server.address() as { port: number }).port}/api/checkin`, seen };
}

/** Runs `body` with process.env changed (curl inherits the environment at spawn) and restores it. */
async function withEnv<T>(changes: Record<string, string | undefined>, body: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(changes).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(changes)) if (v === undefined) delete process.env[k];
  else process.env[k] = v;
  try {
    return await body();
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}

const NO_PROXY_ENV = { http_proxy: undefined, https_proxy: undefined, HTTPS_PROXY: undefined, all_proxy: undefined, ALL_PROXY: undefined, no_proxy: undefined, NO_PROXY: undefined };

describe("the curl transport", () => {
  const transport = curlTransport();

  it("sends headers byte for byte and the body as the same JSON, quotes, backslashes and any character of a package list included", async () => {
    const { url, seen } = await listen();
    // JSON escapes control characters but not DEL, and a host's .pkgs file may hold anything.
    const body = JSON.stringify({ reasons: ['linux-image "6.8" \\ patched', "naïve — ✓ 🚀", "line\nbreak", "del\u007f", "sep\u2028"] });
    const answer = await withEnv(NO_PROXY_ENV, () => transport.post(url, { "x-rollcall-agent-token": 'a"b\\c', "content-type": "application/json" }, body, 10_000));
    assert.deepEqual(answer, { status: 200, text: '{"ok":true}' });
    assert.equal(seen[0]!.body, body.replace("\u007f", "\\u007f"), "the same bytes, DEL written as its JSON escape");
    assert.deepEqual(JSON.parse(seen[0]!.body), JSON.parse(body));
    assert.equal(seen[0]!.headers["x-rollcall-agent-token"], 'a"b\\c');
    assert.equal(seen[0]!.headers.expect, undefined, "no Expect: 100-continue, which would wait for a 100 first");
  });

  it("keeps the function key and the token off curl's command line, which every process on the host can read", async () => {
    let commandLines: string[] = [];
    const { url } = await listen(undefined, async () => {
      // The request is in; curl is still running, waiting for this answer.
      for (const pid of await readdir("/proc")) {
        if (!/^\d+$/.test(pid)) continue;
        const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
        if (stat.includes("(curl)") && Number(stat.split(") ")[1]!.split(" ")[1]) === process.pid) {
          commandLines.push((await readFile(`/proc/${pid}/cmdline`, "utf8")).replaceAll("\0", " "));
        }
      }
    });
    await withEnv(NO_PROXY_ENV, () => transport.post(url, { "x-functions-key": "s3cret-key", "x-rollcall-agent-token": "s3cret-token" }, "{}", 10_000));
    assert.equal(commandLines.length, 1, "found the running curl");
    assert.doesNotMatch(commandLines[0]!, /s3cret/);
    assert.match(commandLines[0]!, /^curl -q --config -/);
    commandLines = [];
  });

  it("ignores a .curlrc in the container's home", async () => {
    const home = await mkdtemp(join(tmpdir(), "rollcall-curlrc-"));
    dirs.push(home);
    await writeFile(join(home, ".curlrc"), 'header = "x-injected: yes"\nurl = "http://127.0.0.1:1/elsewhere"\n');
    const { url, seen } = await listen();
    await withEnv({ ...NO_PROXY_ENV, HOME: home, CURL_HOME: home, XDG_CONFIG_HOME: home }, () => transport.post(url, {}, "{}", 10_000));
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.headers["x-injected"], undefined);
  });

  it("goes through the proxy that AKS's HTTP proxy configuration puts in the pod's environment", async () => {
    const target = await listen();
    const proxy = await listen();
    await withEnv({ ...NO_PROXY_ENV, http_proxy: new URL(proxy.url).origin }, () => transport.post(target.url, {}, "{}", 10_000));
    assert.equal(target.seen.length, 0);
    assert.equal(proxy.seen[0]!.url, target.url, "the proxy was asked for the orchestrator's URL");
  });

  it("trusts the certificates of CURL_CA_BUNDLE over https, and refuses a server it cannot verify", async () => {
    const { key, cert } = selfSignedCertificate();
    const { url, seen } = await listen({ key, cert });
    const dir = await mkdtemp(join(tmpdir(), "rollcall-ca-"));
    dirs.push(dir);
    await writeFile(join(dir, "ca.pem"), cert);
    const answer = await withEnv({ ...NO_PROXY_ENV, CURL_CA_BUNDLE: join(dir, "ca.pem") }, () => transport.post(url, {}, "{}", 10_000));
    assert.equal(answer.status, 200);
    await assert.rejects(
      withEnv({ ...NO_PROXY_ENV, CURL_CA_BUNDLE: undefined, SSL_CERT_FILE: undefined }, () => transport.post(url, {}, "{}", 10_000)),
      /certificate/i,
    );
    assert.equal(seen.length, 1);
  });

  it("says so when curl is not there", async () => {
    await assert.rejects(curlTransport("/nonexistent/curl").post("http://127.0.0.1:1/", {}, "{}", 5_000), /cannot run \/nonexistent\/curl/);
  });
});

describe("curl's config quoting", () => {
  it("writes JSON without DEL, which JSON.stringify leaves raw, as JSON that parses to the same value", () => {
    const value = { s: "del\u007f é ✓ 🚀 \u2028", n: 1 };
    const written = configJson(JSON.stringify(value));
    assert.doesNotMatch(written, /\u007f/);
    assert.doesNotThrow(() => quote(written));
    assert.deepEqual(JSON.parse(written), value);
  });

  it("escapes what would end the value or its line", () => {
    assert.equal(quote('a"b\\c\nd\re\tf'), '"a\\"b\\\\c\\nd\\re\\tf"');
  });

  it("refuses any other control character", () => {
    assert.throws(() => quote("a\u0000b"), /control character/);
    assert.throws(() => quote("a\u001bb"), /control character/);
  });
});
