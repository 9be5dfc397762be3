import { watch as fsWatch } from "node:fs";
import { basename, dirname, join } from "node:path";
import { readHead } from "./files";

/** What node:fs's `watch` gives back, as far as a file's watch uses it (a test may provide its own). */
export interface FolderWatcher {
  close(): void;
  on(event: "error", listener: (error: Error) => void): unknown;
}

export type WatchFunction = (folder: string, options: { persistent: boolean }, listener: (event: string, name: string | Buffer | null) => void) => FolderWatcher;

export interface FileWatchOptions {
  /** How often the file is read when it cannot be watched. */
  pollMs: number;
  /** Other files in the same folder whose changes count as the file's (the sentinel's `.pkgs` list). */
  alsoNames?: string[];
  /** Changes this close together are reported once: one write is often several events, microseconds apart. Default 10 ms. */
  debounceMs?: number;
  /** node:fs's `watch` unless a test provides another. */
  watch?: WatchFunction;
  /** Told once, with why, when the file is polled instead of watched. */
  onPolling?: (reason: string, error?: Error) => void;
}

export interface FileWatch {
  readonly mode: "watch" | "poll";
  close(): void;
}

/**
 * Pseudo-filesystems whose files change without inotify events (`/proc/sys/kernel/random/boot_id`
 * among them): a watch on them succeeds and never fires, so they are polled from the start.
 */
const UNWATCHABLE = /^\/(proc|sys)\//;

/** Enough of a file to tell its content changed where its mtime does not (procfs keeps it fixed). */
const POLL_READ_BYTES = 256;

/**
 * Calls `onChange` soon after the file changes, appears or goes. It watches the file's folder (the
 * file may not exist yet, and editors and kured replace files rather than write them) and keeps only
 * the file's own names; where that cannot be done, or the watch fails later, it polls the file's
 * mtime and first bytes every `pollMs` instead. A caller re-reads the file itself: a change is a hint.
 */
export function watchFileChanges(path: string, onChange: () => void, options: FileWatchOptions): FileWatch {
  const folder = dirname(path);
  const names = new Set([basename(path), ...(options.alsoNames ?? [])]);
  const debounceMs = options.debounceMs ?? 10;
  let mode: FileWatch["mode"] = "watch";
  let closed = false;
  let watcher: FolderWatcher | undefined;
  let debounce: NodeJS.Timeout | undefined;
  let poll: NodeJS.Timeout | undefined;

  const changed = () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      if (!closed) onChange();
    }, debounceMs);
  };

  const snapshot = () => Promise.all([...names].map((name) => signature(join(folder, name)))).then((parts) => parts.join("\0"));
  const startPolling = (reason: string, error?: Error) => {
    mode = "poll";
    options.onPolling?.(reason, error);
    let last: string | undefined;
    const look = async () => {
      const now = await snapshot();
      if (closed) return;
      if (last !== undefined && now !== last) changed();
      last = now;
      poll = setTimeout(() => void look(), options.pollMs);
    };
    void look();
  };

  if (UNWATCHABLE.test(path)) startPolling(`${folder} is a pseudo-filesystem that reports no changes`);
  else {
    try {
      watcher = (options.watch ?? fsWatch)(folder, { persistent: false }, (_event, name) => {
        if (!name || names.has(name.toString())) changed();
      });
      watcher.on("error", (error) => {
        watcher?.close();
        watcher = undefined;
        if (!closed) startPolling(`lost the watch on ${folder}`, error);
      });
    } catch (error) {
      watcher = undefined;
      startPolling(`cannot watch ${folder}`, error as Error);
    }
  }

  return {
    get mode() {
      return mode;
    },
    close() {
      closed = true;
      watcher?.close();
      watcher = undefined;
      clearTimeout(debounce);
      clearTimeout(poll);
    },
  };
}

/** What a poll compares: the file's mtime and first bytes, or why it cannot be read (missing, a folder). */
async function signature(path: string): Promise<string> {
  try {
    const { text, modifiedAt } = await readHead(path, POLL_READ_BYTES);
    return `${modifiedAt.getTime()} ${text}`;
  } catch (error) {
    return `unreadable ${(error as NodeJS.ErrnoException).code ?? ""}`;
  }
}
