/**
 * From an error to the HTTP status and plain message a kubelet API client gets.
 *
 * @module
 */

import { ApiError } from "../../toolkit/client/errors.ts";
import { TwinUnavailableError } from "../syncer/provider.ts";
import { KubeletApiError } from "./auth.ts";

/**
 * The status and message of an error: a {@linkcode KubeletApiError} as it is; a twin that is gone
 * (or not the pod's) 404; the worker's own 400/404/409 answers passed on (e.g. a container that is
 * not running); the worker refusing Kubeocean's credentials or failing 502; anything else 500.
 */
export function failure(err: unknown): { status: number; message: string } {
  if (err instanceof KubeletApiError) return { status: err.status, message: err.message };
  if (err instanceof TwinUnavailableError) return { status: 404, message: err.message };
  if (err instanceof ApiError) {
    const message = err.status.message ?? err.reason;
    if ([400, 404, 409, 410, 422].includes(err.code)) return { status: err.code, message };
    return { status: 502, message: `the worker cluster answered ${err.code} ${err.reason}: ${message}` };
  }
  if (
    err instanceof TypeError || (err instanceof Error && /connect|ECONNREFUSED|network/i.test(err.message))
  ) {
    return { status: 502, message: `the worker cluster is unreachable: ${err.message}` };
  }
  return { status: 500, message: `internal error: ${(err as Error)?.message ?? err}` };
}
