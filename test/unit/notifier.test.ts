import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { NodeRecord } from "../../shared/node/nodeRecord";
import { slackPayload, teamsPayload } from "../../shared/notify/formats";
import { eventFor, notifyEvent, notifyTransition, renderTemplate } from "../../shared/notify/notifier";
import { withPolicyDefaults, type Policy } from "../../shared/policy/policy";
import type { OutboundRules } from "../../shared/outbound/outbound";
import { policyBase } from "../support/fixtures";

const rules: OutboundRules = { prometheusHosts: [], webhookHosts: ["hooks.example.test", "*.example.test"], allowHttpLoopback: false };

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
    await notifyTransition(p, "cordoning", record(), log, { fetch: failing, rules });
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
    await notifyTransition(p, "cordoning", record(), recordingLog(), { fetch: counting, rules });
    await notifyTransition(policy(), "cordoning", record(), recordingLog(), { fetch: counting, rules });
    assert.equal(calls, 0);
  });

  it("reads the webhook URL from the named app setting", async () => {
    const urls: string[] = [];
    const capture: typeof fetch = async (url) => {
      urls.push(String(url));
      return new Response("ok");
    };
    const p = policy({ webhookUrlSetting: "ROLLCALL_SECRET_TEAMS_WEBHOOK", format: "teams", templates: {}, events: ["reboot"], timeoutMs: 1000 });
    await notifyTransition(p, "draining", record({ state: "reboot-ordered" }), recordingLog(), { fetch: capture, rules, env: { ROLLCALL_SECRET_TEAMS_WEBHOOK: "https://teams.example.test/hook" } });
    assert.deepEqual(urls, ["https://teams.example.test/hook"]);
  });

  it("posts nowhere when the URL's host is not allowed or the setting is not a policy secret, and says why", async () => {
    let calls = 0;
    const counting: typeof fetch = async () => {
      calls++;
      return new Response("ok");
    };
    const log = recordingLog();
    await notifyTransition(policy({ webhookUrl: "https://elsewhere.test/x", format: "generic", templates: {}, events: ["reboot"], timeoutMs: 1000 }), "draining", record({ state: "reboot-ordered" }), log, { fetch: counting, rules });
    const named = policy({ webhookUrlSetting: "IDENTITY_ENDPOINT", format: "generic", templates: {}, events: ["reboot"], timeoutMs: 1000 });
    await notifyTransition(named, "draining", record({ state: "reboot-ordered" }), log, { fetch: counting, rules, env: { IDENTITY_ENDPOINT: "https://hooks.example.test/msi" } });
    assert.equal(calls, 0);
    assert.match(log.lines[0]!, /failed: POST to elsewhere\.test: the URL names the host elsewhere\.test, which is not in ROLLCALL_WEBHOOK_HOSTS/);
    assert.match(log.lines[1]!, /failed: webhookUrlSetting IDENTITY_ENDPOINT must name an app setting declared for policies/);
  });

  it("passes redirect: manual to fetch, so that a redirect is an answer and not followed", async () => {
    const inits: RequestInit[] = [];
    const capture: typeof fetch = async (_url, init) => {
      inits.push(init ?? {});
      return new Response("", { status: 308, headers: { location: "https://other.test/x" } });
    };
    const log = recordingLog();
    const sent = await notifyEvent(policy({ webhookUrl: "https://hooks.example.test/x", format: "generic", templates: {}, events: ["reboot"], timeoutMs: 1000 }), "reboot", "draining", record({ state: "reboot-ordered" }), log, { fetch: capture, rules });
    assert.equal(sent, false);
    assert.equal(inits[0]?.redirect, "manual");
    assert.match(log.lines[0]!, /answered 308, a redirect to other\.test; redirects are not followed/);
  });
});
