import type { NotificationPolicy, NotifyEvent } from "../policy/policy";

/** What a notification says, before it is shaped for a webhook format. */
export interface NotificationMessage {
  event: NotifyEvent;
  /** The rendered template. */
  text: string;
  cluster: string;
  node: string;
  from: string;
  state: string;
  why: string;
  at: string;
}

const TITLES: Record<NotifyEvent, string> = {
  drainStart: "Drain started",
  reboot: "Reboot ordered",
  complete: "Reboot complete",
  failure: "Reboot failed",
  stuck: "Node stuck",
  upgrade: "AKS upgrade notice",
};


/**
 * Teams: an Adaptive Card in a `message` envelope, which both Teams Workflows ("When a Teams webhook
 * request is received") and the older Office 365 incoming-webhook connectors accept.
 */
export function teamsPayload(message: NotificationMessage): unknown {
  return {
    type: "message",
    attachments: [
      {
        contentType: "application/vnd.microsoft.card.adaptive",
        contentUrl: null,
        content: {
          $schema: "http://adaptivecards.io/schemas/adaptive-card.json",
          type: "AdaptiveCard",
          version: "1.4",
          msteams: { width: "Full" },
          body: [
            { type: "TextBlock", text: `Rollcall: ${TITLES[message.event]}`, weight: "Bolder", size: "Medium", color: message.event === "failure" || message.event === "stuck" ? "Attention" : "Default" },
            { type: "TextBlock", text: message.text, wrap: true },
            {
              type: "FactSet",
              facts: [
                { title: "Cluster", value: message.cluster },
                { title: "Node", value: message.node },
                { title: "State", value: `${message.from} → ${message.state}` },
                { title: "At", value: message.at },
              ],
            },
          ],
        },
      },
    ],
  };
}

/** Slack incoming webhook: `text` (also the notification fallback) plus one mrkdwn section and a context line. */
export function slackPayload(message: NotificationMessage): unknown {
  return {
    text: message.text,
    blocks: [
      { type: "section", text: { type: "mrkdwn", text: `*${TITLES[message.event]}* — ${escapeSlack(message.text)}` } },
      { type: "context", elements: [{ type: "mrkdwn", text: `cluster \`${escapeSlack(message.cluster)}\` · node \`${escapeSlack(message.node)}\` · ${message.from} → ${message.state} · ${message.at}` }] },
    ],
  };
}

function escapeSlack(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Generic JSON: every field, for scripts and chat bridges. */
export function genericPayload(message: NotificationMessage): unknown {
  return { source: "rollcall", event: message.event, cluster: message.cluster, node: message.node, from: message.from, state: message.state, why: message.why, message: message.text, at: message.at };
}

export function payloadFor(format: NotificationPolicy["format"], message: NotificationMessage): unknown {
  switch (format) {
    case "teams":
      return teamsPayload(message);
    case "slack":
      return slackPayload(message);
    default:
      return genericPayload(message);
  }
}

