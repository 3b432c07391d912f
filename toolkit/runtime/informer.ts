/**
 * Shared informers: one watch per resource (and selector) per cluster feeds one store and any
 * number of subscribers. {@linkcode InformerFactory} hands out the same informer to every
 * controller that asks for the same thing.
 *
 * @module
 */

import type { KubeObject } from "../client/resource.ts";
import type { ResourceClient } from "../client/resource_client.ts";
import type { Transport } from "../client/transport.ts";
import type { Backoff } from "./backoff.ts";
import { Channel } from "./channel.ts";
import { type IndexFunc, type ReflectedEvent, reflector, Store } from "./store.ts";
import { backoffWatcher, type WatcherEvent, type WatcherOptions } from "./watcher.ts";

/** Options of an {@linkcode Informer}. */
export interface InformerOptions extends Omit<WatcherOptions, "signal"> {
  indexers?: Record<string, IndexFunc<never>>;
  /**
   * Changes every object before it is cached, e.g. to drop fields the controller never reads.
   * Default: {@linkcode stripManagedFields}. Pass `(o) => o` to keep objects as received.
   */
  transform?: (object: KubeObject) => KubeObject;
  backoff?: Backoff;
  /** Called with every transient error (for logging). */
  onError?: (error: Error) => void;
}

/** A running list-watch of one resource feeding a {@linkcode Store} and subscribers. */
export class Informer<T extends KubeObject> {
  readonly store: Store<T>;
  readonly #subscribers = new Set<Channel<ReflectedEvent<T>>>();
  #controller?: AbortController;
  #loop?: Promise<void>;
  #lastError?: { error: Error; at: Date };
  #lastEventAt?: Date;

  constructor(readonly client: ResourceClient<T>, readonly options: InformerOptions = {}) {
    this.store = new Store<T>(options.indexers as Record<string, IndexFunc<T>> | undefined);
  }

  /** Starts the list-watch loop (idempotent). */
  start(): this {
    if (this.#controller) return this;
    this.#controller = new AbortController();
    const signal = this.#controller.signal;
    this.#loop = (async () => {
      const transform = (this.options.transform ?? stripManagedFields) as unknown as (object: T) => T;
      const watched = backoffWatcher(this.client, { ...this.options, signal }, this.options.backoff);
      const stream = reflector(this.store, transformed(watched, transform));
      for await (const event of stream) {
        this.#lastEventAt = new Date();
        if (event.type === "Error") {
          this.#lastError = { error: event.error, at: new Date() };
          this.options.onError?.(event.error);
        }
        for (const subscriber of this.#subscribers) subscriber.push(event);
      }
    })();
    return this;
  }

  /** Whether {@linkcode start} was called (the informer lists and watches from then on). */
  get started(): boolean {
    return this.#controller !== undefined;
  }

