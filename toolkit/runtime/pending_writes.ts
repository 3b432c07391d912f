/**
 * Writes a controller sent that its cache may not show yet. A reconcile that runs again before
 * the cache caught up would otherwise send the same write again (a status patch, a finalizer
 * removal). Each entry is keyed by the object's UID and remembers what was written and the
 * resourceVersion the write was based on: while the cache still shows that version, the write
 * counts as sent.
 *
 * @module
 */

import type { KubeObject } from "../client/resource.ts";

/** Remembers the last write per object until the cache moves past the version it was based on. */
export class PendingWrites {
  readonly #last = new Map<string, { basedOn: string; what: string }>();

  /** Records that `what` was written, based on the version of `object` the reconcile saw. */
  sent(object: KubeObject, what: string): void {
    const uid = object.metadata?.uid;
    if (uid) this.#last.set(uid, { basedOn: object.metadata?.resourceVersion ?? "", what });
  }

  /** Whether `what` was the last write and the cache still shows the version it was based on. */
  alreadySent(object: KubeObject, what: string): boolean {
    const last = this.#last.get(object.metadata?.uid ?? "");
    return last !== undefined && last.basedOn === object.metadata?.resourceVersion && last.what === what;
  }

  /** Forgets the object (it is gone). */
  forget(uid: string | undefined): void {
    if (uid) this.#last.delete(uid);
  }

  /** Number of objects remembered. */
  get size(): number {
    return this.#last.size;
  }
}
