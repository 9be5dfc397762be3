/**
 * What a watch (kube-apiserver `?watch=1`) saw, as wake-ups for a step that otherwise polls:
 * `next(timeout)` resolves at the first change since the previous call, or when `timeout` does. The
 * step reads again either way, so the watch is never the source of truth, and a watch that could
 * not be opened or has ended only waits out the timeout: it costs what polling did, never more.
 */
export class ChangeFeed {
  private changed = false;
  private wake?: () => void;
  private stop?: () => void;
  private closed = false;
  /** The watch was opened; it has ended (then it is never opened again). */
  private wasOpen = false;
  private over = false;

  /** Whether the watch is open now, so that a change will wake a wait. */
  get live(): boolean {
    return this.wasOpen && !this.over && !this.closed;
  }

  /** How the watch ended, once it has: "after-open" (the server's timeout, a dropped connection) or "never-opened" (refused, unreachable). */
  get ended(): "after-open" | "never-opened" | undefined {
    if (!this.over && !this.closed) return undefined;
    return this.wasOpen ? "after-open" : "never-opened";
  }

  /** The watch is open (`true`) or has ended (`false`); an ended watch stays ended. */
  opened(open: boolean): void {
    if (open && !this.over) this.wasOpen = true;
    if (!open) this.over = true;
  }

  /** The watch saw a change. */
  signal(): void {
    this.changed = true;
    this.wake?.();
  }

  /** Whether the watch saw a change (since the previous call) before `timeout`. */
  async next(timeout: Promise<void>): Promise<boolean> {
    if (!this.changed && !this.closed) await Promise.race([timeout, new Promise<void>((resolve) => (this.wake = resolve))]);
    this.wake = undefined;
    const changed = this.changed;
    this.changed = false;
    return changed;
  }

  /** What `close` stops: the watch request, once it is open. */
  onClose(stop: () => void): void {
    if (this.closed) stop();
    else this.stop = stop;
  }

  close(): void {
    this.closed = true;
    this.stop?.();
    this.stop = undefined;
    this.wake?.();
  }
}

/** How often a wait whose watch is open still polls, for a change the watch missed. */
export const WATCHED_POLL_MS = 1_000;

/**
 * One sleep of a bounded wait that polls every `pollMs`, cut short by the feed's next change; while
 * the feed's watch is open the poll only covers a change the watch missed, so it sleeps `watchedPollMs`
 * (kubectl drain polls every second). Answers how many `pollMs` it took, at least one, for a wait
 * budgeted in polls (a test's fixed clock still ends it).
 */
export async function pollOrChange(feed: ChangeFeed | undefined, sleep: (ms: number) => Promise<void>, clock: () => Date, pollMs: number, watchedPollMs: number): Promise<number> {
  const before = clock().getTime();
  const ms = feed?.live ? watchedPollMs : pollMs;
  await (feed ? feed.next(sleep(ms)) : sleep(ms));
  return Math.max(1, Math.round((clock().getTime() - before) / pollMs));
}
