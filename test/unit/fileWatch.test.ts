import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type FileWatch, watchFileChanges, type WatchFunction } from "../../node-agent/fileWatch";

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function folder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "rollcall-filewatch-"));
  dirs.push(dir);
  return dir;
}

/** Resolves at the next change the watch reports; rejects when none comes within `withinMs`. */
function changes(): { next(withinMs: number): Promise<void>; count: () => number; onChange: () => void } {
  let count = 0;
  let waiter: (() => void) | undefined;
  return {
    onChange: () => {
      count++;
      waiter?.();
    },
    count: () => count,
    next: (withinMs) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no change reported within ${withinMs} ms`)), withinMs);
        waiter = () => {
          clearTimeout(timer);
          waiter = undefined;
          resolve();
        };
      }),
  };
}

/** A boot id file holding b0000001 in a folder of its own. */
async function bootIdFile(): Promise<string> {
  const file = join(await folder(), "boot_id");
  await writeFile(file, "b0000001\n");
  return file;
}

async function reportsNewBootId(seen: ReturnType<typeof changes>, file: string): Promise<void> {
  const next = seen.next(2000);
  await writeFile(file, "b0000002\n");
  await next;
}

function timers(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;
}

describe("watching a file for changes", () => {
  it("reports a change of the file once for a burst of writes, by its folder's watch", async () => {
    const file = await bootIdFile();
    const seen = changes();
    // A debounce wider than the agent's 10 ms: on a loaded CI machine two awaited writes can be 10 ms apart.
    const watch = watchFileChanges(file, seen.onChange, { pollMs: 60_000, debounceMs: 150 });
    try {
      assert.equal(watch.mode, "watch");
      const next = seen.next(2000);
      await writeFile(file, "b0000002\n");
      await writeFile(file, "b0000002\n");
      await next;
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(seen.count(), 1, "the writes of one burst are one change");
    } finally {
      watch.close();
    }
  });

  it("ignores changes of other files in the folder", async () => {
    const dir = await folder();
    const file = join(dir, "reboot-required");
    const seen = changes();
    const watch = watchFileChanges(file, seen.onChange, { pollMs: 60_000 });
    try {
      await writeFile(join(dir, "unrelated"), "x");
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(seen.count(), 0);
      const next = seen.next(300);
      await writeFile(`${file}.pkgs`, "linux-image-azure\n");
      await assert.rejects(next, "the .pkgs list is another file unless named");
    } finally {
      watch.close();
    }
  });

  it("reports changes of the other names it is given in the same folder", async () => {
    const dir = await folder();
    const file = join(dir, "reboot-required");
    const seen = changes();
    const watch = watchFileChanges(file, seen.onChange, { pollMs: 60_000, alsoNames: ["reboot-required.pkgs"] });
    try {
      const next = seen.next(2000);
      await writeFile(`${file}.pkgs`, "linux-image-azure\n");
      await next;
    } finally {
      watch.close();
    }
  });

  it("polls a file whose folder does not exist yet, and reports the file once it appears", async () => {
    const dir = await folder();
    const file = join(dir, "not-yet", "reboot-required");
    const seen = changes();
    const reasons: string[] = [];
    const watch = watchFileChanges(file, seen.onChange, { pollMs: 50, onPolling: (reason) => reasons.push(reason) });
    try {
      assert.equal(watch.mode, "poll");
      assert.equal(reasons.length, 1);
      const next = seen.next(2000);
      await mkdir(join(dir, "not-yet"));
      await writeFile(file, "");
      await next;
    } finally {
      watch.close();
    }
  });

  it("polls when the folder cannot be watched (ENOSYS), and reports a change of the file's content", async () => {
    const file = await bootIdFile();
    const cannot: WatchFunction = () => {
      throw Object.assign(new Error("watch: function not implemented"), { code: "ENOSYS" });
    };
    const seen = changes();
    const watch = watchFileChanges(file, seen.onChange, { pollMs: 50, watch: cannot });
    try {
      assert.equal(watch.mode, "poll");
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(seen.count(), 0, "an unchanged file is no change");
      await reportsNewBootId(seen, file);
    } finally {
      watch.close();
    }
  });

  it("falls back to polling when the folder's watch fails later", async () => {
    const file = await bootIdFile();
    const watcher = Object.assign(new EventEmitter(), { closed: false, close: () => void (watcher.closed = true) });
    const seen = changes();
    const watch = watchFileChanges(file, seen.onChange, { pollMs: 50, watch: () => watcher });
    try {
      assert.equal(watch.mode, "watch");
      watcher.emit("error", Object.assign(new Error("inotify watch lost"), { code: "EIO" }));
      assert.equal(watch.mode, "poll");
      assert.ok(watcher.closed, "the failed watcher is closed");
      await reportsNewBootId(seen, file);
    } finally {
      watch.close();
    }
  });

  it("polls files under /proc, whose changes inotify never reports", () => {
    let watched = false;
    const watch: FileWatch = watchFileChanges("/proc/sys/kernel/random/boot_id", () => {}, { pollMs: 5000, watch: () => ((watched = true), new EventEmitter() as never) });
    try {
      assert.equal(watch.mode, "poll");
      assert.equal(watched, false);
    } finally {
      watch.close();
    }
  });

  it("leaves no timer behind once closed, and reports nothing after", async () => {
    const file = await bootIdFile();
    const before = timers();
    const seen = changes();
    const polled = watchFileChanges(file, seen.onChange, { pollMs: 20, watch: () => { throw new Error("no watch"); } });
    const watched = watchFileChanges(file, seen.onChange, { pollMs: 20 });
    await new Promise((r) => setTimeout(r, 100));
    await writeFile(file, "b0000002\n");
    polled.close();
    watched.close();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(seen.count(), 0, "a change pending when closed is not reported");
    assert.equal(timers(), before);
  });
});
