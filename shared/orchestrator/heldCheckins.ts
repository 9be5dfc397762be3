import type { ChangeFeed } from "../kube/changeFeed";
import type { ClusterLock } from "../lock/tableLock";

/**
 * Opens a watch of what may lift a gate holding a queued node (the cluster's PodDisruptionBudgets),
 * or answers undefined when the cluster offers none.
 */
export type GateWatch = (cluster: string) => Promise<ChangeFeed | undefined>;

/**
 * How many gate-held check-ins one budget change wakes, and how soon the next change may wake more: at
 * 1,000 nodes and concurrency 50 a budget changes many times a second and dozens of nodes are held,
 * and waking them all each time cost more than the rollout's own work. The rest are stepped again at
 * the busy interval, as before.
 */
const GATE_WAKES_PER_CHANGE = 5;
const GATE_WAKE_GAP_MS = 1_000;

/** After a gate watch that could not be opened (no `watch` in an older ClusterRole), how long before it is tried again. */
const GATE_WATCH_RETRY_MS = 60_000;

/**
 * Queued check-ins held open until the node's turn may have come (a long poll, as a Kubernetes watch
 * or a Consul blocking query): the agent says how long it may wait (`Prefer: wait=N`, RFC 7240), and
 * the answer goes out the moment the node takes a slot, instead of at the agent's next check-in.
 * Without it, a node handed a freed slot sat drained until its agent's next check-in (up to the busy
 * interval), and 1,000 queued agents checking in every 2 s asked more of the app than it could serve.
 *
 * A hold ends when this instance moves the node on (`wake`, from every transition it writes), when
 * the cluster's lock row shows the node holding a slot another instance gave it (each instance reads
 * the row once per `pollMs` for all its holds together), or when its time is up. A slot no release
 * could hand over is taken at the next check-in, within the hold's time. One hold per node: a second
 * check-in of the same node ends the first as `superseded`, and that one is answered at once. (An
 * agent asks again when its own request timed out; the two holding in turn, each woken when the other
 * held again, were most of the app's storage operations at 1,000 nodes.)
 *
 * A node a gate holds (`gateHeld`) waits for no Rollcall event: mostly a PodDisruptionBudget that
 * allows no disruption while other nodes drain. While this instance holds such nodes of a cluster, it
 * keeps one watch of the cluster's budgets open for all of them, and a budget that comes to allow a
 * disruption wakes the longest held of them, a few at a time and at most once a second. At concurrency
 * 5, waiting for the busy interval instead left one slot in five empty for most of a round.
 */
export class HeldCheckins {
  /** Per cluster, per node: what ends the node's hold, and whether a gate holds the node. */
  private readonly held = new Map<string, Map<string, Hold>>();
  private readonly polling = new Set<string>();
  private readonly gateWatching = new Set<string>();
  /** Per cluster, when a gate watch that could not be opened may be tried again. */
  private readonly gateWatchRefusedUntil = new Map<string, number>();

  constructor(
    private readonly lock: Pick<ClusterLock, "view">,
    private readonly pollMs: number,
    private readonly gateWatch?: GateWatch,
  ) {}

  /** Holds the node's check-in for at most `ms`: how the hold ended (woken, its time ran out, or a later check-in of the node took its place). */
  hold(cluster: string, node: string, ms: number, { gateHeld = false } = {}): Promise<HoldEnd> {
    this.held.get(cluster)?.get(node)?.end("superseded");
    const nodes = this.held.get(cluster) ?? new Map<string, Hold>();
    this.held.set(cluster, nodes);
    return new Promise<HoldEnd>((resolve) => {
      const end = (how: HoldEnd) => {
        clearTimeout(timer);
        if (nodes.get(node) === hold) nodes.delete(node);
        if (nodes.size === 0 && this.held.get(cluster) === nodes) this.held.delete(cluster);
        resolve(how);
      };
      const hold: Hold = { end, gateHeld };
      const timer = setTimeout(() => end("expired"), ms);
      nodes.set(node, hold);
      this.poll(cluster);
      if (gateHeld) this.watchGates(cluster);
    });
  }

  /** Ends the node's hold, if it has one here: something about the node changed. True if it had one. */
  wake(cluster: string, node: string): boolean {
    const hold = this.held.get(cluster)?.get(node);
    hold?.end("woken");
    return hold !== undefined;
  }

  /** Records whether a gate holds the node whose check-in may be held here (a step found it so since the hold began). */
  gateHeld(cluster: string, node: string, gateHeld: boolean): void {
    const hold = this.held.get(cluster)?.get(node);
    if (!hold || hold.gateHeld === gateHeld) return;
    hold.gateHeld = gateHeld;
    if (gateHeld) this.watchGates(cluster);
  }

  private gateHeldHolds(cluster: string): Hold[] {
    return [...(this.held.get(cluster)?.values() ?? [])].filter((hold) => hold.gateHeld);
  }

  /** Keeps one gate watch of the cluster open while gate-held check-ins are held here (see the class comment). */
  private watchGates(cluster: string): void {
    const watch = this.gateWatch;
    if (!watch || this.gateWatching.has(cluster) || (this.gateWatchRefusedUntil.get(cluster) ?? 0) > Date.now()) return;
    this.gateWatching.add(cluster);
    const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
    void (async () => {
      while (this.gateHeldHolds(cluster).length > 0) {
        const feed = await watch(cluster).catch(() => undefined);
        if (!feed) break;
        try {
          // Until no gate-held check-in is left here, or the watch ends (the server's timeout: opened again).
          while (this.gateHeldHolds(cluster).length > 0 && !feed.ended) {
            if (!(await feed.next(pause(this.pollMs)))) continue;
            // The longest held first; each woken node is held again behind the rest.
            for (const hold of this.gateHeldHolds(cluster).slice(0, GATE_WAKES_PER_CHANGE)) hold.end("woken");
            await pause(GATE_WAKE_GAP_MS);
          }
        } finally {
          feed.close();
        }
        if (feed.ended === "never-opened" && this.gateHeldHolds(cluster).length > 0) {
          // Refused or unreachable: the holds fall back on the busy interval's re-check.
          this.gateWatchRefusedUntil.set(cluster, Date.now() + GATE_WATCH_RETRY_MS);
          break;
        }
        await pause(this.pollMs);
      }
      this.gateWatching.delete(cluster);
    })();
  }

  /** How many check-ins this instance holds now. */
  get size(): number {
    let count = 0;
    for (const nodes of this.held.values()) count += nodes.size;
    return count;
  }

  private poll(cluster: string): void {
    if (this.polling.has(cluster)) return;
    this.polling.add(cluster);
    let seen: string | undefined;
    const look = async () => {
      if (!this.held.has(cluster)) {
        this.polling.delete(cluster);
        return;
      }
      try {
        const view = await this.lock.view(cluster);
        if (view.etag !== seen) {
          seen = view.etag;
          for (const holder of view.holders) this.wake(cluster, holder.node);
        }
      } catch {
        // A failed read is the next poll's; the holds end on their own time at worst.
      }
      setTimeout(() => void look(), this.pollMs).unref();
    };
    setTimeout(() => void look(), this.pollMs).unref();
  }
}

export type HoldEnd = "woken" | "expired" | "superseded";

interface Hold {
  end: (how: HoldEnd) => void;
  gateHeld: boolean;
}
