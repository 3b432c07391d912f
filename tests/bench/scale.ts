/**
 * `deno task bench scale [--nodes 1000] [--pods 10000] [--idle 60]`: Kubeocean at scale on one
 * machine. A worker with N kwok nodes, all leased, and P pods: first straight into the worker
 * (the baseline, before any Kubeocean process exists), then through Kubeocean (a manager and a
 * syncer, each its own process, as deployed). Reports the time to every pod Running (ratio), the
 * syncer's and manager's peak (kernel high-water mark) and settled RSS, the syncer's CPU while
 * idle over `--idle` seconds with every pod running, the computing cluster's write requests per
 * second meanwhile against what N real kubelets write (one Lease renewal per node per 10 s), and
 * how long a restarted syncer takes to converge, with the writes it makes meanwhile beyond lease
 * renewals (nothing should be rewritten).
 *
 * Knobs: `--nodes`, `--pods`, `--idle`; kwok nodes get `pods` capacity P/N + 20. Pods mount no
 * ServiceAccount token (see `sync_runs.ts`). On 2 cores and 24 GiB the default run takes about
 * 15–25 minutes.
 *
 * Last line: `scale: vnodes N, pods P, ratio X, syncer rss M MiB, idle cpu C %, idle writes W/s`
 * (M: settled RSS).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseAllDocuments } from "yaml";
import { CoreV1Api, type Node, type Pod } from "../../apis/core/v1/mod.ts";
import { AppsV1Api } from "../../apis/apps/v1/mod.ts";
import { KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { onVirtualNodes } from "../../controllers/common/placement.ts";
import { applyObject } from "../../controllers/common/apply.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { connect, eventually } from "../../toolkit/envtest/testing.ts";
import { allocatePort } from "../../toolkit/envtest/ports.ts";
import { spawnEntrypoint } from "../fixtures/entrypoint.ts";
import {
  apiWrites,
  bindForBench,
  cleanUpOnInterrupt,
  observeChanges,
  processCpuSeconds,
  processMemory,
  startEnvironment,
  SyncerProcess,
  type WriteCounts,
  writesBetween,
} from "./support.ts";

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Creates a Deployment of `replicas` in `namespace` and resolves with the ms until all are Running. */
async function deployUntilRunning(
  client: KubeClient,
  namespace: string,
  replicas: number,
  virtual: boolean,
): Promise<number> {
  await new CoreV1Api(client).namespaces().create({ metadata: { name: namespace } });
  const running = new Set<string>();
  const done = Promise.withResolvers<void>();
  const stop = new AbortController();
  await observeChanges(new CoreV1Api(client).pods(namespace), { signal: stop.signal }, (type, pod: Pod) => {
    if (type !== "Delete" && pod.status?.phase === "Running") running.add(pod.metadata!.uid!);
    if (running.size >= replicas) done.resolve();
  });
  const progress = setInterval(
    () => console.log(`    ${namespace}: ${running.size}/${replicas} Running`),
    15_000,
  );
  const t0 = performance.now();
  await new AppsV1Api(client).deployments(namespace).create({
    metadata: { name: "load" },
    spec: {
      replicas,
      selector: { matchLabels: { app: "load" } },
      template: {
        metadata: { labels: { app: "load" } },
        spec: {
          ...(virtual ? onVirtualNodes() : {}),
          automountServiceAccountToken: false,
          containers: [{
            name: "app",
            image: "registry.example/app:1",
            resources: { requests: { cpu: "10m" } },
          }],
        },
      },
    },
  });
  await done.promise;
  const ms = performance.now() - t0;
  clearInterval(progress);
  stop.abort();
  return ms;
}

/** Scales the namespace's Deployment to 0 and waits until its pods are gone. */
async function removeAll(client: KubeClient, namespace: string): Promise<void> {
  await new AppsV1Api(client).deployments(namespace).patch("load", { spec: { replicas: 0 } }, {
    type: "merge",
  });
  await eventually(
    `${namespace} empty`,
    async () => (await new CoreV1Api(client).pods(namespace).list({ limit: 1 })).items.length === 0,
    { timeoutMs: 1_800_000, intervalMs: 2_000 },
  );
}

/** Writes between two readings, without Lease renewals (`PUT leases`). */
function nonLeaseWrites(before: WriteCounts, after: WriteCounts): { total: number; top: string } {
  const strip = (counts: WriteCounts) =>
    new Map([...counts].filter(([key]) => !key.startsWith("PUT leases")));
  return writesBetween(strip(before), strip(after));
}

