import { randomBytes, randomUUID } from "node:crypto";
import { resources } from "./resources";
import { badRequest } from "./status";
import type { Json, Store } from "./store";

/**
 * Bound service account tokens and the TokenReview API. Tokens are opaque strings remembered in
 * memory; reviews answer with the fields, groups, `extra` keys and error wording of the apiserver's
 * service account authenticator (pkg/serviceaccount).
 */

export interface ServiceAccountTokenOptions {
  namespace: string;
  serviceAccount: string;
  /** Binds the token to this pod (which must exist): the token dies with the pod. */
  pod?: string;
  /** The node named in the token; defaults to the bound pod's node. */
  node?: string;
  /** Defaults to the API server's own audience. */
  audiences?: string[];
  expiresInSeconds?: number;
}

interface IssuedToken {
  namespace: string;
  serviceAccount: string;
  pod?: { name: string; uid: string };
  node?: { name: string; uid: string };
  audiences: string[];
  expiresAt: number;
  credentialId: string;
}

export class TokenAuthority {
  private readonly issued = new Map<string, IssuedToken>();
  private readonly serviceAccountUids = new Map<string, string>();

  constructor(
    private readonly store: Store,
    /** What the API server accepts when a review names no audiences. */
    private readonly apiAudiences: string[],
  ) {}

  issue(options: ServiceAccountTokenOptions): string {
    const pod = options.pod === undefined ? undefined : this.store.require(resources.pods, options.namespace, options.pod);
    const nodeName = options.node ?? pod?.spec?.nodeName;
    const node = nodeName ? this.store.require(resources.nodes, undefined, nodeName) : undefined;
    const token = `sim-sa-token.${randomBytes(32).toString("base64url")}`;
    this.issued.set(token, {
      namespace: options.namespace,
      serviceAccount: options.serviceAccount,
      ...(pod ? { pod: { name: pod.metadata.name, uid: pod.metadata.uid } } : {}),
      ...(node ? { node: { name: node.metadata.name, uid: node.metadata.uid } } : {}),
      audiences: options.audiences ?? this.apiAudiences,
      expiresAt: Date.now() + (options.expiresInSeconds ?? 3600) * 1000,
      credentialId: randomUUID(),
    });
    return token;
  }

  /** The TokenReview the API server returns (201) for a TokenReview request body. */
  review(body: Json): Json {
    const token: unknown = body?.spec?.token;
    if (typeof token !== "string" || token === "") throw badRequest("token is required for TokenReview in authentication.k8s.io");
    const requested: string[] = body.spec.audiences?.length ? body.spec.audiences : this.apiAudiences;
    const answer = (status: Json): Json => ({
      kind: "TokenReview",
      apiVersion: "authentication.k8s.io/v1",
      metadata: { creationTimestamp: null },
      spec: body.spec,
      status,
    });
    const fail = (error?: string) => answer({ user: {}, ...(error ? { error } : {}) });

    // Unknown strings are not service account tokens at all: no authenticator claims them, so no error.
    const issued = this.issued.get(token);
    if (!issued) return fail();
    if (Date.now() >= issued.expiresAt) return fail("service account token has expired");
    const audiences = issued.audiences.filter((a) => requested.includes(a));
    if (audiences.length === 0) return fail(`token audiences ${goQuote(issued.audiences)} is invalid for the target audiences ${goQuote(requested)}`);
    if (issued.pod) {
      const pod = this.store.get(resources.pods, issued.namespace, issued.pod.name);
      if (pod?.metadata.uid !== issued.pod.uid) return fail("Token has been invalidated");
    }

    const extra: Record<string, string[]> = { "authentication.kubernetes.io/credential-id": [`JTI=${issued.credentialId}`] };
    if (issued.pod) {
      extra["authentication.kubernetes.io/pod-name"] = [issued.pod.name];
      extra["authentication.kubernetes.io/pod-uid"] = [issued.pod.uid];
    }
    if (issued.node) {
      extra["authentication.kubernetes.io/node-name"] = [issued.node.name];
      extra["authentication.kubernetes.io/node-uid"] = [issued.node.uid];
    }
    return answer({
      authenticated: true,
      user: {
        username: `system:serviceaccount:${issued.namespace}:${issued.serviceAccount}`,
        uid: this.serviceAccountUid(issued.namespace, issued.serviceAccount),
        groups: ["system:serviceaccounts", `system:serviceaccounts:${issued.namespace}`, "system:authenticated"],
        extra,
      },
      audiences,
    });
  }

  private serviceAccountUid(namespace: string, name: string): string {
    const id = `${namespace}/${name}`;
    let uid = this.serviceAccountUids.get(id);
    if (!uid) this.serviceAccountUids.set(id, (uid = randomUUID()));
    return uid;
  }
}

/** Go's %q of a []string: `["a" "b"]`. */
function goQuote(values: string[]): string {
  return `[${values.map((v) => JSON.stringify(v)).join(" ")}]`;
}
