import { TableClient, type TableServiceClientOptions } from "@azure/data-tables";
import type { Config } from "../config/config";

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
    const options: TableServiceClientOptions = { allowInsecureConnection: isLoopback(storage.connectionString) };
    client = TableClient.fromConnectionString(storage.connectionString, storage.table, options);
  } else {
    const { DefaultAzureCredential } = await import("@azure/identity");
    const credential = new DefaultAzureCredential({ managedIdentityClientId: storage.managedIdentityClientId });
    client = new TableClient(storage.tableEndpoint!, storage.table, credential);
  }
  await client.createTable();
  return client;
}

function isLoopback(connectionString: string): boolean {
  return /(Endpoint=http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/])|UseDevelopmentStorage=true/i.test(connectionString);
}

/** True for the storage error that means "someone else changed this row since you read it". */
export function isConflict(error: unknown): boolean {
  const status = (error as { statusCode?: number }).statusCode;
  return status === 412 || status === 409;
}

export function isNotFound(error: unknown): boolean {
  return (error as { statusCode?: number }).statusCode === 404;
}
