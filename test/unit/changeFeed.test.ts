import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ChangeFeed, pollOrChange } from "../../shared/kube/changeFeed";

const never = () => new Promise<void>(() => {});

describe("a change feed", () => {
  it("wakes a wait at the watch's next change", async () => {
    const feed = new ChangeFeed();
    const waiting = feed.next(never());
    feed.signal();
    await waiting;
  });

  it("ends the next wait at once for a change seen while nobody waited, once", async () => {
    const feed = new ChangeFeed();
    feed.signal();
    await feed.next(never());
    let woke = false;
    void feed.next(new Promise((resolve) => setTimeout(resolve, 30))).then(() => (woke = true));
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(woke, false, "the change was used up by the first wait");
  });

  it("waits out the timeout when nothing changes, and stops the watch when closed", async () => {
    const feed = new ChangeFeed();
    let stopped = 0;
    feed.onClose(() => stopped++);
    await feed.next(Promise.resolve());
    feed.close();
    assert.equal(stopped, 1);
    await feed.next(never());
    const late = new ChangeFeed();
    late.close();
    late.onClose(() => stopped++);
    assert.equal(stopped, 2, "a watch opened after the close is stopped at once");
  });

  it("sleeps the short poll without a feed or before its watch is open, the long one while it is open, and counts the polls it took", async () => {
    const slept: number[] = [];
    let now = 0;
    const sleep = async (ms: number) => void (slept.push(ms), (now += ms));
    const clock = () => new Date(now);
    assert.equal(await pollOrChange(undefined, sleep, clock, 100, 1_000), 1);
    const feed = new ChangeFeed();
    assert.equal(await pollOrChange(feed, sleep, clock, 100, 1_000), 1);
    feed.opened(true);
    assert.equal(await pollOrChange(feed, sleep, clock, 100, 1_000), 10, "a second of a budget counted in 100 ms polls");
    feed.opened(false);
    await pollOrChange(feed, sleep, clock, 100, 1_000);
    assert.deepEqual(slept, [100, 100, 1_000, 100], "a watch that ended is polled as before");
    assert.equal(await pollOrChange(undefined, async () => {}, () => new Date(0), 100, 1_000), 1, "a fixed clock still uses up the budget");
  });
});
