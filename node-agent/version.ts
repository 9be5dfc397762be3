/** Sent with every check-in (`agentVersion`); the bundle build may replace it with `--define`. */
export const AGENT_VERSION: string = typeof ROLLCALL_AGENT_VERSION === "string" ? ROLLCALL_AGENT_VERSION : "0.1.0";

declare const ROLLCALL_AGENT_VERSION: string | undefined;
