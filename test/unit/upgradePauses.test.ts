import type { TableClient } from "@azure/data-tables";
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeArmError } from "../../shared/upgrade/armFacts";
import { activePoolUpgrades, rebootPauseReason } from "../../shared/upgrade/pauses";
import type { ActiveOperation } from "../../shared/upgrade/planStore";

const tableWith = (operation?: ActiveOperation) =>
  ({
    getEntity: async () => {
      if (!operation) throw Object.assign(new Error("not found"), { statusCode: 404 });
      return { partitionKey: "prod", rowKey: "upgrade:active", operation: JSON.stringify(operation) };
    },
  }) as unknown as TableClient;

const now = new Date("2026-03-02T12:00:00Z");
const op = (extra: Partial<ActiveOperation>): ActiveOperation => ({
  stepId: "poolVersion:user:1.31.3",
  kind: "poolVersion",
  pool: "user",
  from: "1.30.6",
  to: "1.31.3",
  startedAt: "2026-03-02T11:00:00Z",
  pollerState: "{}",
  ...extra,
});

describe("reboot pauses while a pool upgrades", () => {
  it("names the pool whose version or node image is being upgraded", async () => {
    assert.deepEqual(await activePoolUpgrades(tableWith(op({})), "prod", now), ["user"]);
    assert.deepEqual(await activePoolUpgrades(tableWith(op({ kind: "nodeImage", stepId: "nodeImage:user" })), "prod", now), ["user"]);
    assert.match((await rebootPauseReason(tableWith(op({})), "prod", "user", now))!, /pool user is being upgraded: Rollcall is upgrading it \(version → 1\.31\.3/);
  });

  it("pauses nothing when no upgrade runs or only the control plane upgrades", async () => {
    assert.deepEqual(await activePoolUpgrades(tableWith(), "prod", now), []);
    assert.deepEqual(await activePoolUpgrades(tableWith(op({ kind: "controlPlane", pool: undefined })), "prod", now), []);
    assert.equal(await rebootPauseReason(tableWith(op({})), "prod", "system", now), undefined);
  });

  it("ignores an operation abandoned for more than two days", async () => {
    assert.deepEqual(await activePoolUpgrades(tableWith(op({ startedAt: "2026-02-27T11:00:00Z" })), "prod", now), []);
  });
});

describe("ARM error descriptions", () => {
  it("reads ARM's code, message and Retry-After from a RestError", () => {
    const error = {
      statusCode: 429,
      message: "raw",
      response: { headers: { get: (n: string) => (n === "retry-after" ? "17" : undefined) }, bodyAsText: JSON.stringify({ error: { code: "TooManyRequests", message: "slow down" } }) },
    };
    assert.deepEqual(describeArmError(error, "reading"), {
      status: 429,
      code: "TooManyRequests",
      message: "slow down",
      retryAfterSeconds: 17,
      explanation: "reading: throttled by ARM; retry after 17 s",
    });
  });

  it("reports a network failure as ARM being unreachable", () => {
    const failure = describeArmError(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }), "reading");
    assert.equal(failure.status, undefined);
    assert.equal(failure.explanation, "reading: could not reach ARM (ECONNREFUSED)");
  });
});
