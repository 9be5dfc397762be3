import type { GateContext, RebootGate } from "../policy";
import { concurrencyGate } from "./concurrency";
import { describeError, type NamedGate } from "./gate";
import { healthGate, type HealthGateDeps } from "./health";
import { pdbPrecheckGate } from "./pdbPrecheck";
import { podBlockerGate } from "./podBlockers";
import { prometheusGate, type PrometheusGateDeps } from "./prometheus";
import { windowGate, type AksScheduleLoader } from "./window";

const FAILED = /(?:^|: )blocked: ([^:]+) failed: (.*)$/s;

/**
 * The gate and error of a hold reason that is a gate failure ("blocked: <gate> failed: <error>",
 * possibly after "drained; reboot held: "), for the status route to report as an error, not a hold.
 */
export function gateFailure(reason: string | undefined): { gate: string; error: string } | undefined {
  const match = reason ? FAILED.exec(reason) : null;
  return match ? { gate: match[1]!, error: match[2]! } : undefined;
}

/**
 * Asks each gate in order and returns the first reason. A gate that throws (an unreachable
 * Prometheus, an API error) holds the node too: "blocked: <gate> failed: <error>" (`gateFailure`).
 */
export function compositeGate(gates: readonly NamedGate[]): RebootGate {
  return {
    async holdReason(context: GateContext) {
      for (const gate of gates) {
        let reason: string | undefined;
        try {
          reason = await gate.holdReason(context);
        } catch (error) {
          return `blocked: ${gate.name} failed: ${describeError(error)}`;
        }
        if (reason) return reason;
      }
      return undefined;
    },
  };
}

export interface PolicyGateDeps extends HealthGateDeps {
  /** Reads the AKS maintenance configuration for `useAksMaintenanceConfiguration` (see aksMaintenance.ts). */
  aksSchedule?: AksScheduleLoader;
  prometheus?: PrometheusGateDeps;
}

/** Every policy gate, cheapest first: window, concurrency caps, health, pod blockers, PDB pre-check, Prometheus. */
export function policyGates(deps: PolicyGateDeps = {}): NamedGate[] {
  return [
    windowGate({ aksSchedule: deps.aksSchedule }),
    concurrencyGate(),
    healthGate({ touchedPdbs: deps.touchedPdbs }),
    podBlockerGate(),
    pdbPrecheckGate(),
    prometheusGate(deps.prometheus),
  ];
}

/**
 * The gate the orchestrator is built with (`OrchestratorDeps.gate`): the reboot policy's rules. The
 * state machine asks it in `pending` before taking the lock ("before-lock") and in `draining` once
 * drained, before ordering the reboot ("before-reboot"); the reason becomes the node's `why`.
 */
export function rebootPolicyGate(deps: PolicyGateDeps = {}): RebootGate {
  return compositeGate(policyGates(deps));
}
