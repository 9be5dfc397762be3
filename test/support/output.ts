import { Writable } from "node:stream";

/** A stream that keeps what `npm start` (runStart) writes, for tests to read. */
export function collector(): { stream: Writable; text: () => string } {
  let text = "";
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      text += chunk.toString();
      callback();
    },
  });
  return { stream, text: () => text };
}
