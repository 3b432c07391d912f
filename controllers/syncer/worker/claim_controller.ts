/**
 * Releases claim copies (and their volume copies) once no twin or live virtual pod of the binding
 * uses them; young copies get a grace period, since their twin may be on its way.
 *
 * @module
 */

import type { PersistentVolumeClaim } from "../../../apis/core/v1/mod.ts";
import { Action, type Controller } from "../../../toolkit/runtime/controller.ts";
import { ANNOTATION_VIRTUAL_NAME, ANNOTATION_VIRTUAL_NAMESPACE } from "../../common/names.ts";
import type { SyncerContext } from "../context.ts";
import type { ClaimMirror } from "./claims.ts";
import type { DependencyUsage } from "./usage.ts";
import { physicalPodTransform } from "../pod_slimming.ts";

/** How long a copy nobody uses yet is kept (its twin may be on its way). */
export const UNUSED_COPY_GRACE_MS = 30_000;

/** Builds the claim-copy controller. */
export function claimController(
  ctx: SyncerContext,
  claims: ClaimMirror,
  usage: DependencyUsage,
): Controller<PersistentVolumeClaim> {
  return ctx.manager.controller(ctx.physical.core.persistentvolumeclaims(ctx.config.mountNamespace), {
    name: `claims/${ctx.config.bindingName}`,
    labelSelector: claims.selector,
  })
    // Reconciles read the binding: without it listed they would drop their keys.
    .requires(ctx.bindingInformer)
    // A twin going away may leave a claim unused (claim copies are few: look at all of them).
    .watches(
      ctx.physical.core.pods(),
      (twin, _event, copies) =>
        (twin.spec?.volumes ?? []).some((v) => v.persistentVolumeClaim)
          ? copies.list().map((c) => ({ namespace: c.metadata!.namespace!, name: c.metadata!.name! }))
          : [],
      { transform: physicalPodTransform },
    )
    .build(async (_ref, rc) => {
      const copy = rc.object;
      if (!copy || copy.metadata?.deletionTimestamp || !ctx.binding) return Action.done();
      const ns = copy.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAMESPACE];
      const name = copy.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAME];
      if (!ns || !name || usage.isUsed(`PersistentVolumeClaim/${ns}/${name}`)) return Action.done();
      const age = ctx.clock.now().getTime() - Date.parse(copy.metadata?.creationTimestamp ?? "");
      if (age < UNUSED_COPY_GRACE_MS) return Action.requeueAfter(UNUSED_COPY_GRACE_MS - age);
      await claims.release(copy);
      return Action.done();
    });
}
