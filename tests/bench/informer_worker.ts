/**
 * One side of `deno task bench informer`, run in its own process so its memory is measured alone:
 * syncs a ConfigMap informer (ours with its defaults — `kubeocean`, which drops managedFields —
 * or storing objects as received — `kubeocean-full` — or `@kubernetes/client-node`'s), reports, then waits until it
 * has seen every update of the round; or (`floor`) measures what any client pays at least.
 *
 * Protocol on standard output: `SYNCED <ms> <rss> <heapUsed>` once the informer holds every
 * object; `UPDATED <ms> <rss> <heapUsed>` once it has seen `updates` objects with `data.round`
 * equal to `round` (the parent writes them after SYNCED). `floor` prints only
 * `FLOOR <list ms> <ms to load the config and send one small request> <rss before the list>`.
 *
 * @module
 */

import { KubeClient } from "../../toolkit/client/client.ts";
import type { KubeObject } from "../../toolkit/client/resource.ts";
import { Informer } from "../../toolkit/runtime/informer.ts";

const [impl, kubeconfig, namespace, expectedText, updatesText, round] = Deno.args;
const expected = Number(expectedText);
const updates = Number(updatesText);

function memory(): string {
  const m = Deno.memoryUsage();
  return `${m.rss} ${m.heapUsed}`;
}

let started = performance.now();
const seen = new Set<string>();
let syncedAt = 0;
let resolveUpdated!: () => void;
const updated = new Promise<void>((resolve) => resolveUpdated = resolve);

function observe(name: string, data: Record<string, string> | undefined): void {
  if (data?.round !== round || seen.has(name)) return;
  seen.add(name);
  if (seen.size === updates) resolveUpdated();
}

if (impl === "kubeocean" || impl === "kubeocean-full") {
  const client = await KubeClient.load({ kubeconfig, qps: 0 });
  const informer = new Informer(
    client.resource<KubeObject & { data?: Record<string, string> }>({
      group: "",
      version: "v1",
      kind: "ConfigMap",
      plural: "configmaps",
      namespaced: true,
    }, namespace),
    // kubeocean-full stores objects as received, managedFields included, as client-node does.
    impl === "kubeocean-full" ? { transform: (object) => object } : {},
  );
  const events = informer.events();
  await informer.ready();
  if (informer.store.size < expected) throw new Error(`synced with ${informer.store.size} objects`);
  syncedAt = performance.now();
  console.log(`SYNCED ${Math.round(syncedAt - started)} ${memory()}`);
  for await (const event of events) {
    if (event.type === "Apply" || event.type === "InitApply") {
      observe(event.object.metadata?.name ?? "", event.object.data);
    }
    if (seen.size === updates) break;
  }
  await updated;
  console.log(`UPDATED ${Math.round(performance.now() - syncedAt)} ${memory()}`);
  await informer.stop();
  client.close();
} else if (impl === "client-node") {
  // Imported only here, so that the other side's memory does not include this library.
  const k8s = await import("@kubernetes/client-node");
  started = performance.now();
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  const api = kc.makeApiClient(k8s.CoreV1Api);
  const informer = k8s.makeInformer(
    kc,
    `/api/v1/namespaces/${namespace}/configmaps`,
    () => api.listNamespacedConfigMap({ namespace }),
  );
  informer.on(
    "update",
    (cm: { metadata?: { name?: string }; data?: Record<string, string> }) =>
      observe(cm.metadata?.name ?? "", cm.data),
  );
  informer.on("error", (err: unknown) => console.error("client-node informer error", err));
  await informer.start();
  if (informer.list(namespace).length < expected) {
    throw new Error(`synced with ${informer.list(namespace).length} objects`);
  }
  syncedAt = performance.now();
  console.log(`SYNCED ${Math.round(syncedAt - started)} ${memory()}`);
  await updated;
  console.log(`UPDATED ${Math.round(performance.now() - syncedAt)} ${memory()}`);
  await informer.stop();
} else if (impl === "floor") {
  // What any client pays at least: one unpaged list request and JSON.parse, nothing stored. Its
  // memory before the list is the runtime's own (imports, one TLS connection).
  const warm = performance.now();
  const client = await KubeClient.load({ kubeconfig, qps: 0 });
  const namespaces = client.resource<KubeObject>({
    group: "",
    version: "v1",
    kind: "Namespace",
    plural: "namespaces",
    namespaced: false,
  });
  await namespaces.get(namespace);
  const firstRequestMs = performance.now() - warm;
  const idleRss = Deno.memoryUsage().rss;
  const listed = performance.now();
  const list = await client.resource<KubeObject>({
    group: "",
    version: "v1",
    kind: "ConfigMap",
    plural: "configmaps",
    namespaced: true,
  }, namespace).list();
  if (list.items.length < expected) throw new Error(`listed ${list.items.length} objects`);
  console.log(`FLOOR ${Math.round(performance.now() - listed)} ${Math.round(firstRequestMs)} ${idleRss}`);
  client.close();
} else {
  throw new Error(`unknown implementation ${impl}`);
}
Deno.exit(0);
