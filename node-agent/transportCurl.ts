import { MAX_ANSWER_BYTES } from "./bounds";
import { runCommand } from "./command";
import { AnswerTooLarge, RequestTimeout, type Transport } from "./transport";

/** curl's exit code when the answer announces more than --max-filesize. */
const CURL_FILESIZE_EXCEEDED = 63;
/** `--write-out "%{http_code}"`: always three digits, written after the answer's body. */
const STATUS_DIGITS = 3;

/**
 * The check-in through curl, one process per check-in: the agent's own process then never loads
 * Node's TLS, which costs every node some 6 MB of resident memory for a request a minute
 * (docs/agent.md, "Memory"). curl also honours the proxy variables AKS's HTTP proxy injects into
 * every pod (HTTPS_PROXY, NO_PROXY), which Node's http module ignores.
 *
 * Everything secret goes on curl's standard input as a config file (`--config -`): the command
 * line of a process is readable by every process on the host that sees its PID. The body, the
 * check-in's JSON, goes in the same config (`configJson`).
 */
export function curlTransport(command = "curl"): Transport {
  return {
    post(url, headers, body, timeoutMs) {
      const config = [
        `url = ${quote(url)}`,
        ...Object.entries(headers).map(([name, value]) => `header = ${quote(`${name}: ${value}`)}`),
        // Unsent, curl would add `Expect: 100-continue` to a larger body and wait a second for a 100.
        `header = "Expect:"`,
        `data-binary = ${quote(configJson(body))}`,
        `max-filesize = ${MAX_ANSWER_BYTES}`,
        `write-out = "%{http_code}"`,
        "silent",
        "show-error",
      ].join("\n");
      // Loaded on first use, like every command the agent runs (command.ts).
      const { spawn } = require("node:child_process") as typeof import("node:child_process");
      return new Promise((resolve, reject) => {
        // -q first: a ~/.curlrc in the image or the container's HOME must not change the request.
        const curl = spawn(command, ["-q", "--config", "-"], { stdio: ["pipe", "pipe", "pipe"] });
        const chunks: Buffer[] = [];
        let size = 0;
        let stderr = "";
        let failure: Error | undefined;
        const fail = (error: Error) => {
          failure ??= error;
          curl.kill("SIGKILL");
        };
        const deadline = setTimeout(() => fail(new RequestTimeout()), timeoutMs);
        curl.stdout.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES + STATUS_DIGITS) fail(new AnswerTooLarge(0));
          else chunks.push(chunk);
        });
        curl.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(0, 2000)));
        curl.once("error", (error) => fail(new Error(`cannot run ${command}: ${error.message}`)));
        curl.once("close", (code) => {
          clearTimeout(deadline);
          if (failure) return reject(failure);
          if (code === CURL_FILESIZE_EXCEEDED) return reject(new AnswerTooLarge(0));
          if (code !== 0) return reject(new Error(curlError(stderr) ?? `${command} exited with ${code}`));
          const out = Buffer.concat(chunks);
          const status = out.subarray(-STATUS_DIGITS).toString("latin1");
          if (!/^[1-5]\d\d$/.test(status)) return reject(new Error(`${command} wrote no HTTP status`));
          resolve({ status: Number(status), text: out.subarray(0, -STATUS_DIGITS).toString("utf8") });
        });
        // A curl that died before reading its config closes the pipe: its exit code tells why, not EPIPE.
        curl.stdin.on("error", () => {});
        curl.stdin.end(`${config}\n`);
      });
    },
  };
}

/** Why `command` cannot carry check-ins, or undefined when it runs: asked once at start, so that a missing curl stops the agent at once. */
export async function curlProblem(command = "curl"): Promise<string | undefined> {
  try {
    const { code, stderr } = await runCommand([command, "--version"], 10_000);
    return code === 0 ? undefined : `${command} --version exited with ${code}${stderr ? `: ${stderr.slice(0, 200)}` : ""}`;
  } catch (error) {
    return `cannot run ${command}: ${(error as Error).message}`;
  }
}

/** curl's own line, `curl: (60) SSL certificate problem: ...`, without the advice that follows it. */
function curlError(stderr: string): string | undefined {
  const lines = stderr.split("\n").map((l) => l.trim());
  return (lines.find((l) => /^curl: \(\d+\)/.test(l)) ?? lines.find(Boolean))?.slice(0, 300);
}

/**
 * JSON that curl's config syntax can carry: JSON.stringify escapes every control character but
 * DEL, so DEL is written `\u007f`, which inside a JSON string (the only place JSON text can hold
 * it) means the same character. Everything else, UTF-8 included, passes as it is.
 */
export function configJson(json: string): string {
  return json.replaceAll("\u007f", "\\u007f");
}

/**
 * A value in curl's config syntax: within double quotes, `\\`, `\"`, `\n`, `\r`, `\t` and `\v` are
 * escapes. Escaping line ends too keeps a value from ever starting a config line of its own.
 */
export function quote(value: string): string {
  // Any other control character could end or corrupt the line; no URL or header the agent sends holds one.
  if (/[\0-\x08\x0e-\x1f\x7f]/.test(value)) throw new Error("a value for curl holds a control character");
  const escapes: Record<string, string> = { "\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v" };
  return `"${value.replace(/[\\"\n\r\t\v]/g, (c) => escapes[c]!)}"`;
}
