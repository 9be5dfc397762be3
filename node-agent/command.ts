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
  // Loaded on first use: an agent on the sentinel file runs a command only to reboot, and the module
  // stays out of its idle memory until then. require(), not import(): import() starts Node's ESM
  // loader, some 5 MB more resident memory than it saves.
  const { spawn } = require("node:child_process") as typeof import("node:child_process");
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
