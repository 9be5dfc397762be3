import { MAX_REASON_LENGTH, MAX_REASONS, MAX_REASONS_JSON_BYTES, reasonsJsonBytes } from "../shared/protocol/wire";
import { runCommand } from "./command";
import { fsAsync, readHead } from "./files";

/** More of the `.pkgs` list than the protocol's reasons can ever carry: the rest is not read. */
const MAX_PKGS_BYTES = 4 * MAX_REASONS_JSON_BYTES;

/** Whether the node needs a reboot, and why (shown by the orchestrator in the node's status). */
export interface RebootStatus {
  required: boolean;
  reasons: string[];
}

export interface Checker {
  check(): Promise<RebootStatus>;
  /** What is checked, for the log. */
  readonly describe: string;
}

/**
 * kured's default: `/var/run/reboot-required` exists. Debian/Ubuntu's update-notifier writes the
 * packages that asked for it to `/var/run/reboot-required.pkgs`, one per line: those are the reasons.
 */
export class SentinelFileChecker implements Checker {
  constructor(readonly path: string) {}

  get describe(): string {
    return `sentinel file ${this.path}`;
  }

  async check(): Promise<RebootStatus> {
    try {
      await fsAsync.stat(this.path);
    } catch (error) {
      if (isMissing(error)) return { required: false, reasons: [] };
      throw error;
    }
    let pkgs = "";
    try {
      pkgs = (await readHead(`${this.path}.pkgs`, MAX_PKGS_BYTES)).text;
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
    return { required: true, reasons: parseReasons(pkgs) };
  }
}

/** The file's reasons within the protocol's limits: a list too long for the check-in is cut, never refused. */
export function parseReasons(text: string): string[] {
  const seen = new Set<string>();
  let bytes = reasonsJsonBytes([]);
  for (const line of text.split(/\r?\n/)) {
    let reason = line.trim().slice(0, MAX_REASON_LENGTH);
    // Cutting may split a surrogate pair, and the protocol refuses a lone half.
    if (/[\ud800-\udbff]$/.test(reason)) reason = reason.slice(0, -1);
    if (!reason || seen.has(reason)) continue;
    bytes += reasonsJsonBytes([reason]) - 2 + (seen.size > 0 ? 1 : 0);
    if (bytes > MAX_REASONS_JSON_BYTES) break;
    seen.add(reason);
    if (seen.size >= MAX_REASONS) break;
  }
  return [...seen];
}

/**
 * kured's `--reboot-sentinel-command`: the command's exit code 0 means "reboot required", any other
 * code means not. A command that cannot be started, or runs past the timeout, is an error (no answer).
 */
export class SentinelCommandChecker implements Checker {
  constructor(
    readonly command: string[],
    private readonly timeoutMs = 30_000,
  ) {}

  get describe(): string {
    return `sentinel command ${JSON.stringify(this.command)}`;
  }

  async check(): Promise<RebootStatus> {
    const { code, signal } = await runCommand(this.command, this.timeoutMs);
    if (signal) throw new Error(`sentinel command ended by ${signal}`);
    return code === 0 ? { required: true, reasons: [`sentinel command ${this.command.join(" ")}`.slice(0, 200)] } : { required: false, reasons: [] };
  }
}

export function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR";
}
