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

  /** The watch saw a change. */
  signal(): void {
    this.changed = true;
    this.wake?.();
  }

  async next(timeout: Promise<void>): Promise<void> {
    if (!this.changed && !this.closed) await Promise.race([timeout, new Promise<void>((resolve) => (this.wake = resolve))]);
    this.wake = undefined;
    this.changed = false;
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

/** `timeout`, cut short by the feed's next change where there is a feed. */
export function untilChange(feed: ChangeFeed | undefined, timeout: Promise<void>): Promise<void> {
  return feed ? feed.next(timeout) : timeout;
}
