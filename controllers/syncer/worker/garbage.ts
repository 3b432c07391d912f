/**
 * What the worker provider created besides twins, collected when nobody uses it (the drift audit)
 * and removed when the binding goes. Only objects carrying Kubeocean's labels for this binding
 * are ever touched.
 *
 * @module
 */

import type { ConfigMap, Pod, Secret } from "../../../apis/core/v1/mod.ts";
import { ignoreNotFound } from "../../../toolkit/client/errors.ts";
import {
  ANNOTATION_VIRTUAL_NAME,
  ANNOTATION_VIRTUAL_NAMESPACE,
  LABEL_CLUSTER_BINDING,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
} from "../../common/names.ts";
import type { SyncerContext } from "../context.ts";
import type { ClaimMirror } from "./claims.ts";
import type { MirroredKind, ObjectMirror } from "./mirror.ts";
import { LABEL_SA_TOKEN } from "./tokens.ts";
import type { DependencyUsage } from "./usage.ts";

/** How old an unused copy must be before the audit removes it (its twin may be on its way). */
const AUDIT_GRACE_MS = 60_000;

/** Collects and removes the binding's mirrored objects. */
export class WorkerGarbage {
  constructor(
    readonly ctx: SyncerContext,
    readonly objects: ObjectMirror,
    readonly claims: ClaimMirror,
    readonly usage: DependencyUsage,
  ) {}

  /** Objects of this binding carry these labels. */
  get selector(): string {
    return `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE},${LABEL_CLUSTER_BINDING}=${this.ctx.config.bindingName}`;
  }

  /** Removes mirrored ConfigMaps, Secrets and claims no twin uses any more; returns how many. */
  async collect(): Promise<number> {
    let removed = 0;
    const orphan = () => {
      this.ctx.metrics.orphans.inc({ cluster_binding: this.ctx.config.bindingName, side: "worker" });
      removed++;
    };
    for (const kind of ["ConfigMap", "Secret"] as const) {
      for (const copy of await this.#copies(kind)) {
        if (copy.metadata?.labels?.[LABEL_SA_TOKEN]) continue; // the token controller owns these
        const original = originalOf(copy);
        if (!original || this.usage.isUsed(`${kind}/${original.namespace}/${original.name}`)) continue;
        if (this.#young(copy.metadata?.creationTimestamp)) continue;
        await this.objects.release(kind, original.namespace, original.name);
        orphan();
      }
    }
    const claims = this.ctx.physical.core.persistentvolumeclaims(this.ctx.config.mountNamespace);
    for (const copy of (await claims.list({ labelSelector: this.selector })).items) {
      const original = originalOf(copy);
      if (!original || this.usage.isUsed(`PersistentVolumeClaim/${original.namespace}/${original.name}`)) {
        continue;
      }
      if (this.#young(copy.metadata?.creationTimestamp)) continue;
      await this.claims.release(copy);
      orphan();
    }
    return removed;
  }

  /**
   * The binding is being deleted: deletes every twin, mirrored object, claim and volume copy of
   * the binding (releasing the originals); true once no twin is left.
   */
  async removeAll(): Promise<boolean> {
    const { physical, config } = this.ctx;
    const pods = physical.core.pods(config.mountNamespace);
    for (const twin of (await pods.list({ labelSelector: this.selector })).items) {
      await pods.delete(twin.metadata!.name!, { gracePeriodSeconds: 0 }).catch(ignoreNotFound);
    }
    for (const kind of ["ConfigMap", "Secret"] as const) {
      for (const copy of await this.#copies(kind)) {
        const original = originalOf(copy);
        if (original && !copy.metadata?.labels?.[LABEL_SA_TOKEN]) {
          await this.objects.release(kind, original.namespace, original.name);
        } else {
          await this.objects.physicalClient(kind).delete(copy.metadata!.name!).catch(ignoreNotFound);
        }
      }
    }
    // Claim copies, then the volume copies this binding created (Retain: storage untouched).
    const claims = physical.core.persistentvolumeclaims(config.mountNamespace);
    for (const copy of (await claims.list({ labelSelector: this.selector })).items) {
      await this.claims.release(copy);
    }
    const volumes = physical.core.persistentvolumes();
    for (const volume of (await volumes.list({ labelSelector: this.selector })).items) {
      await volumes.delete(volume.metadata!.name!).catch(ignoreNotFound);
    }
    return (await pods.list({ labelSelector: this.selector })).items.length === 0;
  }

  async #copies(kind: MirroredKind): Promise<(ConfigMap | Secret)[]> {
    return (await this.objects.physicalClient(kind).list({ labelSelector: this.selector })).items;
  }

  #young(creationTimestamp: string | undefined): boolean {
    return this.ctx.clock.now().getTime() - Date.parse(creationTimestamp ?? "") < AUDIT_GRACE_MS;
  }
}

/** The virtual original a copy was made from. */
function originalOf(
  copy: ConfigMap | Secret | Pod | { metadata?: { annotations?: Record<string, string> } },
) {
  const namespace = copy.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAMESPACE];
  const name = copy.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAME];
  return namespace && name ? { namespace, name } : undefined;
}
