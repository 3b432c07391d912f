/**
 * A syncer: everything that keeps one ClusterBinding's worker cluster and the computing cluster
 * in step, as runnables of one {@linkcode Manager} sharing one cache per resource per cluster.
 *
 * - bottom-up (`bottomup/`): the binding's virtual nodes from the worker's nodes and policies,
 *   their heartbeats, the policies' status, the placeholders of the host ports in use on them;
 * - top-down (`topdown/`): the virtual pod lifecycle, its drift audit and twin events, speaking
 *   to the worker only through the {@linkcode PodProvider} seam;
 * - the worker provider (`worker/`): twins and their mirrored ConfigMaps, Secrets, claims and
 *   tokens in the mount namespace.
 *
 * The same class runs inside the manager (`--syncer-mode=embedded`) and as its own process
 * (`deno task run syncer --cluster-binding NAME`).
 *
 * @module
 */

import type { KubeClient } from "../../toolkit/client/client.ts";
import { type Clock, systemClock } from "../../toolkit/runtime/clock.ts";
import { Controller, type Runnable } from "../../toolkit/runtime/controller.ts";
import { EventRecorder } from "../../toolkit/runtime/events.ts";
import { type Logger, silentLogger } from "../../toolkit/runtime/log.ts";
import { Manager } from "../../toolkit/runtime/manager.ts";
import { Registry, RuntimeMetrics } from "../../toolkit/runtime/metrics.ts";
import { bindingController } from "./binding_controller.ts";
import { Heartbeat } from "./bottomup/heartbeat.ts";
import { hostPortController, removeAllPlaceholders } from "./bottomup/host_ports.ts";
import { nodeController } from "./bottomup/node_controller.ts";
import { policyController } from "./bottomup/policy_controller.ts";
import { type ProxierEndpoint, SyncerContext } from "./context.ts";
import { SyncerMetrics } from "./metrics.ts";
import type { PodProvider } from "./provider.ts";
import { EventReflector } from "./topdown/event_reflector.ts";
import { PodAudit } from "./topdown/pod_audit.ts";
import { PodLifecycleController } from "./topdown/pod_lifecycle.ts";
import { WorkerPodProvider } from "./worker/worker_provider.ts";
import { WorkerReachability } from "./worker/reachability.ts";
import type { SyncerHealth } from "../common/syncer_heartbeat.ts";

/** Options of a {@linkcode Syncer}. */
export interface SyncerOptions {
  bindingName: string;
  /** The binding's clusterID and mount namespace (a change means a new syncer). */
  clusterID: string;
  mountNamespace: string;
  /** Address and port virtual nodes advertise for kubelet API calls (the proxier). */
  proxier?: ProxierEndpoint;
  clock?: Clock;
  log?: Logger;
  /** Registry of the syncer's own metrics (shared by embedded syncers; every series names its binding). */
  registry?: Registry;
  /** Queue, reconcile and request metrics of the toolkit (on `registry`); shared by embedded syncers. */
  runtimeMetrics?: RuntimeMetrics;
  resyncMs?: number;
  leaseRenewMs?: number;
  /** Node lease duration in seconds (default 40); also how long the worker may be silent before it counts as down. */
  leaseDurationSeconds?: number;
  /** Time between worker reachability probes (default 2 s). */
  workerProbeMs?: number;
  /** Run the top-down (pod) parts too (default true). */
  topDown?: boolean;
}

/** One binding's syncer. */
export class Syncer implements Runnable {
  readonly ctx: SyncerContext;
  readonly manager: Manager;
  readonly heartbeat: Heartbeat;
  /** The worker provider and the pod lifecycle (absent with `topDown: false`). */
  readonly provider?: WorkerPodProvider;
  readonly pods?: PodLifecycleController;
  readonly podAudit?: PodAudit;
  /** Whether the worker's API server answers. */
  readonly reachability: WorkerReachability;
  #abort?: AbortController;
  #run?: Promise<void>;
  /** Whether `run` is under way (through `start` or called directly, as the syncer process does). */
  #running = false;
  #failure?: Error;

