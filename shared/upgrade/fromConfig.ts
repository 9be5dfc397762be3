import type { InvocationContext } from "@azure/functions";
import { getConfig } from "../config/config";
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
