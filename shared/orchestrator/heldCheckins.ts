import type { ClusterLock } from "../lock/tableLock";

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
 * check-in of the same node ends the first.
 */
export class HeldCheckins {
  /** Per cluster, per node: what ends the node's hold. */
  private readonly held = new Map<string, Map<string, () => void>>();
  private readonly polling = new Set<string>();

  constructor(
    private readonly lock: Pick<ClusterLock, "view">,
    private readonly pollMs: number,
  ) {}

  /** Holds the node's check-in for at most `ms`: true when it was woken, false when its time ran out. */
  hold(cluster: string, node: string, ms: number): Promise<boolean> {
    this.wake(cluster, node);
    const nodes = this.held.get(cluster) ?? new Map<string, () => void>();
    this.held.set(cluster, nodes);
    return new Promise<boolean>((resolve) => {
      const end = (woken: boolean) => {
        clearTimeout(timer);
        if (nodes.get(node) === wake) nodes.delete(node);
        if (nodes.size === 0 && this.held.get(cluster) === nodes) this.held.delete(cluster);
        resolve(woken);
      };
      const wake = () => end(true);
      const timer = setTimeout(() => end(false), ms);
      nodes.set(node, wake);
      this.poll(cluster);
    });
  }

  /** Ends the node's hold, if it has one here: something about the node changed. True if it had one. */
  wake(cluster: string, node: string): boolean {
    const wake = this.held.get(cluster)?.get(node);
    wake?.();
    return wake !== undefined;
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
