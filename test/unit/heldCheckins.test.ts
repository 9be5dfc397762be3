import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ChangeFeed } from "../../shared/kube/changeFeed";
import { HeldCheckins, type HoldEnd } from "../../shared/orchestrator/heldCheckins";

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

/** Held check-ins (lock polled every 20 ms) whose gate watches open at once, each kept in `feeds`. */
function withGateWatches() {
  const feeds: ChangeFeed[] = [];
  const holds = new HeldCheckins(lockRow().lock, 20, async () => {
    const feed = new ChangeFeed();
    feed.opened(true);
    feeds.push(feed);
    return feed;
  });
  return { holds, feeds };
}

describe("held check-ins on one instance", () => {
  it("ends a hold when its node is woken, and only that node's", async () => {
    const { lock } = lockRow();
    const holds = new HeldCheckins(lock, 60_000);
    const a = holds.hold("prod", "a", 5_000);
    const b = holds.hold("prod", "b", 50);
    assert.equal(holds.wake("prod", "a"), true);
    assert.equal(await a, "woken");
    assert.equal(await b, "expired", "b ran out of time");
    assert.equal(holds.wake("prod", "a"), false, "nothing held for a any more");
    assert.equal(holds.size, 0);
  });

  it("ends the earlier hold of a node that checks in again, so one node holds at most one", async () => {
    const { lock } = lockRow();
    const holds = new HeldCheckins(lock, 60_000);
    const first = holds.hold("prod", "a", 5_000);
    const second = holds.hold("prod", "a", 30);
    assert.equal(await first, "superseded", "answered at once: the later check-in holds now");
    assert.equal(holds.size, 1);
    assert.equal(await second, "expired");
  });

  it("wakes the held nodes the lock row shows holding a slot, reading the row once per poll for all of them", async () => {
    const { row, lock, set } = lockRow();
    set(["other"]);
    const holds = new HeldCheckins(lock, 20);
    const waiting = ["a", "b", "c"].map((node) => holds.hold("prod", node, 5_000));
    await sleep(70);
    assert.ok(row.reads >= 1 && row.reads <= 4, `one read per poll, not per hold (${row.reads})`);
    set(["b"]);
    assert.equal(await waiting[1], "woken");
    holds.wake("prod", "a");
    holds.wake("prod", "c");
    assert.deepEqual(await Promise.all(waiting), ["woken", "woken", "woken"]);
    await sleep(60);
    const readsAfter = row.reads;
    await sleep(60);
    assert.equal(row.reads, readsAfter, "no reads once nothing is held");
  });

  it("wakes the nodes a gate holds when the gate watch sees a change, and keeps one watch for them all while any is held", async () => {
    const { holds, feeds } = withGateWatches();
    const gated = ["a", "b"].map((node) => holds.hold("prod", node, 5_000, { gateHeld: true }));
    const queued = holds.hold("prod", "c", 300);
    await sleep(30);
    assert.equal(feeds.length, 1, "one watch for the cluster's gate-held nodes");
    feeds[0]!.signal();
    assert.deepEqual(await Promise.all(gated), ["woken", "woken"]);
    assert.equal(await queued, "expired", "a node waiting for a slot is not woken by a gate's change");
    for (let i = 0; i < 150 && feeds[0]!.live; i++) await sleep(10);
    assert.equal(feeds[0]!.live, false, "the watch is closed once no gate-held node is left");
  });

  it("wakes the five longest held of many gate-held nodes at one change, and the next ones no sooner than a second later", async () => {
    const { lock } = lockRow();
    const feed = new ChangeFeed();
    feed.opened(true);
    const holds = new HeldCheckins(lock, 20, async () => feed);
    const woken: string[] = [];
    const nodes = ["a", "b", "c", "d", "e", "f", "g", "h"];
    const waiting = nodes.map((node) => holds.hold("prod", node, 5_000, { gateHeld: true }).then((w) => void (w === "woken" && woken.push(node))));
    await sleep(30);
    feed.signal();
    await sleep(50);
    assert.deepEqual(woken, ["a", "b", "c", "d", "e"]);
    feed.signal();
    await sleep(300);
    assert.equal(woken.length, 5, "a change right after waits out the gap");
    for (let i = 0; i < 150 && woken.length < 8; i++) await sleep(10);
    assert.deepEqual(woken, nodes, "then the rest");
    await Promise.all(waiting);
  });

  it("wakes a check-in held for another reason once a step finds a gate holding its node", async () => {
    const { holds, feeds } = withGateWatches();
    let woken: HoldEnd | undefined;
    const held = holds.hold("prod", "a", 2_000).then((w) => (woken = w));
    await sleep(30);
    assert.equal(feeds.length, 0, "no watch for a node waiting for a slot");
    holds.gateHeld("prod", "a", true);
    await sleep(30);
    assert.equal(woken, undefined, "still held");
    feeds[0]!.signal();
    assert.equal(await held, "woken");
  });

  it("opens the gate watch again when the server ends it, and leaves a refused one alone for a minute", async () => {
    const { lock } = lockRow();
    let opened = 0;
    let refuse = false;
    const holds = new HeldCheckins(lock, 10, async () => {
      opened++;
      const feed = new ChangeFeed();
      feed.opened(!refuse);
      // The server's timeout ends an open watch soon after.
      if (!refuse) setTimeout(() => feed.opened(false), 15);
      return feed;
    });
    const first = holds.hold("prod", "a", 120, { gateHeld: true });
    assert.equal(await first, "expired");
    assert.ok(opened >= 3, `reopened after each end (${opened} watches)`);
    refuse = true;
    await sleep(40);
    const before = opened;
    await holds.hold("prod", "a", 100, { gateHeld: true });
    await holds.hold("prod", "b", 50, { gateHeld: true });
    assert.equal(opened, before + 1, "a refused watch is not asked again at every hold");
  });
});
