import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../shared/config/config";

const base = { ROLLCALL_STORAGE_CONNECTION: "UseDevelopmentStorage=true" };

describe("the app settings", () => {
  it("apply the documented defaults when only storage is set", () => {
    const config = parseConfig(base);
    assert.equal(config.defaults.concurrency, 1);
    assert.equal(config.defaults.lockTtlMs, 60 * 60_000);
    assert.equal(config.defaults.drain.timeoutMs, 15 * 60_000);
    assert.equal(config.storage.table, "rollcall");
    assert.deepEqual(config.clusters, []);
  });

  it("fall back to the Functions host's AzureWebJobsStorage", () => {
    assert.equal(parseConfig({ AzureWebJobsStorage: "UseDevelopmentStorage=true" }).storage.connectionString, "UseDevelopmentStorage=true");
  });

  it("name the bad setting when a number is not a number", () => {
    assert.throws(() => parseConfig({ ...base, ROLLCALL_CONCURRENCY: "two" }), /ROLLCALL_CONCURRENCY/);
  });

  it("name the cluster entry that lacks a connection", () => {
    assert.throws(() => parseConfig({ ...base, ROLLCALL_CLUSTERS: '[{"name":"prod"}]' }), /ROLLCALL_CLUSTERS\.0.*exactly one of/);
  });

  it("refuse clusters that are not JSON, or duplicated", () => {
    assert.throws(() => parseConfig({ ...base, ROLLCALL_CLUSTERS: "prod" }), /ROLLCALL_CLUSTERS: must be a JSON array/);
    const twice = JSON.stringify([
      { name: "a", kubeconfigFile: "/k" },
      { name: "a", kubeconfigFile: "/k" },
    ]);
    assert.throws(() => parseConfig({ ...base, ROLLCALL_CLUSTERS: twice }), /unique/);
  });

  it("refuse a drain timeout as long as the lock TTL", () => {
    assert.throws(() => parseConfig({ ...base, ROLLCALL_DRAIN_TIMEOUT_MINUTES: "60", ROLLCALL_LOCK_TTL_MINUTES: "60" }), /ROLLCALL_DRAIN_TIMEOUT_MINUTES/);
  });

  it("hold a queued check-in 20 s by default, not at all with 0, and refuse more than Azure's front end lets a request take", () => {
    assert.equal(parseConfig(base).checkinHoldMs, 20_000);
    assert.equal(parseConfig({ ...base, ROLLCALL_CHECKIN_HOLD_SECONDS: "0" }).checkinHoldMs, 0);
    assert.throws(() => parseConfig({ ...base, ROLLCALL_CHECKIN_HOLD_SECONDS: "201" }), /ROLLCALL_CHECKIN_HOLD_SECONDS/);
    assert.throws(() => parseConfig({ ...base, ROLLCALL_CHECKIN_HOLD_SECONDS: "-1" }), /ROLLCALL_CHECKIN_HOLD_SECONDS/);
  });

  it("require some storage", () => {
    assert.throws(() => parseConfig({}), /ROLLCALL_STORAGE_CONNECTION/);
  });

  it("accept an AKS cluster by resource id", () => {
    const id = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/prod";
    const config = parseConfig({ ...base, ROLLCALL_CLUSTERS: JSON.stringify([{ name: "prod", aksResourceId: id }]) });
    assert.equal(config.clusters[0]?.aksAuth, "token");
  });
});
