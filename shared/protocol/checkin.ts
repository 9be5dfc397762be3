import { z } from "zod";

/**
 * The check-in protocol between the node agent and the orchestrator. Both sides import this file,
 * so a change here is a protocol change: keep it backwards compatible for agents already deployed.
 */
export const PROTOCOL_VERSION = 1;

/** `/proc/sys/kernel/random/boot_id` is a UUID; accept any hex-and-dash id of sane length. */
const bootId = z.string().regex(/^[0-9a-fA-F-]{8,64}$/, { message: "must be the node's boot id (hex digits and '-')" });

export const leaseId = z.string().uuid({ message: "must be the lease id (a UUID) from the reboot answer" });

/** The largest check-in body accepted; a full `.pkgs` list of a big patch run fits comfortably. */
export const MAX_CHECKIN_BYTES = 64 * 1024;

/** Reasons: at most this many, each at most `MAX_REASON_LENGTH` characters… */
export const MAX_REASONS = 500;
export const MAX_REASON_LENGTH = 200;
/**
 * …and all of them together at most this long as JSON (counted in UTF-8 bytes, never fewer than
 * UTF-16 characters), which leaves room in `MAX_CHECKIN_BYTES` for the other fields. The node record
 * and the history row keep the list in two 32,000-character string parts; before this limit a list
 * over one part's 32K characters (500 package names of 68 characters) failed every check-in with 500.
 */
export const MAX_REASONS_JSON_BYTES = 60_000;

/** False for text with a lone UTF-16 surrogate, which no storage key, URL or UTF-8 body can carry. */
export function isWellFormed(text: string): boolean {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
}

export function reasonsJsonBytes(reasons: readonly string[]): number {
  return Buffer.byteLength(JSON.stringify(reasons));
}

export const CheckinRequest = z
  .object({
    bootId,
    rebootRequired: z.boolean(),
    /** Why a reboot is required: the sentinel's `.pkgs` package list where present. */
    reasons: z
      .array(z.string().min(1).max(MAX_REASON_LENGTH).refine(isWellFormed, { message: "must be text (it holds a lone UTF-16 surrogate)" }))
      .max(MAX_REASONS)
      .refine((reasons) => reasonsJsonBytes(reasons) <= MAX_REASONS_JSON_BYTES, {
        message: `must take at most ${MAX_REASONS_JSON_BYTES} bytes as JSON all together; send the first reasons that fit`,
      })
      .default([]),
    agentVersion: z.string().min(1).max(64).regex(/^[0-9A-Za-z.+_-]+$/, { message: "must be a version string" }),
    /** Echo of the lease in the last `reboot` answer this agent acted on. */
    leaseId: leaseId.optional(),
  })
  .strict();
export type CheckinRequest = z.infer<typeof CheckinRequest>;

export const CheckinAction = z.enum(["none", "wait", "reboot"]);
export type CheckinAction = z.infer<typeof CheckinAction>;

export const CheckinResponse = z.object({
  action: CheckinAction,
  /** Present only with `reboot`: the agent reboots at most once per lease and echoes it after boot. */
  leaseId: leaseId.optional(),
  /** The node's state in the orchestrator, for the agent's log. */
  state: z.string(),
  reason: z.string(),
  nextCheckinSeconds: z.number().int().positive(),
});
export type CheckinResponse = z.infer<typeof CheckinResponse>;

export function checkinPath(cluster: string, node: string): string {
  return `/api/clusters/${encodeURIComponent(cluster)}/nodes/${encodeURIComponent(node)}/checkin`;
}
