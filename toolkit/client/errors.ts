/**
 * Errors of the Kubernetes client: {@linkcode ApiError} carries the API server's `metav1.Status`.
 *
 * @module
 */

/** The `metav1.Status` object the API server returns for failures. */
export interface Status {
  apiVersion?: string;
  kind?: "Status";
  status?: "Success" | "Failure";
  message?: string;
  reason?: string;
  code?: number;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    uid?: string;
    retryAfterSeconds?: number;
    causes?: { reason?: string; message?: string; field?: string }[];
  };
  metadata?: Record<string, unknown>;
}

/** A failed API request: HTTP status code, `metav1.Status` reason, message and details. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  /** HTTP status code (e.g. 404). */
  readonly code: number;
  /** `metav1.Status` reason, e.g. `NotFound`, `Conflict`, `AlreadyExists`, `Expired`. */
  readonly reason: string;
  readonly status: Status;
  /** The request, e.g. `GET /api/v1/namespaces/x/pods/y`. */
  readonly request: string;

  constructor(code: number, status: Status, request: string) {
    const reason = status.reason ?? reasonForCode(code);
    super(`${request}: ${code} ${reason}: ${status.message ?? "(no message)"}`);
    this.code = code;
    this.reason = reason;
    this.status = status;
    this.request = request;
  }

  /** Field-level causes (e.g. from validation), as `field: message` strings. */
  get causes(): string[] {
    return (this.status.details?.causes ?? []).map((c) =>
      `${c.field ?? ""}${c.field ? ": " : ""}${c.message ?? c.reason ?? ""}`
    );
  }
}

function reasonForCode(code: number): string {
  switch (code) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 409:
      return "Conflict";
    case 410:
      return "Expired";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return code >= 500 ? "InternalError" : "Unknown";
  }
}

function apiError(err: unknown): ApiError | undefined {
  return err instanceof ApiError ? err : undefined;
}

/** Whether `err` is a 404 Not Found. */
export function isNotFound(err: unknown): boolean {
  return apiError(err)?.code === 404;
}

/**
 * For `.catch(ignoreNotFound)`: a NotFound error becomes `undefined` (the object is gone, which is
 * what a delete or a lookup may expect); any other error is thrown again.
 */
export function ignoreNotFound(err: unknown): undefined {
  if (isNotFound(err)) return undefined;
  throw err;
}

/** Whether `err` is a 409 Conflict other than AlreadyExists (a stale resourceVersion, an apply conflict). */
export function isConflict(err: unknown): boolean {
  const e = apiError(err);
  return e?.code === 409 && e.reason !== "AlreadyExists";
}

/** Whether `err` is a 409 AlreadyExists. */
export function isAlreadyExists(err: unknown): boolean {
  const e = apiError(err);
  return e?.code === 409 && e.reason === "AlreadyExists";
}

/** Whether `err` is a 410 Gone / `Expired` (a resourceVersion too old to watch from). */
export function isGone(err: unknown): boolean {
  const e = apiError(err);
  return e?.code === 410 || e?.reason === "Expired" || e?.reason === "Gone";
}

/** Whether `err` is a 403 Forbidden. */
export function isForbidden(err: unknown): boolean {
  return apiError(err)?.code === 403;
}

/** Whether `err` is a 401 Unauthorized. */
export function isUnauthorized(err: unknown): boolean {
  return apiError(err)?.code === 401;
}

/** Whether `err` is a 422 Invalid (validation failure). */
export function isInvalid(err: unknown): boolean {
  return apiError(err)?.code === 422;
}

/** Whether `err` is a 429 or a 5xx: worth retrying later. */
export function isTransient(err: unknown): boolean {
  const e = apiError(err);
  if (!e) return !(err instanceof TerminalError);
  return e.code === 429 || e.code >= 500;
}

/**
 * Marks a reconcile error as terminal: the controller does not retry the key until the object
 * changes again.
 */
export class TerminalError extends Error {
  override readonly name = "TerminalError";
}
