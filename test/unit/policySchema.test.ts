import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { withPolicyDefaults, type Policy } from "../../shared/policy/policy";
import { parsePolicyDocument, PolicyValidationError, resolvePolicy } from "../../shared/policy/policySchema";
import { policyBase } from "../support/fixtures";

const MIN = 60_000;
const defaults: Policy = withPolicyDefaults({
  concurrency: 1,
  ...policyBase,
});

function problems(input: unknown): { field: string; message: string }[] {
  try {
    resolvePolicy(defaults, parsePolicyDocument(input));
  } catch (error) {
    assert.ok(error instanceof PolicyValidationError);
    return error.problems;
  }
  assert.fail("expected the policy to be refused");
}

describe("the policy schema", () => {
  it("accepts an empty policy and resolves to the app-setting defaults with the built-in ones", () => {
    const policy = resolvePolicy(defaults, parsePolicyDocument({}));
    assert.equal(policy.concurrency, 1);
    assert.deepEqual(policy.windows, []);
    assert.deepEqual(policy.blockers, { podSelectors: [], pdbPrecheck: true });
    assert.deepEqual(policy.health, { waitForHealthy: true, lockReleaseDelayMs: 0 });
    assert.deepEqual(policy.drainFailure, { mode: "retry", backoffMs: 30 * MIN, maxBackoffMs: 240 * MIN });
    assert.deepEqual(policy.rebootLoop, { maxConsecutiveReboots: 3 });
    assert.equal(policy.preferNoScheduleTaint?.enabled, false);
  });

  it("converts operator units and fills nested defaults", () => {
    const policy = resolvePolicy(
      defaults,
      parsePolicyDocument({
        lockTtlMinutes: 90,
        windows: [{ days: ["Saturday", "su"], start: "01:00", end: "05:00", timeZone: "America/New_York" }],
        health: { lockReleaseDelaySeconds: 120 },
        preferNoScheduleTaint: {},
        drain: { timeoutMinutes: 30, skipWaitForDeleteSeconds: 60, delayBeforeRebootSeconds: 30, forceRebootAfterTimeout: true },
        drainFailurePolicy: { mode: "force-after", deadlineMinutes: 120 },
        maxUnavailable: "20%",
        nodeLabels: { preReboot: { "rollcall.io/rebooting": "true" } },
      }),
    );
    assert.equal(policy.lockTtlMs, 90 * MIN);
    assert.deepEqual(policy.windows?.[0]?.days, ["sat", "sun"]);
    assert.deepEqual(policy.health, { waitForHealthy: true, lockReleaseDelayMs: 120_000 });
    assert.deepEqual(policy.preferNoScheduleTaint, { enabled: true, key: "rollcall.io/reboot-pending" });
    assert.equal(policy.drain.timeoutMs, 30 * MIN);
    assert.equal(policy.drain.skipWaitForDeleteMs, 60_000);
    assert.equal(policy.drain.delayBeforeRebootMs, 30_000);
    assert.equal(policy.drain.forceRebootAfterTimeout, true);
    assert.deepEqual(policy.drainFailure, { mode: "force-after", deadlineMs: 120 * MIN });
    assert.equal(policy.maxUnavailable, "20%");
    assert.deepEqual(policy.nodeLabels, { preReboot: { "rollcall.io/rebooting": "true" }, postReboot: {} });
  });

  it("names the option and the accepted values in every error", () => {
    const found = problems({
      concurrency: 0,
      windows: [{ days: ["funday"], start: "25:00", end: "06:00", timeZone: "Mars/Olympus" }],
      maxUnavailable: "120%",
      blockers: { podSelectors: ["app in (a"], prometheus: { url: "ftp://x", alertFilterRegex: "(" } },
      drainFailurePolicy: { mode: "panic" },
      pendingOrder: "random",
      notifications: { webhookUrl: "https://x.example", templates: { reboot: "{{nod}}" } },
    });
    const byField = Object.fromEntries(found.map((p) => [p.field, p.message]));
    assert.match(byField["concurrency"]!, /whole number from 1 to 1000/);
    assert.match(byField["windows.0.days.0"]!, /"funday" is not a day; accepted: mon, tue/);
    assert.match(byField["windows.0.start"]!, /HH:MM/);
    assert.match(byField["windows.0.timeZone"]!, /not an IANA time zone/);
    assert.match(byField["maxUnavailable"]!, /percentage string from "1%" to "100%"/);
    assert.match(byField["blockers.podSelectors.0"]!, /label selector/);
    assert.match(byField["blockers.prometheus.url"]!, /http:\/\/ or https:\/\//);
    assert.match(byField["blockers.prometheus.alertFilterRegex"]!, /not a valid regular expression/);
    assert.match(byField["drainFailurePolicy.mode"] ?? byField["drainFailurePolicy"]!, /retry, quarantine, force-after/);
    assert.match(byField["pendingOrder"]!, /priority-then-oldest, oldest-first/);
    assert.match(byField["notifications.templates.reboot"]!, /unknown placeholder \{\{nod\}\}; accepted: \{\{cluster\}\}/);
  });

  it("refuses windows together with the AKS maintenance configuration", () => {
    const [problem] = problems({ windows: [{ start: "01:00", end: "05:00" }], useAksMaintenanceConfiguration: "default" });
    assert.equal(problem?.field, "useAksMaintenanceConfiguration");
  });

  it("refuses a window too short for any drain to finish in it", () => {
    const [problem] = problems({ windows: [{ start: "01:00", end: "01:10" }] });
    assert.equal(problem?.field, "windows.0");
    assert.match(problem!.message, /10 min long, shorter than the drain timeout \(15 min\)/);
  });

  it("refuses notifications without a webhook, and bad node labels", () => {
    const found = problems({ notifications: { format: "teams" }, nodeLabels: { postReboot: { "bad key!": "x", ok: "not ok!" } } });
    const fields = found.map((p) => p.field);
    assert.ok(fields.includes("notifications"), JSON.stringify(found));
    assert.ok(fields.some((f) => f.startsWith("nodeLabels.postReboot")), JSON.stringify(found));
  });
});
