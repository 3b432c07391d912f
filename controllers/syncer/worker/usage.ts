/**
 * Which virtual objects the binding's pods still use, answered from cache indexes: a virtual
 * ConfigMap, Secret, ServiceAccount token or claim (`Kind/namespace/name`) is in use while a live
 * virtual pod on one of the binding's virtual nodes references it, or a twin of the binding that
 * still exists recorded it. A lookup costs the number of users, not the number of pods.
 *
 * @module
 */

import type { Pod } from "../../../apis/core/v1/mod.ts";
import type { Informer } from "../../../toolkit/runtime/informer.ts";
import {
  ANNOTATION_DEPENDENCIES,
  ANNOTATION_VIRTUAL_POD_NAME,
  ANNOTATION_VIRTUAL_POD_NAMESPACE,
  LABEL_CLUSTER_BINDING,
} from "../../common/names.ts";
import type { SyncerContext } from "../context.ts";
import { dependencyKeys } from "./references.ts";
import { physicalPodTransform, virtualPodTransform } from "../pod_slimming.ts";

/** Index of pods by the virtual objects they use: virtual pods by reference, twins by record. */
export const BY_DEPENDENCY = "byDependency";

/** Index of twins by their virtual pod's `namespace/name`. */
export const BY_VIRTUAL_POD = "byVirtualPod";

/** The keys a twin records in its dependencies annotation. */
export function recordedDependencies(twin: Pod): string[] {
  return (twin.metadata?.annotations?.[ANNOTATION_DEPENDENCIES] ?? "").split(",").filter(Boolean);
}

/** The `namespace/name` of a twin's virtual pod, from its annotations. */
export function virtualPodKeyOf(twin: Pod): string[] {
  const ns = twin.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_NAMESPACE];
  const name = twin.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_NAME];
  return ns && name ? [`${ns}/${name}`] : [];
}

/** The worker's pods with the twin indexes. */
export function twinInformer(ctx: SyncerContext): Informer<Pod> {
  return ctx.manager.cache(ctx.physical.core.pods(), {
    indexers: { [BY_DEPENDENCY]: recordedDependencies, [BY_VIRTUAL_POD]: virtualPodKeyOf },
    transform: physicalPodTransform,
  });
}

/** The computing cluster's pods with the dependency index. */
function referencingPodInformer(ctx: SyncerContext): Informer<Pod> {
  return ctx.manager.cache(ctx.virtual.core.pods(), {
    indexers: { [BY_DEPENDENCY]: dependencyKeys },
    transform: virtualPodTransform(ctx.config.clusterID),
  });
}

/** Answers whether a virtual object is still in use by the binding. */
export class DependencyUsage {
  readonly #twins: Informer<Pod>;
  readonly #virtualPods: Informer<Pod>;

  constructor(readonly ctx: SyncerContext) {
    this.#twins = twinInformer(ctx);
    this.#virtualPods = referencingPodInformer(ctx);
  }

  /** Whether `key` (`Kind/namespace/name`) is in use. */
  isUsed(key: string): boolean {
    const binding = this.ctx.config.bindingName;
    const twins = this.#twins.store.byIndex(BY_DEPENDENCY, key);
    if (twins.some((twin) => twin.metadata?.labels?.[LABEL_CLUSTER_BINDING] === binding)) return true;
    return this.#virtualPods.store.byIndex(BY_DEPENDENCY, key).some((pod) =>
      this.ctx.isOnOurNode(pod) && pod.status?.phase !== "Succeeded" && pod.status?.phase !== "Failed" &&
      !pod.metadata?.deletionTimestamp
    );
  }
}
