import { randomUUID } from "node:crypto";
import { apiVersionOf, type Resource } from "./resources";
import { jsonEqual } from "./json";
import { alreadyExists, badRequest, conflict, notFound } from "./status";

/**
 * The simulator's etcd: objects in wire JSON, with one resourceVersion counter shared by every
 * write, as kube-apiserver's is. Objects are cloned on the way in and out so that no caller can
 * change stored state without a write (and a new resourceVersion).
 */

// Kubernetes objects are open-ended JSON; the sim reads the handful of fields it simulates.
export type Json = any;

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name: string;
  generateName?: string;
  namespace?: string;
  uid: string;
  resourceVersion: string;
  generation?: number;
  creationTimestamp: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: Json;
  status?: Json;
}

/** What a create takes: the system metadata is the store's to fill in. */
export type NewObject = Omit<Partial<KubeObject>, "metadata"> & { metadata: Partial<ObjectMeta> };

export interface Change {
  resource: Resource;
  before?: KubeObject;
  after?: KubeObject;
  /** A removal: the object's final state, carrying the resourceVersion of its deletion. */
  gone?: KubeObject;
  /** The resourceVersion this change was written at. */
  revision: number;
}

/** How many recent changes a watch from an older resourceVersion can be replayed from (etcd keeps ~5 minutes). */
const HISTORY = 5_000;

/** The random suffix alphabet of generated names (no vowels, so no words), as in apiserver's name generator. */
const SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";

export function randomSuffix(length = 5): string {
  let suffix = "";
  for (let i = 0; i < length; i++) suffix += SUFFIX_ALPHABET[Math.floor(Math.random() * SUFFIX_ALPHABET.length)];
  return suffix;
}

export class Store {
  private revision = 0;
  private stateRevision = 0;
  private readonly tables = new Map<string, Map<string, KubeObject>>();
  private readonly listeners = new Set<(change: Change) => void>();
  private readonly history: Change[] = [];
  private readonly kindRevisions = new Map<string, number>();

  /** `historyLimit`: how many recent changes a watch from an older resourceVersion can be replayed from. */
  constructor(private readonly historyLimit = HISTORY) {}

  get resourceVersion(): string {
    return String(this.revision);
  }

  /**
   * The resourceVersion of the last write to anything but an Event: what the controllers act on.
   * Events change no controller's input, and settling the cluster after each of them cost the
   * 1,000-node bench most of its CPU (every settle scans every pod).
   */
  get stateVersion(): string {
    return String(this.stateRevision);
  }

