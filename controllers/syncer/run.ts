/**
 * `deno task run syncer --cluster-binding NAME`: one binding's syncer as its own process (what the
 * rendered syncer Deployment runs). It reads the binding and its kubeconfig Secret from the
 * computing cluster, and exits when the kubeconfig changes so that a fresh process picks it up.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { KubeClient } from "../../toolkit/client/client.ts";
import { loadConfig } from "../../toolkit/client/config.ts";
import { loadKubeconfigText } from "../../toolkit/client/kubeconfig.ts";
import type { Logger } from "../../toolkit/runtime/log.ts";
import { Manager } from "../../toolkit/runtime/manager.ts";
import { RuntimeMetrics } from "../../toolkit/runtime/metrics.ts";
import { sha256Hex, sleep } from "../../toolkit/util/mod.ts";
import { KUBECONFIG_KEY, SYSTEM_NAMESPACE } from "../common/names.ts";
import {
  clientLimitOptions,
  type ClientLimits,
  COMMON_OPTIONS,
  type CommonFlags,
  DEFAULT_CLIENT_LIMITS,
  makeLogger,
  parseClientLimits,
  parseTrust,
  processManager,
  TRUST_OPTION,
} from "../common/process.ts";
import type { ProxierEndpoint } from "./context.ts";
import { HeartbeatLease } from "./heartbeat_lease.ts";
import { Syncer } from "./syncer.ts";
import { isNotFound } from "../../toolkit/client/errors.ts";

/** How often the kubeconfig Secret is checked for a rotation or removal. */
const KUBECONFIG_CHECK_MS = 10_000;

/** Runs a syncer until SIGINT/SIGTERM. */
export async function runSyncer(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      ...COMMON_OPTIONS,
      "cluster-binding": { type: "string" },
      namespace: { type: "string", default: Deno.env.get("POD_NAMESPACE") ?? SYSTEM_NAMESPACE },
      "proxier-address": { type: "string", default: "127.0.0.1" },
      "proxier-port": { type: "string", default: "10250" },
      "proxier-pods-namespace": { type: "string" },
      ...clientLimitOptions("virtual-client", DEFAULT_CLIENT_LIMITS),
      ...clientLimitOptions("physical-client", DEFAULT_CLIENT_LIMITS),
      ...TRUST_OPTION,
    },
  });
  const name = values["cluster-binding"];
  if (!name) throw new Error("--cluster-binding NAME is required");
  const flags: CommonFlags = values;
  const virtualLimits = parseClientLimits(values, "virtual-client");
  const physicalLimits = parseClientLimits(values, "physical-client");
  const log = makeLogger(flags, "syncer").with({ binding: name });
  const metrics = new RuntimeMetrics();
  const virtualConfig = await loadConfig({ kubeconfig: values.kubeconfig, context: values.context });
  const virtual = KubeClient.fromConfig(virtualConfig, {
    ...virtualLimits,
    observer: metrics.requestObserver(new URL(virtualConfig.server).host),
  });
  const manager = processManager(flags, {
    name: "syncer",
    client: virtual,
    log,
    metrics,
    namespace: values.namespace,
    leaseName: `kubeocean-syncer-${name}`,
  });
  manager.add(
    new SyncerProcess(manager, virtual, {
      name,
      physicalLimits,
      proxier: {
        address: values["proxier-address"],
        port: Number(values["proxier-port"]),
        podNamespace: values["proxier-pods-namespace"],
      },
      log,
      trusted: parseTrust(values),
      namespace: values.namespace,
    }),
  );
  try {
    await manager.run(Manager.shutdownSignal(log));
  } finally {
    virtual.close();
  }
}

/**
 * The leading work of a syncer process: reads the binding and its kubeconfig, runs the syncer and
 * its heartbeat, and returns (the process then exits and restarts) when the kubeconfig Secret
 * changes. When the Secret is deleted or loses its kubeconfig the work fails: the heartbeat says
 * why one last time, the lease is released and the process exits non-zero — a leader never keeps
 * renewing while it cannot work.
 */
class SyncerProcess {
  readonly name = "syncer";

  constructor(
    readonly manager: Manager,
    readonly virtual: KubeClient,
    readonly options: {
      name: string;
      physicalLimits: ClientLimits;
      proxier: ProxierEndpoint;
      log: Logger;
      /** Whether the kubeconfig Secret may run programs and name files. */
      trusted: boolean;
      /** Where the heartbeat Lease lives (the syncer's namespace). */
      namespace: string;
    },
  ) {}

