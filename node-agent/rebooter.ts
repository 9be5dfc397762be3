import { runCommand } from "./command";

/** Reboots the node. Called at most once per lease; the agent has recorded the lease before. */
export interface Rebooter {
  reboot(leaseId: string): Promise<void>;
  readonly describe: string;
}

/**
 * Runs a command, by default kured's: enter the host's mount namespace (the pod has hostPID) and
 * ask systemd to reboot, so that services stop cleanly. A non-zero exit is an error.
 */
export class CommandRebooter implements Rebooter {
  constructor(
    readonly command: string[],
    private readonly timeoutMs = 60_000,
  ) {}

  get describe(): string {
    return `command ${JSON.stringify(this.command)}`;
  }

  async reboot(): Promise<void> {
    const { code, signal, stderr } = await runCommand(this.command, this.timeoutMs);
    if (code !== 0) throw new Error(`reboot command exited with ${signal ?? `code ${code}`}${stderr ? `: ${stderr}` : ""}`);
  }
}

/** A reboot provided by code: the simulation's (`sim.rebootNode()` and a new boot id file). */
export class CallbackRebooter implements Rebooter {
  constructor(
    private readonly callback: (leaseId: string) => Promise<void>,
    readonly describe = "callback",
  ) {}

  reboot(leaseId: string): Promise<void> {
    return this.callback(leaseId);
  }
}
