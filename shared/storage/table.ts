import { TableClient, type TableServiceClientOptions } from "@azure/data-tables";
import type { Config } from "../config/config";
import { getTelemetry } from "../telemetry/telemetry";
import { serverClock } from "./serverClock";

/**
 * Everything Rollcall keeps lives in one table, partitioned by cluster, so that a node's state and
 * the cluster's lock can change together in one entity-group transaction.
 * Row keys: `lock`, `node:<name>`, and the prefixes other modules register in `rowKeys`.
 */
export const rowKeys = {
  lock: "lock",
  node: (name: string) => `node:${name}`,
  nodePrefix: "node:",
} as const;

/**
 * Table Storage's limits, which every row Rollcall writes is sized against (Microsoft, "Understanding
 * the Table service data model": a string property holds 64 KiB of UTF-16, an entity 1 MiB in at most
 * 252 properties of its own, a key 1 KiB; "Performing entity group transactions": 100 operations and
 * 4 MiB per batch). Over a limit the service answers 400 `PropertyValueTooLarge` / `EntityTooLarge`.
 */
export const TABLE_LIMITS = {
  stringChars: 32 * 1024,
  entityBytes: 1024 * 1024,
  properties: 252,
  keyChars: 1024,
  batchOperations: 100,
  batchBytes: 4 * 1024 * 1024,
} as const;

/** Characters per part of a text split across properties: under the string limit. */
export const PART_CHARS = 32_000;

/**
 * A text that may be longer than one string property, as `name`, `name_1`, `name_2`, … A row written
 * before a text needed parts reads the same. Only for rows written whole (create, Replace): a Merge
 * would leave the parts of a longer text behind.
 */
export function textProperties(name: string, text: string): Record<string, string> {
  const properties: Record<string, string> = {};
  for (let i = 0; i < Math.max(1, Math.ceil(text.length / PART_CHARS)); i++) properties[partName(name, i)] = text.slice(i * PART_CHARS, (i + 1) * PART_CHARS);
  return properties;
}

/** The text `textProperties` wrote, or undefined when the row has no such property. */
export function readText(entity: Record<string, unknown>, name: string): string | undefined {
  if (typeof entity[name] !== "string") return undefined;
  let text = "";
  for (let i = 0; typeof entity[partName(name, i)] === "string"; i++) text += entity[partName(name, i)] as string;
  return text;
}

/** True for the properties `textProperties` adds after the first, which readers skip. */
export function isTextPart(key: string): boolean {
  return /_\d+$/.test(key);
}

const partName = (name: string, i: number) => (i === 0 ? name : `${name}_${i}`);

/**
 * What an entity costs against the 1 MiB limit, by Microsoft's formula ("How the size of an entity is
 * calculated in Windows Azure table storage"): 4 bytes + 2 per key character + per property 8 bytes,
 * 2 per name character and its value (strings 4 + 2 per UTF-16 unit; numbers 8; booleans 1).
 */
export function entityBytes(entity: Record<string, unknown>): number {
  let bytes = 4 + 2 * (String(entity.partitionKey ?? "").length + String(entity.rowKey ?? "").length);
  for (const [key, value] of Object.entries(entity)) {
    if (key === "partitionKey" || key === "rowKey" || key === "etag" || key === "timestamp" || value === undefined) continue;
    bytes += 8 + 2 * key.length + (typeof value === "string" ? 4 + 2 * value.length : typeof value === "boolean" ? 1 : 8);
  }
  return bytes;
}

/** Fails with the reason before storage would, naming the row; a row that trips this is a defect in its limits. */
export function assertStorable(entity: Record<string, unknown>): void {
  const row = `${String(entity.partitionKey)}/${String(entity.rowKey)}`;
  const properties = Object.keys(entity).filter((k) => !["partitionKey", "rowKey", "etag", "timestamp"].includes(k) && entity[k] !== undefined);
  const tooLong = properties.find((k) => typeof entity[k] === "string" && (entity[k] as string).length > TABLE_LIMITS.stringChars);
  if (tooLong) throw new Error(`Row ${row}: property ${tooLong} exceeds ${TABLE_LIMITS.stringChars} characters`);
  if (properties.length > TABLE_LIMITS.properties) throw new Error(`Row ${row} has ${properties.length} properties, more than ${TABLE_LIMITS.properties}`);
  const bytes = entityBytes(entity);
  if (bytes > TABLE_LIMITS.entityBytes) throw new Error(`Row ${row} is ${bytes} bytes, more than ${TABLE_LIMITS.entityBytes}`);
}

/** `text` cut to `max` characters, marked as cut; never splits a surrogate pair. */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  if (/[\ud800-\udbff]/.test(text[end - 1]!)) end--;
  return `${text.slice(0, end)}…`;
}

/** A filter for every row whose key starts with `prefix` (`;` sorts right after `:`). */
export function prefixFilter(prefix: string): { from: string; to: string } {
  const last = prefix.charCodeAt(prefix.length - 1);
  return { from: prefix, to: prefix.slice(0, -1) + String.fromCharCode(last + 1) };
}

const clients = new Map<string, Promise<TableClient>>();

/** The table client for this configuration, with the table created on first use. */
export function openTable(storage: Config["storage"]): Promise<TableClient> {
  const key = `${storage.connectionString ?? storage.tableEndpoint}|${storage.table}`;
  let client = clients.get(key);
  if (!client) {
    client = createClient(storage);
    clients.set(key, client);
    client.catch(() => clients.delete(key));
  }
  return client;
}

