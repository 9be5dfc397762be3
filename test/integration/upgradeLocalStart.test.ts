import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Writable } from "node:stream";
import { runStart } from "../../local/start";

/** `npm start`'s simulated cluster is an AKS cluster in the simulated ARM, so the upgrade-plan routes work out of the box. */

describe("npm start's simulated AKS cluster", () => {
  it("answers the upgrade-plan routes with a plan from the simulated ARM instead of 409 not_aks", async () => {
    let text = "";
    const out = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        text += chunk.toString();
        callback();
      },
    });
    const controller = new AbortController();
    const run = runStart({ argv: ["--nodes", "2", "--reboot", "0", "--port", "0"], out, tty: false, signal: controller.signal });
    try {
      let match: RegExpExecArray | null = null;
      for (let i = 0; i < 600 && !(match = /Functions host on (http:\/\/\S+) — function key: (\S+)/.exec(text)); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(match, text);
      const [, url, key] = match;
      assert.match(text, /upgrade plan: POST .*\/api\/clusters\/sim\/upgrade-plan/);
      const posted = await fetch(`${url}/api/clusters/sim/upgrade-plan?code=${key}`, { method: "POST" });
      const body = (await posted.json()) as { plan?: { steps: unknown[]; controlPlane: { current: string } }; error?: unknown };
      assert.equal(posted.status, 200, JSON.stringify(body));
      assert.ok(body.plan!.steps.length > 0);
      const got = await fetch(`${url}/api/clusters/sim/upgrade-plan?code=${key}`);
      assert.equal(got.status, 200);
    } finally {
      controller.abort();
      assert.equal((await run).exitCode, 0);
    }
  });
});
