import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { HeldCheckins } from "../../shared/orchestrator/heldCheckins";

/** A lock row the test fills by hand (a new ETag on every change), counting its reads. */
function lockRow() {
  const row = { holders: [] as string[], etag: 1, reads: 0 };
  const lock = {
    view: async () => {
      row.reads++;
      return { etag: String(row.etag), holders: row.holders.map((node) => ({ node, leaseId: "l", acquiredAt: "", expiresAt: "" })) };
    },
  };
  const set = (holders: string[]) => {
    row.holders = holders;
    row.etag++;
  };
  return { row, lock, set };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("held check-ins on one instance", () => {
  it("ends a hold when its node is woken, and only that node's", async () => {
    const { lock } = lockRow();
    const holds = new HeldCheckins(lock, 60_000);
    const a = holds.hold("prod", "a", 5_000);
    const b = holds.hold("prod", "b", 50);
    assert.equal(holds.wake("prod", "a"), true);
    assert.equal(await a, true);
    assert.equal(await b, false, "b ran out of time");
    assert.equal(holds.wake("prod", "a"), false, "nothing held for a any more");
    assert.equal(holds.size, 0);
  });

  it("ends the earlier hold of a node that checks in again, so one node holds at most one", async () => {
    const { lock } = lockRow();
    const holds = new HeldCheckins(lock, 60_000);
    const first = holds.hold("prod", "a", 5_000);
    const second = holds.hold("prod", "a", 30);
    assert.equal(await first, true);
    assert.equal(holds.size, 1);
    assert.equal(await second, false);
  });

  it("wakes the held nodes the lock row shows holding a slot, reading the row once per poll for all of them", async () => {
    const { row, lock, set } = lockRow();
    set(["other"]);
    const holds = new HeldCheckins(lock, 20);
    const waiting = ["a", "b", "c"].map((node) => holds.hold("prod", node, 5_000));
    await sleep(70);
    assert.ok(row.reads >= 1 && row.reads <= 4, `one read per poll, not per hold (${row.reads})`);
    set(["b"]);
    assert.equal(await waiting[1], true);
    holds.wake("prod", "a");
    holds.wake("prod", "c");
    assert.deepEqual(await Promise.all(waiting), [true, true, true]);
    await sleep(60);
    const readsAfter = row.reads;
    await sleep(60);
    assert.equal(row.reads, readsAfter, "no reads once nothing is held");
  });
});
