/**
 * How the manager runs a binding's syncer: in-process (`--syncer-mode=embedded`) or as rendered
 * Deployments (`--syncer-mode=deployment`). The manager asks the runner to ensure a binding's
 * syncer with the current kubeconfig, reads back readiness, and removes it once the binding is gone.
 *
 * @module
 */

import type { ClusterBinding } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import type { ObjectRef } from "../../toolkit/client/resource.ts";
import type { RequiredCache } from "../../toolkit/runtime/controller.ts";

/** Readiness of a binding's syncer. */
export interface SyncerStatus {
  ready: boolean;
  reason: string;
  message: string;
  /** False when the syncer reports that the worker's API server does not answer it. */
  workerReachable?: boolean;
  /** When this status must be read again even if nothing changes (a heartbeat going stale). */
  recheckAt?: Date;
}

/** Runs one syncer per binding. */
export interface SyncerRunner {
  /** `embedded` or `deployment`. */
  readonly mode: string;
  /** Starts, restarts (kubeconfig or spec changed) or re-renders the binding's syncer. */
  ensure(binding: ClusterBinding, kubeconfig: string, kubeconfigHash: string): Promise<SyncerStatus>;
  /** Removes what `ensure` created; resolves to true once nothing is left. */
  remove(binding: ClusterBinding): Promise<boolean>;
  /**
   * Caches `ensure` reads: the manager reconciles only once they have listed, so that a restarted
   * manager does not report a running syncer as missing (a Ready binding flapping to Pending).
   */
  readonly caches: readonly RequiredCache[];
  /** Bindings whose syncer status changed (feeds the manager's work queue). */
  readonly changes: AsyncIterable<ObjectRef>;
  /** Stops every syncer (process shutdown). */
  stop(): Promise<void>;
}
