import type { Controllers } from "./controllers";
import { selectedPods } from "./pdbStatus";
import { isReady, isTerminating } from "./podStatus";
import { resources } from "./resources";
import { ApiError, badRequest, type Status, successStatus, tooManyRequests } from "./status";
import type { Json, Store } from "./store";
import { timestamp } from "./store";

/**
 * The pods/eviction subresource, following kube-apiserver's EvictionREST.Create
 * (pkg/registry/core/pod/storage/eviction.go): the PDB check and decrement happen in the
 * request, and the pod is then deleted gracefully.
 */

const { pods: POD, poddisruptionbudgets: PDB } = resources;

export interface EvictionContext {
  store: Store;
  controllers: Controllers;
  /** Seconds to advertise (header and `details.retryAfterSeconds`) on 429s; the real server sends none. */
  retryAfterSeconds(): number | undefined;
}

export function evict(context: EvictionContext, namespace: string, name: string, body: Json): Status {
  if (body?.metadata?.name !== undefined && body.metadata.name !== name) throw badRequest("name in URL does not match name in Eviction object");
  const { store, controllers } = context;
  const pod = store.require(POD, namespace, name);
  const gracePeriodSeconds: number | undefined = body?.deleteOptions?.gracePeriodSeconds ?? undefined;
  const remove = (): Status => {
    controllers.deletePod(namespace, name, gracePeriodSeconds);
    return successStatus(201);
  };

  const phase = pod.status?.phase;
  if (phase === "Succeeded" || phase === "Failed" || phase === "Pending" || isTerminating(pod)) return remove();

  const pdbs = store.list(PDB, namespace).filter((pdb) => selectedPods(pdb, [pod]).length > 0);
  // kube-apiserver answers this one with a bare 500: no reason, no details (k8s-captured/eviction-500-multiple-pdbs.json).
  if (pdbs.length > 1) throw new ApiError(500, undefined, "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.");
  const pdb = pdbs[0];
  if (!pdb) return remove();

  const status = pdb.status ?? {};
  // Unready pods do not count as healthy, so evicting one costs nothing while the budget is met.
  if (!isReady(pod)) {
    if (pdb.spec?.unhealthyPodEvictionPolicy === "AlwaysAllow") return remove();
    if ((status.currentHealthy ?? 0) >= (status.desiredHealthy ?? 0) && (status.desiredHealthy ?? 0) > 0) return remove();
  }

  const refuse = (cause: string) =>
    tooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", context.retryAfterSeconds() ?? 0, [
      { reason: "DisruptionBudget", message: cause },
    ]);
  // The only eviction 429 that carries Retry-After (10 s): k8s-captured/eviction-429-pdb-still-processing.json.
  if ((status.observedGeneration ?? 0) < (pdb.metadata.generation ?? 0)) {
    throw tooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10, [
      { reason: "DisruptionBudget", message: `The disruption budget ${pdb.metadata.name} is still being processed by the server.` },
    ]);
  }
  if ((status.disruptionsAllowed ?? 0) < 0) throw new ApiError(403, "Forbidden", "pdb disruptions allowed is negative");
  if ((status.disruptionsAllowed ?? 0) === 0) {
    throw refuse(`The disruption budget ${pdb.metadata.name} needs ${status.desiredHealthy ?? 0} healthy pods and has ${status.currentHealthy ?? 0} currently`);
  }
  store.update(PDB, {
    ...pdb,
    status: { ...status, disruptionsAllowed: status.disruptionsAllowed - 1, disruptedPods: { ...status.disruptedPods, [name]: timestamp() } },
  });
  return remove();
}
