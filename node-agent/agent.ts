import { AgentLoop, type AgentParts } from "./agentLoop";
import { FileBootIdReader } from "./bootId";
import { type Checker, SentinelCommandChecker, SentinelFileChecker } from "./checker";
import { HttpOrchestratorClient } from "./client";
import { AgentConfigError, type AgentConfig, parseAgentConfig } from "./config";
import { LeaseFile } from "./leaseFile";
import { consoleLog } from "./log";
import { CommandRebooter } from "./rebooter";
import { curlProblem, curlTransport } from "./transportCurl";
import { nodeHttpTransport } from "./transportNodeHttp";
import { AGENT_VERSION } from "./version";

/**
 * The Rollcall node agent: runs on every node (DaemonSet), reports whether the node needs a
 * reboot and its boot id, and reboots only when the orchestrator answers `reboot` with a lease.
 * Configuration is environment only; see node-agent/config.ts and docs/local-run.md.
 */

export { AgentLoop, type CycleOutcome } from "./agentLoop";
export { parseAgentConfig, AgentConfigError, type AgentConfig } from "./config";
export { AGENT_VERSION } from "./version";

/** Builds the agent from its configuration; `overrides` replaces parts (the simulation's reboot, a test's log). */
export function createAgent(config: AgentConfig, overrides: Partial<AgentParts> = {}): AgentLoop {
  const checker: Checker = config.sentinelCommand ? new SentinelCommandChecker(config.sentinelCommand) : new SentinelFileChecker(config.sentinelFile);
  const parts: AgentParts = {
    checker,
    rebooter: new CommandRebooter(config.rebootCommand),
    bootId: new FileBootIdReader(config.bootIdFile),
    client: new HttpOrchestratorClient({
      url: config.url,
      cluster: config.cluster,
      node: config.node,
      functionKey: config.functionKey,
      tokenFile: config.tokenFile,
      timeoutMs: config.requestTimeoutMs,
      userAgent: `rollcall-agent/${AGENT_VERSION}`,
      transport: config.httpClient === "curl" ? curlTransport() : nodeHttpTransport,
    }),
    leases: new LeaseFile(config.stateDir),
    log: consoleLog,
    ...overrides,
  };
  return new AgentLoop(
    {
      agentVersion: AGENT_VERSION,
      jitter: config.jitter,
      backoffBaseMs: config.backoffBaseMs,
      backoffMaxMs: config.backoffMaxMs,
      intervalScale: config.intervalScale,
      watch: config.watch ? { sentinelFile: config.sentinelCommand ? undefined : config.sentinelFile, bootIdFile: config.bootIdFile, pollMs: config.watchPollMs } : undefined,
    },
    parts,
  );
}

export function main(env: NodeJS.ProcessEnv = process.env): AgentLoop | undefined {
  let config: AgentConfig;
  try {
    config = parseAgentConfig(env);
  } catch (error) {
    if (!(error instanceof AgentConfigError)) throw error;
    process.stderr.write(`rollcall-agent: invalid configuration: ${error.message}\n`);
    process.exitCode = 2;
    return undefined;
  }
  const agent = createAgent(config);
  consoleLog("info", "rollcall agent starting", {
    version: AGENT_VERSION,
    cluster: config.cluster,
    node: config.node,
    orchestrator: config.url,
    http: config.httpClient,
    sentinel: config.sentinelCommand ? config.sentinelCommand.join(" ") : config.sentinelFile,
    reboot: config.rebootCommand.join(" "),
    state: config.stateDir,
  });
  const shutdown = (signal: string) => {
    consoleLog("info", `stopping on ${signal}`);
    void agent.stop().then(() => process.exit(0));
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
  // An image without curl would fail every check-in and back off for ever: stop, as for a bad setting.
  void (config.httpClient === "curl" ? curlProblem() : Promise.resolve(undefined)).then((problem) => {
    if (!problem) return agent.start();
    process.stderr.write(`rollcall-agent: invalid configuration: ROLLCALL_HTTP_CLIENT is curl, but ${problem}; install curl in the image or set ROLLCALL_HTTP_CLIENT=node\n`);
    process.exit(2);
  });
  return agent;
}

if (require.main === module) main();
