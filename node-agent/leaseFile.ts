import { mkdir, open, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { isMissing } from "./checker";

/** The lease this node last rebooted for, kept on a host path so that it outlives the container. */
export interface ActedLease {
  leaseId: string;
  /** The boot id the node had when it rebooted for this lease. */
  bootId: string;
  rebootedAt: string;
}

export interface LeaseStore {
  /** The last lease acted on; undefined when there is none. Throws when the state cannot be read. */
  read(): Promise<ActedLease | undefined>;
  /** Written durably before the reboot command runs: the agent reboots at most once per lease. */
  write(lease: ActedLease): Promise<void>;
}

export class LeaseFile implements LeaseStore {
  readonly path: string;

  constructor(readonly dir: string) {
    this.path = join(dir, "lease.json");
  }

  async read(): Promise<ActedLease | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    const value = JSON.parse(text) as Partial<ActedLease>;
    if (typeof value.leaseId !== "string" || typeof value.bootId !== "string") throw new Error(`${this.path} is not a lease record`);
    return { leaseId: value.leaseId, bootId: value.bootId, rebootedAt: String(value.rebootedAt ?? "") };
  }

  /** Write to a temporary file, fsync, rename over: the file is either the old record or the new one. */
  async write(lease: ActedLease): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const temp = `${this.path}.${process.pid}.tmp`;
    const handle = await open(temp, "w", 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(lease)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, this.path);
    try {
      const dir = await open(this.dir, "r");
      await dir.sync().finally(() => dir.close());
    } catch {
      // Directory fsync is best effort (not every filesystem allows opening a directory).
    }
  }
}

/** For tests and one-off runs: remembers the lease in memory only. */
export class MemoryLeaseStore implements LeaseStore {
  lease?: ActedLease;
  async read(): Promise<ActedLease | undefined> {
    return this.lease;
  }
  async write(lease: ActedLease): Promise<void> {
    this.lease = { ...lease };
  }
}
