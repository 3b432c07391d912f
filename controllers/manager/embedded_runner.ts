/**
 * `--syncer-mode=embedded`: each binding's syncer runs inside the manager process (for local runs
 * and the demo). A syncer is restarted when the kubeconfig or the binding's spec changes.
 *
 * @module
 */

import type { ClusterBinding } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { KubeClient } from "../../toolkit/client/client.ts";
import { loadKubeconfigText } from "../../toolkit/client/kubeconfig.ts";
import type { ObjectRef } from "../../toolkit/client/resource.ts";
import { Channel } from "../../toolkit/runtime/channel.ts";
import type { Logger } from "../../toolkit/runtime/log.ts";
import type { Registry, RuntimeMetrics } from "../../toolkit/runtime/metrics.ts";
import type { Clock } from "../../toolkit/runtime/clock.ts";
import type { ServedBindings } from "../proxier/resolve.ts";
import type { ProxierEndpoint } from "../syncer/context.ts";
import type { TwinStreams, TwinUsage } from "../syncer/provider.ts";
import { Syncer } from "../syncer/syncer.ts";
import type { SyncerRunner, SyncerStatus } from "./syncer_runner.ts";
import { DEFAULT_CLIENT_LIMITS } from "../common/process.ts";

interface Running {
  syncer: Syncer;
  physical: KubeClient;
  fingerprint: string;
  /** The health last reported to the manager's queue (JSON). */
  announced: string;
}

/** Options of {@linkcode EmbeddedRunner}. */
export interface EmbeddedRunnerOptions {
  virtual: KubeClient;
  log: Logger;
  registry: Registry;
  /** The manager's toolkit metrics, shared by the embedded syncers (their controllers are named per binding). */
  runtimeMetrics?: RuntimeMetrics;
  proxier?: ProxierEndpoint;
  clock?: Clock;
  resyncMs?: number;
  /** Let kubeconfig Secrets run exec plugins and name local files (default false: data only). */
  trustKubeconfigSecrets?: boolean;
}

/** Runs syncers in-process. */
export class EmbeddedRunner implements SyncerRunner, ServedBindings {
  readonly mode = "embedded";
  /** In-process syncers: nothing to list. */
  readonly caches = [];
  readonly #running = new Map<string, Running>();
  readonly #changes = new Channel<ObjectRef>();
  #poll?: ReturnType<typeof setInterval>;

  constructor(readonly options: EmbeddedRunnerOptions) {
    // Report health changes of the syncers (ready, worker silent or back) to the manager's queue.
    this.#poll = setInterval(() => {
      for (const [name, running] of this.#running) {
        const health = JSON.stringify(running.syncer.health());
        if (running.announced !== health) {
          running.announced = health;
          this.#changes.push({ name });
        }
      }
    }, 250);
  }

  get changes(): AsyncIterable<ObjectRef> {
    return this.#changes;
  }

  /**
   * The twin streams of a binding's running syncer, for the manager's kubelet API listener (which
   * routes by the virtual node's binding label); undefined for a binding not running here.
   */
  streamsFor(binding: string): TwinStreams | undefined {
    return this.#running.get(binding)?.syncer.provider?.streams;
  }

  /** The resource usage of a binding's twins, measured by its running syncer's provider. */
  usageFor(binding: string): TwinUsage | undefined {
    return this.#running.get(binding)?.syncer.provider?.resourceUsage;
  }

  /** The running syncer of a binding (for tests and the demo). */
  syncerOf(name: string): Syncer | undefined {
    return this.#running.get(name)?.syncer;
  }

  async ensure(binding: ClusterBinding, kubeconfig: string, kubeconfigHash: string): Promise<SyncerStatus> {
    const name = binding.metadata!.name!;
    const spec = binding.spec!;
    const fingerprint = `${binding.metadata?.uid}/${kubeconfigHash}/${spec.clusterID}/${spec.mountNamespace}`;
    let running = this.#running.get(name);
    if (running && running.fingerprint !== fingerprint) {
      this.options.log.info("restarting embedded syncer (binding or kubeconfig changed)", { binding: name });
      await this.#stopOne(name);
      running = undefined;
    }
    if (running?.syncer.failure) {
      this.options.log.warn("restarting embedded syncer after a failure", {
        binding: name,
        error: running.syncer.failure,
      });
      await this.#stopOne(name);
      running = undefined;
    }
    if (!running) {
      const config = await loadKubeconfigText(kubeconfig, {
        source: `ClusterBinding ${name} kubeconfig`,
        dataOnly: !this.options.trustKubeconfigSecrets,
      });
      const physical = KubeClient.fromConfig(config, {
        ...DEFAULT_CLIENT_LIMITS,
        observer: this.options.runtimeMetrics?.requestObserver(new URL(config.server).host),
      });
      const syncer = new Syncer(this.options.virtual, physical, {
        bindingName: name,
        clusterID: spec.clusterID,
        mountNamespace: spec.mountNamespace,
        proxier: this.options.proxier,
        clock: this.options.clock,
        log: this.options.log,
        registry: this.options.registry,
        runtimeMetrics: this.options.runtimeMetrics,
        resyncMs: this.options.resyncMs,
      }).start();
      running = { syncer, physical, fingerprint, announced: "" };
      this.#running.set(name, running);
    }
    // In-process: the syncer's own report is first-hand (no heartbeat needed).
    const health = running.syncer.health();
    return { ...health, message: `the embedded syncer: ${health.message}` };
  }

  async remove(binding: ClusterBinding): Promise<boolean> {
    // The syncer has cleaned up (or released the binding without its worker): requests still
    // retrying against a dead worker would only hold the deletion up.
    await this.#stopOne(binding.metadata!.name!, { abandonWorker: true });
    return true;
  }

  async #stopOne(name: string, options: { abandonWorker?: boolean } = {}): Promise<void> {
    const running = this.#running.get(name);
    if (!running) return;
    this.#running.delete(name);
    const stopped = running.syncer.stop();
    if (options.abandonWorker) running.physical.close();
    await stopped;
    running.physical.close();
  }

  async stop(): Promise<void> {
    clearInterval(this.#poll);
    await Promise.all([...this.#running.keys()].map((name) => this.#stopOne(name)));
    this.#changes.close();
  }
}
