/**
 * The controller runtime: trigger streams (the primary resource, owned resources, other watched
 * resources through a mapping function, or any stream of references) feed a keyed work queue;
 * bounded workers call `reconcile(ref, ctx)`, which returns an {@linkcode Action}; errors go
 * through an error policy. A key is never reconciled twice at once.
 *
 * ```ts
 * const controller = new ControllerBuilder(client.resource<ConfigMap>(configMaps), { name: "labeler" })
 *   .withPredicate(generationChanged)
 *   .build(async (ref, ctx) => {
 *     const cm = ctx.object;
 *     if (!cm) return Action.done();
 *     …
 *     return Action.requeueAfter(60_000);
 *   });
 * await controller.run(signal);
 * ```
 *
 * @module
 */

import { TerminalError } from "../client/errors.ts";
import { type KubeObject, objectKey, type ObjectRef, parseObjectKey, refOf } from "../client/resource.ts";
import type { ResourceClient } from "../client/resource_client.ts";
import type { Transport } from "../client/transport.ts";
import { type Informer, InformerFactory, type InformerOptions } from "./informer.ts";
import { type Logger, silentLogger } from "./log.ts";
import type { RuntimeMetrics } from "./metrics.ts";
import type { ChangeEvent, Predicate } from "./predicates.ts";
import { WorkQueue } from "./queue.ts";
import type { ReadStore, ReflectedEvent } from "./store.ts";

/** What to do after a reconcile. */
export interface Action {
  /** Reconcile again after this many ms (even without changes). */
  requeueAfterMs?: number;
}

/** Constructors of {@linkcode Action}s. */
export const Action = {
  /** Nothing more to do until something changes. */
  done(): Action {
    return {};
  },
  /** Reconcile again after `ms`. */
  requeueAfter(ms: number): Action {
    return { requeueAfterMs: ms };
  },
} as const;

/** What a reconcile gets besides the reference. */
export interface ReconcileContext<T> {
  /** `namespace/name` key of the object. */
  key: string;
  /** The object as cached when the reconcile started; `undefined` once it is deleted. */
  object: T | undefined;
  /** The primary resource's cache. */
  store: ReadStore<T>;
  /** Aborted when the controller shuts down and the drain period is over. */
  signal: AbortSignal;
  log: Logger;
  /** How many times this key has been retried after errors. */
  retries: number;
}

/** The reconcile function. Return nothing or {@linkcode Action.done} when the object is in its desired state. */
export type Reconciler<T> = (ref: ObjectRef, ctx: ReconcileContext<T>) => Promise<Action | void>;

/**
 * Decides what happens after a reconcile error: an Action (requeue after a fixed delay, or done),
 * or `"backoff"` for a rate-limited retry (the default, except for {@linkcode TerminalError}).
 */
export type ErrorPolicy<T> = (error: Error, ref: ObjectRef, ctx: ReconcileContext<T>) => Action | "backoff";

/** The default error policy: {@linkcode TerminalError} → done; anything else → rate-limited retry. */
export const defaultErrorPolicy: ErrorPolicy<unknown> = (error: Error): Action | "backoff" =>
  error instanceof TerminalError ? Action.done() : "backoff";

/** Options of {@linkcode ControllerBuilder}. */
export interface ControllerOptions extends InformerOptions {
  /** Name used in logs and metrics. */
  name: string;
  /**
   * Shared informers per cluster; private ones are created (and stopped) otherwise. The errors of
   * shared informers are reported by their factory (its `onError` option); the
   * controller logs those of its private ones.
   */
  informers?: (transport: Transport) => InformerFactory;
  /** Concurrent reconciles (default 1). */
  concurrency?: number;
  /** How long in-flight reconciles may finish after shutdown starts (default 30 s). */
  drainTimeoutMs?: number;
  logger?: Logger;
  metrics?: RuntimeMetrics;
  /** The work queue to use (default: a new queue with client-go's default rate limiter). */
  queue?: WorkQueue<string>;
}

/** A cache a reconciler reads: {@linkcode Informer} fits. */
export interface RequiredCache {
  start(): unknown;
  ready(signal?: AbortSignal): Promise<void>;
}

interface Trigger {
  client: ResourceClient<KubeObject>;
  options: InformerOptions;
  predicates: Predicate<KubeObject>[];
  map: (event: ChangeEvent<KubeObject>) => ObjectRef[];
}

/** Builds a {@linkcode Controller} for primary resource `T`. */
export class ControllerBuilder<T extends KubeObject> {
  readonly #triggers: Trigger[] = [];
  readonly #streams: AsyncIterable<ObjectRef>[] = [];
  readonly #primaryPredicates: Predicate<T>[] = [];
  readonly #required: RequiredCache[] = [];

  constructor(readonly primary: ResourceClient<T>, readonly options: ControllerOptions) {}

