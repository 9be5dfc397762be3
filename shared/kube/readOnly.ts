import type { ClusterApi } from "./clusterApi";

/** The ClusterApi methods that change the cluster; every other one only reads (a TokenReview included). */
const WRITES: ReadonlySet<string> = new Set<keyof ClusterApi>(["updateNode", "evictPod", "setTaint", "recordEvent"]);

/**
 * The cluster as shadow mode sees it: reads pass, a write throws. Shadow steps decide not to write;
 * this makes a write a step forgot to skip fail the step loudly instead of cordoning a node beside kured.
 */
export function readOnlyClusterApi(api: ClusterApi): ClusterApi {
  return new Proxy(api, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== "function") return value;
      if (typeof property === "string" && WRITES.has(property)) {
        return () => Promise.reject(new Error(`shadow mode writes nothing to the cluster (${property} refused)`));
      }
      return value.bind(target);
    },
  });
}
