/**
 * A syncer: everything that keeps one ClusterBinding's worker cluster and the computing cluster
 * in step. It runs the binding, node and policy controllers (bottom-up), the node heartbeats, and
 * the pod and dependency controllers (top-down), sharing one informer per resource per cluster.
 * The same class runs inside the manager (`--syncer-mode=embedded`) and as its own process
 * (`deno task run syncer --cluster-binding NAME`).
 *
 * @module
 */

import type { KubeClient } from "../../toolkit/client/client.ts";
import type { Controller } from "../../toolkit/runtime/controller.ts";
import { EventRecorder } from "../../toolkit/runtime/events.ts";
import { type Logger, silentLogger } from "../../toolkit/runtime/log.ts";
import { Registry, type RuntimeMetrics } from "../../toolkit/runtime/metrics.ts";
import { bindingController } from "./binding_controller.ts";
import { Heartbeat } from "./bottomup/heartbeat.ts";
import { nodeController } from "./bottomup/node_controller.ts";
import { policyController } from "./bottomup/policy_controller.ts";
import { type Clock, type ProxierEndpoint, SyncerContext, systemClock } from "./context.ts";
import { SyncerMetrics } from "./metrics.ts";
import { TopDown } from "./topdown/topdown.ts";

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
  registry?: Registry;
  /** Queue, reconcile and request metrics of the toolkit (on `registry`); shared by embedded syncers. */
  runtimeMetrics?: RuntimeMetrics;
  resyncMs?: number;
  leaseRenewMs?: number;
  /** Run the top-down (pod) controllers too (default true). */
  topDown?: boolean;
}

/** One binding's syncer. */
export class Syncer {
  readonly ctx: SyncerContext;
  readonly heartbeat: Heartbeat;
  readonly topDown?: TopDown;
  readonly #controllers: Controller<never>[];
  #abort?: AbortController;
  #runs: Promise<void>[] = [];

  constructor(virtual: KubeClient, physical: KubeClient, options: SyncerOptions) {
    const log = (options.log ?? silentLogger).with({ binding: options.bindingName });
    this.ctx = new SyncerContext(
      virtual,
      physical,
      {
        bindingName: options.bindingName,
        clusterID: options.clusterID,
        mountNamespace: options.mountNamespace,
        proxier: options.proxier ?? { address: "127.0.0.1", port: 10250 },
        resyncMs: options.resyncMs ?? 5 * 60_000,
        leaseDurationSeconds: 40,
        leaseRenewMs: options.leaseRenewMs ?? 10_000,
      },
      options.clock ?? systemClock,
      log,
      new EventRecorder(virtual.transport, {
        controller: "kubeocean.io/syncer",
        instance: options.bindingName,
        log,
      }),
      SyncerMetrics.of(options.registry ?? new Registry()),
      options.runtimeMetrics,
    );
    this.heartbeat = new Heartbeat(this.ctx);
    if (options.topDown ?? true) this.topDown = new TopDown(this.ctx);
    const nodes = nodeController(this.ctx, (vnode) => this.heartbeat.renew(vnode));
    const hooks = this.topDown ? [(b: Parameters<TopDown["cleanup"]>[0]) => this.topDown!.cleanup(b)] : [];
    this.#controllers = [
      bindingController(this.ctx, hooks),
      nodes,
      policyController(this.ctx),
      ...(this.topDown?.controllers ?? []),
    ] as Controller<never>[];
  }

  /** Starts every controller and the heartbeats. */
  start(): this {
    if (this.#abort) return this;
    this.#abort = new AbortController();
    for (const controller of this.#controllers) {
      this.#runs.push(
        controller.run(this.#abort.signal).catch((err) => {
          this.ctx.log.error("controller stopped with an error", { error: err });
        }),
      );
    }
    this.heartbeat.start();
    this.topDown?.start(this.#abort.signal);
    this.ctx.log.info("syncer started");
    return this;
  }

  /** Whether every cache has listed once (the syncer reconciles from then on). */
  get ready(): boolean {
    return [...this.ctx.virtualInformers.informers, ...this.ctx.physicalInformers.informers].every((i) =>
      i.store.isReady
    );
  }

  /** Re-queues every object (e.g. after a test moved the clock). */
  resync(): void {
    for (const controller of this.#controllers) {
      try {
        for (const obj of controller.store.list() as { metadata?: { name?: string; namespace?: string } }[]) {
          controller.enqueue({ name: obj.metadata!.name!, namespace: obj.metadata?.namespace });
        }
      } catch {
        // not running
      }
    }
  }

  /** Stops everything and waits for in-flight work to finish. */
  async stop(): Promise<void> {
    if (!this.#abort) return;
    this.#abort.abort();
    this.heartbeat.stop();
    await Promise.all(this.#runs);
    await this.topDown?.stop();
    await this.ctx.recorder.flush().catch(() => {});
    await this.ctx.stop();
    this.ctx.log.info("syncer stopped");
  }
}
