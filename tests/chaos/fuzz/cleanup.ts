/**
 * Removing fuzzed objects: deleted as a user would, and reported when they stay (Terminating on a
 * finalizer nobody removes); as a last resort between scenarios, forced out.
 *
 * @module
 */

import { SecretResource } from "../../../apis/core/v1/resources.ts";
import {
  ClusterBindingResource,
  ResourceLeasingPolicyResource,
} from "../../../apis/kubeocean.io/v1beta1/resources.ts";
import { SYSTEM_NAMESPACE } from "../../../controllers/common/names.ts";
import type { KubeClient } from "../../../toolkit/client/client.ts";
import { isNotFound } from "../../../toolkit/client/errors.ts";
import { sleep } from "../../../toolkit/util/mod.ts";
import { FUZZ_LABEL } from "./cases.ts";
import type { CreatedRef } from "./judge.ts";

/** Both clusters. */
export interface CleanupTarget {
  computing: KubeClient;
  worker: KubeClient;
}

function resourceOf(target: CleanupTarget, ref: CreatedRef) {
  const client = ref.side === "computing" ? target.computing : target.worker;
  return client.resource(ref.descriptor, ref.namespace);
}

/**
 * Deletes `refs` and waits (at most `timeoutMs`) until they are gone; returns a description of
 * each that stayed, with its finalizers.
 */
export async function removeCreated(
  target: CleanupTarget,
  refs: readonly CreatedRef[],
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<string[]> {
  for (const ref of refs) {
    await resourceOf(target, ref).delete(ref.name).catch(() => {});
  }
  const deadline = Date.now() + options.timeoutMs;
  let left = [...refs];
  while (left.length > 0) {
    const still: CreatedRef[] = [];
    for (const ref of left) {
      try {
        await resourceOf(target, ref).get(ref.name);
        still.push(ref);
      } catch (err) {
        if (!isNotFound(err)) still.push(ref);
      }
    }
    left = still;
    if (left.length === 0 || Date.now() > deadline) break;
    await sleep(1_000, options.signal);
  }
  return await Promise.all(left.map(async (ref) => {
    const object = await resourceOf(target, ref).get(ref.name).catch(() => undefined);
    const finalizers = object?.metadata?.finalizers?.join(", ") || "none";
    const state = object?.metadata?.deletionTimestamp ? "stays Terminating" : "was not deleted";
    return `${ref.descriptor.kind} ${ref.name} ${state} (finalizers: ${finalizers})`;
  }));
}

/**
 * Finds every object labelled as fuzzed and removes it; with `force`, finalizers of what does not
 * go within 30 s are dropped. Returns how many were found.
 */
export async function removeFuzzObjects(target: CleanupTarget, options: { force: boolean }): Promise<number> {
  const kinds: CreatedRef[] = [];
  const found = async (
    side: "computing" | "worker",
    descriptor: typeof SecretResource,
    namespace?: string,
  ) => {
    const client = side === "computing" ? target.computing : target.worker;
    const list = await client.resource(descriptor, namespace).list({ labelSelector: FUZZ_LABEL }).catch(() =>
      undefined
    );
    for (const item of list?.items ?? []) {
      kinds.push({ side, descriptor, namespace, name: item.metadata!.name! });
    }
  };
  await found("computing", ClusterBindingResource);
  await found("computing", SecretResource, SYSTEM_NAMESPACE);
  await found("worker", ResourceLeasingPolicyResource);
  if (kinds.length === 0) return 0;
  const stayed = await removeCreated(target, kinds, { timeoutMs: 30_000 });
  if (options.force && stayed.length > 0) {
    for (const ref of kinds) {
      await resourceOf(target, ref).patch(ref.name, { metadata: { finalizers: null } }, { type: "merge" })
        .catch(
          () => {},
        );
    }
  }
  return kinds.length;
}
