import { readFile } from "node:fs/promises";

export interface BootIdReader {
  read(): Promise<string>;
}

/** The kernel's random boot id, a UUID that changes on every boot: how a reboot is proven. */
export class FileBootIdReader implements BootIdReader {
  constructor(readonly path: string) {}

  async read(): Promise<string> {
    const id = (await readFile(this.path, "utf8")).trim();
    if (!/^[0-9a-fA-F-]{8,64}$/.test(id)) throw new Error(`${this.path} does not hold a boot id (got ${JSON.stringify(id.slice(0, 80))})`);
    return id;
  }
}