  /** Only primary events that pass every predicate trigger a reconcile. */
  withPredicate(...predicates: Predicate<T>[]): this {
    this.#primaryPredicates.push(...predicates);
    return this;
  }

  /**
   * Reconciles the owner when an owned object changes: objects of `owned` whose controller owner
   * reference points at the primary kind map to that owner.
   */
  owns<O extends KubeObject>(
    owned: ResourceClient<O>,
    options: InformerOptions & { predicates?: Predicate<O>[]; controllerOnly?: boolean } = {},
  ): this {
    const kind = this.primary.descriptor.kind;
    const group = this.primary.descriptor.group;
    const namespaced = this.primary.descriptor.namespaced;
    const controllerOnly = options.controllerOnly ?? true;
    return this.watches(
      owned,
      (object) =>
        (object.metadata?.ownerReferences ?? [])
          .filter((r) =>
            r.kind === kind && groupOf(r.apiVersion) === group && (!controllerOnly || r.controller)
          )
          .map((r) =>
            namespaced ? { namespace: object.metadata?.namespace, name: r.name } : { name: r.name }
          ),
      options,
    );
  }

  /** Reconciles the references `map` returns for every change of `other` (any cluster). */
  watches<O extends KubeObject>(
    other: ResourceClient<O>,
    map: (object: O, event: ChangeEvent<O>) => ObjectRef[],
    options: InformerOptions & { predicates?: Predicate<O>[] } = {},
  ): this {
    this.#triggers.push({
      client: other as unknown as ResourceClient<KubeObject>,
      options,
      predicates: (options.predicates ?? []) as Predicate<KubeObject>[],
      map: (event) => map(event.object as O, event as ChangeEvent<O>),
    });
    return this;
  }

  /** Reconciles every reference an external stream yields (timers, other systems). */
  watchesStream(stream: AsyncIterable<ObjectRef>): this {
    this.#streams.push(stream);
    return this;
  }

  /**
   * Caches the reconciler reads without reacting to their changes (a configuration object, say):
   * workers start only once these have listed too, so that no reconcile takes "not listed yet"
   * for "absent" and drops its key. Each is started if nobody started it.
   */
  requires(...caches: RequiredCache[]): this {
    this.#required.push(...caches);
    return this;
  }

  /** Builds the controller. */
  build(
    reconcile: Reconciler<T>,
    errorPolicy: ErrorPolicy<T> = defaultErrorPolicy as ErrorPolicy<T>,
  ): Controller<T> {
    const primaryTrigger: Trigger = {
      client: this.primary as unknown as ResourceClient<KubeObject>,
      options: this.options,
      predicates: this.#primaryPredicates as Predicate<KubeObject>[],
      map: (event) => [refOf(event.object)],
    };
    return new Controller<T>(
      this.options,
      [primaryTrigger, ...this.#triggers],
      this.#streams,
      reconcile,
      errorPolicy,
      this.#required,
    );
  }
}

/** A built controller; {@linkcode Controller.run} runs it until the signal aborts. */
export class Controller<T extends KubeObject> {
  readonly queue: WorkQueue<string>;
  readonly log: Logger;
  #primary?: Informer<T>;
  #running = false;

  constructor(
    readonly options: ControllerOptions,
    readonly triggers: readonly Trigger[],
    readonly streams: readonly AsyncIterable<ObjectRef>[],
    readonly reconcile: Reconciler<T>,
    readonly errorPolicy: ErrorPolicy<T>,
    readonly required: readonly RequiredCache[] = [],
  ) {
    this.log = (options.logger ?? silentLogger).with({ controller: options.name });
    this.queue = options.queue ??
      new WorkQueue<string>(undefined, options.metrics?.queueObserver(options.name) ?? {});
  }

