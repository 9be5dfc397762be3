import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { NodeRecord } from "../../shared/node/nodeRecord";
import { notifyTransition } from "../../shared/notify/notifier";
import { withPolicyDefaults, type NotificationPolicy, type Policy } from "../../shared/policy/policy";
import type { OutboundRules } from "../../shared/outbound/outbound";
import { startCaptureServer } from "../support/webhookServer";
import { policyBase } from "../support/fixtures";

const record: NodeRecord = {
  cluster: "prod",
  node: "aks-np-1",
  state: "reboot-ordered",
  since: "2026-11-24T03:00:00Z",
  why: "drained; reboot ordered",
  rebootRequired: true,
  reasons: ["linux-image"],
};

const policyWith = (notifications: NotificationPolicy): Policy =>
  withPolicyDefaults({
    concurrency: 1,
    ...policyBase,
    notifications,
  });

/** The rules of a local run: the webhook server listens on the loopback interface. */
const deps = { rules: { prometheusHosts: [], webhookHosts: [], allowHttpLoopback: true } satisfies OutboundRules };

const log = () => {
  const lines: string[] = [];
  return { lines, info: (...a: unknown[]) => lines.push(a.join(" ")), warn: (...a: unknown[]) => lines.push(a.join(" ")), error: (...a: unknown[]) => lines.push(a.join(" ")) };
};

describe("webhook notifications through a local webhook server", () => {
  let hook: Awaited<ReturnType<typeof startCaptureServer>>;
  before(async () => {
    hook = await startCaptureServer((request) => (request.path === "/broken" ? { status: 500, body: "boom" } : { status: 200, body: "1" }));
  });
  after(() => hook.close());

  const notifications = (format: NotificationPolicy["format"], path: string, templates: NotificationPolicy["templates"] = {}): NotificationPolicy => ({
    webhookUrl: `${hook.url}${path}`,
    format,
    templates,
    events: ["drainStart", "reboot", "complete", "failure", "stuck"],
    timeoutMs: 2000,
  });

  it("posts a Teams Adaptive Card with the rendered template", async () => {
    await notifyTransition(policyWith(notifications("teams", "/teams", { reboot: "Rebooting {{node}} ({{cluster}}), was {{from}}" })), "draining", record, log(), deps);
    const request = hook.requests.find((r) => r.path === "/teams");
    assert.equal(request?.method, "POST");
    assert.match(String(request?.headers["content-type"]), /application\/json/);
    const body = request?.body as { type: string; attachments: { contentType: string; content: { body: { type: string; text?: string }[] } }[] };
    assert.equal(body.type, "message");
    assert.equal(body.attachments[0]?.contentType, "application/vnd.microsoft.card.adaptive");
    assert.equal(body.attachments[0]?.content.body[1]?.text, "Rebooting aks-np-1 (prod), was draining");
  });

  it("posts a Slack message with text and blocks", async () => {
    await notifyTransition(policyWith(notifications("slack", "/slack")), "draining", record, log(), deps);
    const body = hook.requests.find((r) => r.path === "/slack")?.body as { text: string; blocks: unknown[] };
    assert.equal(body.text, "Rebooting node aks-np-1 in cluster prod");
    assert.equal(body.blocks.length, 2);
  });

  it("posts generic JSON with every field", async () => {
    await notifyTransition(policyWith(notifications("generic", "/generic")), "rebooted", { ...record, state: "releasing", outcome: "completed", why: "reboot confirmed" }, log(), deps);
    assert.deepEqual(hook.requests.find((r) => r.path === "/generic")?.body, {
      source: "rollcall",
      event: "complete",
      cluster: "prod",
      node: "aks-np-1",
      from: "rebooted",
      state: "releasing",
      why: "reboot confirmed",
      message: "Node aks-np-1 in cluster prod rebooted and is back in service",
      at: (hook.requests.find((r) => r.path === "/generic")?.body as { at: string }).at,
    });
  });

  it("logs a webhook that answers 500 and does not throw", async () => {
    const lines = log();
    await notifyTransition(policyWith(notifications("generic", "/broken")), "draining", record, lines, deps);
    assert.match(lines.lines.join("\n"), /notify event=reboot .* failed: the webhook answered 500: boom/);
  });

  it("logs an unreachable webhook and does not throw", async () => {
    const lines = log();
    const closed = await startCaptureServer();
    const url = `${closed.url}/gone`;
    await closed.close();
    await notifyTransition(policyWith({ ...notifications("slack", "/x"), webhookUrl: url }), "draining", record, lines, deps);
    assert.match(lines.lines.join("\n"), /notify event=reboot .* failed: POST to 127\.0\.0\.1:\d+: fetch failed/);
  });
});
