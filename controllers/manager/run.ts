/**
 * `deno task run manager`: the manager process.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { KubeClient } from "../../toolkit/client/client.ts";
import { EventRecorder } from "../../toolkit/runtime/events.ts";
import { Manager } from "../../toolkit/runtime/manager.ts";
import {
  clientLimitOptions,
  COMMON_OPTIONS,
  type CommonFlags,
  DEFAULT_CLIENT_LIMITS,
  makeLogger,
  parseClientLimits,
  parseTrust,
  processManager,
  TRUST_OPTION,
} from "../common/process.ts";
import { SYSTEM_NAMESPACE } from "../common/names.ts";
import { clusterBindingController } from "./clusterbinding_controller.ts";
import { DeploymentRunner } from "./deployment_runner.ts";
import { EmbeddedRunner } from "./embedded_runner.ts";
import { ManagerMetrics } from "./metrics.ts";
import type { SyncerRunner } from "./syncer_runner.ts";
import { addKubeletApi, listenerFlagOptions, parseListenerFlags } from "../proxier/listener.ts";

/** The image rendered syncer and proxier Deployments run by default. */
const DEFAULT_IMAGE = "ghcr.io/kubeocean/kubeocean:0.1.0";

/** Runs the manager until SIGINT/SIGTERM. */
export async function runManager(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      ...COMMON_OPTIONS,
      "syncer-mode": { type: "string", default: "deployment" },
      namespace: { type: "string", default: Deno.env.get("POD_NAMESPACE") ?? SYSTEM_NAMESPACE },
      image: { type: "string", default: DEFAULT_IMAGE },
      "leader-election-id": { type: "string", default: "kubeocean-manager" },
      "proxier-address": { type: "string", default: "127.0.0.1" },
      "proxier-port": { type: "string", default: "10250" },
      ...listenerFlagOptions("proxier-"),
      "resync-period": { type: "string", default: "300" },
      ...TRUST_OPTION,
      ...clientLimitOptions("kube-client", DEFAULT_CLIENT_LIMITS),
    },
  });
  const flags: CommonFlags = values;
  const log = makeLogger(flags, "manager");
  const clientLimits = parseClientLimits(values, "kube-client");
  const trustKubeconfigSecrets = parseTrust(values);
  const mode = values["syncer-mode"];
  if (mode !== "deployment" && mode !== "embedded") {
    throw new Error(`--syncer-mode: "${mode}" is not deployment or embedded`);
  }
  const client = await KubeClient.load({ kubeconfig: values.kubeconfig, context: values.context });
  const metrics = new ManagerMetrics();
  const observed = KubeClient.fromConfig(client.config, {
    observer: metrics.runtime.requestObserver(new URL(client.config.server).host),
    ...clientLimits,
  });
  const manager = processManager(flags, {
    name: "manager",
    client: observed,
    log,
    metrics: metrics.runtime,
    namespace: values.namespace,
    leaseName: values["leader-election-id"],
  });
  const recorder = new EventRecorder(observed.transport, { controller: "kubeocean.io/manager", log });
  const proxier = { address: values["proxier-address"], port: Number(values["proxier-port"]) };
  const embedded = mode === "embedded"
    ? new EmbeddedRunner({
      virtual: observed,
      log,
      registry: metrics.runtime.registry,
      runtimeMetrics: metrics.runtime,
      proxier,
      resyncMs: Number(values["resync-period"]) * 1000,
      trustKubeconfigSecrets,
    })
    : undefined;
  const runner: SyncerRunner = embedded ?? new DeploymentRunner({
    client: observed,
    namespace: values.namespace,
    image: values.image,
    log,
    trustKubeconfigSecrets,
  });
  if (embedded) {
    // One kubelet API listener (on the leader) for every embedded syncer's virtual nodes, routed
    // by their binding label.
    await addKubeletApi(manager, {
      ...parseListenerFlags(values, "proxier-", {
        listenPort: values["proxier-port"],
        advertiseAddress: values["proxier-address"],
        csrNodeName: "kubeocean-manager",
        portFlag: "proxier-port",
      }),
      computing: observed,
      bindings: embedded,
      log,
    });
  }
  clusterBindingController(manager, {
    client: observed,
    runner,
    recorder,
    metrics,
    namespace: values.namespace,
    trustKubeconfigSecrets,
  });
  log.info("manager starting", { mode, namespace: values.namespace, server: client.config.server });
  try {
    await manager.run(Manager.shutdownSignal(log));
  } finally {
    await runner.stop();
    await recorder.flush();
    observed.close();
    client.close();
    log.info("manager stopped");
  }
}
