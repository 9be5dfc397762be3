#!/usr/bin/env node
"use strict";
// The `rollcall` command (package.json "bin"). In a clone it runs the TypeScript sources through
// tsx (a devDependency, there after `npm ci`), so it works without a build and a stale dist/ never
// hides what was edited; without the sources or tsx (an installed build) it runs dist/cli from
// `npm run build`. docs/cli.md.
const fs = require("node:fs");
const path = require("node:path");

const root = path.join(__dirname, "..");
const source = path.join(root, "cli", "main.ts");
const compiled = path.join(root, "dist", "cli", "main.js");

function tsxAvailable() {
  try {
    require.resolve("tsx/cjs/api");
    return true;
  } catch {
    return false;
  }
}

if (fs.existsSync(source) && tsxAvailable()) {
  require("tsx/cjs/api").register();
  require(source).main();
} else if (fs.existsSync(compiled)) {
  require(compiled).main();
} else {
  process.stderr.write("error: rollcall is neither built (npm run build) nor runnable from source (npm ci installs tsx)\n");
  process.exitCode = 1;
}