async function createClient(storage: Config["storage"]): Promise<TableClient> {
  let client: TableClient;
  if (storage.connectionString) {
    const options: TableServiceClientOptions = { allowInsecureConnection: isLoopback(storage.connectionString), additionalPolicies: [serverClock.tablePolicy()] };
    client = TableClient.fromConnectionString(storage.connectionString, storage.table, options);
  } else {
    const { DefaultAzureCredential } = await import("@azure/identity");
    const credential = new DefaultAzureCredential({ managedIdentityClientId: storage.managedIdentityClientId });
    client = new TableClient(storage.tableEndpoint!, storage.table, credential, { additionalPolicies: [serverClock.tablePolicy()] });
  }
  await client.createTable();
  return recovering(client, storage.table);
}

/** The calls that act on the table, which a table deleted under the running app makes fail with `TableNotFound`. */
const TABLE_CALLS = new Set<PropertyKey>(["getEntity", "createEntity", "updateEntity", "upsertEntity", "deleteEntity", "submitTransaction"]);

/**
 * The client with one recovery: a table deleted while the app runs (a mistaken cleanup, a restored
 * account) is reported loudly, re-created once and the call retried. Before, a missing table read as
 * "no row" — a free lock and nodes never seen — and was never re-created until the process restarted.
 * The rows it held are gone; what Rollcall rebuilds from check-ins afterwards is logged as usual.
 */
export function recovering(client: TableClient, name: string): TableClient {
  let creating: Promise<void> | undefined;
  const recreate = async (error: unknown, cluster = "*"): Promise<void> => {
    console.error(
      `STORAGE TABLE MISSING table=${name} cluster=${cluster}: it was deleted while Rollcall runs; re-creating it. Every row it held (locks, node states, history, policies) is lost.`,
    );
    getTelemetry().exception(error, { cluster, table: name, recovery: "table re-created" });
    creating ??= client.createTable().finally(() => (creating = undefined));
    try {
      await creating;
    } catch (cause) {
      // Azure refuses to re-create a table while it is being deleted, at least 40 s (Microsoft, "Delete
      // Table": 409 TableBeingDeleted). A 409 passed on as it is would read as an ETag conflict to the
      // callers, so it becomes a plain error; the next call tries again.
      throw new Error(`Table ${name} is missing and could not be re-created yet: ${(cause as Error).message}`, { cause });
    }
  };
  return new Proxy(client, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== "function") return value;
      const call = (...args: unknown[]) => (value as (...a: unknown[]) => unknown).apply(target, args);
      if (TABLE_CALLS.has(property)) {
        return async (...args: unknown[]) => {
          try {
            return await call(...args);
          } catch (error) {
            if (!isTableMissing(error)) throw error;
            await recreate(error, partitionOf(args));
            return await call(...args);
          }
        };
      }
      if (property === "listEntities") return (...args: unknown[]) => recoveringList(() => call(...args) as EntityPages, recreate);
      return value.bind(target);
    },
  });
}

/** The cluster a call is about: the partition key of its first argument (a key, an entity or a batch). */
function partitionOf(args: unknown[]): string {
  const first = args[0] as string | { partitionKey?: unknown } | [unknown, { partitionKey?: unknown }][];
  const key = typeof first === "string" ? first : Array.isArray(first) ? first[0]?.[1]?.partitionKey : first?.partitionKey;
  return typeof key === "string" ? key : "*";
}

type EntityPages = ReturnType<TableClient["listEntities"]>;
type PageSettings = Parameters<EntityPages["byPage"]>[0];

/** A listing that re-creates a missing table; it starts again only if no page was served yet. */
function recoveringList(list: () => EntityPages, recreate: (error: unknown) => Promise<void>): EntityPages {
  async function* pages(settings?: PageSettings) {
    let served = false;
    try {
      for await (const page of list().byPage(settings)) {
        served = true;
        yield page;
      }
    } catch (error) {
      if (!isTableMissing(error)) throw error;
      await recreate(error);
      if (served) throw error;
      yield* list().byPage(settings);
    }
  }
  async function* entities() {
    for await (const page of pages()) yield* page;
  }
  const iterator = entities();
  const listing = {
    next: () => iterator.next(),
    [Symbol.asyncIterator]: () => listing,
    byPage: (settings?: PageSettings) => pages(settings),
  };
  return listing as unknown as EntityPages;
}

function isLoopback(connectionString: string): boolean {
  return /(Endpoint=http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/])|UseDevelopmentStorage=true/i.test(connectionString);
}

/** True for the storage error that means "someone else changed this row since you read it". */
export function isConflict(error: unknown): boolean {
  const status = (error as { statusCode?: number }).statusCode;
  return status === 412 || status === 409;
}

/** The service's error code: single calls carry it in `details.errorCode`, batches in `code`. */
function errorCode(error: unknown): string | undefined {
  const e = error as { details?: { errorCode?: unknown }; code?: unknown };
  const code = e.details?.errorCode ?? e.code;
  return typeof code === "string" ? code : undefined;
}

/** The row does not exist. A missing table is not a missing row: see `isTableMissing`. */
export function isNotFound(error: unknown): boolean {
  return (error as { statusCode?: number }).statusCode === 404 && !isTableMissing(error);
}

export function isTableMissing(error: unknown): boolean {
  return (error as { statusCode?: number }).statusCode === 404 && errorCode(error) === "TableNotFound";
}
