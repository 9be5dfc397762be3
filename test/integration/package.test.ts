import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildSync } from "esbuild";

/**
 * The deployed app as the Azure Functions Node worker loads it: `package.json`'s `main` glob
 * (`dist/functions/*.js`), CommonJS from tsc, and a node_modules holding the production
 * dependencies only (what `npm ci --omit=dev` installs, here hard-linked from the checkout by the
 * lockfile's `dev` flags instead of installed, to keep the suite fast). A stand-in for
 * `@azure/functions-core` (local/functionsHost/coreShim.ts) records the registrations.
 * infra/package.mjs builds the real thing the same way.
 */

const repo = path.resolve(__dirname, "../..");
const pkg = JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8"));
/** Loaded only when a cluster, ARM or telemetry is first used; never by an idle check-in or at cold start. */
const HEAVY = ["@kubernetes/client-node", "@azure/arm-containerservice", "@azure/monitor-opentelemetry-exporter"];

let dir: string;
let loaded: { registered: { name: string; trigger: string }[]; modules: string[] };

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollcall-package-"));
  execFileSync(process.execPath, [path.join(repo, "node_modules/typescript/bin/tsc"), "-p", path.join(repo, "tsconfig.build.json"), "--noCheck", "--outDir", path.join(dir, "dist")], { stdio: "pipe" });
  fs.copyFileSync(path.join(repo, "host.json"), path.join(dir, "host.json"));
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: pkg.name, main: pkg.main, dependencies: pkg.dependencies }));
  const lock = JSON.parse(fs.readFileSync(path.join(repo, "package-lock.json"), "utf8")).packages as Record<string, { dev?: boolean }>;
  for (const [where, entry] of Object.entries(lock)) {
    // Top-level packages only (nested ones come with their parent); `dev` marks the devDependencies' tree.
    if (!/^node_modules\/(@[^/]+\/)?[^/]+$/.test(where) || entry.dev || !fs.existsSync(path.join(repo, where))) continue;
    fs.mkdirSync(path.dirname(path.join(dir, where)), { recursive: true });
    execFileSync("cp", ["-al", path.join(repo, where), path.join(dir, where)]);
  }
  buildSync({ entryPoints: [path.join(repo, "local/functionsHost/coreShim.ts")], outfile: path.join(dir, "shim/coreShim.js"), platform: "node", format: "cjs", bundle: false, logLevel: "silent" });
  // The worker's part: install @azure/functions-core, load every file the main glob names.
  const worker = `
    const fs = require("node:fs"), path = require("node:path");
    const shim = require("./shim/coreShim.js");
    shim.installCoreShim();
    shim.shimState.sink = [];
    const { main } = require("./package.json");
    const folder = path.dirname(main), pattern = new RegExp("^" + path.basename(main).replace(".", "\\\\.").replace("*", ".*") + "$");
    for (const file of fs.readdirSync(folder).filter((f) => pattern.test(f)).sort()) require(path.resolve(folder, file));
    const registered = shim.shimState.sink.map((f) => ({ name: f.metadata.name, trigger: Object.values(f.metadata.bindings).find((b) => b.direction === "in").type }));
    process.stdout.write(JSON.stringify({ registered, modules: Object.keys(require.cache) }));
  `;
  fs.writeFileSync(path.join(dir, "worker.js"), worker);
  const env = { PATH: process.env.PATH ?? "", HOME: dir };
  loaded = JSON.parse(execFileSync(process.execPath, ["worker.js"], { cwd: dir, env, encoding: "utf8" }));
});

after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe("the production package, loaded the way the Azure worker loads it", () => {
  it("registers every function the sources declare, with no settings and no devDependencies", () => {
    const declared = fs
      .readdirSync(path.join(repo, "functions"))
      .filter((f) => f.endsWith(".ts"))
      .flatMap((f) => [...fs.readFileSync(path.join(repo, "functions", f), "utf8").matchAll(/app\.(\w+)\(\s*"([^"]+)"/g)].map((m) => m[2]!));
    assert.ok(declared.length >= 10, declared.join(", "));
    assert.deepEqual(loaded.registered.map((r) => r.name).sort(), [...declared].sort());
    assert.ok(loaded.registered.some((r) => r.trigger === "timerTrigger") && loaded.registered.some((r) => r.trigger === "httpTrigger"));
  });

  it("loads nothing heavy at import: the Kubernetes client, the ARM SDK and the telemetry exporter wait for first use", () => {
    const packages = new Set(loaded.modules.map((m) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(m)?.[1]).filter(Boolean));
    for (const heavy of HEAVY) assert.ok(!packages.has(heavy), `${heavy} loaded at import`);
    assert.ok(packages.has("@azure/functions"), [...packages].join(", "));
  });

  it("resolves every module inside the package: its own code and production dependencies, nothing from the checkout", () => {
    const real = fs.realpathSync(dir);
    const outside = loaded.modules.filter((m) => !m.startsWith(real) && !m.startsWith(dir));
    assert.deepEqual(outside, []);
    const devOnly = Object.keys(pkg.devDependencies as Record<string, string>);
    for (const m of loaded.modules) for (const d of devOnly) assert.ok(!m.includes(`/node_modules/${d}/`), `${d} (a devDependency) loaded: ${m}`);
    assert.ok(!fs.existsSync(path.join(dir, "node_modules/typescript")) && !fs.existsSync(path.join(dir, "node_modules/azurite")), "devDependencies are not in the package");
    assert.ok(fs.existsSync(path.join(dir, "node_modules/@kubernetes/client-node")), "production dependencies are");
  });

  it("is what npm run package builds: the same tsconfig, main glob and production install", () => {
    const script = fs.readFileSync(path.join(repo, "infra/package.mjs"), "utf8");
    assert.equal(pkg.scripts.package, "node infra/package.mjs");
    assert.match(script, /"tsconfig\.build\.json"/);
    assert.match(script, /"ci", "--omit=dev"/);
    assert.match(script, /main: pkg\.main/);
    const build = JSON.parse(fs.readFileSync(path.join(repo, "tsconfig.build.json"), "utf8"));
    assert.deepEqual(build.include, ["functions", "shared"]);
    assert.equal(pkg.main, "dist/functions/*.js");
  });
});
