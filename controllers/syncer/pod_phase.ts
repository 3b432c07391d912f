/**
 * Pod phases both halves of the syncer reason about.
 *
 * @module
 */

import type { PodStatus } from "../../apis/core/v1/mod.ts";

/** Whether the pod reached a terminal phase (which never regresses). */
export function isTerminal(status: PodStatus | undefined): boolean {
  return status?.phase === "Succeeded" || status?.phase === "Failed";
}