/** Runs the benchmark. */
export async function benchScale(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      nodes: { type: "string", default: "1000" },
      pods: { type: "string", default: "10000" },
      idle: { type: "string", default: "60" },
    },
  });
  const nodeCount = Number(values.nodes);
  const podCount = Number(values.pods);
  const idleSeconds = Number(values.idle);
  console.log(
    `bench scale: ${nodeCount} kwok nodes, all leased; ${podCount} pods straight into the worker (baseline, ` +
      `no Kubeocean process alive), then through Kubeocean; idle ${idleSeconds} s`,
  );
  const env = await startEnvironment({
    clusters: [
      { name: "computing", controlPlane: true },
      {
        name: "worker",
        kwok: true,
        controlPlane: true,
        nodeTemplate: {
          capacity: { cpu: "64", memory: "256Gi", pods: String(Math.ceil(podCount / nodeCount) + 20) },
        },
      },
    ],
  });
  const computing = await connect(env.cluster("computing"));
  const worker = await connect(env.cluster("worker"));
  let syncer: SyncerProcess | undefined;
  let manager: Deno.ChildProcess | undefined;
  const stopManager = async () => {
    try {
      manager?.kill("SIGTERM");
    } catch {
      // gone
    }
    await manager?.status;
    manager = undefined;
  };
  cleanUpOnInterrupt(stopManager);
  try {
    const created = performance.now();
    await env.cluster("worker").createNodes(nodeCount, { deadline: Date.now() + 1_800_000 });
    console.log(`  ${nodeCount} worker nodes created in ${seconds(performance.now() - created)}`);

    const baselineMs = await deployUntilRunning(worker, "direct", podCount, false);
    console.log(`  baseline: ${podCount} pods Running in the worker in ${seconds(baselineMs)}`);
    await removeAll(worker, "direct");

    await bindForBench(computing, worker, "bench");
    // The manager's namespace and accounts as shipped: the Deployments it renders can create pods.
    for (const file of ["namespace.yaml", "rbac.yaml"]) {
      const text = await Deno.readTextFile(new URL(`../../deploy/manager/${file}`, import.meta.url));
      for (const document of parseAllDocuments(text)) {
        const object = document.toJS();
        if (object) await applyObject(computing, object);
      }
    }
    manager = spawnEntrypoint([
      "manager",
      "--kubeconfig",
      env.cluster("computing").kubeconfig,
      "--metrics-bind-address",
      "0",
      "--health-probe-bind-address",
      `127.0.0.1:${allocatePort()}`,
      "--log-level",
      "error",
    ], "null");
    syncer = new SyncerProcess(env.cluster("computing").kubeconfig, "bench");
    await syncer.ready(300_000);
    const leasedAt = performance.now();
    await new KubeoceanIoV1beta1Api(worker).resourceleasingpolicies().create({
      metadata: { name: "all" },
      spec: { cluster: "bench" },
    });
    await eventually("every virtual node Ready", async () => {
      const list = await new CoreV1Api(computing).nodes().list({
        labelSelector: "kubeocean.io/cluster-binding=bench",
      });
      return list.items.length === nodeCount &&
        list.items.every((n: Node) =>
          n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
        );
    }, { timeoutMs: 1_800_000, intervalMs: 2_000 });
    console.log(
      `  ${nodeCount} virtual nodes Ready ${seconds(performance.now() - leasedAt)} after the policy`,
    );
    const binding = await new KubeoceanIoV1beta1Api(computing).clusterbindings().get("bench");
    console.log(
      `  binding: ${binding.status?.phase}; ${
        (binding.status?.conditions ?? []).map((c) => `${c.type}=${c.status} (${c.reason})`).join(", ")
      }`,
    );

    const syncedMs = await deployUntilRunning(computing, "synced", podCount, true);
    const ratio = syncedMs / baselineMs;
    console.log(`  kubeocean: ${podCount} pods Running in the computing cluster in ${seconds(syncedMs)}`);

    // Idle, every pod running: the syncer's CPU and the computing cluster's writes.
    await new Promise((r) => setTimeout(r, 10_000)); // let the last statuses settle
    const cpu0 = await processCpuSeconds(syncer.pid);
    const writes0 = await apiWrites(computing);
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const idleCpu = (await processCpuSeconds(syncer.pid) - cpu0) / idleSeconds * 100;
    const idleWrites = writesBetween(writes0, await apiWrites(computing));
    const writesPerSecond = idleWrites.total / idleSeconds;
    const syncerMemory = await processMemory(syncer.pid);
    const managerMemory = await processMemory(manager.pid);
    console.log(
      `  idle ${idleSeconds} s: syncer CPU ${idleCpu.toFixed(1)} % of a core; computing-cluster writes ` +
        `${writesPerSecond.toFixed(1)}/s (${idleWrites.top}); ${nodeCount} kubelets would write ${
          (nodeCount / 10).toFixed(1)
        }/s`,
    );
    console.log(
      `  RSS: syncer peak ${syncerMemory.peak.toFixed(0)} MiB, settled ${syncerMemory.rss.toFixed(0)} MiB; ` +
        `manager peak ${managerMemory.peak.toFixed(0)} MiB, settled ${managerMemory.rss.toFixed(0)} MiB`,
    );

    // A restarted syncer: until its caches are in and it answers ready, then 30 s more; only lease
    // renewals should be written.
    await syncer.stop();
    const before = { computing: await apiWrites(computing), worker: await apiWrites(worker) };
    const restartedAt = performance.now();
    syncer = new SyncerProcess(env.cluster("computing").kubeconfig, "bench");
    await syncer.ready(600_000);
    const readyMs = performance.now() - restartedAt;
    await new Promise((r) => setTimeout(r, 30_000));
    const rewritten = {
      computing: nonLeaseWrites(before.computing, await apiWrites(computing)),
      worker: nonLeaseWrites(before.worker, await apiWrites(worker)),
    };
    const restartedMemory = await processMemory(syncer.pid);
    console.log(
      `  restart: caches in and ready after ${
        seconds(readyMs)
      }; writes besides lease renewals in the next 30 s: ` +
        `computing ${rewritten.computing.total} (${
          rewritten.computing.top || "none"
        }), worker ${rewritten.worker.total} (${rewritten.worker.top || "none"}); restarted syncer peak RSS ${
          restartedMemory.peak.toFixed(0)
        } MiB`,
    );
    console.log(
      `scale: vnodes ${nodeCount}, pods ${podCount}, ratio ${ratio.toFixed(2)}, syncer rss ${
        syncerMemory.rss.toFixed(0)
      } MiB, idle cpu ${idleCpu.toFixed(1)} %, idle writes ${writesPerSecond.toFixed(1)}/s`,
    );
  } finally {
    await syncer?.stop();
    await stopManager();
    computing.close();
    worker.close();
    await env.stop();
  }
}
