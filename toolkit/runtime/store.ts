/**
 * The store: an in-memory cache of one resource kept current by a {@linkcode reflector}. During a
 * re-list each listed object's new version is visible as it arrives (the controllers its event
 * triggers read it, not the version it replaces); objects that vanished between two lists are
 * dropped when the list completes and come out as tombstones. Secondary indexes (namespace, label, owner, and custom ones) answer lookups
 * without scanning. Updates share unchanged parts with the version they replace.
 *
 * @module
 */

import { type KubeObject, objectKey, type ObjectRef } from "../client/resource.ts";
import type { WatcherEvent } from "./watcher.ts";

/** Maps an object to the index values it is found under. */
export type IndexFunc<T> = (object: T) => string[];

/** Events of a reflected stream: watcher events plus the previous version and tombstones. */
export type ReflectedEvent<T> =
  | { type: "Init" }
  | { type: "InitApply"; object: T; previous?: T }
  | { type: "InitDone"; resourceVersion: string }
  | { type: "Apply"; object: T; previous?: T }
  | { type: "Delete"; object: T; previous?: T; tombstone?: boolean }
  | { type: "Error"; error: Error; phase: "list" | "watch" };

/** Built-in index names. */
export const NAMESPACE_INDEX = "namespace";
/** Index by `key=value` label pairs. */
export const LABEL_INDEX = "label";
/** Index by owner UID. */
export const OWNER_INDEX = "owner";

const BUILTIN_INDEXERS: Record<string, IndexFunc<KubeObject>> = {
  [NAMESPACE_INDEX]: (o) => [o.metadata?.namespace ?? ""],
  [LABEL_INDEX]: (o) => Object.entries(o.metadata?.labels ?? {}).map(([k, v]) => `${k}=${v}`),
  [OWNER_INDEX]: (o) => (o.metadata?.ownerReferences ?? []).map((r) => r.uid),
};

/** A read-only view of a store. */
export interface ReadStore<T> {
  get(key: string | ObjectRef): T | undefined;
  list(): T[];
  byIndex(index: string, value: string): T[];
  readonly size: number;
  readonly isReady: boolean;
  ready(signal?: AbortSignal): Promise<void>;
}

/**
 * A cache of objects keyed by `namespace/name`. Its objects are shared with every reader, and an
 * update reuses the unchanged parts of the previous version ({@linkcode shareUnchanged}), so a
 * stream of small changes (status updates, a label) keeps memory flat: treat them as read-only.
 */
export class Store<T extends KubeObject> implements ReadStore<T> {
  #objects = new Map<string, T>();
  #pending?: Map<string, T>;
  readonly #indexers: Map<string, IndexFunc<T>>;
  #indexes = new Map<string, Map<string, Set<string>>>();
  #isReady = false;
  #readyWaiters: (() => void)[] = [];

  constructor(indexers: Record<string, IndexFunc<T>> = {}) {
    this.#indexers = new Map(
      Object.entries({ ...BUILTIN_INDEXERS, ...indexers }) as [string, IndexFunc<T>][],
    );
    for (const name of this.#indexers.keys()) this.#indexes.set(name, new Map());
  }

  /** The object at `key` (`namespace/name` or `name`) or reference. */
  get(key: string | ObjectRef): T | undefined {
    return this.#objects.get(typeof key === "string" ? key : objectKey(key));
  }

