import { uptime } from "node:os";
import { readHead } from "./files";

/** `/proc/sys/kernel/random/boot_id` is a UUID; the protocol accepts any hex-and-dash id of sane length. */
export const BOOT_ID_PATTERN = /^[0-9a-fA-F-]{8,64}$/;

export interface BootIdReader {
  read(): Promise<string>;
  /** When the node booted: what tells a record written during this boot from one of an earlier boot. */
  bootedAt(): Date;
}

/** The kernel's random boot id, a UUID that changes on every boot: how a reboot is proven. */
export class FileBootIdReader implements BootIdReader {
  constructor(readonly path: string) {}

  async read(): Promise<string> {
    const { text, truncated } = await readHead(this.path, 256);
    if (truncated) throw new Error(`${this.path} is larger than a boot id`);
    const id = text.trim();
    if (!BOOT_ID_PATTERN.test(id)) throw new Error(`${this.path} does not hold a boot id (got ${JSON.stringify(id.slice(0, 80))})`);
    return id;
  }

  /** The host's uptime (`/proc/uptime` is not namespaced: a container sees the node's). */
  bootedAt(): Date {
    return new Date(Date.now() - uptime() * 1000);
  }
}