  constructor(virtual: KubeClient, physical: KubeClient, options: SyncerOptions) {
    const log = (options.log ?? silentLogger).with({ binding: options.bindingName });
    const registry = options.registry ?? options.runtimeMetrics?.registry ?? new Registry();
    this.manager = new Manager({
      name: `syncer/${options.bindingName}`,
      logger: log,
      metrics: options.runtimeMetrics ?? RuntimeMetrics.of(registry),
      clock: options.clock ?? systemClock,
    });
    this.ctx = new SyncerContext(
      virtual,
      physical,
      {
        bindingName: options.bindingName,
        clusterID: options.clusterID,
        mountNamespace: options.mountNamespace,
        proxier: options.proxier ?? { address: "127.0.0.1", port: 10250 },
        resyncMs: options.resyncMs ?? 5 * 60_000,
        leaseDurationSeconds: options.leaseDurationSeconds ?? 40,
        leaseRenewMs: options.leaseRenewMs ?? 10_000,
      },
      this.manager,
      new EventRecorder(virtual.transport, {
        controller: "kubeocean.io/syncer",
        instance: options.bindingName,
        log,
      }),
      SyncerMetrics.of(registry),
    );
    this.reachability = new WorkerReachability({
      // `/version` is readable by every authenticated user: it proves the server answers, not permissions.
      probe: (signal) => physical.transport.request({ method: "GET", path: "/version", signal }),
      clock: systemClock,
      log,
      intervalMs: options.workerProbeMs,
      downAfterMs: this.ctx.config.leaseDurationSeconds * 1000,
      // Statuses were not written while it was down: look at everything again.
      onRecovered: () => this.resync(),
    });
    this.ctx.worker = this.reachability;
    this.manager.add(this.reachability);
    this.heartbeat = new Heartbeat(this.ctx);
    this.manager.add(this.heartbeat);
    nodeController(this.ctx, (vnode) => this.heartbeat.renew(vnode));
    policyController(this.ctx);
    hostPortController(this.ctx);
    if (options.topDown ?? true) {
      const provider: WorkerPodProvider = new WorkerPodProvider(this.ctx);
      this.provider = provider;
      this.pods = new PodLifecycleController(this.ctx, provider);
      this.podAudit = new PodAudit(this.ctx, provider);
      this.manager.add(this.podAudit).add(new EventReflector(this.ctx, provider satisfies PodProvider));
    }
    const pods = this.pods;
    const placeholders = () => removeAllPlaceholders(this.ctx);
    bindingController(this.ctx, pods ? [placeholders, () => pods.cleanup()] : [placeholders]);
  }

  get name(): string {
    return `syncer/${this.ctx.config.bindingName}`;
  }

  /** Runs every part until `signal` aborts; rejects when one of them fails (the others stop). */
  async run(signal: AbortSignal): Promise<void> {
    this.ctx.log.info("syncer started");
    this.#running = true;
    try {
      await this.manager.run(signal);
    } finally {
      this.#running = false;
      await this.ctx.recorder.flush().catch(() => {});
      this.ctx.log.info("syncer stopped");
    }
  }

  /** Starts every part in the background ({@linkcode stop} ends them). */
  start(): this {
    if (this.#abort) return this;
    this.#abort = new AbortController();
    this.#run = this.run(this.#abort.signal).catch((err) => {
      this.#failure = err instanceof Error ? err : new Error(String(err));
      this.ctx.log.error("syncer stopped with an error", { error: err });
    });
    return this;
  }

  /** Why a syncer started with {@linkcode start} stopped on its own, if it did. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Whether every cache has listed once (the syncer reconciles from then on). */
  get ready(): boolean {
    return this.#running && this.manager.synced;
  }

  /**
   * What this syncer can vouch for right now: whether the worker answers and its caches have
   * listed (the syncer process publishes it as its heartbeat; embedded runners read it directly).
   */
  health(): SyncerHealth {
    const worker = this.reachability.state;
    const notSynced = this.#running ? this.manager.notSyncedReason : "not running";
    if (worker.down || (!worker.answering && notSynced)) {
      return {
        ready: false,
        reason: "WorkerUnreachable",
        message: `the worker API server has not answered since ${worker.silentSince?.toISOString()}: ${
          worker.lastError ?? "no answer"
        }`,
        workerReachable: false,
      };
    }
    if (notSynced) {
      return { ready: false, reason: "CachesNotSynced", message: notSynced, workerReachable: true };
    }
    return {
      ready: true,
      reason: "Syncing",
      message: "caches synced and the worker API server answers",
      workerReachable: true,
    };
  }

  /** Re-queues every object of every controller (e.g. after a test moved the clock). */
  resync(): void {
    for (const runnable of this.manager.runnables) {
      if (runnable instanceof Controller) runnable.resync();
    }
  }

  /**
   * Runs the drift audit now: orphan twins and mirrored objects no twin uses are removed; returns
   * how many.
   */
  async audit(): Promise<number> {
    if (!this.podAudit || !this.provider) return 0;
    return await this.podAudit.audit() + await this.provider.collectGarbage();
  }

  /** Stops what {@linkcode start} started and waits for in-flight work to finish. */
  async stop(): Promise<void> {
    if (!this.#abort) return;
    this.#abort.abort();
    await this.#run;
  }
}
