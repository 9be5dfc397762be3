import type { Resource } from "./resources";

/**
 * `metav1.Status` bodies with the reasons, codes and message wording of kube-apiserver
 * (k8s.io/apimachinery/pkg/api/errors), so that callers' error handling is exercised as in production.
 */

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface Status {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Success" | "Failure";
  message?: string;
  reason?: string;
  details?: StatusDetails;
  /** Absent on the Success status of a DELETE, as the generic registry returns it. */
  code?: number;
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    /** Undefined for the few answers kube-apiserver sends without a reason. */
    readonly reason: string | undefined,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
  }

  toStatus(): Status {
    return {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: this.message,
      ...(this.reason ? { reason: this.reason } : {}),
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

export function successStatus(code?: number, details?: StatusDetails): Status {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", ...(details ? { details } : {}), ...(code === undefined ? {} : { code }) };
}

/** `pods`, or `poddisruptionbudgets.policy` for grouped resources, as the apiserver names them in messages. */
function qualifiedName(resource: Resource): string {
  return resource.group ? `${resource.plural}.${resource.group}` : resource.plural;
}

function objectDetails(resource: Resource, name: string): StatusDetails {
  return { name, ...(resource.group ? { group: resource.group } : {}), kind: resource.plural };
}

export function notFound(resource: Resource, name: string): ApiError {
  return new ApiError(404, "NotFound", `${qualifiedName(resource)} "${name}" not found`, objectDetails(resource, name));
}

export function alreadyExists(resource: Resource, name: string): ApiError {
  return new ApiError(409, "AlreadyExists", `${qualifiedName(resource)} "${name}" already exists`, objectDetails(resource, name));
}

export function conflict(resource: Resource, name: string): ApiError {
  return new ApiError(
    409,
    "Conflict",
    `Operation cannot be fulfilled on ${qualifiedName(resource)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    objectDetails(resource, name),
  );
}

export function badRequest(message: string): ApiError {
  return new ApiError(400, "BadRequest", message);
}

/**
 * What the patch handler answers when a JSON Patch cannot be applied (a failed `test` included):
 * k8s.io/apiserver/pkg/endpoints/handlers/patch.go wraps the json-patch error in
 * NewGenericServerResponse(422, …), hence reason Invalid and this generic message, the error as the cause.
 */
export function patchNotApplicable(message: string): ApiError {
  return new ApiError(422, "Invalid", "the server rejected our request due to an error in our request", {
    causes: [{ reason: "UnexpectedServerResponse", message }],
  });
}

export function unsupportedMediaType(accepted: readonly string[]): ApiError {
  return new ApiError(415, "UnsupportedMediaType", `the body of the request was in an unknown format - accepted media types include: ${accepted.join(", ")}`);
}

export function methodNotAllowed(): ApiError {
  return new ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {});
}

export function pathNotFound(): ApiError {
  return new ApiError(404, "NotFound", "the server could not find the requested resource", {});
}

export function unauthorized(): ApiError {
  return new ApiError(401, "Unauthorized", "Unauthorized");
}

export function tooManyRequests(message: string, retryAfterSeconds: number, causes: StatusCause[] = []): ApiError {
  return new ApiError(429, "TooManyRequests", message, {
    ...(causes.length ? { causes } : {}),
    ...(retryAfterSeconds > 0 ? { retryAfterSeconds } : {}),
  });
}

export function internalError(message: string): ApiError {
  return new ApiError(500, "InternalError", `Internal error occurred: ${message}`, { causes: [{ message }] });
}
