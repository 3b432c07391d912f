/**
 * The syncer's side of the ClusterBinding lifecycle: it adds its own finalizer, and when the
 * binding is deleted it removes everything it created — virtual nodes with their Leases and
 * CSINodes, worker twins and mirrored objects (through the cleanup hooks of the other
 * controllers) — before removing the finalizer, so that the manager knows it may finish.
 *
 * @module
 */

import type { ClusterBinding } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { isNotFound } from "../../toolkit/client/errors.ts";
import { Action, type Controller, ControllerBuilder } from "../../toolkit/runtime/controller.ts";
import { addFinalizer, hasFinalizer, removeFinalizer } from "../../toolkit/runtime/finalizer.ts";
import { FINALIZER_SYNCER, LABEL_CLUSTER_BINDING } from "../common/names.ts";
import type { SyncerContext } from "./context.ts";

/** A cleanup step run when the binding is deleted; resolves to true once nothing is left. */
export type CleanupHook = (binding: ClusterBinding) => Promise<boolean>;

/** Builds the binding controller with the cleanup hooks of the other syncer controllers. */
export function bindingController(ctx: SyncerContext, hooks: CleanupHook[]): Controller<ClusterBinding> {
  const name = ctx.config.bindingName;
  return new ControllerBuilder(ctx.bindings, {
    name: `binding/${name}`,
    logger: ctx.log,
    metrics: ctx.runtimeMetrics,
    fieldSelector: `metadata.name=${name}`,
    informers: (t) => ctx.informersFor(t),
  }).build(async (_ref, rc) => {
    const binding = rc.object;
    if (!binding) return Action.done();
    if (!binding.metadata?.deletionTimestamp) {
      if (!hasFinalizer(binding, FINALIZER_SYNCER)) {
        await addFinalizer(ctx.bindings, binding, FINALIZER_SYNCER);
      }
      return Action.done();
    }
    if (!hasFinalizer(binding, FINALIZER_SYNCER)) return Action.done();
    for (const hook of hooks) {
      if (!await hook(binding)) return Action.requeueAfter(1_000);
    }
    if (!await removeVirtualNodes()) return Action.requeueAfter(1_000);
    await removeFinalizer(ctx.bindings, binding, FINALIZER_SYNCER);
    ctx.log.info("binding cleaned up; syncer finalizer removed");
    return Action.done();
  });

  /** Deletes every virtual node of the binding with its Lease and CSINode. */
  async function removeVirtualNodes(): Promise<boolean> {
    const nodes = await ctx.virtualNodes.list({ labelSelector: `${LABEL_CLUSTER_BINDING}=${name}` });
    for (const node of nodes.items) {
      const vname = node.metadata!.name!;
      for (
        const op of [
          () => ctx.virtualCoordination.leases("kube-node-lease").delete(vname),
          () => ctx.virtualStorage.csinodes().delete(vname),
          () => ctx.virtualNodes.delete(vname),
        ]
      ) {
        try {
          await op();
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
    }
    return (await ctx.virtualNodes.list({ labelSelector: `${LABEL_CLUSTER_BINDING}=${name}` })).items
      .length === 0;
  }
}
