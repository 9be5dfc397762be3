import { join } from "node:path";
import { LEASE_ID_PATTERN } from "../shared/protocol/wire";
import { BOOT_ID_PATTERN } from "./bootId";
import { isMissing } from "./checker";
import { fsAsync, readHead } from "./files";

/** The lease this node last rebooted for, kept on a host path so that it outlives the container. */
export interface ActedLease {
  /**
   * Absent only in the record that replaced a damaged one written during boot `bootId`: the lease
   * acted on then is unknown, so the next lease ordered during that boot is taken to be it.
   */
  leaseId?: string;
  /** The boot id the node had when it rebooted for this lease. */
  bootId: string;
  rebootedAt: string;
}

/** What is wrong with a parsed lease file, or undefined when it is a lease record. */
function leaseRecordProblem(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "the record: must be an object";
  const v = value as Record<string, unknown>;
  if (v.leaseId !== undefined && (typeof v.leaseId !== "string" || !LEASE_ID_PATTERN.test(v.leaseId))) return "leaseId: must be a UUID";
  if (typeof v.bootId !== "string" || !BOOT_ID_PATTERN.test(v.bootId)) return "bootId: must be a boot id";
  if (typeof v.rebootedAt !== "string" || v.rebootedAt.length > 64) return "rebootedAt: must be a time of at most 64 characters";
  return undefined;
}

/** A record is a few hundred bytes; anything larger is not one, and is not read whole. */
const MAX_RECORD_BYTES = 4096;

/** The lease file exists but holds no lease record (empty, cut short, `null`, edited by hand...). */
export class DamagedLeaseError extends Error {
  override name = "DamagedLeaseError";
  constructor(
    problem: string,
    /** The file's modification time: whether it was written during this boot decides what is safe. */
    readonly writtenAt: Date,
  ) {
    super(problem);
  }
}

export interface LeaseStore {
  /**
   * The last lease acted on; undefined when there is none. Throws DamagedLeaseError when the file
   * holds no lease record, and other errors when the state cannot be read at all.
   */
  read(): Promise<ActedLease | undefined>;
  /** Written durably before the reboot command runs: the agent reboots at most once per lease. */
  write(lease: ActedLease): Promise<void>;
  /** Moves a damaged record out of the way, kept beside it for inspection. */
  putAside(): Promise<void>;
}

export class LeaseFile implements LeaseStore {
  readonly path: string;

  constructor(readonly dir: string) {
    this.path = join(dir, "lease.json");
  }

  async read(): Promise<ActedLease | undefined> {
    let head;
    try {
      head = await readHead(this.path, MAX_RECORD_BYTES);
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    const { text, modifiedAt: writtenAt } = head;
    if (head.truncated) throw new DamagedLeaseError(`${this.path} is larger than ${MAX_RECORD_BYTES} bytes`, writtenAt);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new DamagedLeaseError(`${this.path} is not JSON (${text.trim() ? `${text.length} bytes` : "empty"})`, writtenAt);
    }
    const problem = leaseRecordProblem(value);
    if (problem) throw new DamagedLeaseError(`${this.path} is not a lease record (${problem})`, writtenAt);
    const { leaseId, bootId, rebootedAt } = value as ActedLease;
    return { ...(leaseId !== undefined && { leaseId }), bootId, rebootedAt };
  }

  /** Write to a temporary file, fsync, rename over: the file is either the old record or the new one. */
  async write(lease: ActedLease): Promise<void> {
    await fsAsync.mkdir(this.dir, { recursive: true });
    const temp = `${this.path}.${process.pid}.tmp`;
    const fd = await fsAsync.open(temp, "w", 0o600);
    try {
      await fsAsync.writeFile(fd, `${JSON.stringify(lease)}\n`);
      await fsAsync.fsync(fd);
    } finally {
      await fsAsync.close(fd);
    }
    await fsAsync.rename(temp, this.path);
    await this.syncDir();
  }

  async putAside(): Promise<void> {
    await fsAsync.rename(this.path, `${this.path}.damaged`);
    await this.syncDir();
  }

  private async syncDir(): Promise<void> {
    try {
      const fd = await fsAsync.open(this.dir, "r");
      await fsAsync.fsync(fd).finally(() => fsAsync.close(fd));
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
  async putAside(): Promise<void> {
    this.lease = undefined;
  }
}
