import { readFile } from "node:fs/promises";
import path from "node:path";
import { app, type HttpRequest, type InvocationContext } from "@azure/functions";
import { authorizeOperator } from "../shared/auth/operator";
import { HttpError, httpHandler } from "../shared/http/http";

/** GET /api/openapi.json — the OpenAPI document of the whole API, as kept in the repository (`openapi/openapi.json`). */

/** From `functions/` when run from source, from `dist/functions/` when built. */
const CANDIDATES = [path.resolve(__dirname, "..", "openapi", "openapi.json"), path.resolve(__dirname, "..", "..", "openapi", "openapi.json")];

let document: Promise<string> | undefined;

export function loadOpenApiDocument(): Promise<string> {
  document ??= (async () => {
    for (const candidate of CANDIDATES) {
      try {
        const text = await readFile(candidate, "utf8");
        JSON.parse(text);
        return text;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
    }
    throw new HttpError(500, "openapi_missing", "The OpenAPI document was not deployed with the app (openapi/openapi.json)");
  })();
  document.catch(() => (document = undefined));
  return document;
}

export const openapi = httpHandler(async (request: HttpRequest, _context: InvocationContext) => {
  authorizeOperator(request, "Rollcall.Read");
  return { status: 200, body: await loadOpenApiDocument(), headers: { "content-type": "application/json; charset=utf-8", "cache-control": "public, max-age=300" } };
});

app.http("openapi", {
  route: "openapi.json",
  methods: ["GET"],
  authLevel: "function",
  handler: openapi,
});
