/**
 * A complete controller in about 30 lines: every ConfigMap labelled
 * `example.kubeocean.io/checksum=true` gets an annotation with the SHA-256 of its data. The
 * Manager serves `/metrics` on :8080 and `/healthz|readyz` on :8081 and stops on SIGINT/SIGTERM.
 *
 * ```sh
 * deno run --allow-net --allow-read --allow-env --allow-run toolkit/examples/configmap_checksum.ts
 * ```
 *
 * @module
 */
import { Action, KubeClient, Logger, Manager, sha256Hex } from "../../mod.ts";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";

const ANNOTATION = "example.kubeocean.io/sha256";
const client = await KubeClient.load(); // kubeconfig or in-cluster, like kubectl
const configMaps = new CoreV1Api(client).configmaps(); // all namespaces
const manager = new Manager({
  name: "configmap-checksum",
  client,
  logger: new Logger({ format: "json" }),
  metricsAddress: { port: Number(Deno.env.get("METRICS_PORT") ?? 8080) },
  healthAddress: { port: Number(Deno.env.get("HEALTH_PORT") ?? 8081) },
});

manager.controller(configMaps, {
  name: "configmap-checksum",
  labelSelector: "example.kubeocean.io/checksum=true",
})
  .build(async (ref, ctx) => {
    const cm = ctx.object;
    if (!cm) return Action.done(); // deleted meanwhile
    const digest = await sha256Hex(JSON.stringify(cm.data ?? {}));
    if (cm.metadata?.annotations?.[ANNOTATION] === digest) return Action.done();
    await configMaps.namespace(ref.namespace!).patch(ref.name, {
      metadata: { annotations: { [ANNOTATION]: digest } },
    }, { type: "merge" });
    ctx.log.info("checksum updated", { digest });
    return Action.done();
  });

await manager.run(Manager.shutdownSignal(manager.log));
client.close();
