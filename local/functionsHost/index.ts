import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startFunctionsHost } from "./host";

export { startFunctionsHost, type FunctionsHost, type FunctionsHostOptions, type Registration, type LogLevel } from "./host";
export { compileRoute, matchRoute, compareRoutes } from "./routes";

/**
 * `tsx local/functionsHost/index.ts [--port N]`: the function app alone, like `func start`, with the
 * app settings of `local.settings.json` (Values) under the environment's own. `npm start` adds
 * Azurite, the simulated cluster and agents around it.
 */
async function main(): Promise<void> {
  const root = resolve(__dirname, "../..");
  const settings = join(root, "local.settings.json");
  if (existsSync(settings)) {
    const values = (JSON.parse(readFileSync(settings, "utf8")) as { Values?: Record<string, string> }).Values ?? {};
    for (const [name, value] of Object.entries(values)) process.env[name] ??= value;
  }
  const portArg = process.argv.indexOf("--port");
  const port = portArg >= 0 ? Number(process.argv[portArg + 1]) : undefined;
  const host = await startFunctionsHost({ port, key: process.env.ROLLCALL_LOCAL_FUNCTION_KEY });
  console.log(`Functions host on ${host.url} (key ${host.key}):`);
  for (const r of host.registrations) {
    console.log(r.route !== undefined ? `  ${r.name}: [${r.methods?.join(",")}] ${host.url}/${host.routePrefix}/${r.route} (${r.authLevel})` : `  ${r.name}: timer ${r.schedule}`);
  }
  const stop = () => void host.stop().then(() => process.exit(0));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error((error as Error).message);
    process.exit(1);
  });
}
