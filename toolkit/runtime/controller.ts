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
import { Channel } from "./channel.ts";
import { type Logger, silentLogger } from "./log.ts";
import type { RuntimeMetrics } from "./metrics.ts";
import type { ChangeEvent, Predicate } from "./predicates.ts";
import { WorkQueue } from "./queue.ts";
import type { ReadStore } from "./store.ts";

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

/** What one reconcile came to (see {@linkcode Controller.outcomes}). */
export interface ReconcileOutcome {
  /** The controller's name. */
  controller: string;
  /** `namespace/name` of the object. */
  key: string;
  /** `success`, `requeue_after` (success with a requeue) or `error`. */
  result: "success" | "requeue_after" | "error";
  /** The action returned (or chosen by the error policy). */
  action?: Action;
  /** The error thrown, for `error`. */
  error?: Error;
  /** How long the reconcile took. */
  seconds: number;
}

/**
 * Something a {@linkcode Manager} runs until its signal aborts: a controller, a periodic job, a
 * server. A rejection stops the whole manager.
 */
export interface Runnable {
  /** Name used in logs. */
  readonly name: string;
  /** Runs until `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
}

/** Maps a change of a watched object to the primary objects to reconcile. */
export type MapFunc<O, T> = (object: O, event: ChangeEvent<O>, primary: ReadStore<T>) => ObjectRef[];

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
  /** Called after every reconcile (metrics, tests); see also {@linkcode Controller.outcomes}. */
  onOutcome?: (outcome: ReconcileOutcome) => void;
}

/** A cache a reconciler reads: {@linkcode Informer} fits. */
export interface RequiredCache {
  start(): unknown;
  ready(signal?: AbortSignal): Promise<void>;
}

/** Creates informers for a cluster: shared ones from a factory, or the controller's own. */
type InformerSource = (transport: Transport) => InformerFactory;

/**
 * A resource whose changes enqueue primary objects. Built inside {@linkcode ControllerBuilder.watches},
 * where the watched type is known, so the controller keeps no untyped informers.
 */
interface Trigger<T> {
  /** Gets (or creates) the informer from `source` and returns its cache and its feed. */
  connect(source: InformerSource, onError: ((error: Error) => void) | undefined): ConnectedTrigger<T>;
}

interface ConnectedTrigger<T> {
  cache: RequiredCache;
  /** Enqueues the mapped references of every event until `signal` aborts. */
  feed(signal: AbortSignal, primary: ReadStore<T>, enqueue: (ref: ObjectRef) => void): Promise<void>;
}

function trigger<O extends KubeObject, T>(
  client: ResourceClient<O>,
  options: InformerOptions,
  predicates: readonly Predicate<O>[],
  map: MapFunc<O, T>,
): Trigger<T> {
  return {
    connect(source, onError) {
      const informer = source(client.transport).for(client, { ...options, onError });
      return {
        cache: informer,
        async feed(signal, primary, enqueue) {
          for await (const event of informer.events(signal)) {
            if (event.type !== "Apply" && event.type !== "InitApply" && event.type !== "Delete") continue;
            const change: ChangeEvent<O> = {
              type: event.type,
              object: event.object,
              previous: event.previous,
            };
            if (!predicates.every((p) => p(change))) continue;
            for (const ref of map(event.object, change, primary)) enqueue(ref);
          }
        },
      };
    },
  };
}

/** Builds a {@linkcode Controller} for primary resource `T`. */
export class ControllerBuilder<T extends KubeObject> {
  readonly #triggers: Trigger<T>[] = [];
  readonly #streams: AsyncIterable<ObjectRef>[] = [];
  readonly #primaryPredicates: Predicate<T>[] = [];
  readonly #required: RequiredCache[] = [];

  /**
   * @param primary the resource the controller reconciles
   * @param options name, concurrency, informer options of the primary resource, and shared parts
   * @param onBuild called with the built controller (a {@linkcode Manager} registers it this way)
   */
  constructor(
    readonly primary: ResourceClient<T>,
    readonly options: ControllerOptions,
    readonly onBuild?: (controller: Controller<T>) => void,
  ) {}

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

  /**
   * Reconciles the references `map` returns for every change of `other` (any cluster). `map` also
   * gets the primary resource's cache, e.g. to find the primaries that refer to the object.
   */
  watches<O extends KubeObject>(
    other: ResourceClient<O>,
    map: MapFunc<O, T>,
    options: InformerOptions & { predicates?: Predicate<O>[] } = {},
  ): this {
    const { predicates = [], ...informerOptions } = options;
    this.#triggers.push(trigger(other, informerOptions, predicates, map));
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

  /** Builds the controller (and hands it to the builder's `onBuild`, e.g. a manager). */
  build(reconcile: Reconciler<T>, errorPolicy: ErrorPolicy<T> = defaultErrorPolicy): Controller<T> {
    const controller = new Controller<T>(
      this.primary,
      this.options,
      this.#primaryPredicates,
      this.#triggers,
      this.#streams,
      reconcile,
      errorPolicy,
      this.#required,
    );
    this.onBuild?.(controller);
    return controller;
  }
}

/**
 * A built controller; {@linkcode Controller.run} runs it until the signal aborts. Its caches exist
 * from construction (empty until the run lists them), so mapping functions and other controllers
 * may read {@linkcode Controller.store} at any time.
 */
export class Controller<T extends KubeObject> implements Runnable {
  readonly queue: WorkQueue<string>;
  readonly log: Logger;
  readonly #primary: Informer<T>;
  readonly #triggers: ConnectedTrigger<T>[];
  readonly #ownFactories = new Map<Transport, InformerFactory>();
  readonly #outcomes = new Set<Channel<ReconcileOutcome>>();
  #running = false;

