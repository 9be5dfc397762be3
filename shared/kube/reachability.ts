import type { ClusterConnection } from "../config/config";

/**
 * Why a cluster's API server did not answer, in the operator's terms: the step that failed and
 * the setting or network row (docs/deploy.md) to check. The steps in the order a call takes them:
 * the connection (kubeconfig, or AKS credentials through ARM), DNS, TCP, TLS, authentication and
 * authorization, and an answer in time.
 */
export type Unreachable = "connection" | "dns" | "tcp" | "tls" | "unauthorized" | "forbidden" | "timeout" | "error";

export interface ReachabilityFailure {
  failure: Unreachable;
  /** One line: what happened, no stack. */
  error: string;
  /** What to check. */
  check: string;
}

/** Node's resolver codes (dns module): the name did not resolve. */
const DNS_CODES = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_FAIL", "EAI_NONAME", "EAI_NODATA"]);
/** Socket codes: resolved, but no connection (refused, reset, unroutable, or the SYN timed out). */
const TCP_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH", "ENETUNREACH", "ETIMEDOUT", "EPIPE", "ECONNABORTED"]);
/** OpenSSL verification codes Node reports (tls module), and its own TLS errors. */
const TLS_CODES = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_GET_ISSUER_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "EPROTO",
]);

export class ProbeTimeout extends Error {
  override name = "ProbeTimeout";
}

/** The error and its causes (fetch wraps the socket error in `cause`). */
function chain(error: unknown): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  let current: unknown = error;
  for (let i = 0; current && typeof current === "object" && i < 5; i++) {
    out.push(current as Record<string, unknown>);
    current = (current as { cause?: unknown }).cause;
  }
  return out;
}

function firstLine(error: unknown): string {
  const messages = chain(error).map((e) => String(e.message ?? "")).filter(Boolean);
  return (messages.join(": ") || String(error)).split("\n")[0]!.slice(0, 300);
}

/**
 * Classifies a failed probe. `step` says whether the connection (kubeconfig or ARM credentials)
 * or the API call failed.
 */
export function classifyUnreachable(error: unknown, step: "connect" | "call", connection: ClusterConnection): ReachabilityFailure {
  const message = firstLine(error);
  const codes = chain(error).flatMap((e) => [e.code, e.errno, e.statusCode].filter((c) => c !== undefined).map(String));
  const status = chain(error)
    .map((e) => (typeof e.statusCode === "number" ? e.statusCode : typeof e.code === "number" ? e.code : undefined))
    .find((s) => s !== undefined);
  const aks = connection.aksResourceId !== undefined;
  const source = aks ? `aksResourceId ${connection.aksResourceId}` : connection.kubeconfigFile ? `kubeconfigFile ${connection.kubeconfigFile}` : "the inline kubeconfig";
  const fail = (failure: Unreachable, check: string): ReachabilityFailure => ({ failure, error: message, check });

  if (error instanceof ProbeTimeout) {
    return fail("timeout", "the API server took too long: with authorized IP ranges, traffic from an address not in the list is dropped without an answer — add ROLLCALL_EGRESS_IP (network row authorizedIps, docs/deploy.md); on a private network check the subnet's routes and NSGs");
  }
  if (step === "connect") {
    if (aks && (status === 401 || status === 403)) {
      return fail("connection", `Azure refused the cluster credentials (${status}): the app identity needs Azure Kubernetes Service Cluster User Role on ${connection.aksResourceId} (infra/modules/aks-access.bicep)`);
    }
    return fail("connection", aks ? `could not get the cluster's kubeconfig from Azure for ${source}: check the id and ROLLCALL_ARM_ENDPOINT` : `could not load ${source} (ROLLCALL_CLUSTERS)`);
  }
  if (codes.some((c) => DNS_CODES.has(c))) {
    return fail("dns", "the API server's name does not resolve from the app: a private cluster's FQDN needs network row private with its private DNS zone linked (privateDnsZoneIds, docs/deploy.md); otherwise check the server URL in " + source);
  }
  if (codes.some((c) => TLS_CODES.has(c) || c.startsWith("ERR_SSL_") || c.startsWith("ERR_TLS_"))) {
    return fail("tls", `the API server's certificate does not match the CA or name in ${source}: use the kubeconfig the cluster issues (certificate-authority-data and server must belong together)`);
  }
  if (codes.some((c) => TCP_CODES.has(c))) {
    return fail("tcp", "the API server's address resolved but refused or dropped the connection: authorized IP ranges need ROLLCALL_EGRESS_IP in the list (network row authorizedIps); private clusters need network row private with a subnet that routes to the API server (docs/deploy.md)");
  }
  if (status === 401) {
    return fail(
      "unauthorized",
      aks && connection.aksAuth === "token"
        ? "the API server did not accept the app's Entra ID token: the cluster must be Entra ID-integrated (or set aksAuth \"credentials\" for a cluster with local accounts)"
        : `the API server did not accept the credentials in ${source} (expired token or certificate?)`,
    );
  }
  if (status === 403) {
    return fail("forbidden", "the API server knows the app but does not let it read nodes: apply infra/kubernetes/rollcall-orchestrator-rbac.yaml with the identity's principal id (README, deployment step 2)");
  }
  return fail("error", `the API server answered with an error${status !== undefined ? ` (${status})` : ""}; check ${source}`);
}