  /** Calls `listener` after every write; returns what stops it. */
  onChange(listener: (change: Change) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The changes written after `revision`, oldest first, or undefined when they are no longer all kept
   * (a watch from there is answered 410 Gone, as kube-apiserver answers a compacted resourceVersion).
   */
  changesSince(revision: number): Change[] | undefined {
    const oldest = this.history[0];
    if (oldest && revision < oldest.revision - 1) return undefined;
    return this.history.filter((c) => c.revision > revision);
  }

  get(resource: Resource, namespace: string | undefined, name: string): KubeObject | undefined {
    const found = this.table(resource).get(key(resource, namespace, name));
    return found && structuredClone(found);
  }

  /** The stored object itself, uncloned (a GET's answer, serialised at once), or 404. Callers must not mutate it. */
  peekOne(resource: Resource, namespace: string | undefined, name: string): KubeObject {
    const found = this.table(resource).get(key(resource, namespace, name));
    if (!found) throw notFound(resource, name);
    return found;
  }

  require(resource: Resource, namespace: string | undefined, name: string): KubeObject {
    const found = this.get(resource, namespace, name);
    if (!found) throw notFound(resource, name);
    return found;
  }

  /** In etcd key order (namespace, then name), as the apiserver lists; copies of only those `where` keeps. */
  list(resource: Resource, namespace?: string, where: (object: KubeObject) => boolean = () => true): KubeObject[] {
    return [...this.table(resource).entries()]
      .filter(([, object]) => (namespace === undefined || object.metadata.namespace === namespace) && where(object))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, object]) => structuredClone(object));
  }

  /**
   * The stored objects themselves, unordered and uncloned, for controllers that read the whole
   * cluster on every request: cloning thousands of pods per pass made large simulations crawl.
   * Callers must not mutate what they get.
   */
  peek(resource: Resource, namespace?: string): readonly KubeObject[] {
    const all = [...this.table(resource).values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata.namespace === namespace);
  }

  /** Fills in the system metadata (uid, resourceVersion, creationTimestamp, generated name). */
  create(resource: Resource, object: NewObject, namespace?: string): KubeObject {
    const meta = object.metadata;
    const name = meta.name || (meta.generateName ? meta.generateName + randomSuffix() : "");
    if (!name) throw badRequest("name or generateName is required");
    const ns = resource.namespaced ? (namespace ?? meta.namespace ?? "default") : undefined;
    if (resource.namespaced && meta.namespace && meta.namespace !== ns) {
      throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
    }
    const table = this.table(resource);
    const id = key(resource, ns, name);
    if (table.has(id)) throw alreadyExists(resource, name);
    const stored: KubeObject = {
      ...structuredClone(object),
      apiVersion: apiVersionOf(resource),
      kind: resource.kind,
      metadata: {
        ...structuredClone(meta),
        name,
        ...(ns === undefined ? {} : { namespace: ns }),
        uid: randomUUID(),
        resourceVersion: this.bump(resource),
        ...(resource.generation ? { generation: 1 } : {}),
        creationTimestamp: timestamp(),
      },
    };
    delete stored.metadata.deletionTimestamp;
    delete stored.metadata.deletionGracePeriodSeconds;
    table.set(id, stored);
    this.emit({ resource, after: stored, revision: this.revision });
    return structuredClone(stored);
  }

  /**
   * Stores a new version of an existing object. A non-empty `metadata.resourceVersion` on `next` is a
   * precondition (409 when stale), as for PUT and for patches that carry one: the apiserver applies a
   * patch to the stored object and a resourceVersion the patch sets is then checked like an update's
   * (kubernetes/kubernetes#63104). Rollcall's node writes rely on it.
   */
  update(resource: Resource, next: KubeObject): KubeObject {
    const { name, namespace } = next.metadata;
    const table = this.table(resource);
    const id = key(resource, namespace, name);
    const current = table.get(id);
    if (!current) throw notFound(resource, name);
    if (next.metadata.resourceVersion && next.metadata.resourceVersion !== current.metadata.resourceVersion) throw conflict(resource, name);
    const stored: KubeObject = {
      ...structuredClone(next),
      apiVersion: current.apiVersion,
      kind: current.kind,
      metadata: {
        ...structuredClone(next.metadata),
        uid: current.metadata.uid,
        creationTimestamp: current.metadata.creationTimestamp,
        resourceVersion: current.metadata.resourceVersion,
      },
    };
    copyOptional(stored.metadata, current.metadata, "deletionTimestamp");
    copyOptional(stored.metadata, current.metadata, "deletionGracePeriodSeconds");
    copyOptional(stored.metadata, current.metadata, "generation");
    if (resource.generation && !jsonEqual(stored.spec, current.spec)) stored.metadata.generation = (current.metadata.generation ?? 0) + 1;
    // Like the apiserver, a write that changes nothing is not a write: no new resourceVersion, no event.
    if (jsonEqual(stored, current)) return structuredClone(current);
    stored.metadata.resourceVersion = this.bump(resource);
    table.set(id, stored);
    this.emit({ resource, before: current, after: stored, revision: this.revision });
    return structuredClone(stored);
  }

  /** Sets or clears the deletion fields, which `update` protects from clients. */
  markDeleting(resource: Resource, namespace: string | undefined, name: string, deletionTimestamp: string, gracePeriodSeconds: number): KubeObject {
    const current = this.table(resource).get(key(resource, namespace, name));
    if (!current) throw notFound(resource, name);
    const stored = structuredClone(current);
    stored.metadata.deletionTimestamp = deletionTimestamp;
    stored.metadata.deletionGracePeriodSeconds = gracePeriodSeconds;
    stored.metadata.resourceVersion = this.bump(resource);
    this.table(resource).set(key(resource, namespace, name), stored);
    this.emit({ resource, before: current, after: stored, revision: this.revision });
    return structuredClone(stored);
  }

  remove(resource: Resource, namespace: string | undefined, name: string): KubeObject | undefined {
    const table = this.table(resource);
    const id = key(resource, namespace, name);
    const current = table.get(id);
    if (!current) return undefined;
    table.delete(id);
    // The final state of a deleted object carries the resourceVersion of its deletion, as watch events do.
    const gone = { ...structuredClone(current), metadata: { ...structuredClone(current.metadata), resourceVersion: this.bump(resource) } };
    this.emit({ resource, before: current, gone, revision: this.revision });
    return gone;
  }

  /** The revision of the last write to objects of this kind (0: none yet): what a controller reading them acts on. */
  revisionOf(resource: Resource): number {
    return this.kindRevisions.get(resource.plural) ?? 0;
  }

  private bump(resource: Resource): string {
    this.revision += 1;
    if (resource.kind !== "Event") this.stateRevision = this.revision;
    this.kindRevisions.set(resource.plural, this.revision);
    return String(this.revision);
  }

  private table(resource: Resource): Map<string, KubeObject> {
    let table = this.tables.get(resource.plural);
    if (!table) this.tables.set(resource.plural, (table = new Map()));
    return table;
  }

  private emit(change: Change): void {
    this.history.push(change);
    if (this.history.length > this.historyLimit) this.history.splice(0, this.history.length - this.historyLimit);
    for (const listener of this.listeners) listener(change);
  }
}

function key(resource: Resource, namespace: string | undefined, name: string): string {
  return resource.namespaced ? `${namespace ?? "default"}/${name}` : name;
}

function copyOptional<K extends keyof ObjectMeta>(target: ObjectMeta, source: ObjectMeta, field: K): void {
  if (source[field] === undefined) delete target[field];
  else target[field] = source[field];
}

/** RFC 3339 with second precision, as Kubernetes serialises `metav1.Time`. */
export function timestamp(at = Date.now()): string {
  return new Date(Math.floor(at / 1000) * 1000).toISOString().replace(".000Z", "Z");
}
