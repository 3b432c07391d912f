/**
 * Keeps the binding's copies of ConfigMaps or Secrets current while its pods use them, and
 * releases them (copy deleted, label and finalizer removed from the original) once unused or when
 * the original is being deleted.
 *
 * Keyed by copy (in the mount namespace, where the syncer may list and watch). A copy is looked at
 * when a twin that uses it changes, when its ConfigMap original changes (originals are watched), and
 * for Secrets every {@linkcode SECRET_POLL_MS}: their originals are read by name only.
 *
 * @module
 */

import { ignoreNotFound } from "../../../toolkit/client/errors.ts";
import type { ObjectRef } from "../../../toolkit/client/resource.ts";
import { Action, type Controller } from "../../../toolkit/runtime/controller.ts";
import type { ReadStore } from "../../../toolkit/runtime/store.ts";
import type { SyncerContext } from "../context.ts";
import {
  BY_ORIGINAL,
  type MirroredKind,
  type MirroredObject,
  ObjectMirror,
  originalKeyOf,
  SECRET_POLL_MS,
} from "./mirror.ts";
import { type DependencyUsage, recordedDependencies } from "./usage.ts";
import { physicalPodTransform } from "../pod_slimming.ts";

/** Builds the mirror controller of `kind`. */
export function mirrorController(
  ctx: SyncerContext,
  kind: MirroredKind,
  mirror: ObjectMirror,
  usage: DependencyUsage,
): Controller<MirroredObject> {
  const copiesOf = (key: string, copies: ReadStore<MirroredObject>): ObjectRef[] =>
    copies.byIndex(BY_ORIGINAL, key).map((c) => ({
      namespace: c.metadata!.namespace!,
      name: c.metadata!.name!,
    }));
  mirror.copies(kind); // the index, before the controller's own informer options are merged
  const builder = ctx.manager.controller(mirror.physicalClient(kind), {
    name: `${kind.toLowerCase()}s/${ctx.config.bindingName}`,
    labelSelector: mirror.copiesSelector(kind),
  })
    // Reconciles read the binding: without it listed they would drop their keys.
    .requires(ctx.bindingInformer)
    // When twins change, their dependencies may have become unused.
    .watches(
      ctx.physical.core.pods(),
      (twin, _event, copies) =>
        recordedDependencies(twin).filter((k) => k.startsWith(`${kind}/`)).flatMap((k) =>
          copiesOf(k, copies)
        ),
      { transform: physicalPodTransform },
    );
  if (kind === "ConfigMap") {
    // Edited or deleted originals (watched through their label).
    builder.watches(
      ctx.virtual.core.configmaps(),
      (original, _event, copies) =>
        copiesOf(`ConfigMap/${original.metadata!.namespace}/${original.metadata!.name}`, copies),
      { labelSelector: mirror.originalsSelector },
    );
  }
  return builder.build(async (_ref, rc) => {
    const binding = ctx.binding;
    const copy = rc.object;
    if (!binding || !copy) return Action.done();
    const key = originalKeyOf(kind, copy);
    if (!key) return Action.done(); // not a copy of ours (a token Secret has its own controller)
    const [, namespace, name] = key.split("/");
    const source = kind === "ConfigMap"
      ? mirror.configMapOriginals().get({ namespace, name })
      : await mirror.virtualClient(kind, namespace).get(name).catch(ignoreNotFound);
    const live = source !== undefined && !source.metadata?.deletionTimestamp;
    if (live && usage.isUsed(key) && !binding.metadata?.deletionTimestamp) {
      if (!ObjectMirror.holds(copy, source)) await mirror.writeCopy(kind, source, copy.metadata!.name!);
      return Action.requeueAfter(kind === "Secret" ? SECRET_POLL_MS : ctx.config.resyncMs);
    }
    await mirror.release(kind, namespace, name, source);
    return Action.done();
  });
}