  /** Every object. */
  list(): T[] {
    return [...this.#objects.values()];
  }

  /** Every key. */
  keys(): string[] {
    return [...this.#objects.keys()];
  }

  get size(): number {
    return this.#objects.size;
  }

  /** Objects whose index `index` contains `value` (e.g. `byIndex("label", "app=web")`). */
  byIndex(index: string, value: string): T[] {
    const keys = this.#indexes.get(index);
    if (!keys) throw new Error(`no index "${index}" (have ${[...this.#indexes.keys()].join(", ")})`);
    return [...keys.get(value) ?? []].map((k) => this.#objects.get(k)!).filter(Boolean);
  }

  /** Whether an index of that name exists. */
  hasIndex(name: string): boolean {
    return this.#indexers.has(name);
  }

  /** Adds (or replaces) an index after construction, indexing the current contents. */
  addIndex(name: string, fn: IndexFunc<T>): void {
    this.#indexers.set(name, fn);
    const index = new Map<string, Set<string>>();
    this.#indexes.set(name, index);
    for (const [key, object] of this.#objects) for (const value of fn(object)) addTo(index, value, key);
  }

  /** Whether the first list has completed. */
  get isReady(): boolean {
    return this.#isReady;
  }

  /** Resolves once the first list has completed. */
  ready(signal?: AbortSignal): Promise<void> {
    if (this.#isReady) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal?.reason ?? new Error("aborted"));
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#readyWaiters.push(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }

  /**
   * Applies one watcher event and returns what it changed: the previous version of the object, or
   * for `InitDone` the objects that vanished (tombstones).
   */
  apply(event: WatcherEvent<T>): { previous?: T; vanished?: T[] } {
    switch (event.type) {
      case "Init":
        this.#pending = new Map();
        return {};
      case "InitApply": {
        const key = objectKey(event.object);
        const previous = this.#objects.get(key);
        if (previous) shareUnchanged(event.object, previous);
        (this.#pending ??= new Map()).set(key, event.object);
        if (this.#isReady) {
          // A re-list of a store readers already use: each object's new version is visible at
          // once. A reconcile its event triggers must not read the version the re-list replaces
          // (nothing would trigger it again once the list completes).
          if (previous) this.#unindex(key, previous);
          this.#objects.set(key, event.object);
          this.#index(key, event.object);
        }
        return { previous };
      }
      case "InitDone": {
        const next = this.#pending ?? new Map();
        this.#pending = undefined;
        const vanished = [...this.#objects].filter(([key]) => !next.has(key)).map(([, o]) => o);
        this.#replace(next);
        this.#markReady();
        return { vanished };
      }
      case "Apply": {
        const key = objectKey(event.object);
        const previous = this.#objects.get(key);
        if (previous) {
          this.#unindex(key, previous);
          shareUnchanged(event.object, previous);
        }
        this.#objects.set(key, event.object);
        this.#index(key, event.object);
        return { previous };
      }
      case "Delete": {
        const key = objectKey(event.object);
        const previous = this.#objects.get(key);
        if (previous) this.#unindex(key, previous);
        this.#objects.delete(key);
        return { previous };
      }
      case "Error":
        return {};
    }
  }

  #replace(next: Map<string, T>): void {
    this.#objects = next;
    for (const [name, fn] of this.#indexers) {
      const index = new Map<string, Set<string>>();
      for (const [key, object] of next) for (const value of fn(object)) addTo(index, value, key);
      this.#indexes.set(name, index);
    }
  }

  #index(key: string, object: T): void {
    for (const [name, fn] of this.#indexers) {
      const index = this.#indexes.get(name)!;
      for (const value of fn(object)) addTo(index, value, key);
    }
  }

  #unindex(key: string, object: T): void {
    for (const [name, fn] of this.#indexers) {
      const index = this.#indexes.get(name)!;
      for (const value of fn(object)) {
        const keys = index.get(value);
        keys?.delete(key);
        if (keys?.size === 0) index.delete(value);
      }
    }
  }

  #markReady(): void {
    if (this.#isReady) return;
    this.#isReady = true;
    for (const resolve of this.#readyWaiters.splice(0)) resolve();
  }
}

function addTo(index: Map<string, Set<string>>, value: string, key: string): void {
  let keys = index.get(value);
  if (!keys) index.set(value, keys = new Set());
  keys.add(key);
}

/**
 * Applies every event of `stream` to `store` and passes it on, with the previous version of the
 * object attached; after a re-list, objects that vanished are emitted as `Delete` tombstones.
 */
export async function* reflector<T extends KubeObject>(
  store: Store<T>,
  stream: AsyncIterable<WatcherEvent<T>>,
): AsyncGenerator<ReflectedEvent<T>, void, undefined> {
  for await (const event of stream) {
    const { previous, vanished } = store.apply(event);
    switch (event.type) {
      case "InitApply":
      case "Apply":
      case "Delete":
        yield { ...event, previous };
        break;
      case "InitDone":
        yield event;
        for (const object of vanished ?? []) yield { type: "Delete", object, tombstone: true };
        break;
      default:
        yield event;
    }
  }
}

/**
 * Makes `next` reuse every part of `previous` that is deep-equal to its own (in place), so that an
 * update keeps only what changed: the unchanged parts of the new version become garbage at once
 * instead of replacing long-lived copies. Returns `previous` when the two are equal.
 */
export function shareUnchanged(next: unknown, previous: unknown): unknown {
  if (next === previous) return previous;
  if (typeof next !== "object" || next === null || typeof previous !== "object" || previous === null) {
    return next;
  }
  if (Array.isArray(next)) {
    if (!Array.isArray(previous)) return next;
    let same = next.length === previous.length;
    for (let i = 0; i < next.length; i++) {
      const value = i < previous.length ? shareUnchanged(next[i], previous[i]) : next[i];
      next[i] = value;
      if (value !== previous[i]) same = false;
    }
    return same ? previous : next;
  }
  if (Array.isArray(previous)) return next;
  const a = next as Record<string, unknown>;
  const b = previous as Record<string, unknown>;
  let same = true;
  let keys = 0;
  for (const key in a) {
    keys++;
    const value = key in b ? shareUnchanged(a[key], b[key]) : a[key];
    a[key] = value;
    if (value !== b[key] || !(key in b)) same = false;
  }
  if (!same) return next;
  for (const _ in b) keys--;
  return keys === 0 ? previous : next;
}
