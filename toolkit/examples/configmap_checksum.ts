/**
 * A complete controller in about 30 lines: every ConfigMap labelled
 * `example.kubeocean.io/checksum=true` gets an annotation with the SHA-256 of its data.
 *
 * ```sh
 * deno run --allow-net --allow-read --allow-env --allow-run toolkit/examples/configmap_checksum.ts
 * ```
 *
 * @module
 */
import { Action, ControllerBuilder, KubeClient, Logger } from "../../mod.ts";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";

const ANNOTATION = "example.kubeocean.io/sha256";
const client = await KubeClient.load(); // kubeconfig or in-cluster, like kubectl
const configMaps = new CoreV1Api(client).configmaps(); // all namespaces

const controller = new ControllerBuilder(configMaps, {
  name: "configmap-checksum",
  labelSelector: "example.kubeocean.io/checksum=true",
  logger: new Logger({ format: "json" }),
}).build(async (ref, ctx) => {
  const cm = ctx.object;
  if (!cm) return Action.done(); // deleted meanwhile
  const data = new TextEncoder().encode(JSON.stringify(cm.data ?? {}));
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  const digest = Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
  if (cm.metadata?.annotations?.[ANNOTATION] === digest) return Action.done();
  await configMaps.namespace(ref.namespace!).patch(ref.name, {
    metadata: { annotations: { [ANNOTATION]: digest } },
  }, { type: "merge" });
  ctx.log.info("checksum updated", { digest });
  return Action.done();
});

const stop = new AbortController();
for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, () => stop.abort());
await controller.run(stop.signal);
client.close();
