/**
 * `deno task run proxier --cluster-binding NAME`: the kubelet API of one binding's virtual nodes as
 * its own process (what the rendered proxier Deployment runs). Every replica serves: the proxier
 * keeps no state but caches, so it needs no leader.
 *
 * ```
 * deno task run proxier --cluster-binding NAME [--listen-address 0.0.0.0] [--listen-port 10250]
 *   [--advertise-address IP] [--tls-cert-file F --tls-private-key-file F] [--client-ca-file F]
 *   [--trust-kubeconfig-secrets=false] [common flags]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { KubeClient } from "../../toolkit/client/client.ts";
import { loadConfig } from "../../toolkit/client/config.ts";
import { EventRecorder } from "../../toolkit/runtime/events.ts";
import { Manager } from "../../toolkit/runtime/manager.ts";
import { RuntimeMetrics } from "../../toolkit/runtime/metrics.ts";
import { SYSTEM_NAMESPACE } from "../common/names.ts";
import {
  COMMON_OPTIONS,
  type CommonFlags,
  makeLogger,
  parseTrust,
  processManager,
  TRUST_OPTION,
} from "../common/process.ts";
import { metricsUnavailableEvent } from "../syncer/worker/resource_usage.ts";
import { BindingWorker } from "./binding_worker.ts";
import { addKubeletApi, listenerFlagOptions, parseListenerFlags } from "./listener.ts";

/** Runs a proxier until SIGINT/SIGTERM. */
export async function runProxier(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      ...COMMON_OPTIONS,
      ...listenerFlagOptions(""),
      ...TRUST_OPTION,
      "cluster-binding": { type: "string" },
      namespace: { type: "string", default: Deno.env.get("POD_NAMESPACE") ?? SYSTEM_NAMESPACE },
      "listen-port": { type: "string", default: "10250" },
      "advertise-address": { type: "string", default: Deno.env.get("POD_IP") ?? "127.0.0.1" },
    },
  });
  const name = values["cluster-binding"];
  if (!name) throw new Error("--cluster-binding NAME is required");
  const flags: CommonFlags = values;
  const listener = parseListenerFlags(values, "", {
    listenPort: values["listen-port"],
    advertiseAddress: values["advertise-address"],
    csrNodeName: `kubeocean-proxier-${name}`,
    portFlag: "listen-port",
  });
  const log = makeLogger(flags, "proxier").with({ binding: name });
  const metrics = new RuntimeMetrics();
  const config = await loadConfig({ kubeconfig: values.kubeconfig, context: values.context });
  const computing = KubeClient.fromConfig(config, {
    qps: 0,
    burst: 1,
    observer: metrics.requestObserver(new URL(config.server).host),
  });
  const manager = processManager(flags, {
    name: "proxier",
    client: computing,
    log,
    metrics,
    namespace: values.namespace,
    leaseName: `kubeocean-proxier-${name}`,
  });
  const recorder = new EventRecorder(computing.transport, { controller: "kubeocean.io/proxier", log });
  const worker = new BindingWorker(computing, {
    name,
    trusted: parseTrust(values),
    metrics,
    log,
    onMetricsUnavailable: (binding, message) =>
      void recorder.publish(metricsUnavailableEvent(binding, message)).catch(() => {}),
  });
  manager.add(worker);
  manager.health.addReadyz("worker", () => worker.ready || "the worker kubeconfig is not loaded yet");
  await addKubeletApi(manager, { ...listener, computing, bindings: worker, log });
  try {
    await manager.run(Manager.shutdownSignal(log));
  } finally {
    await recorder.flush().catch(() => {});
    computing.close();
  }
}
