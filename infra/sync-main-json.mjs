// Copies the files that main.bicep loads with loadTextContent() into their places in the
// hand-maintained main.json: the workbook (serializedData) and the alert queries (*Kql variables).
// Usage: node infra/sync-main-json.mjs   (then npm test; test/unit/infra.test.ts checks the result)
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const infra = path.dirname(fileURLToPath(import.meta.url));
const file = path.join(infra, "main.json");
const template = JSON.parse(fs.readFileSync(file, "utf8"));
const read = (p) => fs.readFileSync(path.join(infra, p), "utf8");

const workbook = template.resources.find((r) => r.type === "Microsoft.Insights/workbooks");
workbook.properties.serializedData = read("workbook/rollcall-workbook.json");
for (const [variable, kql] of Object.entries({
  stuckNodeKql: "alerts/stuck-node.kql",
  drainTimeoutKql: "alerts/drain-timeout.kql",
  checkinFailuresKql: "alerts/checkin-failures.kql",
  noCheckinsKql: "alerts/no-checkins.kql",
})) {
  template.variables[variable] = read(kql);
}
fs.writeFileSync(file, JSON.stringify(template, null, 2) + "\n");
console.log(`updated ${path.relative(process.cwd(), file)}`);
