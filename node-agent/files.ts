import * as fs from "node:fs";
import { promisify } from "node:util";

// The callback API, promisified: node:fs/promises loads readline and web streams, some 0.4 MB of
// resident memory an agent idle on every node does not need.
export const fsAsync = {
  open: promisify(fs.open),
  read: promisify(fs.read),
  writeFile: promisify(fs.writeFile),
  fstat: promisify(fs.fstat),
  fsync: promisify(fs.fsync),
  close: promisify(fs.close),
  stat: promisify(fs.stat),
  mkdir: promisify(fs.mkdir),
  rename: promisify(fs.rename),
};

/**
 * The first `maxBytes` of a file, and whether it holds more: every file the agent reads on the host
 * (sentinel list, boot id, token, lease record) is read this way, so that a huge or endless file
 * cannot exhaust the agent's memory limit.
 */
export async function readHead(path: string, maxBytes: number): Promise<{ text: string; truncated: boolean; modifiedAt: Date }> {
  const fd = await fsAsync.open(path, "r");
  try {
    const modifiedAt = (await fsAsync.fstat(fd)).mtime;
    const buffer = Buffer.alloc(maxBytes + 1);
    let filled = 0;
    // A read may return less than asked (pipes, some filesystems) without the file being at its end.
    while (filled < buffer.length) {
      const { bytesRead } = await fsAsync.read(fd, buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return { text: buffer.subarray(0, Math.min(filled, maxBytes)).toString("utf8"), truncated: filled > maxBytes, modifiedAt };
  } finally {
    await fsAsync.close(fd);
  }
}
