import { app, type EventGridEvent, type InvocationContext } from "@azure/functions";
import { getConfig } from "../shared/config/config";
import { notifyCluster } from "../shared/notify/notifier";
import { getRollcall } from "../shared/orchestrator/fromConfig";
import { handleAksEvent } from "../shared/upgrade/aksEvents";
import { getUpgradeDeps } from "../shared/upgrade/fromConfig";

/**
 * AKS's Event Grid events (a system topic per cluster, subscribed by infra/modules/aks-events.bicep):
 * node pool rollings pause and resume sentinel reboots on that pool, new versions and support
 * endings re-plan and notify the policy's webhook (event `upgrade`). A failure to record throws, so that
 * Event Grid delivers the event again.
 */
export async function aksEvents(event: EventGridEvent, context: InvocationContext): Promise<void> {
  const deps = await getUpgradeDeps(context);
  const outcome = await handleAksEvent(deps, getConfig().clusters, event);
  if (outcome.action === "ignored") context.debug(`aks-event ${event.eventType ?? "?"} ignored: ${outcome.reason}`);
  else if (outcome.action === "replanned") {
    if (outcome.ok) context.warn(`aks-event cluster=${outcome.cluster} ${outcome.message}`);
    else context.error(`aks-event cluster=${outcome.cluster} ${outcome.message}`);
    await notifyCluster(await (await getRollcall()).policy(outcome.cluster), "upgrade", outcome.cluster, outcome.message, context);
  } else context.info(`aks-event cluster=${outcome.cluster} pool=${outcome.pool} ${outcome.action}`);
}

app.eventGrid("aksEvents", { handler: aksEvents });
