/**
 * `deno task bench sync [--pods 1000] [--nodes 10] [--direct-scheduling]`: a Deployment through
 * Kubeocean until every pod is Running in the computing cluster, against the same Deployment
 * created directly in the worker until Running (same kwok set-up, same run); per-hop latencies
 * measured from both sides' watch streams (bound → twin created, twin Running → virtual pod
 * Running, and after scaling to 0, virtual pod deleted → twin gone); the syncer's RSS (it runs as
 * its own process); the write requests each API server answered in each phase (from its
 * `apiserver_request_total`).
 * `--direct-scheduling` sets the binding's directScheduling (twins bypass the worker's scheduler).
 *
 * Last line: `sync: ratio X, create p99 Y ms, status p99 Z ms`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { onVirtualNodes } from "../../controllers/common/placement.ts";
import type { Pod } from "../../apis/core/v1/mod.ts";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { AppsV1Api, type Deployment } from "../../apis/apps/v1/mod.ts";
import { KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { connect, eventually } from "../../toolkit/envtest/testing.ts";
import {
  apiWrites,
  bindForBench,
  busyShare,
  machineCpu,
  observeChanges,
  percentile,
  startEnvironment,
  SyncerProcess,
  writesBetween,
} from "./support.ts";

function deployment(name: string, replicas: number, virtual: boolean): Deployment {
  return {
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          ...(virtual ? onVirtualNodes() : {}),
          containers: [{
            name: "app",
            image: "registry.example/app:1",
            resources: { requests: { cpu: "10m" } },
          }],
        },
      },
    },
  };
}

/**
 * Runs `deploy`, resolves when `replicas` pods of the namespace are Running; returns the elapsed
 * ms and the machine's CPU share used meanwhile (every cluster runs on this machine).
 */
async function timeUntilRunning(
  client: KubeClient,
  namespace: string,
  replicas: number,
  deploy: () => Promise<unknown>,
  on: (type: "Apply" | "Delete", pod: Pod, at: number) => void = () => {},
): Promise<{ ms: number; busy: number }> {
  const running = new Set<string>();
  const done = Promise.withResolvers<void>();
  const stop = new AbortController();
  await observeChanges(new CoreV1Api(client).pods(namespace), { signal: stop.signal }, (type, pod, at) => {
    on(type, pod, at);
    if (type !== "Delete" && pod.status?.phase === "Running") running.add(pod.metadata!.uid!);
    if (running.size >= replicas) done.resolve();
  });
  const cpu0 = await machineCpu();
  const t0 = performance.now();
  await deploy();
  const progress = setInterval(
    () => console.log(`    ${namespace}: ${running.size}/${replicas} Running`),
    5000,
  );
  await done.promise;
  clearInterval(progress);
  const elapsed = performance.now() - t0;
  const busy = busyShare(cpu0, await machineCpu());
  stop.abort();
  return { ms: elapsed, busy };
}

