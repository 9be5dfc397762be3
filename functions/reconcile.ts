import { app, type InvocationContext, type Timer } from "@azure/functions";
import { getConfig } from "../shared/config/config";
import { getRollcall } from "../shared/orchestrator/fromConfig";
import { flushTelemetry } from "../shared/telemetry/telemetry";

/**
 * Every minute: advance the work no agent is driving (drains, confirmations, hand-offs), expire
 * leases past their TTL and free slots of vanished nodes, in every configured cluster.
 */
export async function reconcile(_timer: Timer, context: InvocationContext): Promise<void> {
  const { orchestrator } = await getRollcall();
  // All clusters at once: each pass is bounded by its own budget, so twenty of them still end well
  // inside the function timeout, where one after another a few slow API servers would not.
  await Promise.all(
    getConfig().clusters.map(async ({ name }) => {
      try {
        const report = await orchestrator.reconcile(name, context);
        context.info(`reconcile ${JSON.stringify(report)}`);
      } catch (error) {
        // One unreachable cluster must not stop the others from being reconciled.
        context.error(`reconcile failed cluster=${name}: ${(error as Error).message}`);
      }
    }),
  );
  // A Functions instance may be frozen between invocations: send what check-ins recorded since the last tick.
  await flushTelemetry();
}

app.timer("reconcile", { schedule: "0 */1 * * * *", handler: reconcile });
