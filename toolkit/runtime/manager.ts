/**
 * The Manager: what every controller process needs, in one place (controller-runtime's idea,
 * Deno-shaped). It owns the shared informer factories (one per cluster), the metrics registry
 * and `/metrics` server, the `/healthz` and `/readyz` probes, leader election, signal handling and
 * a list of {@linkcode Runnable}s — controllers built through {@linkcode Manager.controller} are
 * registered and share its logger, metrics and caches.
 *
 * ```ts
 * const client = await KubeClient.load();
 * const manager = new Manager({
 *   name: "labeler",
 *   client,
 *   metricsAddress: { port: 8080 },
 *   healthAddress: { port: 8081 },
 *   leaderElection: { namespace: "default", name: "labeler" },
 * });
 * manager.controller(new CoreV1Api(client).configmaps(), { name: "configmaps" })
 *   .build(async (ref, ctx) => { … });
 * await manager.run(Manager.shutdownSignal(manager.log));
 * ```
 *
 * A runnable that fails stops the manager, and `run()` rejects with its error: under leader
 * election the lease is released at once, so a standby replica takes over instead of a leader
 * that keeps renewing while doing nothing. A runnable that returns on its own (to restart with
 * new settings, say) stops the others too, and `run()` resolves.
 *
 * @module
 */

import { KubeClient } from "../client/client.ts";
import type { KubeObject } from "../client/resource.ts";
import type { ResourceClient } from "../client/resource_client.ts";
import type { Transport } from "../client/transport.ts";
import { type Clock, systemClock } from "./clock.ts";
import { ControllerBuilder, type ControllerOptions, type Runnable } from "./controller.ts";
import { HealthChecks } from "./health.ts";
import { type Informer, InformerFactory, type InformerOptions } from "./informer.ts";
import { LeaderElector } from "./leader_election.ts";
import { type Logger, silentLogger } from "./log.ts";
import { RuntimeMetrics, serveMetrics } from "./metrics.ts";

/** Where a server listens (`hostname` defaults to every interface). */
export interface ListenAddress {
  hostname?: string;
  port: number;
}

/** Leader election of a {@linkcode Manager}. */
export interface ManagerLeaderElection {
  /** Namespace and name of the Lease. */
  namespace: string;
  name: string;
  /** This replica's identity (default: `$POD_NAME`, else hostname and a random suffix). */
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

/** Options of a {@linkcode Manager}. */
export interface ManagerOptions {
  /** Name used in logs. */
  name: string;
  /** The home cluster: leader election runs there, and it is the default for caches. */
  client?: KubeClient;
  logger?: Logger;
  /** Toolkit metrics (default: a new registry with the process's default metrics). */
  metrics?: RuntimeMetrics;
  clock?: Clock;
  /** Serve `/metrics` here (none when absent). */
  metricsAddress?: ListenAddress;
  /** Serve `/healthz` and `/readyz` here (none when absent). */
  healthAddress?: ListenAddress;
  /** Run the runnables only while this replica leads (needs `client`). */
  leaderElection?: ManagerLeaderElection;
}

/** Runs controllers and other runnables with shared caches, metrics, probes and leader election. */
export class Manager {
  readonly log: Logger;
  readonly metrics: RuntimeMetrics;
  readonly health: HealthChecks;
  readonly clock: Clock;
  readonly #factories = new Map<Transport, InformerFactory>();
  readonly #runnables: Runnable[] = [];
  #elector?: LeaderElector;
  #running = false;
  #leading = false;

