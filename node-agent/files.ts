import { open } from "node:fs/promises";

/**
 * The first `maxBytes` of a file, and whether it holds more: every file the agent reads on the host
 * (sentinel list, boot id, token, lease record) is read this way, so that a huge or endless file
 * cannot exhaust the agent's memory limit.
 */
export async function readHead(path: string, maxBytes: number): Promise<{ text: string; truncated: boolean; modifiedAt: Date }> {
  const handle = await open(path, "r");
  try {
    const modifiedAt = (await handle.stat()).mtime;
    const buffer = Buffer.alloc(maxBytes + 1);
    let filled = 0;
    // A read may return less than asked (pipes, some filesystems) without the file being at its end.
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return { text: buffer.subarray(0, Math.min(filled, maxBytes)).toString("utf8"), truncated: filled > maxBytes, modifiedAt };
  } finally {
    await handle.close();
  }
}
