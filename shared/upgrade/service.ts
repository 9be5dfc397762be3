import type { TableClient } from "@azure/data-tables";
import type { ClusterConnection } from "../config/config";
import { telemetryEvents, type Telemetry } from "../telemetry/names";
import { type ArmClientFactory, parseAksResourceId } from "../azure/arm";
import { describeArmError, readClusterFacts, type PdbFacts } from "./armFacts";
import { recordPoolStates } from "./pauses";
import { loadApplyState, loadPlan, savePlan, savePlanError, type PlanError } from "./planStore";
import { defaultPolicy, planUpgrade, type UpgradePlan, type UpgradePolicy } from "./planner";

/** What planning needs from the outside world; tests pass fakes for each. */
export interface UpgradeDeps {
  table: TableClient;
  arm: ArmClientFactory;
  now?: () => Date;
  /** PodDisruptionBudgets allowing no disruption, read through the Kubernetes API when the cluster is reachable. */
  pdbReader?: (cluster: string) => Promise<PdbFacts>;
  /** One line per message; the function's `context.info` in production. */
  log?: (line: string) => void;
  telemetry?: Telemetry;
}

export type PlanResult =
  | { ok: true; cluster: string; plan: UpgradePlan }
  /** ARM failed: the error is stored next to the previous plan, which stays as it was. */
  | { ok: false; cluster: string; error: PlanError; previous?: UpgradePlan };

export class NotAnAksClusterError extends Error {
  override name = "NotAnAksClusterError";
}

export function policyOf(connection: ClusterConnection): UpgradePolicy {
  const u = connection.upgrade;
  return u ? { channel: u.channel, target: u.target, allowPreview: u.allowPreview, apply: u.apply !== false } : defaultPolicy;
}

/** Reads the facts, computes the plan, stores it and logs one line per step. */
export async function planCluster(deps: UpgradeDeps, connection: ClusterConnection): Promise<PlanResult> {
  if (!connection.aksResourceId) {
    throw new NotAnAksClusterError(`Cluster ${connection.name} has no aksResourceId; upgrade planning needs an AKS cluster`);
  }
  const now = deps.now?.() ?? new Date();
  const log = deps.log ?? (() => {});
  let plan: UpgradePlan;
  try {
    const client = await deps.arm(parseAksResourceId(connection.aksResourceId).subscriptionId);
    const facts = await readClusterFacts(client, connection.name, connection.aksResourceId, now);
    // Every read of the pools is also the polling fallback of the reboot pause (operations Rollcall did not start).
    await recordPoolStates(deps.table, connection.name, facts.pools, now);
    if (deps.pdbReader) {
      facts.pdbs = await deps.pdbReader(connection.name).catch((error: unknown) => ({ checked: false, blocking: [], error: (error as Error).message }));
    }
    const { occupiedUntil } = await loadApplyState(deps.table, connection.name);
    plan = planUpgrade(facts, policyOf(connection), now, { notBefore: occupiedUntil ? new Date(occupiedUntil) : undefined });
  } catch (error) {
    const failure = describeArmError(error, `reading AKS cluster ${connection.name}`);
    const planError: PlanError = { at: now.toISOString(), failure };
    await savePlanError(deps.table, connection.name, planError);
    const previous = (await loadPlan(deps.table, connection.name))?.plan;
    log(`upgrade-plan cluster=${connection.name} failed: ${failure.explanation}: ${failure.message}${previous ? ` (keeping the plan of ${previous.computedAt})` : ""}`);
    deps.telemetry?.exception(error, { cluster: connection.name, operation: "upgrade-plan", status: failure.status, code: failure.code });
    return { ok: false, cluster: connection.name, error: planError, previous };
  }
  await savePlan(deps.table, connection.name, plan);
  for (const line of plan.summary) log(`upgrade-plan cluster=${connection.name} ${line}`);
  deps.telemetry?.event(telemetryEvents.upgradePlan, { cluster: connection.name, steps: plan.steps.length, summary: plan.summary[0] });
  return { ok: true, cluster: connection.name, plan };
}

/**
 * The polling fallback of the reboot pause for a cluster Rollcall is not reading anyway: one list of
 * its agent pools and their provisioning states (missed Event Grid events, upgrades by others).
 */
export async function refreshPoolPauses(deps: UpgradeDeps, connection: ClusterConnection): Promise<void> {
  if (!connection.aksResourceId) return;
  const { subscriptionId, resourceGroup, name } = parseAksResourceId(connection.aksResourceId);
  const client = await deps.arm(subscriptionId);
  const pools: Array<{ name: string; provisioningState?: string }> = [];
  for await (const pool of client.agentPools.list(resourceGroup, name)) pools.push({ name: pool.name!, provisioningState: pool.provisioningState });
  await recordPoolStates(deps.table, connection.name, pools, deps.now?.() ?? new Date());
}

/** Plans every configured AKS cluster; one cluster's failure never stops the others. */
export async function planAllClusters(deps: UpgradeDeps, clusters: ClusterConnection[]): Promise<PlanResult[]> {
  const results: PlanResult[] = [];
  for (const connection of clusters.filter((c) => c.aksResourceId)) {
    results.push(await planCluster(deps, connection));
  }
  return results;
}
