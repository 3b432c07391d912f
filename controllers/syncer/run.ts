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
import { loadKubeconfigText } from "../../toolkit/client/kubeconfig.ts";
import { loadConfig } from "../../toolkit/client/config.ts";
import { sleep } from "../../toolkit/client/rate_limiter.ts";
import { RuntimeMetrics } from "../../toolkit/runtime/metrics.ts";
import {
  clientLimitOptions,
  COMMON_OPTIONS,
  type CommonFlags,
  DEFAULT_CLIENT_LIMITS,
  makeLogger,
  parseClientLimits,
  runElected,
  serveOperations,
  shutdownSignal,
} from "../common/process.ts";
import { KUBECONFIG_KEY, SYSTEM_NAMESPACE } from "../common/names.ts";
import { sha256 } from "../manager/syncer_runner.ts";
import { Syncer } from "./syncer.ts";

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
      ...clientLimitOptions("virtual-client", DEFAULT_CLIENT_LIMITS),
      ...clientLimitOptions("physical-client", DEFAULT_CLIENT_LIMITS),
    },
  });
  const name = values["cluster-binding"];
  if (!name) throw new Error("--cluster-binding NAME is required");
  const flags = values as unknown as CommonFlags;
  const virtualLimits = parseClientLimits(values, "virtual-client");
  const physicalLimits = parseClientLimits(values, "physical-client");
  const log = makeLogger(flags, "syncer").with({ binding: name });
  const signal = shutdownSignal(log);
  const runtime = new RuntimeMetrics();
  const registry = runtime.registry;
  const health = serveOperations(flags, registry, signal, log);
  const virtualConfig = await loadConfig({ kubeconfig: values.kubeconfig, context: values.context });
  const virtual = KubeClient.fromConfig(virtualConfig, {
    ...virtualLimits,
    observer: runtime.requestObserver(new URL(virtualConfig.server).host),
  });
  const bindings = new KubeoceanIoV1beta1Api(virtual).clusterbindings();
  try {
    await runElected({
      client: virtual,
      elect: values["leader-elect"] ?? false,
      namespace: values.namespace!,
      name: `kubeocean-syncer-${name}`,
      log,
      signal,
    }, async (leading) => {
      const binding = await bindings.get(name);
      const ref = binding.spec!.secretRef;
      const readKubeconfig = async () => {
        const secret = await new CoreV1Api(virtual).secrets(ref.namespace).get(ref.name);
        const data = secret.data?.[KUBECONFIG_KEY];
        if (!data) throw new Error(`Secret ${ref.namespace}/${ref.name} has no "${KUBECONFIG_KEY}" key`);
        return new TextDecoder().decode(Uint8Array.from(atob(data), (c) => c.charCodeAt(0)));
      };
      const kubeconfig = await readKubeconfig();
      const hash = await sha256(kubeconfig);
      const physicalConfig = await loadKubeconfigText(kubeconfig, {
        source: `Secret ${ref.namespace}/${ref.name}`,
      });
      const physical = KubeClient.fromConfig(physicalConfig, {
        ...physicalLimits,
        observer: runtime.requestObserver(new URL(physicalConfig.server).host),
      });
      const syncer = new Syncer(virtual, physical, {
        bindingName: name,
        clusterID: binding.spec!.clusterID,
        mountNamespace: binding.spec!.mountNamespace,
        proxier: { address: values["proxier-address"]!, port: Number(values["proxier-port"]) },
        log,
        registry,
        runtimeMetrics: runtime,
      }).start();
      health.addReadyz("syncer", () => syncer.ready || "caches not synced yet");
      // Watch for a rotated kubeconfig: restart with it (the Deployment restarts the process).
      while (!leading.aborted) {
        await sleep(30_000, leading).catch(() => {});
        if (leading.aborted) break;
        const now = await readKubeconfig().catch(() => kubeconfig);
        if (await sha256(now) !== hash) {
          log.info("kubeconfig changed; exiting to restart with it");
          break;
        }
      }
      await syncer.stop();
      physical.close();
    });
  } finally {
    virtual.close();
  }
}
