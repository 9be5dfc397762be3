import type { InvocationContext } from "@azure/functions";
import { getConfig, type ClusterConnection } from "../config/config";
import { HttpError } from "../http/http";
import { getRollcall } from "../orchestrator/fromConfig";
import { blockingPdbs } from "./clusterPdbs";
import { armClientFactory, type ArmClientFactory, type ArmClientOverrides } from "../azure/arm";
import { getTelemetry } from "../telemetry/telemetry";
import type { UpgradeDeps } from "./service";

/** The production wiring of the upgrade planner: the configured table and ARM with the app's identity. */

let overrides: ArmClientOverrides | undefined;
let factory: { key: string; arm: ArmClientFactory } | undefined;

/** Tests point ARM at the local simulator with a fake credential and its CA; `undefined` restores production. */
export function setArmOverridesForTests(value: ArmClientOverrides | undefined): void {
  overrides = value;
  factory = undefined;
}

export async function getUpgradeDeps(context: InvocationContext): Promise<UpgradeDeps> {
  const config = getConfig();
  const key = `${config.azure.armEndpoint} ${config.azure.armScope}`;
  if (!factory || factory.key !== key) factory = { key, arm: armClientFactory(config, overrides) };
  const { kube, table } = await getRollcall();
  return {
    table,
    arm: factory.arm,
    log: (line) => context.info(line),
    // The RollcallUpgradePlan event is what the workbook's upgrade tiles query.
    telemetry: getTelemetry(),
    pdbReader: async (cluster) => blockingPdbs(await kube(cluster)),
  };
}

/** The configured AKS cluster a route names: 404 when it is not configured, 409 `not_aks` when it has no aksResourceId. */
export function configuredAksCluster(cluster: string): ClusterConnection & { aksResourceId: string } {
  const connection = getConfig().clusters.find((c) => c.name === cluster);
  if (!connection) throw new HttpError(404, "unknown_cluster", `Cluster ${cluster} is not configured in ROLLCALL_CLUSTERS`);
  if (!connection.aksResourceId) throw new HttpError(409, "not_aks", `Cluster ${cluster} has no aksResourceId; upgrade planning needs an AKS cluster`);
  return connection as ClusterConnection & { aksResourceId: string };
}
