import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { TableClient } from "@azure/data-tables";
import { withPolicyDefaults, type Policy } from "../../shared/policy/policy";
import { PolicyValidationError } from "../../shared/policy/policySchema";
import { PolicyStore } from "../../shared/policy/policyStore";
import { policyBase } from "../support/fixtures";

const defaults: Policy = withPolicyDefaults({
  concurrency: 1,
  ...policyBase,
});

/** An in-memory stand-in for the TableClient calls the store makes, counting reads (no ETags: one writer). */
function memoryTable() {
  const rows = new Map<string, Record<string, unknown>>();
  const table = {
    reads: 0,
    rows,
    async getEntity(pk: string, rk: string) {
      table.reads++;
      const row = rows.get(`${pk}|${rk}`);
      if (!row) throw Object.assign(new Error("not found"), { statusCode: 404 });
      return { ...row, etag: "e" };
    },
    async upsertEntity(entity: Record<string, unknown> & { partitionKey: string; rowKey: string }) {
      rows.set(`${entity.partitionKey}|${entity.rowKey}`, entity);
      return {};
    },
    async deleteEntity(pk: string, rk: string) {
      rows.delete(`${pk}|${rk}`);
    },
    async submitTransaction(actions: [string, Record<string, unknown> & { partitionKey: string; rowKey: string }][]) {
      for (const [, entity] of actions) rows.set(`${entity.partitionKey}|${entity.rowKey}`, entity);
      // TableTransactionResponse's shape: one sub-response per action, in order.
      return { status: 202, subResponses: actions.map(([, entity]) => ({ status: 204, rowKey: entity.rowKey })) };
    },
  };
  return table;
}

describe("the policy store", () => {
  it("reads storage once and then answers check-ins from memory", async () => {
    const table = memoryTable();
    let now = 0;
    const store = new PolicyStore(table as unknown as TableClient, defaults, () => now, 60_000);
    await store.source("prod");
    now = 30_000;
    for (let i = 0; i < 50; i++) await store.source("prod");
    assert.equal(table.reads, 1);
  });

  it("after the cache period answers from memory at once and re-reads in the background", async () => {
    const table = memoryTable();
    let now = 0;
    const store = new PolicyStore(table as unknown as TableClient, defaults, () => now, 60_000);
    assert.equal((await store.source("prod")).concurrency, 1);
    table.rows.set("prod|policy", { document: JSON.stringify({ concurrency: 4 }), updatedAt: "", updatedBy: "x" });
    now = 61_000;
    assert.equal((await store.source("prod")).concurrency, 1, "the stale policy, without waiting");
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal((await store.source("prod")).concurrency, 4);
    assert.equal(table.reads, 2);
  });

  it("refuses an invalid policy and leaves the stored one unchanged", async () => {
    const table = memoryTable();
    const store = new PolicyStore(table as unknown as TableClient, defaults);
    await store.write("prod", { concurrency: 2 }, "alice");
    await assert.rejects(store.write("prod", { concurrency: "two" }, "bob"), PolicyValidationError);
    assert.deepEqual((await store.read("prod"))?.document, { concurrency: 2 });
    assert.equal((await store.source("prod")).concurrency, 2);
  });

  it("keeps coordinating on the defaults when a stored row no longer validates", async () => {
    const table = memoryTable();
    table.rows.set("prod|policy", { document: JSON.stringify({ drain: { timeoutMinutes: 600 } }), updatedAt: "", updatedBy: "x" });
    const store = new PolicyStore(table as unknown as TableClient, defaults);
    const original = console.error;
    const logged: string[] = [];
    console.error = (...args: unknown[]) => logged.push(args.join(" "));
    try {
      assert.equal((await store.source("prod")).drain.timeoutMs, 900_000);
    } finally {
      console.error = original;
    }
    assert.match(logged.join("\n"), /invalid stored policy, using the app-setting defaults/);
    await assert.rejects(store.load("prod"), PolicyValidationError);
  });
});
