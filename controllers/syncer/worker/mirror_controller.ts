/**
 * Keeps the copies of labelled ConfigMaps or Secrets current while the binding's pods use them,
 * and releases them (copy deleted, label and finalizer removed from the original) once unused or
 * when the original is being deleted.
 *
 * @module
 */

import { Action, type Controller } from "../../../toolkit/runtime/controller.ts";
import type { SyncerContext } from "../context.ts";
import type { MirroredKind, MirroredObject, ObjectMirror } from "./mirror.ts";
import { mirroredName } from "./naming.ts";
import { type DependencyUsage, recordedDependencies } from "./usage.ts";

/** Builds the mirror controller of `kind`. */
export function mirrorController(
  ctx: SyncerContext,
  kind: MirroredKind,
  mirror: ObjectMirror,
  usage: DependencyUsage,
): Controller<MirroredObject> {
  return ctx.manager.controller(mirror.virtualClient(kind), {
    name: `${kind.toLowerCase()}s/${ctx.config.bindingName}`,
    labelSelector: mirror.originalsSelector,
  })
    // Reconciles read the binding: without it listed they would drop their keys.
    .requires(ctx.bindingInformer)
    // When twins change, their dependencies may have become unused.
    .watches(
      ctx.physical.core.pods(),
      (twin) =>
        recordedDependencies(twin).filter((k) => k.startsWith(`${kind}/`)).map((k) => {
          const [, namespace, name] = k.split("/");
          return { namespace, name };
        }),
    )
    .build(async (ref, rc) => {
      const binding = ctx.binding;
      if (!binding) return Action.done();
      const source = rc.object;
      const used = usage.isUsed(`${kind}/${ref.namespace}/${ref.name}`);
      const live = source !== undefined && !source.metadata?.deletionTimestamp;
      if (live && used && !binding.metadata?.deletionTimestamp) {
        await mirror.writeCopy(kind, source, await mirroredName(kind, ref.namespace!, ref.name));
        return Action.requeueAfter(ctx.config.resyncMs);
      }
      if (live && used) return Action.done();
      await mirror.release(kind, ref.namespace!, ref.name, source);
      return Action.done();
    });
}
