// `npm run package`: the deployable Function App, production dependencies only.
//   .rollcall/package/   host.json, package.json (main, dependencies; no scripts, no devDependencies),
//                        dist/functions, dist/shared (tsc, CommonJS), node_modules (npm ci --omit=dev
//                        from package-lock.json), a .funcignore that ignores nothing
//   rollcall.zip         the same folder zipped: what `az functionapp deployment source config-zip`
//                        and azd (azure.yaml: project .rollcall/package, remoteBuild false) deploy.
// The checkout's own node_modules is never touched. docs/deploy.md explains the choices.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const stage = path.join(root, ".rollcall/package");
const zip = path.join(root, "rollcall.zip");
const run = (cmd, args, cwd = root) => execFileSync(cmd, args, { cwd, stdio: "inherit" });

fs.rmSync(stage, { recursive: true, force: true });
fs.rmSync(zip, { force: true });
fs.mkdirSync(stage, { recursive: true });

// Only the app's sources: tests, local tooling and the agent stay out of dist/.
run(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json", "--outDir", path.join(stage, "dist")]);

const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
const shipped = { name: pkg.name, version: pkg.version, private: true, description: pkg.description, main: pkg.main, engines: pkg.engines, dependencies: pkg.dependencies };
fs.writeFileSync(path.join(stage, "package.json"), JSON.stringify(shipped, null, 2) + "\n");
for (const file of ["host.json", "package-lock.json"]) fs.copyFileSync(path.join(root, file), path.join(stage, file));
// The checkout's .funcignore names source folders (test, local, *.ts) that also occur inside packages
// in node_modules; here everything was built to ship, so nothing is ignored.
fs.writeFileSync(path.join(stage, ".funcignore"), "# Built by npm run package: everything in this folder ships.\n");

// The lockfile pins every version; --omit=dev leaves the devDependencies (azurite, typescript, node, …) out.
run("npm", ["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"], stage);

run("zip", ["-q", "-r", "-X", zip, "."], stage);

const walk = (dir) => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [fs.statSync(path.join(dir, e.name)).size]));
const files = walk(stage);
const mb = (n) => `${(n / 1024 / 1024).toFixed(1)} MB`;
console.log(`rollcall.zip: ${mb(fs.statSync(zip).size)} (unpacked ${mb(files.reduce((a, b) => a + b, 0))} in ${files.length} files), from ${path.relative(root, stage)}/`);
