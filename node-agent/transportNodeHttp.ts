import { MAX_ANSWER_BYTES } from "./bounds";
import { AnswerTooLarge, RequestTimeout, type Transport } from "./transport";

/**
 * The check-in over Node's http module (not global fetch: undici is some 25 MB more resident),
 * inside the agent's process: what simulated agents use, a thousand of them sharing one process (a
 * curl process each per check-in would be the simulation's whole cost). The agent itself uses curl:
 * over https this module brings Node's TLS, some 6 MB more resident memory on every node
 * (docs/agent.md, "Memory").
 */
export const nodeHttpTransport: Transport = {
  post(url, headers, body, timeoutMs) {
    // Only the scheme in use is loaded: node:https brings TLS, which a loopback orchestrator does not need.
    // require(), not import(): import() starts Node's ESM loader, some 5 MB more resident memory.
    const { request: send } = (url.startsWith("https:") ? require("node:https") : require("node:http")) as typeof import("node:https");
    return new Promise((resolve, reject) => {
      const fail = (error: Error) => {
        clearTimeout(deadline);
        reject(error);
        request.destroy();
      };
      const request = send(url, { method: "POST", headers: { ...headers, "content-length": Buffer.byteLength(body) } }, (response) => {
        const status = response.statusCode ?? 0;
        if (Number(response.headers["content-length"] ?? 0) > MAX_ANSWER_BYTES) return fail(new AnswerTooLarge(status));
        const chunks: Buffer[] = [];
        let size = 0;
        response.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) fail(new AnswerTooLarge(status));
          else chunks.push(chunk);
        });
        response.on("end", () => {
          clearTimeout(deadline);
          resolve({ status, text: Buffer.concat(chunks).toString("utf8") });
        });
        response.on("error", fail);
      });
      const deadline = setTimeout(() => fail(new RequestTimeout()), timeoutMs);
      request.on("error", (error: NodeJS.ErrnoException) => fail(new Error(error.code ?? error.message)));
      request.end(body);
    });
  },
};
