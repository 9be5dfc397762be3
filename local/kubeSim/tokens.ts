import { createHmac, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { resources } from "./resources";
import { ApiError, badRequest } from "./status";
import type { Json, Store } from "./store";

/**
 * Bound service account tokens, the TokenRequest subresource and the TokenReview API, answering
 * as the captured kube-apiserver v1.24 does (`../shared/k8s-captured/token*.json`):
 * - tokens are JWTs with the apiserver's claims (`kubernetes.io.pod`, `.serviceaccount`, `sub`, `aud`,
 *   `exp`); the signature is an HMAC of the sim's own key, so a token with edited claims fails like a
 *   forged one does (`square/go-jose: error in cryptographic primitive`);
 * - a review's `user.extra` carries `authentication.kubernetes.io/pod-name` and `pod-uid` (no node
 *   name on 1.24; a token bound to a Node object, a 1.30 feature, carries `node-name`/`node-uid`);
 * - errors are the authenticator union's `[invalid bearer token, …]`;
 * - a successful authentication is cached by the apiserver (about 10 s), so a deleted pod's token is
 *   still accepted for that long after the delete, then `service account token has been invalidated`.
 */

export interface ServiceAccountTokenOptions {
  namespace: string;
  serviceAccount: string;
  /** Binds the token to this pod (which must exist): the token dies with the pod. */
  pod?: string;
  /** Binds the token to this Node object instead of a pod (Kubernetes ≥ 1.30). */
  node?: string;
  /** Defaults to the API server's own audience. */
  audiences?: string[];
  expiresInSeconds?: number;
}

interface Claims {
  aud: string[];
  exp: number;
  iat: number;
  nbf: number;
  iss: string;
  sub: string;
  "kubernetes.io": {
    namespace: string;
    pod?: { name: string; uid: string };
    node?: { name: string; uid: string };
    serviceaccount: { name: string; uid: string };
  };
}

const ISSUER = "https://kubernetes.default.svc.cluster.local";
/** kube-apiserver's minimum `expirationSeconds` for a TokenRequest (10 minutes). */
const MIN_EXPIRATION_SECONDS = 600;

export class TokenAuthority {
  /** How long a successful authentication is remembered, as kube-apiserver's token cache does. */
  authenticationCacheMs = 10_000;
  private readonly key = randomBytes(32);
  private readonly kid = randomBytes(20).toString("base64url");
  private readonly serviceAccountUids = new Map<string, string>();
  private readonly authenticated = new Map<string, { status: Json; until: number }>();

  constructor(
    private readonly store: Store,
    /** What the API server accepts when a review names no audiences. */
    private readonly apiAudiences: string[],
  ) {}

  /** A token as the kubelet's projected volume would get it (no HTTP round trip). */
  issue(options: ServiceAccountTokenOptions): string {
    const pod = options.pod === undefined ? undefined : this.store.require(resources.pods, options.namespace, options.pod);
    const node = options.node === undefined ? undefined : this.store.require(resources.nodes, undefined, options.node);
    return this.sign({
      namespace: options.namespace,
      serviceAccount: options.serviceAccount,
      audiences: options.audiences ?? this.apiAudiences,
      expiresInSeconds: options.expiresInSeconds ?? 3600,
      ...(pod ? { pod: { name: pod.metadata.name, uid: pod.metadata.uid } } : {}),
      ...(node ? { node: { name: node.metadata.name, uid: node.metadata.uid } } : {}),
    });
  }

  /** `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`: a TokenRequest, answered 201. */
  request(namespace: string, serviceAccount: string, body: Json): Json {
    const spec = body?.spec ?? {};
    const expirationSeconds: number = spec.expirationSeconds ?? 3600;
    if (expirationSeconds < MIN_EXPIRATION_SECONDS) {
      const message = `Invalid value: ${expirationSeconds}: may not specify a duration less than 10 minutes`;
      throw new ApiError(422, "Invalid", `TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: ${message}`, {
        group: "authentication.k8s.io",
        kind: "TokenRequest",
        causes: [{ reason: "FieldValueInvalid", message, field: "spec.expirationSeconds" }],
      });
    }
    const ref = spec.boundObjectRef;
    let pod: { name: string; uid: string } | undefined;
    if (ref) {
      if (ref.kind !== "Pod") throw badRequest(`cannot bind token to object of type ${ref.kind}`);
      const found = this.store.get(resources.pods, namespace, ref.name);
      if (!found) throw new ApiError(404, "NotFound", `pods "${ref.name}" not found`, { name: ref.name, kind: "pods" });
      if (ref.uid && ref.uid !== found.metadata.uid) {
        throw new ApiError(
          409,
          "Conflict",
          `Operation cannot be fulfilled on Pod "${ref.name}": the UID in the bound object reference (${ref.uid}) does not match the UID in record. The object might have been deleted and then recreated`,
          { name: ref.name, kind: "Pod" },
        );
      }
      pod = { name: found.metadata.name, uid: found.metadata.uid };
    }
    const audiences: string[] = spec.audiences?.length ? spec.audiences : this.apiAudiences;
    const token = this.sign({ namespace, serviceAccount, audiences, expiresInSeconds: expirationSeconds, ...(pod ? { pod } : {}) });
    return {
      kind: "TokenRequest",
      apiVersion: "authentication.k8s.io/v1",
      metadata: { name: serviceAccount, namespace, creationTimestamp: null },
      spec: { audiences, expirationSeconds, boundObjectRef: ref ?? null },
      status: { token, expirationTimestamp: new Date(Date.now() + expirationSeconds * 1000).toISOString().replace(/\.\d+Z$/, "Z") },
    };
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
    const cacheKey = `${requested.join(" ")}\n${token}`;
    const remembered = this.authenticated.get(cacheKey);
    if (remembered && remembered.until > Date.now()) return answer(remembered.status);

    const fail = (error?: string) => answer({ user: {}, ...(error ? { error: `[invalid bearer token, ${error}]` } : {}) });
    const parts = token.split(".");
    // A string that is not a JWT is no authenticator's: unauthenticated, and no error to tell.
    if (parts.length !== 3) return fail();
    const claims = this.verify(parts);
    if (!claims) return fail("square/go-jose: error in cryptographic primitive");
    if (Date.now() >= claims.exp * 1000) return fail("service account token has expired");
    const audiences = claims.aud.filter((a) => requested.includes(a));
    if (audiences.length === 0) return fail(`token audiences ${goQuote(claims.aud)} is invalid for the target audiences ${goQuote(requested)}`);
    const k8s = claims["kubernetes.io"];
    if (k8s.pod && this.store.get(resources.pods, k8s.namespace, k8s.pod.name)?.metadata.uid !== k8s.pod.uid) {
      return fail("service account token has been invalidated");
    }
    if (k8s.node && this.store.get(resources.nodes, undefined, k8s.node.name)?.metadata.uid !== k8s.node.uid) {
      return fail("service account token has been invalidated");
    }

    const extra: Record<string, string[]> = {};
    if (k8s.pod) {
      extra["authentication.kubernetes.io/pod-name"] = [k8s.pod.name];
      extra["authentication.kubernetes.io/pod-uid"] = [k8s.pod.uid];
    }
    if (k8s.node) {
      extra["authentication.kubernetes.io/node-name"] = [k8s.node.name];
      extra["authentication.kubernetes.io/node-uid"] = [k8s.node.uid];
    }
    const status = {
      authenticated: true,
      user: {
        username: claims.sub,
        uid: k8s.serviceaccount.uid,
        groups: ["system:serviceaccounts", `system:serviceaccounts:${k8s.namespace}`, "system:authenticated"],
        ...(Object.keys(extra).length ? { extra } : {}),
      },
      audiences,
    };
    this.authenticated.set(cacheKey, { status, until: Date.now() + this.authenticationCacheMs });
    return answer(status);
  }

  private sign(options: {
    namespace: string;
    serviceAccount: string;
    audiences: string[];
    expiresInSeconds: number;
    pod?: { name: string; uid: string };
    node?: { name: string; uid: string };
  }): string {
    const now = Math.floor(Date.now() / 1000);
    const claims: Claims = {
      aud: options.audiences,
      exp: now + options.expiresInSeconds,
      iat: now,
      iss: ISSUER,
      "kubernetes.io": {
        namespace: options.namespace,
        ...(options.pod ? { pod: options.pod } : {}),
        ...(options.node ? { node: options.node } : {}),
        serviceaccount: { name: options.serviceAccount, uid: this.serviceAccountUid(options.namespace, options.serviceAccount) },
      },
      nbf: now,
      sub: `system:serviceaccount:${options.namespace}:${options.serviceAccount}`,
    };
    const header = Buffer.from(JSON.stringify({ alg: "RS256", kid: this.kid })).toString("base64url");
    const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
    return `${header}.${payload}.${this.signature(`${header}.${payload}`)}`;
  }

  private verify([header, payload, signature]: string[]): Claims | undefined {
    const expected = Buffer.from(this.signature(`${header}.${payload}`));
    const given = Buffer.from(signature ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    return JSON.parse(Buffer.from(payload!, "base64url").toString("utf8")) as Claims;
  }

  private signature(input: string): string {
    return createHmac("sha256", this.key).update(input).digest("base64url");
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