  constructor(
    primary: ResourceClient<T>,
    readonly options: ControllerOptions,
    readonly primaryPredicates: readonly Predicate<T>[],
    triggers: readonly Trigger<T>[],
    readonly streams: readonly AsyncIterable<ObjectRef>[],
    readonly reconcile: Reconciler<T>,
    readonly errorPolicy: ErrorPolicy<T>,
    readonly required: readonly RequiredCache[] = [],
  ) {
    this.log = (options.logger ?? silentLogger).with({ controller: options.name });
    this.queue = options.queue ??
      new WorkQueue<string>(undefined, options.metrics?.queueObserver(options.name) ?? {});
    const source: InformerSource = options.informers ?? ((transport) => {
      let factory = this.#ownFactories.get(transport);
      if (!factory) this.#ownFactories.set(transport, factory = new InformerFactory(transport));
      return factory;
    });
    // Shared informers report their errors through their factory; the controller logs its own.
    const onError = (resource: string) =>
      options.informers ? undefined : (error: Error) => this.log.warn("watch error", { resource, error });
    const own = informerOptionsOf(options);
    const primaryTrigger = trigger<T, T>(primary, own, primaryPredicates, (object) => [refOf(object)]);
    this.#triggers = [primaryTrigger, ...triggers].map((t, i) =>
      t.connect(source, onError(i === 0 ? primary.descriptor.plural : "watched resource"))
    );
    this.#primary = source(primary.transport).for(primary, {
      ...own,
      onError: onError(primary.descriptor.plural),
    });
  }

  /** The controller's name. */
  get name(): string {
    return this.options.name;
  }

  /** The primary resource's cache (empty until the controller runs and has listed). */
  get store(): ReadStore<T> {
    return this.#primary.store;
  }

  /** Queues a reconcile of `ref` (e.g. from a webhook or a timer). */
  enqueue(ref: ObjectRef): void {
    this.queue.add(objectKey(ref));
  }

  /** Queues every cached primary object (e.g. after a test moved the clock). */
  resync(): void {
    for (const object of this.store.list()) this.enqueue(refOf(object));
  }

  /**
   * The outcome of every reconcile from now on, until `signal` aborts or the controller stops:
   * for tests ("wait until this key reconciled without error") and for metrics.
   */
  outcomes(signal?: AbortSignal): AsyncIterable<ReconcileOutcome> {
    const channel = new Channel<ReconcileOutcome>();
    this.#outcomes.add(channel);
    signal?.addEventListener("abort", () => {
      this.#outcomes.delete(channel);
      channel.close();
    }, { once: true });
    return channel;
  }

  /**
   * Runs until `signal` aborts: waits until every cache (its triggers' and the ones given to
   * {@linkcode ControllerBuilder.requires}) has listed once, then reconciles with
   * bounded concurrency. On abort it stops taking keys and lets in-flight reconciles finish.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (this.#running) throw new Error(`controller ${this.options.name} is already running`);
    this.#running = true;
    const subscriptions = new AbortController();
    const enqueue = (ref: ObjectRef) => this.enqueue(ref);
    const feeders: Promise<void>[] = this.#triggers.map((t) =>
      t.feed(subscriptions.signal, this.store, enqueue)
    );
    for (const stream of this.streams) feeders.push(feedUntilAborted(stream, subscriptions.signal, enqueue));

    const drain = new AbortController();
    try {
      const caches = [...this.#triggers.map((t) => t.cache), ...this.required];
      for (const cache of caches) cache.start();
      await Promise.all(caches.map((c) => c.ready(signal)));
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
      await Promise.all([...this.#ownFactories.values()].map((f) => f.stop()));
      for (const channel of this.#outcomes) channel.close();
      this.#outcomes.clear();
      this.#running = false;
    }
  }

  async #worker(drainSignal: AbortSignal): Promise<void> {
    while (true) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const ref = parseObjectKey(key);
      const ctx: ReconcileContext<T> = {
        key,
        object: this.store.get(key),
        store: this.store,
        signal: drainSignal,
        log: this.log.with({ object: key }),
        retries: this.queue.retries(key),
      };
      const started = performance.now();
      try {
        const action = (await this.reconcile(ref, ctx)) ?? Action.done();
        this.queue.forget(key);
        if (action.requeueAfterMs !== undefined) this.queue.addAfter(key, action.requeueAfterMs);
        this.#report({
          key,
          result: action.requeueAfterMs !== undefined ? "requeue_after" : "success",
          action,
          started,
        });
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
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
        this.#report({
          key,
          result: "error",
          error,
          action: decision === "backoff" ? undefined : decision,
          started,
        });
      } finally {
        this.queue.done(key);
      }
    }
  }

  #report(
    outcome: Omit<ReconcileOutcome, "controller" | "seconds"> & { started: number },
  ): void {
    const { started, ...rest } = outcome;
    const full: ReconcileOutcome = {
      controller: this.options.name,
      ...rest,
      seconds: (performance.now() - started) / 1000,
    };
    this.options.metrics?.recordReconcile(full.controller, full.result, full.seconds);
    try {
      this.options.onOutcome?.(full);
    } catch (err) {
      this.log.warn("onOutcome hook failed", { error: err });
    }
    for (const channel of this.#outcomes) channel.push(full);
  }
}

/** The informer options among a controller's options. */
function informerOptionsOf(options: ControllerOptions): InformerOptions {
  const {
    name: _name,
    informers: _informers,
    concurrency: _concurrency,
    drainTimeoutMs: _drain,
    logger: _logger,
    metrics: _metrics,
    queue: _queue,
    onOutcome: _onOutcome,
    ...informerOptions
  } = options;
  return informerOptions;
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
