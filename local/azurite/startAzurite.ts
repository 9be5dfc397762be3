import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";

/** The well-known Azurite development account; it is public and only ever valid against the emulator. */
const DEV_ACCOUNT = "devstoreaccount1";
const DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface RunningAzurite {
  readonly connectionString: string;
  readonly port: number;
  stop(): Promise<void>;
}

/** `node -e` puts its first argument at argv[1]: Azurite's main reads its options from argv[2] on, as when started directly. */
const EXIT_WITH_PARENT = 'process.stdin.on("end", () => process.exit(0)).resume(); require(process.argv[1]);';

export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/**
 * Starts Azurite's table service on a free loopback port. In-memory unless `location` is given.
 * Telemetry is disabled because these machines have no internet and Azurite would otherwise try to reach it.
 */
export async function startAzurite(options: { location?: string } = {}): Promise<RunningAzurite> {
  const port = await freePort();
  const main = require.resolve("azurite/dist/src/table/main.js");
  const args = [main, "--tableHost", "127.0.0.1", "--tablePort", String(port), "--silent", "--disableTelemetry", "--skipApiVersionCheck"];
  if (options.location) args.push("--location", options.location);
  else args.push("--inMemoryPersistence");
  // Azurite runs behind a one-line guard that exits when its stdin closes: when this process dies
  // without stopping it (a killed test run, a timed-out bench), Azurite goes with it instead of lingering.
  const child = spawn(process.execPath, ["-e", EXIT_WITH_PARENT, ...args], { stdio: ["pipe", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  await waitForPort(port, child, () => stderr);
  const connectionString =
    `DefaultEndpointsProtocol=http;AccountName=${DEV_ACCOUNT};AccountKey=${DEV_KEY};` +
    `TableEndpoint=http://127.0.0.1:${port}/${DEV_ACCOUNT};`;
  return { connectionString, port, stop: () => stopChild(child) };
}

async function waitForPort(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`Azurite exited with code ${child.exitCode}: ${stderr()}`);
    try {
      await fetch(`http://127.0.0.1:${port}/`);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  child.kill("SIGKILL");
  throw new Error(`Azurite did not open port ${port} within 20 s: ${stderr()}`);
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 3_000).unref();
  });
}
