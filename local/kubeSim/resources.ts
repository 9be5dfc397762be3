/** The API resources the simulator serves, with what kube-apiserver allows on each. */

export type Verb = "list" | "get" | "create" | "update" | "patch" | "delete";

export interface Resource {
  /** "" for the core group. */
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  verbs: ReadonlySet<Verb>;
  /** Whether `metadata.generation` counts spec changes (workloads and PDBs; not nodes or pods). */
  generation: boolean;
  /** Whether `/status` exists, and so whether writes to the main resource leave `status` alone. */
  statusSubresource: boolean;
}

const all: ReadonlySet<Verb> = new Set(["list", "get", "create", "update", "patch", "delete"]);
/** Workloads are created by the sim's facade, not over HTTP: Rollcall only reads them to follow owner references. */
const readOnly: ReadonlySet<Verb> = new Set(["list", "get"]);

export const resources = {
  nodes: { group: "", version: "v1", plural: "nodes", kind: "Node", namespaced: false, verbs: all, generation: false, statusSubresource: true },
  pods: { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true, verbs: all, generation: false, statusSubresource: true },
  poddisruptionbudgets: {
    group: "policy",
    version: "v1",
    plural: "poddisruptionbudgets",
    kind: "PodDisruptionBudget",
    namespaced: true,
    verbs: all,
    generation: true,
    statusSubresource: true,
  },
  deployments: { group: "apps", version: "v1", plural: "deployments", kind: "Deployment", namespaced: true, verbs: readOnly, generation: true, statusSubresource: true },
  replicasets: { group: "apps", version: "v1", plural: "replicasets", kind: "ReplicaSet", namespaced: true, verbs: readOnly, generation: true, statusSubresource: true },
  daemonsets: { group: "apps", version: "v1", plural: "daemonsets", kind: "DaemonSet", namespaced: true, verbs: readOnly, generation: true, statusSubresource: true },
  // One storage behind two APIs, as in kube-apiserver (see events.ts): both plurals are "events", so they share the store's table.
  events: { group: "", version: "v1", plural: "events", kind: "Event", namespaced: true, verbs: all, generation: false, statusSubresource: false },
  eventsV1: { group: "events.k8s.io", version: "v1", plural: "events", kind: "Event", namespaced: true, verbs: all, generation: false, statusSubresource: false },
} as const satisfies Record<string, Resource>;

export type ResourceName = keyof typeof resources;

export function apiVersionOf(resource: Resource): string {
  return resource.group ? `${resource.group}/${resource.version}` : resource.version;
}

export function findResource(group: string, version: string, plural: string): Resource | undefined {
  return Object.values(resources).find((r) => r.group === group && r.version === version && r.plural === plural);
}