  /** Stops watching and ends every subscription. */
  async stop(): Promise<void> {
    this.#controller?.abort();
    await this.#loop?.catch(() => {});
    for (const subscriber of this.#subscribers) subscriber.close();
    this.#subscribers.clear();
  }

  /** Resolves once the first list has completed. */
  ready(signal?: AbortSignal): Promise<void> {
    return this.store.ready(signal);
  }

  /** The last transient error and when it happened (for health checks). */
  get lastError(): { error: Error; at: Date } | undefined {
    return this.#lastError;
  }

  /** When the last event (of any kind) arrived. */
  get lastEventAt(): Date | undefined {
    return this.#lastEventAt;
  }

  /**
   * Subscribes to events. A subscriber that joins after the first list gets the current state
   * first (`Init`, one `InitApply` per object, `InitDone`), so it never misses an object.
   * Iteration ends when `signal` aborts or the informer stops.
   */
  events(signal?: AbortSignal): AsyncIterable<ReflectedEvent<T>> {
    const channel = new Channel<ReflectedEvent<T>>();
    if (this.store.isReady) {
      channel.push({ type: "Init" });
      for (const object of this.store.list()) channel.push({ type: "InitApply", object });
      channel.push({ type: "InitDone", resourceVersion: "" });
    }
    this.#subscribers.add(channel);
    signal?.addEventListener("abort", () => {
      this.#subscribers.delete(channel);
      channel.close();
    }, { once: true });
    this.start();
    return channel;
  }
}

/**
 * Drops `metadata.managedFields` (server-side apply bookkeeping, often the largest part of small
 * objects). Writes are unaffected: the server keeps them. The default informer transform.
 */
export function stripManagedFields<T extends KubeObject>(object: T): T {
  const meta = object.metadata as (T["metadata"] & { managedFields?: unknown }) | undefined;
  if (meta?.managedFields !== undefined) delete meta.managedFields;
  return object;
}

async function* transformed<T extends KubeObject>(
  stream: AsyncIterable<WatcherEvent<T>>,
  transform: (object: T) => T,
): AsyncGenerator<WatcherEvent<T>, void, undefined> {
  for await (const event of stream) {
    if (event.type === "InitApply" || event.type === "Apply" || event.type === "Delete") {
      yield { ...event, object: transform(event.object) };
    } else {
      yield event;
    }
  }
}

/** Identifies a shareable informer. */
function informerKey(client: ResourceClient<KubeObject>, options: InformerOptions): string {
  const d = client.descriptor;
  return JSON.stringify([
    d.group,
    d.version,
    d.plural,
    client.boundNamespace ?? "",
    options.labelSelector ?? "",
    options.fieldSelector ?? "",
  ]);
}

/** Options of an {@linkcode InformerFactory}. */
export interface InformerFactoryOptions {
  /**
   * Called with every transient error of every informer the factory hands out (for logging).
   * Informers are shared, so whoever asks first cannot be the one who reports their errors.
   */
  onError?: (error: Error, informer: Informer<KubeObject>) => void;
}

/** Hands out one shared {@linkcode Informer} per (resource, namespace, selectors) of one transport. */
export class InformerFactory {
  readonly #informers = new Map<string, Informer<KubeObject>>();

  constructor(readonly transport: Transport, readonly options: InformerFactoryOptions = {}) {}

  /**
   * The shared informer for `client` (whose transport must be this factory's). `indexers` are
   * added to an existing informer's store by name: an index already there is kept as it is.
   */
  for<T extends KubeObject>(client: ResourceClient<T>, options: InformerOptions = {}): Informer<T> {
    if (client.transport !== this.transport) {
      throw new Error("the resource client belongs to another cluster");
    }
    const key = informerKey(client as unknown as ResourceClient<KubeObject>, options);
    let informer = this.#informers.get(key);
    if (!informer) {
      const report = this.options.onError;
      const created: Informer<KubeObject> = new Informer(client as unknown as ResourceClient<KubeObject>, {
        ...options,
        onError: report || options.onError
          ? (error) => {
            options.onError?.(error);
            report?.(error, created);
          }
          : undefined,
      });
      informer = created;
      this.#informers.set(key, informer);
    } else if (options.indexers) {
      // Indexes are known by name: asking again (every call of a getter) adds only new ones,
      // instead of re-indexing every cached object each time.
      for (const [name, fn] of Object.entries(options.indexers)) {
        if (!informer.store.hasIndex(name)) informer.store.addIndex(name, fn as IndexFunc<KubeObject>);
      }
    }
    return informer as unknown as Informer<T>;
  }

  /** Every informer handed out so far. */
  get informers(): Informer<KubeObject>[] {
    return [...this.#informers.values()];
  }

  /** Whether every started informer has listed once. */
  get allReady(): boolean {
    return this.informers.every((i) => i.store.isReady);
  }

  /** Stops every informer. */
  async stop(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.stop()));
    this.#informers.clear();
  }
}
