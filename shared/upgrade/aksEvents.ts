import { z } from "zod";
import type { ClusterConnection } from "../config/config";
import { recordPoolEvent } from "./pauses";
import { planCluster, type UpgradeDeps } from "./service";

/**
 * AKS's own events (Event Grid system topic on each cluster, schema "Microsoft.ContainerService";
 * https://learn.microsoft.com/azure/event-grid/event-schema-aks,
 * https://learn.microsoft.com/azure/aks/quickstart-event-grid):
 * - NodePoolRollingStarted / Succeeded / Failed: a node pool's nodes are being replaced (upgrade,
 *   node image, whoever started it): sentinel reboots on that pool pause until it ends;
 * - NewKubernetesVersionAvailable, ClusterSupportEnding, ClusterSupportEnded: re-plan now and say so.
 * Every other type (ClusterOutOfSupport, NodePoolRollingProgress and whatever comes next) is ignored.
 * Events are input from outside: their shape is checked and a topic that is not a configured cluster
 * is ignored.
 */

const PREFIX = "Microsoft.ContainerService.";
const rolling = { NodePoolRollingStarted: true, NodePoolRollingSucceeded: false, NodePoolRollingFailed: false } as const;
const replanning = ["NewKubernetesVersionAvailable", "ClusterSupportEnding", "ClusterSupportEnded"] as const;
/** What the Event Grid subscription must deliver (infra/modules/aks-events.bicep lists the same). */
export const handledAksEventTypes = [...Object.keys(rolling), ...replanning].map((t) => `${PREFIX}${t}`);

/** AKS agent pool names (https://learn.microsoft.com/azure/aks/create-node-pools): lowercase letters and digits, starting with a letter, at most 12. */
const poolName = z.string().regex(/^[a-z][a-z0-9]{0,11}$/);

const AksEvent = z.object({
  id: z.string().min(1).max(200),
  topic: z.string().max(1000),
  eventType: z.string().max(200),
  eventTime: z.string().refine((t) => !Number.isNaN(Date.parse(t)), { message: "must be a date" }),
  data: z.record(z.string(), z.unknown()).optional(),
});

export type AksEventOutcome =
  | { action: "ignored"; reason: string }
  | { action: "paused" | "unpaused"; cluster: string; pool: string }
  | { action: "replanned"; cluster: string; ok: boolean; message: string };

export async function handleAksEvent(deps: UpgradeDeps, clusters: ClusterConnection[], raw: unknown): Promise<AksEventOutcome> {
  const parsed = AksEvent.safeParse(raw);
  if (!parsed.success) return { action: "ignored", reason: `not an Event Grid event: ${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message}` };
  const event = parsed.data;
  if (!event.eventType.startsWith(PREFIX)) return { action: "ignored", reason: `event type ${event.eventType} is not AKS's` };
  const type = event.eventType.slice(PREFIX.length);
  const connection = clusters.find((c) => c.aksResourceId && c.aksResourceId.toLowerCase() === event.topic.toLowerCase());
  if (!connection) return { action: "ignored", reason: `topic ${event.topic} is not a cluster in ROLLCALL_CLUSTERS` };

  if (type in rolling) {
    const pool = poolName.safeParse(event.data?.nodePoolName);
    if (!pool.success) return { action: "ignored", reason: `${type} without a valid nodePoolName` };
    const started = rolling[type as keyof typeof rolling];
    await recordPoolEvent(deps.table, connection.name, pool.data, { type, at: new Date(event.eventTime).toISOString(), id: event.id, started });
    deps.log?.(`aks-event cluster=${connection.name} ${type} pool=${pool.data}: sentinel reboots on it ${started ? "paused" : "resume"}`);
    return { action: started ? "paused" : "unpaused", cluster: connection.name, pool: pool.data };
  }
  if ((replanning as readonly string[]).includes(type)) {
    const version = typeof event.data?.kubernetesVersion === "string" ? ` (Kubernetes ${event.data.kubernetesVersion.slice(0, 20)})` : "";
    const result = await planCluster(deps, connection);
    const message = result.ok
      ? `AKS reported ${type}${version}: re-planned, ${result.plan.summary[0]}`
      : `AKS reported ${type}${version}: re-planning failed: ${result.error.failure.explanation}`;
    deps.log?.(`aks-event cluster=${connection.name} ${message}`);
    return { action: "replanned", cluster: connection.name, ok: result.ok, message };
  }
  return { action: "ignored", reason: `event type ${event.eventType} needs nothing from Rollcall` };
}