  constructor(readonly options: ManagerOptions) {
    this.log = (options.logger ?? silentLogger).with({});
    this.metrics = options.metrics ?? new RuntimeMetrics();
    this.clock = options.clock ?? systemClock;
    this.health = new HealthChecks().addHealthz("ping", () => true);
    this.health.addReadyz("caches", () => this.#cachesProblem() ?? true);
    if (options.leaderElection && !options.client) throw new Error("leader election needs a client");
  }

  /**
   * The shared informer factory of a cluster: every controller and reconciler of this manager that
   * asks for the same resource (and selectors) of that cluster gets the same cache. Watch errors
   * are logged with the cluster and resource.
   */
  informers(cluster: KubeClient | Transport): InformerFactory {
    const transport = cluster instanceof KubeClient ? cluster.transport : cluster;
    let factory = this.#factories.get(transport);
    if (!factory) {
      const host = hostOf(transport);
      factory = new InformerFactory(transport, {
        onError: (error, informer) =>
          this.log.warn("watch error", { cluster: host, resource: informer.client.descriptor.plural, error }),
      });
      this.#factories.set(transport, factory);
    }
    return factory;
  }

  /** The shared cache of `client`'s resource (its cluster's factory, `options` as for informers). */
  cache<T extends KubeObject>(client: ResourceClient<T>, options: InformerOptions = {}): Informer<T> {
    return this.informers(client.transport).for(client, options);
  }

  /**
   * A controller builder with the manager's defaults (shared caches, logger, metrics); the built
   * controller is registered and runs with the manager.
   */
  controller<T extends KubeObject>(
    primary: ResourceClient<T>,
    options: Omit<ControllerOptions, "informers">,
  ): ControllerBuilder<T> {
    return new ControllerBuilder(primary, {
      logger: this.log,
      metrics: this.metrics,
      ...options,
      informers: (transport) => this.informers(transport),
    }, (controller) => this.add(controller));
  }

  /** Registers a runnable (started with the others by {@linkcode run}). */
  add(runnable: Runnable): this {
    if (this.#running) throw new Error(`${this.options.name}: runnables are added before run()`);
    this.#runnables.push(runnable);
    return this;
  }

  /** The registered runnables. */
  get runnables(): readonly Runnable[] {
    return this.#runnables;
  }

  /** Every cache handed out so far, per cluster. */
  get caches(): Informer<KubeObject>[] {
    return [...this.#factories.values()].flatMap((f) => f.informers);
  }

  /** Whether every cache handed out so far has listed once (false before any was handed out). */
  get synced(): boolean {
    return this.caches.length > 0 && this.#cachesProblem() === undefined;
  }

  /**
   * Why this manager does not reconcile yet — not leading, or the caches still listing (named) —
   * or undefined once it does.
   */
  get notSyncedReason(): string | undefined {
    return this.#cachesProblem();
  }

  /** Whether this replica leads (always true without leader election, once running). */
  get leading(): boolean {
    return this.#leading;
  }

  /**
   * Serves metrics and probes, waits for leadership if configured, then runs every runnable until
   * `signal` aborts or one of them returns. Rejects when a runnable fails (the others are stopped
   * first) or when leadership is lost; resolves after a graceful stop.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (this.#running) throw new Error(`${this.options.name} is already running`);
    this.#running = true;
    const servers = new AbortController();
    try {
      this.#serve(servers.signal);
      const election = this.options.leaderElection;
      if (!election) return await this.#runAll(signal);
      let lost = false;
      this.#elector = new LeaderElector({
        transport: this.options.client!.transport,
        namespace: election.namespace,
        name: election.name,
        identity: election.identity ?? (Deno.env.get("POD_NAME") || undefined),
        leaseDurationMs: election.leaseDurationMs,
        renewDeadlineMs: election.renewDeadlineMs,
        retryPeriodMs: election.retryPeriodMs,
        log: this.log,
        onStartedLeading: (leading) => this.#runAll(leading),
        onStoppedLeading: () => {
          if (!signal.aborted) lost = true;
        },
      });
      await this.#elector.run(signal);
      if (lost && !signal.aborted) throw new Error("leadership lost");
    } finally {
      servers.abort();
      await Promise.all([...this.#factories.values()].map((f) => f.stop()));
      this.#running = false;
    }
  }

  /** Runs every runnable; the first failure stops the rest and is thrown. */
  async #runAll(signal: AbortSignal): Promise<void> {
    this.#leading = true;
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) stop.abort();
    let failure: { runnable: string; error: unknown } | undefined;
    try {
      await Promise.all(this.#runnables.map(async (runnable) => {
        try {
          await runnable.run(stop.signal);
          if (!stop.signal.aborted) {
            // Finished on purpose (e.g. to restart with new settings): the others stop too.
            this.log.info("runnable finished; stopping", { runnable: runnable.name });
            stop.abort();
          }
        } catch (error) {
          if (!failure) {
            failure = { runnable: runnable.name, error };
            this.log.error("runnable failed; stopping", { runnable: runnable.name, error });
          }
          stop.abort();
        }
      }));
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.#leading = false;
    }
    if (failure && !signal.aborted) {
      throw failure.error instanceof Error
        ? failure.error
        : new Error(`${failure.runnable}: ${failure.error}`);
    }
  }

  #serve(signal: AbortSignal): void {
    const { metricsAddress, healthAddress } = this.options;
    if (metricsAddress) {
      const server = serveMetrics(this.metrics.registry, { ...metricsAddress, signal });
      this.log.info("serving metrics", { address: `${server.addr.hostname}:${server.addr.port}` });
    }
    if (healthAddress) {
      const server = this.health.serve({ ...healthAddress, signal });
      this.log.info("serving health probes", { address: `${server.addr.hostname}:${server.addr.port}` });
    }
  }

  #cachesProblem(): string | undefined {
    if (this.options.leaderElection && !this.#leading) return "not leading";
    // Every cache handed out counts: controllers create theirs when built, before they run.
    const waiting = this.caches.filter((i) => !i.store.isReady);
    if (waiting.length === 0) return undefined;
    return `caches not listed yet: ${waiting.map((i) => i.client.descriptor.plural).join(", ")}`;
  }

  /** An AbortSignal aborted by SIGINT or SIGTERM (logged once). */
  static shutdownSignal(log: Logger = silentLogger): AbortSignal {
    const controller = new AbortController();
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(sig, () => {
        if (!controller.signal.aborted) log.info("shutting down", { signal: sig });
        controller.abort();
      });
    }
    return controller.signal;
  }
}

function hostOf(transport: Transport): string {
  try {
    return new URL(transport.config.server).host;
  } catch {
    return transport.config.server;
  }
}
