/**
 * The finalizer pattern: make sure an object carries a finalizer while it lives, run cleanup when
 * it is being deleted, then remove the finalizer. Patches are guarded by the object's
 * resourceVersion (JSON patch `test`), so a stale view never drops someone else's change.
 *
 * @module
 */

import type { KubeObject } from "../client/resource.ts";
import type { JsonPatchOperation, ResourceClient } from "../client/resource_client.ts";
import type { Action } from "./controller.ts";

/** What to do while the object lives, and before it goes. */
export interface FinalizerHandlers<T> {
  /** Converge the live object (the finalizer is already in place). */
  apply(object: T): Promise<Action | void>;
  /** Release what the object owns outside Kubernetes' garbage collection; the finalizer is removed afterwards. */
  cleanup(object: T): Promise<Action | void>;
}

/** Whether `object` carries `finalizer`. */
export function hasFinalizer(object: KubeObject, finalizer: string): boolean {
  return object.metadata?.finalizers?.includes(finalizer) ?? false;
}

/** Adds `finalizer` to the object (guarded by its resourceVersion); returns the updated object. */
export async function addFinalizer<T extends KubeObject>(
  client: ResourceClient<T>,
  object: T,
  finalizer: string,
): Promise<T> {
  if (hasFinalizer(object, finalizer)) return object;
  const meta = object.metadata ?? {};
  const ops: JsonPatchOperation[] = [{
    op: "test",
    path: "/metadata/resourceVersion",
    value: meta.resourceVersion,
  }];
  ops.push(
    meta.finalizers
      ? { op: "add", path: "/metadata/finalizers/-", value: finalizer }
      : { op: "add", path: "/metadata/finalizers", value: [finalizer] },
  );
  return await client.namespaceOf(object).patch(meta.name!, ops, { type: "json" });
}

/** Removes `finalizer` from the object (guarded by its position and value); returns the updated object. */
export async function removeFinalizer<T extends KubeObject>(
  client: ResourceClient<T>,
  object: T,
  finalizer: string,
): Promise<T> {
  const index = object.metadata?.finalizers?.indexOf(finalizer) ?? -1;
  if (index < 0) return object;
  return await client.namespaceOf(object).patch(object.metadata!.name!, [
    { op: "test", path: `/metadata/finalizers/${index}`, value: finalizer },
    { op: "remove", path: `/metadata/finalizers/${index}` },
  ], { type: "json" });
}

/**
 * Runs `handlers.apply` for a live object (adding the finalizer first) or `handlers.cleanup` for
 * one being deleted (removing the finalizer after it succeeds). Errors propagate to the
 * controller's error policy, so a failed cleanup keeps the finalizer and is retried.
 */
export async function withFinalizer<T extends KubeObject>(
  client: ResourceClient<T>,
  object: T,
  finalizer: string,
  handlers: FinalizerHandlers<T>,
): Promise<Action | void> {
  if (object.metadata?.deletionTimestamp) {
    if (!hasFinalizer(object, finalizer)) return;
    const action = await handlers.cleanup(object);
    if (action?.requeueAfterMs !== undefined) return action; // cleanup not finished yet
    await removeFinalizer(client, object, finalizer);
    return;
  }
  const current = await addFinalizer(client, object, finalizer);
  return await handlers.apply(current);
}
