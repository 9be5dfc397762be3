/**
 * A model of kured's algorithm, in virtual time: every node's kured checks every `periodMs` (each
 * node starting at a random phase, as kured's pods start at different times), and when its sentinel
 * is set and the lock (the DaemonSet annotation, `concurrency` holders) has room, it takes it,
 * drains, reboots, and releases the lock when it is back. Nothing else wakes a waiting node: after a
 * release, the next node only notices at its next period tick. Kured's own API latencies are left
 * out, which favours kured.
 */
export interface KuredModelOptions {
  nodes: number;
  concurrency: number;
  periodMs: number;
  drainMs: number;
  rebootMs: number;
  /** Deterministic phases for a given seed. */
  seed?: number;
}

export function kuredRolloutMs(options: KuredModelOptions): number {
  const random = mulberry32(options.seed ?? 1);
  const nextCheck = Array.from({ length: options.nodes }, () => random() * options.periodMs);
  const done = new Array<boolean>(options.nodes).fill(false);
  let holders: number[] = []; // release times of current lock holders
  let finished = 0;
  let end = 0;
  // Process checks in time order.
  for (let guard = 0; finished < options.nodes && guard < options.nodes * 100_000; guard++) {
    let i = -1;
    for (let n = 0; n < options.nodes; n++) if (!done[n] && (i < 0 || nextCheck[n]! < nextCheck[i]!)) i = n;
    const now = nextCheck[i]!;
    holders = holders.filter((releaseAt) => releaseAt > now);
    if (holders.length < options.concurrency) {
      const releaseAt = now + options.drainMs + options.rebootMs;
      holders.push(releaseAt);
      done[i] = true;
      finished++;
      end = Math.max(end, releaseAt);
    } else {
      nextCheck[i] = now + options.periodMs;
    }
  }
  return end;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
