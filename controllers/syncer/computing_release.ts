/**
 * The last resort of a binding's deletion: the worker did not let the syncer clean up in time
 * (destroyed, unreachable, credentials revoked), so the computing cluster is released without it.
 * Kubeocean's finalizers come off virtual pods and off the tenant ConfigMaps and Secrets mirrored
 * into the worker (so that nothing stays Terminating and their namespaces can be deleted), and the
 * caller deletes the virtual nodes. What may be left in the worker is returned, for an Event.
 *
 * @module
 */

import type { ConfigMap, Secret } from "../../apis/core/v1/mod.ts";
import { isConflict, isInvalid, isNotFound } from "../../toolkit/client/errors.ts";
import type { ResourceClient } from "../../toolkit/client/resource_client.ts";
import { removeFinalizer } from "../../toolkit/runtime/finalizer.ts";
import {
  ANNOTATION_PHYSICAL_POD_NAME,
  syncedByLabel,
  syncedFinalizer,
  twinFinalizer,
} from "../common/names.ts";
import type { SyncerContext } from "./context.ts";

/** What the worker may still hold after a release without it. */
export interface LeftInWorker {
  /** Twins (by worker pod name) the virtual pods recorded. */
  pods: string[];
  /** Mirrored tenant objects, as `Kind namespace/name` of their virtual originals. */
  objects: string[];
  /** Finalizers not removed this time (a write conflicted): run again. */
  pending: number;
}

/**
 * Removes this binding's finalizers from every virtual pod, ConfigMap and Secret of the computing
 * cluster, and says what the worker may still hold.
 */
export async function releaseComputingSide(ctx: SyncerContext): Promise<LeftInWorker> {
  const { clusterID } = ctx.config;
  const left: LeftInWorker = { pods: [], objects: [], pending: 0 };
  const podFinalizer = twinFinalizer(clusterID);
  for (const pod of ctx.virtualPodInformer.store.list()) {
    if (!pod.metadata?.finalizers?.includes(podFinalizer)) continue;
    const twin = pod.metadata.annotations?.[ANNOTATION_PHYSICAL_POD_NAME];
    if (twin) left.pods.push(twin);
    if (!await settled(removeFinalizer(ctx.virtual.core.pods(pod.metadata.namespace), pod, podFinalizer))) {
      left.pending++;
    }
  }
  const selector = syncedByLabel(clusterID);
  const finalizer = syncedFinalizer(clusterID);
  const kinds: [string, (namespace?: string) => ResourceClient<ConfigMap | Secret>][] = [
    ["ConfigMap", (namespace) => ctx.virtual.core.configmaps(namespace)],
    ["Secret", (namespace) => ctx.virtual.core.secrets(namespace)],
  ];
  for (const [kind, client] of kinds) {
    for (const object of (await client().list({ labelSelector: selector })).items) {
      left.objects.push(`${kind} ${object.metadata?.namespace}/${object.metadata?.name}`);
      if (!object.metadata?.finalizers?.includes(finalizer)) continue;
      if (!await settled(removeFinalizer(client(object.metadata.namespace), object, finalizer))) {
        left.pending++;
      }
    }
  }
  return left;
}

/** One line for an Event: what may be left, the first few by name. */
export function describeLeftovers(left: LeftInWorker, mountNamespace: string): string {
  const few = (items: string[]) => items.slice(0, 5).join(", ") + (items.length > 5 ? ", …" : "");
  const parts = [
    left.pods.length ? `${left.pods.length} pod(s) (${few(left.pods)})` : "",
    left.objects.length ? `copies of ${left.objects.length} object(s) (${few(left.objects)})` : "",
  ].filter(Boolean);
  return parts.length
    ? `may be left in namespace ${mountNamespace} of the worker: ${parts.join("; ")}; ` +
      `deleting that namespace there removes them`
    : `nothing of this binding is known to be left in the worker's namespace ${mountNamespace}`;
}

/**
 * Whether a finalizer removal is done (written, or the object is gone); false when the object
 * changed meanwhile (a conflict, or the patch's guard no longer holding: 422).
 */
async function settled(write: Promise<unknown>): Promise<boolean> {
  try {
    await write;
    return true;
  } catch (err) {
    if (isNotFound(err)) return true;
    if (isConflict(err) || isInvalid(err)) return false;
    throw err;
  }
}
