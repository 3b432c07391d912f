/**
 * The worker side of a standalone proxier: the binding's worker cluster, reached with the
 * kubeconfig Secret the binding names (the same least-privilege credentials as its syncer), and
 * its twin streams and resource usage. A rotated Secret is picked up within a poll period; streams already open keep
 * their old connection until they end.
 *
 * @module
 */

import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { type ClusterBinding, KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { KubeClient } from "../../toolkit/client/client.ts";
import { loadKubeconfigText } from "../../toolkit/client/kubeconfig.ts";
import type { Runnable } from "../../toolkit/runtime/controller.ts";
import type { Logger } from "../../toolkit/runtime/log.ts";
import type { RuntimeMetrics } from "../../toolkit/runtime/metrics.ts";
import { sha256Hex, sleep } from "../../toolkit/util/mod.ts";
import { KUBECONFIG_KEY } from "../common/names.ts";
import type { TwinStreams, TwinUsage } from "../syncer/provider.ts";
import { WorkerResourceUsage } from "../syncer/worker/resource_usage.ts";
import { WorkerStreams } from "../syncer/worker/streams.ts";
import type { ServedBindings } from "./resolve.ts";

/** How often the binding and its kubeconfig Secret are re-read. */
const REFRESH_MS = 30_000;
/** How long a replaced worker client stays open for the streams that still use it. */
const RETIRE_AFTER_MS = 15 * 60_000;

/** Keeps one binding's worker streams current. */
export class BindingWorker implements ServedBindings, Runnable {
  readonly name = "binding-worker";
  #streams?: WorkerStreams;
  #usage?: WorkerResourceUsage;
  #client?: KubeClient;
  #fingerprint = "";

  constructor(
    readonly computing: KubeClient,
    readonly options: {
      name: string;
      trusted: boolean;
      metrics: RuntimeMetrics;
      log: Logger;
      /** Called once when the worker's metrics API cannot be read (until it can again). */
      onMetricsUnavailable?: (binding: ClusterBinding, message: string) => void;
    },
  ) {}

  /** Whether the worker is reachable through a loaded kubeconfig. */
  get ready(): boolean {
    return this.#streams !== undefined;
  }

  streamsFor(binding: string): TwinStreams | undefined {
    return binding === this.options.name ? this.#streams : undefined;
  }

  usageFor(binding: string): TwinUsage | undefined {
    return binding === this.options.name ? this.#usage : undefined;
  }

  /** Loads the kubeconfig, then refreshes it until `signal` aborts (errors are logged and retried). */
  async run(signal: AbortSignal): Promise<void> {
    const retired = new Set<ReturnType<typeof setTimeout>>();
    try {
      while (!signal.aborted) {
        await this.refresh(retired).catch((err) =>
          this.options.log.warn("cannot load the binding's worker kubeconfig", { error: err })
        );
        await sleep(this.#streams ? REFRESH_MS : 2_000, signal).catch(() => {});
      }
    } finally {
      for (const timer of retired) clearTimeout(timer);
      this.#client?.close();
    }
  }

  /** Reads the binding and its Secret; swaps the worker client when either changed. */
  async refresh(retired: Set<ReturnType<typeof setTimeout>> = new Set()): Promise<void> {
    const { name, log } = this.options;
    const binding = await new KubeoceanIoV1beta1Api(this.computing).clusterbindings().get(name);
    const spec = binding.spec!;
    const secret = await new CoreV1Api(this.computing).secrets(spec.secretRef.namespace).get(
      spec.secretRef.name,
    );
    const data = secret.data?.[KUBECONFIG_KEY];
    if (!data) {
      throw new Error(
        `Secret ${spec.secretRef.namespace}/${spec.secretRef.name} has no "${KUBECONFIG_KEY}" key`,
      );
    }
    const kubeconfig = new TextDecoder().decode(Uint8Array.from(atob(data), (c) => c.charCodeAt(0)));
    const fingerprint = `${binding.metadata?.uid}/${spec.mountNamespace}/${await sha256Hex(kubeconfig)}`;
    if (fingerprint === this.#fingerprint) return;
    const config = await loadKubeconfigText(kubeconfig, {
      source: `Secret ${spec.secretRef.namespace}/${spec.secretRef.name}`,
      dataOnly: !this.options.trusted,
    });
    const client = KubeClient.fromConfig(config, {
      qps: 0,
      burst: 1,
      observer: this.options.metrics.requestObserver(new URL(config.server).host),
    });
    const previous = this.#client;
    this.#client = client;
    const served = { name, mountNamespace: spec.mountNamespace };
    this.#streams = new WorkerStreams(client, served);
    this.#usage = new WorkerResourceUsage(client, served, {
      onUnavailable: (message) => void this.options.onMetricsUnavailable?.(binding, message),
    });
    this.#fingerprint = fingerprint;
    log.info(previous ? "worker kubeconfig changed; using the new one" : "worker kubeconfig loaded", {
      server: config.server,
    });
    if (previous) {
      const timer = setTimeout(() => {
        retired.delete(timer);
        previous.close();
      }, RETIRE_AFTER_MS);
      retired.add(timer);
    }
  }
}
