import { spawn } from "node:child_process";

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * Runs a command without a shell and resolves with how it ended. Fails only when it cannot be
 * started or runs past `timeoutMs` (then it is killed). The timer is our own: spawn's `timeout`
 * option leaves its timer behind when the command cannot be started.
 */
export function runCommand(argv: string[], timeoutMs: number): Promise<CommandResult> {
  const [file, ...args] = argv;
  return new Promise((resolve, reject) => {
    let stderr = "";
    let settled = false;
    const child = spawn(file!, args, { stdio: ["ignore", "ignore", "pipe"] });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      finish(() => reject(new Error(`${file} did not finish within ${Math.round(timeoutMs / 1000)} s`)));
    }, timeoutMs);
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      settle();
    };
    child.stderr?.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
    child.once("error", (error) => finish(() => reject(error)));
    child.once("close", (code, signal) => finish(() => resolve({ code, signal, stderr: stderr.trim() })));
  });
}
