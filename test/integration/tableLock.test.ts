import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { LeaseNotYoursError, type LockHolder, TableLock } from "../../shared/lock/tableLock";
import { NodeStore, type NodeRecord } from "../../shared/node/nodeRecord";
import { useAzurite } from "../support/azurite";

const storage = useAzurite();
const holder = (node: string, leaseId = `lease-${node}`): LockHolder => ({
  node,
  leaseId,
  acquiredAt: "2026-11-24T03:00:00.000Z",
  expiresAt: "2026-11-24T04:00:00.000Z",
});

describe("the table lock", () => {
  it("lets exactly one of twenty racing acquirers win a single slot", async () => {
    const lock = new TableLock(await storage.table());
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => lock.acquire("prod", holder(`n${i}`), 1)));
    assert.equal(results.filter((r) => r.kind === "acquired").length, 1);
    assert.equal((await lock.view("prod")).holders.length, 1);
  });

  it("never hands out more slots than configured, however many race for them", async () => {
    const lock = new TableLock(await storage.table());
    for (let round = 0; round < 10; round++) {
      await Promise.all(Array.from({ length: 10 }, (_, i) => lock.acquire("prod", holder(`n${i}`), 3)));
    }
    const { holders } = await lock.view("prod");
    assert.equal(holders.length, 3);
    assert.equal(new Set(holders.map((h) => h.node)).size, 3);
  });

  it("keeps the last turn's release in the row through later acquires, and not a lease expiry's", async () => {
    const lock = new TableLock(await storage.table());
    const cluster = "last-release";
    await lock.acquire(cluster, holder("n1"), 2);
    await lock.acquire(cluster, holder("n2"), 2);
    assert.equal((await lock.view(cluster)).lastRelease, undefined, "nothing released yet");
    await lock.release(cluster, "n1", "lease-n1", [], new Date("2026-11-24T03:10:00.000Z"));
    await lock.acquire(cluster, holder("n3"), 2);
    assert.deepEqual((await lock.view(cluster)).lastRelease, { node: "n1", at: "2026-11-24T03:10:00.000Z" });
    // The reconcile timer frees an expired lease without a time: that node's turn did not end well.
    await lock.release(cluster, "n2", "lease-n2");
    assert.deepEqual((await lock.view(cluster)).lastRelease, { node: "n1", at: "2026-11-24T03:10:00.000Z" });
  });

  it("keeps clusters apart", async () => {
    const lock = new TableLock(await storage.table());
    assert.equal((await lock.acquire("a", holder("n1"), 1)).kind, "acquired");
    assert.equal((await lock.acquire("b", holder("n1"), 1)).kind, "acquired");
    assert.equal((await lock.acquire("a", holder("n2"), 1)).kind, "full");
  });

  it("refuses to release a lease held by another node, and changes nothing", async () => {
    const lock = new TableLock(await storage.table());
    await lock.acquire("prod", holder("n1", "L1"), 1);
    await assert.rejects(lock.release("prod", "n2", "L1"), LeaseNotYoursError);
    assert.deepEqual((await lock.view("prod")).holders.map((h) => h.node), ["n1"]);
  });

  it("treats releasing a lease that is already free as done", async () => {
    const lock = new TableLock(await storage.table());
    await lock.acquire("prod", holder("n1", "L1"), 1);
    assert.equal((await lock.release("prod", "n1", "L1")).kind, "released");
    assert.equal((await lock.release("prod", "n1", "L1")).kind, "not-held");
  });

  it("commits the node's state with the slot or neither", async () => {
    const table = await storage.table();
    const lock = new TableLock(table);
    const store = new NodeStore(table);
    const base: NodeRecord = { cluster: "prod", node: "n1", state: "pending", since: "t", why: "w", rebootRequired: true, reasons: [] };
    const created = await store.create(base);
    await store.replace({ ...base, why: "someone else wrote" }, created.etag);
    const stale = store.replaceAction({ ...base, state: "cordoning", leaseId: "L1" }, created.etag);
    assert.equal((await lock.acquire("prod", holder("n1", "L1"), 1, [stale])).kind, "conflict");
    assert.deepEqual((await lock.view("prod")).holders, [], "the slot was not taken");
    assert.equal((await store.get("prod", "n1"))?.value.state, "pending");

    const fresh = (await store.get("prod", "n1"))!;
    const write = store.replaceAction({ ...fresh.value, state: "cordoning", leaseId: "L1" }, fresh.etag);
    assert.equal((await lock.acquire("prod", holder("n1", "L1"), 1, [write])).kind, "acquired");
    assert.equal((await store.get("prod", "n1"))?.value.state, "cordoning");
  });

  it("answers the new ETags of the rows it commits with the slot, so the caller writes them again without a read", async () => {
    const table = await storage.table();
    const lock = new TableLock(table);
    const store = new NodeStore(table);
    const base: NodeRecord = { cluster: "etags", node: "n1", state: "pending", since: "t", why: "w", rebootRequired: true, reasons: [] };
    const created = await store.create(base);
    const other = await store.create({ ...base, node: "n2" });
    const acquired = await lock.acquire("etags", holder("n1", "L1"), 1, [store.replaceAction({ ...base, state: "cordoning", leaseId: "L1" }, created.etag), store.replaceAction({ ...base, node: "n2", why: "along" }, other.etag)]);
    assert.equal(acquired.kind, "acquired");
    const etags = acquired.kind === "acquired" ? acquired.etags : undefined;
    assert.deepEqual(etags, [(await store.get("etags", "n1"))?.etag, (await store.get("etags", "n2"))?.etag]);
    // The answered ETag is the row's current one: a write made with it lands.
    const cordoning = await store.replace({ ...base, state: "draining", leaseId: "L1" }, etags![0]!);

    const released = await lock.release("etags", "n1", "L1", [store.replaceAction({ ...base, state: "idle" }, cordoning.etag)]);
    assert.equal(released.kind, "released");
    assert.deepEqual(released.kind === "released" ? released.etags : undefined, [(await store.get("etags", "n1"))?.etag]);
  });
});
