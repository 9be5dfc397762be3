import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ChangeFeed, untilChange } from "../../shared/kube/changeFeed";

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

  it("is just the timeout where there is no feed", async () => {
    let resolved = false;
    await untilChange(undefined, Promise.resolve().then(() => void (resolved = true)));
    assert.equal(resolved, true);
  });
});