/** Runs the benchmark. */
export async function benchSync(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      pods: { type: "string", default: "1000" },
      nodes: { type: "string", default: "10" },
      // The binding's directScheduling: twins get spec.nodeName, bypassing the worker's scheduler.
      "direct-scheduling": { type: "boolean", default: false },
    },
  });
  const replicas = Number(values.pods);
  const nodeCount = Number(values.nodes);
  console.log(
    `bench sync: ${replicas} pods on ${nodeCount} kwok nodes; baseline: the same Deployment in the worker`,
  );
  const env = await startEnvironment({
    clusters: [
      { name: "computing", controlPlane: true },
      {
        name: "worker",
        nodes: nodeCount,
        nodeTemplate: {
          capacity: { cpu: "64", memory: "256Gi", pods: String(Math.ceil(replicas / nodeCount) + 20) },
        },
      },
    ],
  });
  const computing = await connect(env.cluster("computing"));
  const worker = await connect(env.cluster("worker"));
  let syncer: SyncerProcess | undefined;
  try {
    await bindForBench(computing, worker, "bench", { directScheduling: values["direct-scheduling"] });
    await new KubeoceanIoV1beta1Api(worker).resourceleasingpolicies().create({
      metadata: { name: "all" },
      spec: { cluster: "bench" },
    });
    syncer = new SyncerProcess(
      env.cluster("computing").kubeconfig,
      "bench",
      (Deno.env.get("BENCH_SYNCER_ARGS") ?? "").split(" ").filter(Boolean),
    );
    await eventually("virtual nodes Ready", async () => {
      const list = await new CoreV1Api(computing).nodes().list({
        labelSelector: "kubeocean.io/cluster-binding=bench",
      });
      return list.items.length === nodeCount &&
        list.items.every((n) => n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"));
    }, { timeoutMs: 120_000 });

    // Baseline: straight into the worker.
    await new CoreV1Api(worker).namespaces().create({ metadata: { name: "direct" } });
    const baselineWrites = await apiWrites(worker);
    const baseline = await timeUntilRunning(
      worker,
      "direct",
      replicas,
      () => new AppsV1Api(worker).deployments("direct").create(deployment("direct", replicas, false)),
    );
    const baselineMs = baseline.ms;
    console.log(
      `  baseline: ${replicas} pods Running in the worker in ${
        (baselineMs / 1000).toFixed(2)
      } s, machine CPU ${(baseline.busy * 100).toFixed(0)} % busy`,
    );
    const baselineWritten = writesBetween(baselineWrites, await apiWrites(worker));
    console.log(`    API writes, worker: ${baselineWritten.total} (${baselineWritten.top})`);
    await new AppsV1Api(worker).deployments("direct").delete("direct", { propagationPolicy: "Foreground" });
    await new CoreV1Api(worker).pods("direct").deleteCollection({ gracePeriodSeconds: 0 });
    await eventually(
      "baseline pods gone",
      async () => (await new CoreV1Api(worker).pods("direct").list({ limit: 1 })).items.length === 0,
      { timeoutMs: 120_000 },
    );

    // Through Kubeocean, with both sides' events timed.
    const bound = new Map<string, number>();
    const virtualRunning = new Map<string, number>();
    const twinCreated = new Map<string, number>();
    const twinRunning = new Map<string, number>();
    const twinGone = new Map<string, number>();
    const twinStop = new AbortController();
    await observeChanges(new CoreV1Api(worker).pods("kubeocean-worker"), { signal: twinStop.signal }, (
      type,
      twin,
      at,
    ) => {
      const uid = twin.metadata?.annotations?.["kubeocean.io/virtual-pod-uid"];
      if (!uid) return;
      if (type === "Delete") {
        twinGone.set(uid, at);
        return;
      }
      if (!twinCreated.has(uid)) twinCreated.set(uid, at);
      if (twin.status?.phase === "Running" && !twinRunning.has(uid)) twinRunning.set(uid, at);
    });
    const cpuBefore = await syncer.cpuSeconds();
    const writesBefore = { computing: await apiWrites(computing), worker: await apiWrites(worker) };
    const synced = await timeUntilRunning(
      computing,
      "default",
      replicas,
      () => new AppsV1Api(computing).deployments("default").create(deployment("synced", replicas, true)),
      (type, pod, at) => {
        const uid = pod.metadata!.uid!;
        if (type === "Delete") return;
        if (pod.spec?.nodeName && !bound.has(uid)) bound.set(uid, at);
        if (pod.status?.phase === "Running" && !virtualRunning.has(uid)) virtualRunning.set(uid, at);
      },
    );
    const written = {
      computing: writesBetween(writesBefore.computing, await apiWrites(computing)),
      worker: writesBetween(writesBefore.worker, await apiWrites(worker)),
    };
    const syncedMs = synced.ms;
    const rss = await syncer.rssMiB();
    const cpu = await syncer.cpuSeconds() - cpuBefore;
    console.log(
      `  kubeocean: ${replicas} pods Running in the computing cluster in ${
        (syncedMs / 1000).toFixed(2)
      } s, machine CPU ${(synced.busy * 100).toFixed(0)} % busy`,
    );
    console.log(`    API writes, computing: ${written.computing.total} (${written.computing.top})`);
    console.log(`    API writes, worker: ${written.worker.total} (${written.worker.top})`);
    console.log(
      `    API writes through Kubeocean / baseline: ${
        ((written.computing.total + written.worker.total) / baselineWritten.total).toFixed(2)
      } (both API servers share this machine's cores)`,
    );
    const create = [...twinCreated].filter(([uid]) => bound.has(uid)).map(([uid, at]) =>
      at - bound.get(uid)!
    );
    const status = [...virtualRunning].filter(([uid]) => twinRunning.has(uid)).map(([uid, at]) =>
      at - twinRunning.get(uid)!
    );
    const fmt = (xs: number[]) =>
      `p50 ${percentile(xs, 50).toFixed(0)} ms, p99 ${percentile(xs, 99).toFixed(0)} ms (n=${xs.length})`;
    console.log(`  hop bound → twin created:   ${fmt(create)}`);
    console.log(`  hop twin Running → Running: ${fmt(status)}`);

    // The third hop: the Deployment scaled to 0, each virtual pod's deletion → its twin gone.
    const deletingAt = new Map<string, number>();
    const virtualGone = new Set<string>();
    const allGone = Promise.withResolvers<void>();
    const deletionStop = new AbortController();
    await observeChanges(new CoreV1Api(computing).pods("default"), { signal: deletionStop.signal }, (
      type,
      pod,
      at,
    ) => {
      const uid = pod.metadata!.uid!;
      if (pod.metadata?.deletionTimestamp && !deletingAt.has(uid)) deletingAt.set(uid, at);
      if (type === "Delete") virtualGone.add(uid);
      if (virtualGone.size >= replicas) allGone.resolve();
    });
    const deletionWrites = { computing: await apiWrites(computing), worker: await apiWrites(worker) };
    const scaledAt = performance.now();
    await new AppsV1Api(computing).deployments("default").patch("synced", { spec: { replicas: 0 } }, {
      type: "merge",
    });
    await allGone.promise;
    const goneMs = performance.now() - scaledAt;
    deletionStop.abort();
    twinStop.abort();
    const deleted = [...twinGone].filter(([uid]) => deletingAt.has(uid)).map(([uid, at]) =>
      at - deletingAt.get(uid)!
    );
    console.log(`  scaled to 0: ${replicas} virtual pods gone in ${(goneMs / 1000).toFixed(2)} s`);
    for (const [name, client] of [["computing", computing], ["worker", worker]] as const) {
      const w = writesBetween(deletionWrites[name], await apiWrites(client));
      console.log(`    API writes, ${name}: ${w.total} (${w.top})`);
    }
    console.log(`  hop deleted → twin gone:    ${fmt(deleted)}`);
    console.log(`  syncer RSS ${rss.toFixed(0)} MiB, CPU ${cpu.toFixed(1)} s while syncing`);
    const ratio = syncedMs / baselineMs;
    console.log(
      `sync: ratio ${ratio.toFixed(2)}, create p99 ${percentile(create, 99).toFixed(0)} ms, status p99 ${
        percentile(status, 99).toFixed(0)
      } ms`,
    );
  } finally {
    await syncer?.stop();
    computing.close();
    worker.close();
    await env.stop();
  }
}
