/**
 * The syncer's side of the ClusterBinding lifecycle: it adds its own finalizer, and when the
 * binding is deleted it removes everything it created — virtual nodes with their Leases and
 * CSINodes, twins and mirrored objects (through the cleanup hooks of the other parts) — before
 * removing the finalizer, so that the manager knows it may finish. (The node controller cordons
 * the virtual nodes as soon as the deletion starts.)
 *
 * Deletion always completes: when the worker has not let the cleanup finish within
 * `spec.cleanupTimeoutSeconds` of the deletion (default {@linkcode DEFAULT_CLEANUP_TIMEOUT_SECONDS};
 * a destroyed or unreachable worker, revoked credentials), the computing cluster is released
 * without it — finalizers off virtual pods, ConfigMaps and Secrets, virtual nodes deleted — and a
 * Warning Event on the binding lists what may be left in the worker.
 *
 * @module
 */

import type { ClusterBinding } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { ignoreNotFound } from "../../toolkit/client/errors.ts";
import { Action, type Controller } from "../../toolkit/runtime/controller.ts";
import { addFinalizer, hasFinalizer, removeFinalizer } from "../../toolkit/runtime/finalizer.ts";
import { FINALIZER_SYNCER, LABEL_CLUSTER_BINDING } from "../common/names.ts";
import { describeLeftovers, releaseComputingSide } from "./computing_release.ts";
import type { SyncerContext } from "./context.ts";

/** A cleanup step run when the binding is deleted; resolves to true once nothing is left. */
export type CleanupHook = () => Promise<boolean>;

/** How long a binding's deletion waits for the worker by default (`spec.cleanupTimeoutSeconds`). */
export const DEFAULT_CLEANUP_TIMEOUT_SECONDS = 120;

/** Builds the binding controller with the cleanup hooks of the other syncer parts. */
export function bindingController(ctx: SyncerContext, hooks: CleanupHook[]): Controller<ClusterBinding> {
  const name = ctx.config.bindingName;
  return ctx.manager.controller(ctx.bindings, {
    name: `binding/${name}`,
    fieldSelector: `metadata.name=${name}`,
  }).requires(ctx.virtualPodInformer, ctx.virtualNodeInformer).build(async (_ref, rc) => {
    const binding = rc.object;
    if (!binding) return Action.done();
    if (!binding.metadata?.deletionTimestamp) {
      if (!hasFinalizer(binding, FINALIZER_SYNCER)) {
        await addFinalizer(ctx.bindings, binding, FINALIZER_SYNCER);
      }
      return Action.done();
    }
    if (!hasFinalizer(binding, FINALIZER_SYNCER)) return Action.done();
    const timeoutSeconds = binding.spec?.cleanupTimeoutSeconds ?? DEFAULT_CLEANUP_TIMEOUT_SECONDS;
    const deadline = Date.parse(binding.metadata.deletionTimestamp) + timeoutSeconds * 1000;
    // Real time, like the server's deletionTimestamp (a test clock may have moved).
    const remainingMs = deadline - Date.now();
    if (remainingMs > 0) {
      // A silent worker can hold a request for long: never past the deadline.
      const cleaned = await withinMs(remainingMs, async () => {
        for (const hook of hooks) {
          if (!await hook()) return false;
        }
        return await removeVirtualNodes(ctx);
      }).catch((err) => {
        ctx.log.warn("binding cleanup failed; retrying", { error: err });
        return false;
      });
      if (!cleaned) return Action.requeueAfter(Math.max(0, Math.min(2_000, remainingMs)));
    } else {
      const left = await releaseComputingSide(ctx);
      if (left.pending > 0 || !await removeVirtualNodes(ctx)) return Action.requeueAfter(1_000);
      const note = `the worker did not let the syncer clean up within ${timeoutSeconds} s ` +
        `(spec.cleanupTimeoutSeconds); the computing cluster was released without it: ` +
        describeLeftovers(left, binding.spec!.mountNamespace);
      ctx.log.warn("binding released without the worker", { note });
      await ctx.recorder.publish({
        regarding: binding,
        type: "Warning",
        reason: "ReleasedWithoutWorker",
        action: "Delete",
        note,
      });
    }
    await removeFinalizer(ctx.bindings, binding, FINALIZER_SYNCER);
    ctx.log.info("binding cleaned up; syncer finalizer removed");
    return Action.done();
  });
}

/** Runs `work`, resolving to false if it has not finished within `ms` (it is left to finish). */
async function withinMs(ms: number, work: () => Promise<boolean>): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([work(), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Deletes every virtual node of the binding with its Lease and CSINode; true once none is left. */
async function removeVirtualNodes(ctx: SyncerContext): Promise<boolean> {
  const selector = `${LABEL_CLUSTER_BINDING}=${ctx.config.bindingName}`;
  const nodes = ctx.virtual.core.nodes();
  for (const node of (await nodes.list({ labelSelector: selector })).items) {
    const vname = node.metadata!.name!;
    await ctx.virtual.coordination.leases("kube-node-lease").delete(vname).catch(ignoreNotFound);
    await ctx.virtual.storage.csinodes().delete(vname).catch(ignoreNotFound);
    await nodes.delete(vname).catch(ignoreNotFound);
  }
  return (await nodes.list({ labelSelector: selector })).items.length === 0;
}
