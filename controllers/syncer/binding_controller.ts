/**
 * The syncer's side of the ClusterBinding lifecycle: it adds its own finalizer, and when the
 * binding is deleted it removes everything it created — virtual nodes with their Leases and
 * CSINodes, twins and mirrored objects (through the cleanup hooks of the other parts) — before
 * removing the finalizer, so that the manager knows it may finish.
 *
 * @module
 */

import type { ClusterBinding } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { ignoreNotFound } from "../../toolkit/client/errors.ts";
import { Action, type Controller } from "../../toolkit/runtime/controller.ts";
import { addFinalizer, hasFinalizer, removeFinalizer } from "../../toolkit/runtime/finalizer.ts";
import { FINALIZER_SYNCER, LABEL_CLUSTER_BINDING } from "../common/names.ts";
import type { SyncerContext } from "./context.ts";

/** A cleanup step run when the binding is deleted; resolves to true once nothing is left. */
export type CleanupHook = () => Promise<boolean>;

/** Builds the binding controller with the cleanup hooks of the other syncer parts. */
export function bindingController(ctx: SyncerContext, hooks: CleanupHook[]): Controller<ClusterBinding> {
  const name = ctx.config.bindingName;
  return ctx.manager.controller(ctx.bindings, {
    name: `binding/${name}`,
    fieldSelector: `metadata.name=${name}`,
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
      if (!await hook()) return Action.requeueAfter(1_000);
    }
    if (!await removeVirtualNodes(ctx)) return Action.requeueAfter(1_000);
    await removeFinalizer(ctx.bindings, binding, FINALIZER_SYNCER);
    ctx.log.info("binding cleaned up; syncer finalizer removed");
    return Action.done();
  });
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
