import { getConfig, resetConfigForTests } from "../config/config";
import { clusterApiFactory, resetClusterApisForTests } from "../kube/connect";
import { TableLock } from "../lock/tableLock";
import { NodeStore } from "../node/nodeRecord";
import { openGate, policyFromConfig } from "../policy/policy";
import { openTable } from "../storage/table";
import { getTelemetry } from "../telemetry/telemetry";
import { Orchestrator } from "./orchestrator";

/**
 * The composition root: one Orchestrator per process, built from the app settings on first use.
 * Function entry points call `getOrchestrator()`; nothing heavy is constructed at module load.
 */

let instance: Promise<Orchestrator> | undefined;

export function getOrchestrator(): Promise<Orchestrator> {
  instance ??= build();
  instance.catch(() => (instance = undefined));
  return instance;
}

async function build(): Promise<Orchestrator> {
  const config = getConfig();
  const table = await openTable(config.storage);
  const policy = policyFromConfig(config);
  return new Orchestrator({
    store: new NodeStore(table),
    lock: new TableLock(table),
    kube: clusterApiFactory(config),
    policy: async () => policy,
    gate: openGate,
    telemetry: getTelemetry(),
    stepBudgetMs: config.stepBudgetMs,
  });
}

/** Forget the settings, clients and orchestrator, so a test can start over with other settings. */
export function resetForTests(): void {
  instance = undefined;
  resetConfigForTests();
  resetClusterApisForTests();
}