  /** The primary resource's cache (available once {@linkcode run} has started). */
  get store(): ReadStore<T> {
    if (!this.#primary) throw new Error(`controller ${this.options.name} is not running`);
    return this.#primary.store;
  }

  /** Queues a reconcile of `ref` (e.g. from a webhook or a timer). */
  enqueue(ref: ObjectRef): void {
    this.queue.add(objectKey(ref));
  }

  /**
   * Runs until `signal` aborts: waits until every cache (its triggers' and the ones given to
   * {@linkcode ControllerBuilder.requires}) has listed once, then reconciles with
   * bounded concurrency. On abort it stops taking keys and lets in-flight reconciles finish.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (this.#running) throw new Error(`controller ${this.options.name} is already running`);
    this.#running = true;
    const privateFactories = new Map<Transport, InformerFactory>();
    const factoryFor = (transport: Transport) => {
      if (this.options.informers) return this.options.informers(transport);
      let factory = privateFactories.get(transport);
      if (!factory) privateFactories.set(transport, factory = new InformerFactory(transport));
      return factory;
    };
    const subscriptions = new AbortController();
    const informers: Informer<KubeObject>[] = [];
    const feeders: Promise<void>[] = [];
    for (const [index, trigger] of this.triggers.entries()) {
      const informer = factoryFor(trigger.client.transport).for(trigger.client, {
        ...trigger.options,
        onError: this.options.informers
          ? undefined
          : (error) => this.log.warn("watch error", { resource: trigger.client.descriptor.plural, error }),
      });
      if (index === 0) this.#primary = informer as unknown as Informer<T>;
      informers.push(informer);
      feeders.push(this.#feed(informer.events(subscriptions.signal), trigger));
    }
    for (const stream of this.streams) {
      feeders.push(feedUntilAborted(stream, subscriptions.signal, (ref) => this.enqueue(ref)));
    }

    const drain = new AbortController();
    try {
      for (const cache of this.required) cache.start();
      await Promise.all([...informers, ...this.required].map((i) => i.ready(signal)));
      this.log.info("caches synced, starting workers", { concurrency: this.options.concurrency ?? 1 });
      const workers = Array.from({ length: this.options.concurrency ?? 1 }, () => this.#worker(drain.signal));
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
      this.log.info("shutting down: draining in-flight reconciles");
      const drainTimer = setTimeout(
        () => drain.abort(new Error("drain timeout")),
        this.options.drainTimeoutMs ?? 30_000,
      );
      await this.queue.shutDown();
      await Promise.all(workers);
      clearTimeout(drainTimer);
    } catch (err) {
      if (!signal.aborted) throw err;
    } finally {
      subscriptions.abort();
      await this.queue.shutDown();
      await Promise.allSettled(feeders);
      await Promise.all([...privateFactories.values()].map((f) => f.stop()));
      this.#running = false;
    }
  }

  async #feed(events: AsyncIterable<ReflectedEvent<KubeObject>>, trigger: Trigger): Promise<void> {
    for await (const event of events) {
      if (event.type !== "Apply" && event.type !== "InitApply" && event.type !== "Delete") continue;
      const change: ChangeEvent<KubeObject> = {
        type: event.type,
        object: event.object,
        previous: event.previous,
      };
      if (!trigger.predicates.every((p) => p(change))) continue;
      for (const ref of trigger.map(change)) this.queue.add(objectKey(ref));
    }
  }

  async #worker(drainSignal: AbortSignal): Promise<void> {
    while (true) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const ref = parseObjectKey(key);
      const ctx: ReconcileContext<T> = {
        key,
        object: this.#primary?.store.get(key),
        store: this.#primary!.store,
        signal: drainSignal,
        log: this.log.with({ object: key }),
        retries: this.queue.retries(key),
      };
      const started = performance.now();
      try {
        const action = (await this.reconcile(ref, ctx)) ?? Action.done();
        this.queue.forget(key);
        if (action.requeueAfterMs !== undefined) {
          this.queue.addAfter(key, action.requeueAfterMs);
          this.#record("requeue_after", started);
        } else {
          this.#record("success", started);
        }
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        this.#record("error", started);
        let decision: Action | "backoff";
        try {
          decision = this.errorPolicy(error, ref, ctx);
        } catch {
          decision = "backoff";
        }
        ctx.log.warn("reconcile failed", {
          error,
          retries: ctx.retries,
          terminal: error instanceof TerminalError,
        });
        if (decision === "backoff") {
          this.queue.addRateLimited(key);
        } else {
          this.queue.forget(key);
          if (decision.requeueAfterMs !== undefined) this.queue.addAfter(key, decision.requeueAfterMs);
        }
      } finally {
        this.queue.done(key);
      }
    }
  }

  #record(result: "success" | "error" | "requeue_after", started: number): void {
    this.options.metrics?.recordReconcile(this.options.name, result, (performance.now() - started) / 1000);
  }
}

function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf("/");
  return slash < 0 ? "" : apiVersion.slice(0, slash);
}

/**
 * Feeds a trigger stream until it ends or `signal` aborts. A stream that waits forever (a timer,
 * a channel nobody closes) must not keep the controller from stopping, so on abort the pending
 * `next()` is abandoned and the iterator is asked to return.
 */
async function feedUntilAborted<R>(
  stream: AsyncIterable<R>,
  signal: AbortSignal,
  enqueue: (ref: R) => void,
): Promise<void> {
  const iterator = stream[Symbol.asyncIterator]();
  const aborted = new Promise<"aborted">((resolve) => {
    if (signal.aborted) resolve("aborted");
    signal.addEventListener("abort", () => resolve("aborted"), { once: true });
  });
  try {
    while (true) {
      const next = await Promise.race([iterator.next(), aborted]);
      if (next === "aborted" || next.done) break;
      enqueue(next.value);
    }
  } finally {
    // Not awaited: a generator suspended in `await` only returns once that await settles.
    void Promise.resolve(iterator.return?.()).catch(() => {});
  }
}
