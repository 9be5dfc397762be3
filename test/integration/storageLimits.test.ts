import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { TableClient } from "@azure/data-tables";
import { history } from "../../functions/history";
import { historyAction, type HistoryEntry } from "../../shared/history/history";
import { MAX_SLOTS, TableLock, type LockHolder } from "../../shared/lock/tableLock";
import { MAX_MESSAGE_CHARS, NodeStore, type NodeRecord } from "../../shared/node/nodeRecord";
import { getRollcall } from "../../shared/orchestrator/fromConfig";
import { POLICY_ROW_KEY } from "../../shared/policy/policyStore";
import { MAX_CHECKIN_BYTES, MAX_REASON_LENGTH, MAX_REASONS, MAX_REASONS_JSON_BYTES, reasonsJsonBytes } from "../../shared/protocol/checkin";
import { entityBytes, rowKeys, TABLE_LIMITS, textProperties } from "../../shared/storage/table";
import { claimActive, loadActive, loadHistory, loadPlan, recordOutcome, savePlan, savePlanError, upgradeRowKeys } from "../../shared/upgrade/planStore";
import { RejectionLog, REJECTIONS_ROW_KEY } from "../../shared/auth/rejections";
import { pausedPools, recordPoolEvent } from "../../shared/upgrade/pauses";
import type { UpgradePlan } from "../../shared/upgrade/planner";
import { call } from "../support/operatorCalls";
import { getClusterPolicy, putClusterPolicy, setPolicy } from "../support/policyWorld";
import { CLUSTER, postCheckin, useWorld } from "../support/world";

/**
 * Every input Rollcall accepts must be storable: each row it writes, at its worst case, written to
 * Azurite through the real handlers where there is one, and measured against Table Storage's
 * documented limits (32K characters a string property, 1 MiB and 252 properties an entity, by
 * Microsoft's size formula — Azurite checks the string limit but not an insert's entity size).
 */

const world = useWorld();

/** The longest Kubernetes node name: a DNS subdomain of 253 characters. */
const longName = (tag: string) => `${tag}${"a".repeat(62 - tag.length)}x.${"b".repeat(62)}x.${"c".repeat(62)}x.${"d".repeat(60)}x`;
/** Characters JSON escapes to six: the longest a text can become in a JSON field. */
const controls = (n: number) => "\u0001".repeat(n);
const uuid = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;

/** Reads the raw row back and checks it against every documented limit. */
async function assertWithinLimits(table: TableClient, partitionKey: string, rowKey: string): Promise<Record<string, unknown>> {
  const raw = await table.getEntity<Record<string, unknown>>(partitionKey, rowKey);
  const properties = Object.entries(raw).filter(([k]) => !["partitionKey", "rowKey", "etag", "timestamp"].includes(k) && !k.startsWith("odata"));
  assert.ok(properties.length <= TABLE_LIMITS.properties, `${rowKey}: ${properties.length} properties`);
  for (const [key, value] of properties) {
    if (typeof value === "string") assert.ok(value.length <= TABLE_LIMITS.stringChars, `${rowKey}.${key}: ${value.length} characters`);
  }
  const bytes = entityBytes(raw);
  assert.ok(bytes <= TABLE_LIMITS.entityBytes, `${rowKey}: ${bytes} bytes`);
  return raw;
}

/**
 * The most reasons a check-in may carry: `MAX_REASONS` of equal length, each with a quote and a
 * backslash (escaped in JSON), as long as the list stays within `MAX_REASONS_JSON_BYTES`.
 */
function maximalReasons(): string[] {
  // Each reason costs its length, two quotes, two escapes and a comma.
  const length = Math.floor((MAX_REASONS_JSON_BYTES - 2 - (MAX_REASONS - 1)) / MAX_REASONS) - 4;
  const reasons = Array.from({ length: MAX_REASONS }, (_, i) => `${String(i).padStart(3, "0")}"\\${"p".repeat(length - 5)}`);
  assert.ok(reasonsJsonBytes(reasons) <= MAX_REASONS_JSON_BYTES && reasonsJsonBytes(reasons) > MAX_REASONS_JSON_BYTES - MAX_REASONS);
  return reasons;
}

const checkinBody = (reasons: string[]) => ({ bootId: "0f0e0d0c-0b0a-0908-0706-050403020100", rebootRequired: true, reasons, agentVersion: "1.0.0" });

