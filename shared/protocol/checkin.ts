import { z } from "zod";

/**
 * The check-in protocol between the node agent and the orchestrator. Both sides import this file,
 * so a change here is a protocol change: keep it backwards compatible for agents already deployed.
 */
export const PROTOCOL_VERSION = 1;

/** `/proc/sys/kernel/random/boot_id` is a UUID; accept any hex-and-dash id of sane length. */
const bootId = z.string().regex(/^[0-9a-fA-F-]{8,64}$/, { message: "must be the node's boot id (hex digits and '-')" });

export const leaseId = z.string().uuid({ message: "must be the lease id (a UUID) from the reboot answer" });

import { isWellFormed, MAX_REASON_LENGTH, MAX_REASONS, MAX_REASONS_JSON_BYTES, reasonsJsonBytes } from "./wire";

export { checkinPath, isWellFormed, MAX_CHECKIN_BYTES, MAX_REASON_LENGTH, MAX_REASONS, MAX_REASONS_JSON_BYTES, reasonsJsonBytes } from "./wire";

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

