/**
 * Every timer the simulated cluster starts, so that `stop()` can clear them all and a test process
 * can exit. Each callback is followed by `afterEach` (the controllers settling on the change).
 */
export class Timers {
  private readonly pending = new Set<NodeJS.Timeout>();

  constructor(private readonly afterEach: () => void) {}

  after(ms: number, callback: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.pending.delete(timer);
      callback();
      this.afterEach();
    }, ms);
    this.pending.add(timer);
    return timer;
  }

  cancel(timer: NodeJS.Timeout | undefined): void {
    if (!timer) return;
    clearTimeout(timer);
    this.pending.delete(timer);
  }

  clear(): void {
    for (const timer of this.pending) clearTimeout(timer);
    this.pending.clear();
  }
}
