import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { LEGEND, LiveView, wrap } from "../../local/demo/view";
import { collector } from "../support/output";

/** Issue 13 item 6: the live view of `npm start` shows the whole WHY and says what each column means. */

const stripAnsi = (text: string) => text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");

const WHY = "waiting for a free lock slot (held by aks-nodepool1-12345678-vmss000000, aks-nodepool1-12345678-vmss000001) and a PodDisruptionBudget shop/web";

function row(node: string) {
  return {
    node,
    marked: true,
    record: { cluster: "sim", node, state: "pending" as const, since: "", why: "reboot required", holdReason: WHY, rebootRequired: true, reasons: [] },
    ready: true,
    cordoned: false,
    pods: 3,
    bootId: "0123456789",
    reboots: 0,
  };
}

describe("the npm start live view", () => {
  for (const columns of [100, 220]) {
    it(`wraps a long WHY instead of cutting it, within a ${columns}-column terminal, and prints a legend`, () => {
      const output = collector();
      const stream = Object.assign(output.stream, { columns });
      const view = new LiveView(stream, true, () => "Rollcall");
      view.render([row("aks-nodepool1-12345678-vmss000002"), row("aks-nodepool1-12345678-vmss000003")]);
      view.close();
      const lines = stripAnsi(output.text()).split("\n");
      for (const line of lines) assert.ok(line.length <= columns - 1, `within the width: ${JSON.stringify(line)}`);
      assert.ok(!lines.some((l) => l.includes("…")), "nothing cut");
      for (const node of ["aks-nodepool1-12345678-vmss000002", "aks-nodepool1-12345678-vmss000003"]) {
        const at = lines.findIndex((l) => l.startsWith(node));
        const header = lines.findIndex((l) => l.startsWith("NODE"));
        // A narrow terminal puts WHY under each node, at the column its own header line shows.
        const below = !lines[header]!.includes("WHY");
        const whyAt = below ? lines[header + 1]!.indexOf("WHY") : lines[header]!.indexOf("WHY");
        const parts = [below ? "" : lines[at]!.slice(whyAt).trim()];
        for (let i = at + 1; lines[i]!.startsWith(" ".repeat(whyAt)) && lines[i]!.trim(); i++) parts.push(lines[i]!.trim());
        assert.ok(parts.filter(Boolean).length > 1, "the reason takes more than one line");
        assert.equal(parts.filter(Boolean).join(" "), WHY);
      }
      assert.ok(lines.join(" ").replace(/\s+/g, " ").includes(LEGEND), "the legend is shown");
    });
  }

  it("splits a word longer than the column", () => {
    assert.deepEqual(wrap("abcdefghij kl", 4), ["abcd", "efgh", "ij", "kl"]);
    assert.deepEqual(wrap("", 4), [""]);
  });
});
