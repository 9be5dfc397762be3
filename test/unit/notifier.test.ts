import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { NodeRecord } from "../../shared/node/nodeRecord";
import { slackPayload, teamsPayload } from "../../shared/notify/formats";
import { eventFor, notifyTransition, renderTemplate } from "../../shared/notify/notifier";
import { withPolicyDefaults, type Policy } from "../../shared/policy/policy";
import { policyBase } from "../support/fixtures";

const record = (overrides: Partial<NodeRecord> = {}): NodeRecord => ({
  cluster: "prod",
  node: "aks-np-1",
  state: "draining",
  since: "2026-11-24T03:00:00Z",
  why: "cordoned",
  rebootRequired: true,
  reasons: ["linux-image"],
  ...overrides,
});

function recordingLog() {
  const lines: string[] = [];
  return { lines, info: (...a: unknown[]) => lines.push(a.join(" ")), warn: (...a: unknown[]) => lines.push(a.join(" ")), error: (...a: unknown[]) => lines.push(a.join(" ")) };
}

const policy = (notifications?: Policy["notifications"]): Policy =>
  withPolicyDefaults({
    concurrency: 1,
    ...policyBase,
    notifications,
  });

describe("the notifier", () => {
  it("maps each announced transition to its event and stays quiet on the others", () => {
    assert.equal(eventFor("cordoning", record({ state: "draining" })), "drainStart");
    assert.equal(eventFor("draining", record({ state: "reboot-ordered" })), "reboot");
    assert.equal(eventFor("rebooted", record({ state: "releasing", outcome: "completed" })), "complete");
    assert.equal(eventFor("draining", record({ state: "releasing", outcome: "drain-failed" })), "failure");
    assert.equal(eventFor("releasing", record({ state: "quarantined" })), "failure");
    assert.equal(eventFor("reboot-ordered", record({ state: "stuck" })), "stuck");
    assert.equal(eventFor("idle", record({ state: "pending" })), undefined);
    assert.equal(eventFor("draining", record({ state: "releasing", outcome: "cancelled" })), undefined);
  });

  it("fills template placeholders and leaves unknown ones as written", () => {
    assert.equal(renderTemplate("{{node}} in {{ cluster }}: {{why}} {{nope}}", { node: "n1", cluster: "prod", why: "drained" }), "n1 in prod: drained {{nope}}");
  });

  it("shapes Teams messages as an Adaptive Card and Slack messages with text and blocks", () => {
    const message = { event: "reboot" as const, text: "Rebooting n1", cluster: "prod", node: "n1", from: "draining", state: "reboot-ordered", why: "drained", at: "2026-11-24T03:00:00.000Z" };
    const teams = teamsPayload(message) as { type: string; attachments: { contentType: string; content: { type: string; body: { text?: string }[] } }[] };
    assert.equal(teams.type, "message");
    assert.equal(teams.attachments[0]?.contentType, "application/vnd.microsoft.card.adaptive");
    assert.equal(teams.attachments[0]?.content.type, "AdaptiveCard");
    assert.equal(teams.attachments[0]?.content.body[1]?.text, "Rebooting n1");
    const slack = slackPayload({ ...message, text: "a <b> & c" }) as { text: string; blocks: { text?: { text: string } }[] };
    assert.equal(slack.text, "a <b> & c");
    assert.match(slack.blocks[0]?.text?.text ?? "", /a &lt;b&gt; &amp; c/);
  });

  it("logs and swallows a failing webhook instead of throwing", async () => {
    const log = recordingLog();
    const failing: typeof fetch = async () => {
      throw Object.assign(new TypeError("fetch failed"), { cause: { code: "ECONNREFUSED" } });
    };
    const p = policy({ webhookUrl: "https://hooks.example.test/secret-key", format: "slack", templates: {}, events: ["drainStart"], timeoutMs: 1000 });
    await notifyTransition(p, "cordoning", record(), log, { fetch: failing });
    assert.equal(log.lines.length, 1);
    assert.match(log.lines[0]!, /notify event=drainStart .* failed: POST to hooks.example.test: fetch failed \(ECONNREFUSED\)/);
    assert.doesNotMatch(log.lines[0]!, /secret-key/, "the webhook URL's key is not logged");
  });

  it("sends nothing for events the policy leaves out, or without notifications", async () => {
    let calls = 0;
    const counting: typeof fetch = async () => {
      calls++;
      return new Response("ok");
    };
    const p = policy({ webhookUrl: "https://hooks.example.test/x", format: "generic", templates: {}, events: ["failure"], timeoutMs: 1000 });
    await notifyTransition(p, "cordoning", record(), recordingLog(), { fetch: counting });
    await notifyTransition(policy(), "cordoning", record(), recordingLog(), { fetch: counting });
    assert.equal(calls, 0);
  });

  it("reads the webhook URL from the named app setting", async () => {
    const urls: string[] = [];
    const capture: typeof fetch = async (url) => {
      urls.push(String(url));
      return new Response("ok");
    };
    const p = policy({ webhookUrlSetting: "ROLLCALL_TEAMS_WEBHOOK", format: "teams", templates: {}, events: ["reboot"], timeoutMs: 1000 });
    await notifyTransition(p, "draining", record({ state: "reboot-ordered" }), recordingLog(), { fetch: capture, env: { ROLLCALL_TEAMS_WEBHOOK: "https://teams.example.test/hook" } });
    assert.deepEqual(urls, ["https://teams.example.test/hook"]);
  });
});
