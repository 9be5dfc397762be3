/**
 * Whether this process runs in Azure Functions (any plan) rather than locally, told the way the
 * Functions host itself tells it (azure-functions-host `EnvironmentExtensions.cs`): App Service plans
 * set `WEBSITE_INSTANCE_ID`, but Linux Consumption (`CONTAINER_NAME`) and Flex Consumption
 * (`LEGION_SERVICE_HOST`, `WEBSITE_SKU=FlexConsumption`) do not, and `WEBSITE_SITE_NAME` is set on all.
 * One signal is enough: a false "on Azure" only refuses settings meant for the local simulation.
 * `CONTAINER_NAME` alone is not used: any container (these development machines, CI runners) may
 * set it, and Linux Consumption sets `WEBSITE_SITE_NAME` beside it anyway.
 */
const SIGNALS: readonly [setting: string, matches: (value: string) => boolean][] = [
  ["WEBSITE_INSTANCE_ID", Boolean],
  ["WEBSITE_SITE_NAME", Boolean],
  ["LEGION_SERVICE_HOST", Boolean],
  ["WEBSITE_SKU", (v) => v === "FlexConsumption"],
];

/** The first setting that shows Azure hosting (`WEBSITE_SKU=FlexConsumption`), or undefined locally. */
export function azureHostSignal(env: Record<string, string | undefined>): string | undefined {
  for (const [setting, matches] of SIGNALS) {
    const value = env[setting]?.trim();
    if (value && matches(value)) return `${setting}=${value}`;
  }
  return undefined;
}

/**
 * Why these settings must not start on Azure, or undefined: check-ins without authentication
 * (`ROLLCALL_AGENT_AUTH=off`) let anyone with the function key reboot any node, and policy calls to
 * the loopback interface (`ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK`) would reach the host's own local
 * endpoints, such as its managed-identity endpoint.
 */
export function unsafeOnAzure(env: Record<string, string | undefined>): string | undefined {
  const azure = azureHostSignal(env);
  if (!azure) return undefined;
  if (env.ROLLCALL_AGENT_AUTH?.trim() === "off") {
    return (
      `Invalid app settings: ROLLCALL_AGENT_AUTH=off is for the local simulation only and is refused on Azure (detected by ${azure}): ` +
      "remove the setting so that check-ins are authenticated by TokenReview"
    );
  }
  if (["true", "1"].includes(env.ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK?.trim() ?? "")) {
    return (
      `Invalid app settings: ROLLCALL_OUTBOUND_ALLOW_HTTP_LOOPBACK is for local runs only and is refused on Azure (detected by ${azure}): ` +
      "remove it; on Azure, policies call https endpoints listed in ROLLCALL_PROMETHEUS_HOSTS and ROLLCALL_WEBHOOK_HOSTS"
    );
  }
  return undefined;
}
