import { execFile } from "node:child_process";

/**
 * The operator API as the CLI calls it: the base URL and function key from flags or environment,
 * an Entra token from the Azure CLI when App Service authentication is on (docs/security.md), and
 * every failure turned into a CliError that says what to change and carries the exit code.
 */

/** Exit codes a script can test (docs/cli.md). */
export const EXIT = { ok: 0, usage: 1, api: 2, server: 3, interrupted: 130 } as const;

export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

export interface Connection {
  /** Ends in `/api` (or the app's route prefix), without a trailing slash. */
  baseUrl: string;
  key?: string;
  /** The app registration's application (client) id: ask `az` for a token for `api://<id>`. */
  entraAppId?: string;
  /** How long one call may take. */
  timeoutMs: number;
  /** Ctrl-C: a call under way is abandoned. */
  signal?: AbortSignal;
}

export interface Answer {
  status: number;
  body: any;
}

const URL_HINT = "set --url or ROLLCALL_URL to the function app's API, e.g. https://<app>.azurewebsites.net/api (npm start prints its own)";

/** A URL without a path means the Functions default route prefix, `/api`. */
export function baseUrl(raw: string | undefined): string {
  if (!raw) throw new CliError(EXIT.usage, `No Rollcall URL: ${URL_HINT}`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CliError(EXIT.usage, `${JSON.stringify(raw)} is not a URL: ${URL_HINT}`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new CliError(EXIT.usage, `${raw} is not an http(s) URL: ${URL_HINT}`);
  const path = url.pathname.replace(/\/+$/, "");
  return `${url.origin}${path || "/api"}`;
}

let cachedToken: Promise<string> | undefined;

/** `az account get-access-token --resource api://<app id>`, once per run. */
function entraToken(appId: string): Promise<string> {
  cachedToken ??= new Promise((resolve, reject) => {
    execFile(
      "az",
      ["account", "get-access-token", "--resource", `api://${appId}`, "--query", "accessToken", "-o", "tsv"],
      { timeout: 60_000, shell: process.platform === "win32" },
      (error, stdout, stderr) => {
        if (error) {
          const why = (error as NodeJS.ErrnoException).code === "ENOENT" ? "the Azure CLI (az) is not installed or not on PATH" : stderr.trim().split("\n")[0] || error.message;
          reject(
            new CliError(
              EXIT.usage,
              `Could not get a Microsoft Entra token for api://${appId} from the Azure CLI: ${why}. Run az login (the Azure CLI must be pre-authorized on Rollcall's app registration, docs/security.md), or unset --entra / ROLLCALL_ENTRA_APP_ID where App Service authentication is off`,
            ),
          );
        } else resolve(stdout.trim());
      },
    );
  });
  return cachedToken;
}

/** `accept`: statuses besides 2xx whose body is an answer (the health route's 503). */
export async function call(connection: Connection, method: string, path: string, body?: unknown, accept: readonly number[] = []): Promise<Answer> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (connection.key) headers["x-functions-key"] = connection.key;
  if (connection.entraAppId) headers.authorization = `Bearer ${await entraToken(connection.entraAppId)}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const url = `${connection.baseUrl}${path}`;
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      signal: connection.signal ? AbortSignal.any([AbortSignal.timeout(connection.timeoutMs), connection.signal]) : AbortSignal.timeout(connection.timeoutMs),
      redirect: "manual",
    });
  } catch (error) {
    if (connection.signal?.aborted) throw new CliError(EXIT.interrupted, "interrupted");
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const why = (error as Error).name === "TimeoutError" ? `no answer within ${connection.timeoutMs / 1000} s` : (cause?.code ?? cause?.message ?? (error as Error).message);
    throw new CliError(EXIT.server, `Cannot reach Rollcall at ${connection.baseUrl} (${why}): check the URL (--url or ROLLCALL_URL) and that the function app is running`);
  }
  const text = await response.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  if ((response.status >= 200 && response.status < 300) || accept.includes(response.status)) return { status: response.status, body: parsed };
  throw failure(connection, method, path, response.status, parsed);
}

/** The API's own `{error: {code, message}}` where there is one, with what to do about it. */
function failure(connection: Connection, method: string, path: string, status: number, body: any): CliError {
  const error = body && typeof body === "object" ? body.error : undefined;
  const message: string | undefined = typeof error?.message === "string" ? error.message : undefined;
  const code: string | undefined = typeof error?.code === "string" ? error.code : undefined;
  const where = `${method} ${connection.baseUrl}${path}`;
  if (status >= 500) {
    const invocation = typeof error?.invocationId === "string" ? ` (invocation ${error.invocationId})` : "";
    return new CliError(EXIT.server, `Rollcall answered ${status} to ${where}: ${message ?? "no error body"}${invocation}; its logs say why (docs/monitoring.md)`);
  }
  if (status === 401 && !code) {
    return new CliError(
      EXIT.api,
      connection.key
        ? `The function key was refused (401 from ${where}): set --key or ROLLCALL_KEY to a key of the function app (az functionapp keys list -g <resource-group> -n <app>)`
        : `No function key (401 from ${where}): set --key or ROLLCALL_KEY (az functionapp keys list -g <resource-group> -n <app>)`,
    );
  }
  if (status === 401) {
    const hint = connection.entraAppId
      ? "the Entra token was not accepted: check that ROLLCALL_ENTRA_APP_ID is Rollcall's app registration and run az login again"
      : "App Service authentication is on: pass --entra APP_ID or set ROLLCALL_ENTRA_APP_ID to Rollcall's app registration, after az login";
    return new CliError(EXIT.api, `${message ?? "Unauthenticated"} (401): ${hint}`);
  }
  if (status === 403) {
    return new CliError(EXIT.api, `${message ?? "Forbidden"} (403)${error?.requiredRole ? `: ask an administrator for the app role ${error.requiredRole}` : ""}`);
  }
  if (status === 404 && !code) {
    return new CliError(EXIT.api, `${where} is not a route of this Rollcall (404): check --url (it must end in the route prefix, /api), or upgrade the function app`);
  }
  const problems: string[] = Array.isArray(error?.problems) ? error.problems.map((p: { field?: string; message?: string }) => `  ${p.field ?? ""}: ${p.message ?? ""}`) : [];
  return new CliError(EXIT.api, [`${message ?? `Rollcall answered ${status}`} (${status}${code ? ` ${code}` : ""})`, ...problems].join("\n"));
}