describe("limits that storage holds", () => {
  it("stores the 500 reasons of 68 characters the issue found answering 500, and a check-in of the most reasons the protocol accepts", async () => {
    world.configure();
    const issueCase = Array.from({ length: 500 }, (_, i) => `linux-modules-extra-6.8.0-1017-azure-${String(i).padStart(31, "0")}`);
    assert.equal(issueCase[0]!.length, 68);
    const first = await postCheckin("reasons-issue", { ...checkinBody(issueCase), rebootRequired: false });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const { store, table } = await getRollcall();
    assert.deepEqual((await store.get(CLUSTER, "reasons-issue"))?.value.reasons, issueCase);

    const node = longName("r");
    const reasons = maximalReasons();
    const body = JSON.stringify(checkinBody(reasons));
    assert.ok(Buffer.byteLength(body) <= MAX_CHECKIN_BYTES, "the most reasons fit the body limit with the other fields");
    const answer = await postCheckin(node, body);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const stored = await store.get(CLUSTER, node);
    assert.deepEqual(stored?.value.reasons, reasons);
    const raw = await assertWithinLimits(table, CLUSTER, rowKeys.node(node));
    assert.ok(typeof raw.reasons_1 === "string", "the list takes a second string part");
  });

  it("refuses reasons over the protocol's limits with 400 naming the field: too long all together, or holding a lone surrogate", async () => {
    world.configure();
    // 300 reasons of 200 characters: 60,901 bytes of JSON, inside the body limit but over the reasons' own.
    const tooMany = Array.from({ length: 300 }, (_, i) => `${i}`.padEnd(MAX_REASON_LENGTH, "x"));
    assert.ok(Buffer.byteLength(JSON.stringify(checkinBody(tooMany))) < MAX_CHECKIN_BYTES);
    const over = await postCheckin("reasons-over", checkinBody(tooMany));
    assert.equal(over.status, 400);
    assert.match(JSON.stringify(over.body), /reasons.*at most 60000 bytes as JSON/);
    const lone = await postCheckin("reasons-lone", checkinBody(["linux-image-\ud800"]));
    assert.equal(lone.status, 400);
    assert.match(JSON.stringify(lone.body), /lone UTF-16 surrogate/);
    const { store } = await getRollcall();
    assert.equal(await store.get(CLUSTER, "reasons-over"), undefined, "nothing stored for a refused check-in");
  });

  it("gives a policy concurrency of 1,000 a thousand slots: with 999 held by nodes of the longest names the next node takes the last one and the one after waits", async () => {
    world.configure({ ROLLCALL_CHECKIN_BUSY_SECONDS: "1" });
    const { table } = await getRollcall();
    const holders: LockHolder[] = Array.from({ length: MAX_SLOTS - 1 }, (_, i) => ({
      node: longName(`h${i}`),
      leaseId: uuid(i),
      acquiredAt: "2026-12-01T10:00:00.000Z",
      expiresAt: "2099-12-01T10:00:00.000Z",
    }));
    // The 999 are written as the lock writes its row; the policy write below must keep them.
    await table.createEntity({ partitionKey: CLUSTER, rowKey: rowKeys.lock, ...textProperties("holders", JSON.stringify(holders)), policyVersion: 0 });
    await setPolicy({ concurrency: MAX_SLOTS, health: { waitForHealthy: false } });
    const lock = new TableLock(table);
    assert.equal((await lock.view(CLUSTER)).holders.length, MAX_SLOTS - 1, "the policy write kept every holder");

    const last = longName("last");
    world.sim.addNode(last);
    const answer = await postCheckin(last, checkinBody(["linux-image-azure"]));
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const view = await lock.view(CLUSTER);
    assert.equal(view.holders.length, MAX_SLOTS);
    assert.ok(view.holders.some((h) => h.node === last), "the 1,000th slot is the new node's");
    await assertWithinLimits(table, CLUSTER, rowKeys.lock);

    world.sim.addNode("one-too-many");
    const waiting = await postCheckin("one-too-many", checkinBody(["linux-image-azure"]));
    assert.equal(waiting.status, 200);
    assert.equal(waiting.body.state, "pending");
    assert.match(waiting.body.reason, /^waiting for a free lock slot \(held by .* and 997 more\)$/);
    assert.ok(waiting.body.reason.length < 1_000, "the answer names a few holders, not a thousand");
    assert.equal((await lock.view(CLUSTER)).holders.length, MAX_SLOTS);
  });

  it("refuses a concurrency above what the lock row holds with 400", async () => {
    world.configure();
    const answer = await putClusterPolicy({ concurrency: MAX_SLOTS + 1 });
    assert.equal(answer.status, 400);
    assert.equal(answer.body.error.problems[0].field, "concurrency");
  });

  it("stores a policy document of the largest body the API accepts and answers it unchanged", async () => {
    world.configure();
    const values = (n: number, width: number) => Array.from({ length: n }, (_, i) => `v${String(i).padStart(width - 1, "0")}`);
    const document = (n: number) => ({ blockers: { podSelectors: [`app in (${values(n, 60).join(",")})`] } });
    let n = 1;
    while (Buffer.byteLength(JSON.stringify(document(n + 1))) <= 64 * 1024) n++;
    const largest = document(n);
    assert.ok(Buffer.byteLength(JSON.stringify(largest)) > 64 * 1024 - 62, "within one value of the body limit");
    const put = await putClusterPolicy(largest);
    assert.equal(put.status, 200, put.text.slice(0, 500));
    const got = await getClusterPolicy();
    assert.equal(got.status, 200);
    assert.deepEqual(got.body.policy, largest);
    const { table } = await getRollcall();
    const raw = await assertWithinLimits(table, CLUSTER, POLICY_ROW_KEY);
    assert.ok(typeof raw.document_2 === "string", "the document takes three string parts");
    assert.equal((await putClusterPolicy(document(n + 1))).status, 413);
  });

  it("stores a node record at its worst case: the most reasons, ten transitions of the longest messages, an operator request, every field", async () => {
    world.configure();
    const { table } = await getRollcall();
    const store = new NodeStore(table);
    const node = longName("w");
    const message = controls(MAX_MESSAGE_CHARS);
    const at = "2026-12-01T10:00:00.000Z";
    const record: NodeRecord = {
      cluster: CLUSTER,
      node,
      state: "draining",
      since: at,
      why: message,
      holdReason: message,
      bootId: "0".repeat(64),
      agentVersion: "v".repeat(64),
      rebootRequired: true,
      reasons: maximalReasons(),
      lastCheckinAt: at,
      leaseId: uuid(1),
      wasUnschedulable: false,
      pendingSince: at,
      acquiredAt: at,
      drainStartedAt: at,
      drainBlocker: message,
      drainRetryAt: at,
      drainAttempts: 1_000_000,
      drainedAt: at,
      rebootOrderedAt: at,
      orderBootId: "1".repeat(64),
      orderNodeBootId: "2".repeat(64),
      rebootedAt: at,
      outcome: "drain-failed",
      retryAt: at,
      failures: 1_000_000,
      firstDrainFailureAt: at,
      consecutiveReboots: 100,
      lastRebootAt: at,
      quarantineLabel: "q".repeat(253),
      request: { id: uuid(2), reason: '"'.repeat(500), requestedBy: controls(200), requestedAt: at, notBefore: at, mode: "drain-only", priority: 100, cancelledBy: controls(200) },
      releaseRequestedBy: controls(200),
      recent: Array.from({ length: 10 }, () => ({ at, from: "reboot-ordered", to: "releasing", why: message })),
    };
    const created = await store.create(record);
    assert.deepEqual((await store.get(CLUSTER, node))?.value, record);
    await store.replace({ ...record, state: "releasing" }, created.etag);
    assert.equal((await store.get(CLUSTER, node))?.value.state, "releasing");
    await assertWithinLimits(table, CLUSTER, rowKeys.node(node));
  });

  it("clips messages longer than a record keeps, so no message can make a row unstorable", async () => {
    world.configure();
    const { table } = await getRollcall();
    const store = new NodeStore(table);
    const huge = "m".repeat(TABLE_LIMITS.stringChars * 3);
    const at = "2026-12-01T10:00:00.000Z";
    const record: NodeRecord = { cluster: CLUSTER, node: "clipped", state: "pending", since: at, why: huge, holdReason: huge, rebootRequired: true, reasons: [], recent: [{ at, from: "idle", to: "pending", why: huge }] };
    await store.create(record);
    const stored = (await store.get(CLUSTER, "clipped"))!.value;
    assert.equal(stored.why.length, MAX_MESSAGE_CHARS);
    assert.ok(stored.why.endsWith("…"));
    assert.equal(stored.holdReason?.length, MAX_MESSAGE_CHARS);
    assert.equal(stored.recent?.[0]?.why.length, MAX_MESSAGE_CHARS);
  });

  it("stores a history row at its worst case and serves it through GET /history", async () => {
    world.configure();
    const { table } = await getRollcall();
    const node = longName("hist");
    const entry: HistoryEntry = {
      cluster: CLUSTER,
      node,
      outcome: "operator-released",
      why: controls(MAX_MESSAGE_CHARS),
      leaseId: uuid(3),
      requestedBy: controls(200),
      requestId: uuid(4),
      cancelledBy: controls(200),
      retriedBy: controls(200),
      reasons: maximalReasons(),
      startedAt: "2026-12-01T09:00:00.000Z",
      finishedAt: "2026-12-01T10:00:00.000Z",
      phases: { wait: 1e9, cordon: 1e9, drain: 1e9, reboot: 1e9, return: 1e9 },
    };
    const action = historyAction(entry);
    await table.submitTransaction([action]);
    const answer = await call(history, { method: "GET", path: `clusters/${CLUSTER}/history`, params: { cluster: CLUSTER } });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body.entries, [entry]);
    await assertWithinLimits(table, CLUSTER, (action[1] as { rowKey: string }).rowKey);
  });

  it("stores the upgrade rows at their worst cases: the largest plan with a last error, a long-running operation's poller, twenty outcomes", async () => {
    world.configure();
    const { table } = await getRollcall();
    // A plan whose JSON is just under 16 chunks of 30,000 characters.
    const plan = { cluster: CLUSTER, computedAt: "2026-12-01T10:00:00.000Z", steps: [], notes: ["n".repeat(16 * 30_000 - 200)] } as unknown as UpgradePlan;
    await savePlan(table, CLUSTER, plan);
    const failure = { status: 500, code: "InternalServerError", message: controls(50_000), explanation: controls(50_000) };
    await savePlanError(table, CLUSTER, { at: "2026-12-01T10:00:00.000Z", failure });
    const loaded = await loadPlan(table, CLUSTER);
    assert.deepEqual(loaded?.plan, plan, "the plan stays readable next to the error");
    assert.equal(loaded?.lastError?.failure.code, "InternalServerError");
    await assertWithinLimits(table, CLUSTER, upgradeRowKeys.plan);
    const tooLarge = { ...plan, notes: ["n".repeat(16 * 30_000)] } as unknown as UpgradePlan;
    await assert.rejects(savePlan(table, CLUSTER, tooLarge), /too large to store/);

    const operation = { stepId: "s1", kind: "controlPlane" as const, from: "1.30.0", to: "1.31.0", startedAt: "2026-12-01T10:00:00.000Z", pollerState: "p".repeat(500_000) };
    assert.equal(await claimActive(table, CLUSTER, operation), true);
    assert.deepEqual(await loadActive(table, CLUSTER), operation);
    await assertWithinLimits(table, CLUSTER, upgradeRowKeys.active);

    for (let i = 0; i < 21; i++) {
      await recordOutcome(table, CLUSTER, { stepId: `s${i}`, kind: "controlPlane", to: "1.31.0", result: "failed", at: "2026-12-01T10:00:00.000Z", message: controls(40_000) });
    }
    const outcomes = await loadHistory(table, CLUSTER);
    assert.equal(outcomes.length, 20);
    assert.equal(outcomes[0]!.stepId, "s20");
    await assertWithinLimits(table, CLUSTER, upgradeRowKeys.history);
  });

  it("keeps the refused check-ins of 50 nodes of the longest names and claims, and the upgrade pauses of 300 pools", async () => {
    world.configure();
    const { table } = await getRollcall();
    const rejections = new RejectionLog(table);
    const quiet = { warn: (message: string) => assert.fail(`a refusal was not recorded: ${message}`) };
    for (let i = 0; i < 50; i++) await rejections.record(CLUSTER, longName(`rej${i}`), "wrong_service_account", controls(300), quiet);
    assert.equal((await rejections.list(CLUSTER)).length, 50);
    await assertWithinLimits(table, CLUSTER, REJECTIONS_ROW_KEY);

    const at = new Date();
    for (let i = 0; i < 300; i++) {
      await recordPoolEvent(table, CLUSTER, `pool${String(i).padStart(8, "0")}`, { type: "Microsoft.ContainerService.NodePoolRollingStarted", at: at.toISOString(), id: uuid(i), started: true });
    }
    assert.equal((await pausedPools(table, CLUSTER, at)).length, 300);
    await assertWithinLimits(table, CLUSTER, upgradeRowKeys.pauses);
  });
});
