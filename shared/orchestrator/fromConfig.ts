import type { TableClient } from "@azure/data-tables";
import { RejectionLog } from "../auth/rejections";
import { expectedAgents, recordedAgentProblem } from "../auth/tokenReview";
import { getConfig, resetConfigForTests } from "../config/config";
import { clusterApiFactory, type ClusterApiFactory } from "../kube/connect";
import { TableLock } from "../lock/tableLock";
import { type NodeRecord, NodeStore } from "../node/nodeRecord";
import { aksMaintenanceScheduleLoader } from "../policy/aksMaintenance";
import { compositeGate, policyGates } from "../policy/gates/composite";
import { upgradePauseGate } from "../policy/gates/upgradePause";
import { policyFromConfig, type PolicySource, type RebootGate } from "../policy/policy";
import { policyStoreFor } from "../policy/policyStore";
import { serverClock } from "../storage/serverClock";
import { openTable } from "../storage/table";
import { getTelemetry } from "../telemetry/telemetry";
import { OperatorRequests } from "./operatorRequests";
import { Orchestrator } from "./orchestrator";

/**
 * The composition root: one set of services per process, built from the app settings on first use.
 * Function entry points call `getRollcall()`; nothing heavy is constructed at module load.
 */
export interface Rollcall {
  table: TableClient;
  store: NodeStore;
  lock: TableLock;
  kube: ClusterApiFactory;
  policy: PolicySource;
  gate: RebootGate;
  orchestrator: Orchestrator;
  requests: OperatorRequests;
  /** Refused check-ins of known nodes, for the status route. */
  rejections: RejectionLog;
}

let instance: Promise<Rollcall> | undefined;

export function getRollcall(): Promise<Rollcall> {
  instance ??= build();
  instance.catch(() => (instance = undefined));
  return instance;
}

async function build(): Promise<Rollcall> {
  const config = getConfig();
  const table = await openTable(config.storage);
  const policy: PolicySource = policyStoreFor(table, policyFromConfig(config)).source;
  const store = new NodeStore(table);
  const lock = new TableLock(table);
  const kube = clusterApiFactory(config);
  const gate = compositeGate([...policyGates({ aksSchedule: aksMaintenanceScheduleLoader(config) }), upgradePauseGate(table)]);
  const agentOf = expectedAgents(config);
  const orchestrator = new Orchestrator({
    store,
    lock,
    kube,
    policy,
    gate,
    telemetry: getTelemetry(),
    stepBudgetMs: config.stepBudgetMs,
    stepWaitMs: config.stepWaitMs,
    holdMs: config.checkinHoldMs,
    // Decisions measure time on the storage service's clock, so instances with skewed clocks agree.
    clock: serverClock.now,
    ...(config.agentAuth.mode === "tokenreview" && {
      agentProblem: async (cluster: string, record: NodeRecord) => {
        const expected = agentOf(cluster);
        const pod = record.agentPodName && record.agentPodUid ? { name: record.agentPodName, uid: record.agentPodUid } : undefined;
        return recordedAgentProblem(await kube(cluster), expected, pod, record.node);
      },
    }),
  });
  return { table, store, lock, kube, policy, gate, orchestrator, requests: new OperatorRequests(store, kube, orchestrator), rejections: new RejectionLog(table) };
}

/** Forget the settings, clients and services, so a test can start over with other settings. */
export function resetForTests(): void {
  instance = undefined;
  resetConfigForTests();
}