  async run(leading: AbortSignal): Promise<void> {
    const { name, log } = this.options;
    const binding = await new KubeoceanIoV1beta1Api(this.virtual).clusterbindings().get(name);
    const ref = binding.spec!.secretRef;
    const readKubeconfig = async () => {
      const secret = await new CoreV1Api(this.virtual).secrets(ref.namespace).get(ref.name);
      const data = secret.data?.[KUBECONFIG_KEY];
      if (!data) {
        throw new MissingKubeconfigError(
          `Secret ${ref.namespace}/${ref.name} has no "${KUBECONFIG_KEY}" key`,
        );
      }
      return new TextDecoder().decode(Uint8Array.from(atob(data), (c) => c.charCodeAt(0)));
    };
    const kubeconfig = await readKubeconfig();
    const hash = await sha256Hex(kubeconfig);
    const physicalConfig = await loadKubeconfigText(kubeconfig, {
      source: `Secret ${ref.namespace}/${ref.name}`,
      dataOnly: !this.options.trusted,
    });
    const physical = KubeClient.fromConfig(physicalConfig, {
      ...this.options.physicalLimits,
      observer: this.manager.metrics.requestObserver(new URL(physicalConfig.server).host),
    });
    const syncer = new Syncer(this.virtual, physical, {
      bindingName: name,
      clusterID: binding.spec!.clusterID,
      mountNamespace: binding.spec!.mountNamespace,
      proxier: this.options.proxier,
      log,
      runtimeMetrics: this.manager.metrics,
    });
    const heartbeat = new HeartbeatLease({
      client: this.virtual,
      namespace: this.options.namespace,
      binding: name,
      identity: Deno.env.get("POD_NAME") || Deno.hostname(),
      health: () => syncer.health(),
      log,
    });
    addProbes(this.manager, syncer, heartbeat);
    const stop = new AbortController();
    leading.addEventListener("abort", () => stop.abort(), { once: true });
    // A rotated kubeconfig: stop, so that a fresh process starts with it; a deleted one: fail.
    const watchKubeconfig = async () => {
      while (!stop.signal.aborted) {
        await sleep(KUBECONFIG_CHECK_MS, stop.signal).catch(() => {});
        if (stop.signal.aborted) return;
        let now: string;
        try {
          now = await readKubeconfig();
        } catch (err) {
          if (!isNotFound(err) && !(err instanceof MissingKubeconfigError)) continue; // transient: ask again
          const message = `kubeconfig Secret ${ref.namespace}/${ref.name}: ${
            isNotFound(err) ? "deleted" : (err as Error).message
          }`;
          await heartbeat.write(JSON.stringify({
            ready: false,
            reason: "KubeconfigUnreadable",
            message: `${message}; the syncer stopped`,
            workerReachable: syncer.health().workerReachable,
          })).catch(() => {});
          stop.abort();
          throw new Error(message);
        }
        if (await sha256Hex(now) !== hash) {
          log.info("kubeconfig changed; exiting to restart with it");
          stop.abort();
        }
      }
    };
    try {
      await Promise.all([
        syncer.run(stop.signal).finally(() => stop.abort()),
        heartbeat.run(stop.signal),
        watchKubeconfig(),
      ]);
    } finally {
      physical.close();
    }
  }
}

/** The binding's Secret exists but holds no kubeconfig. */
class MissingKubeconfigError extends Error {}

/**
 * Probes of a syncer process: ready while the syncer syncs (caches listed, the worker answers);
 * alive while its worker probe and its heartbeat keep running. A silent worker makes the replica
 * unready, never restarts it (a restart cannot fix another cluster).
 */
function addProbes(manager: Manager, syncer: Syncer, heartbeat: HeartbeatLease): void {
  manager.health.addReadyz("syncer", () => {
    const health = syncer.health();
    return health.ready || `${health.reason}: ${health.message}`;
  });
  const stalledAfterMs = 60_000;
  const started = performance.now();
  manager.health.addHealthz("worker-probe", () => {
    const last = syncer.reachability.lastProbeAt;
    const since = last ? Date.now() - last.getTime() : performance.now() - started;
    return since < stalledAfterMs || `the worker probe has not finished for ${Math.round(since / 1000)} s`;
  });
  manager.health.addHealthz("heartbeat", () => {
    const since = performance.now() - (heartbeat.lastWrittenAt ?? started);
    return since < stalledAfterMs || `no heartbeat written for ${Math.round(since / 1000)} s`;
  });
}
