/**
 * One side of `bench sync`, once: the workload (a Deployment of N pods at once, or single pods at
 * a steady rate) straight into the worker (the baseline) or through Kubeocean, timed until every
 * pod is Running, then removed (scaled to 0, or deleted at the same rate) until every pod is gone.
 * Per-hop latencies come from both clusters' watch streams, stamped on arrival with this process's
 * monotonic clock (no API timestamps, which are rounded to the second).
 *
 * @module
 */

import type { Pod, PodSpec } from "../../apis/core/v1/mod.ts";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { AppsV1Api } from "../../apis/apps/v1/mod.ts";
import { onVirtualNodes } from "../../controllers/common/placement.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { eventually } from "../../toolkit/envtest/testing.ts";
import { apiWrites, busyShare, machineCpu, observeChanges, writesBetween } from "./support.ts";

/** What is created: `replicas` pods, at once (`rate` absent) or `rate` per second. */
export interface Workload {
  replicas: number;
  rate?: number;
  /**
   * Whether pods mount a ServiceAccount token. Off by default on both sides: through Kubeocean
   * each such pod costs a TokenRequest and a Secret (what a kubelet would do in a real worker), but
   * kwok requests no tokens, so the baseline would skip work a real cluster does.
   */
  serviceAccountTokens?: boolean;
}

/** What one run measured. */
export interface RunResult {
  /** From the first create to every pod Running. */
  ms: number;
  /** The machine's CPU share meanwhile. */
  busy: number;
  /** Write requests the API servers answered while the pods came up, and the largest kinds. */
  writes: number;
  writesTop: string;
  /** Each pod's create request sent → Running seen (steady rate only). */
  endToEnd: number[];
  /** Through Kubeocean: bound → twin created, twin Running → virtual Running, deleted → twin gone. */
  hops?: { create: number[]; status: number[]; deleted: number[] };
  /** From the first removal to every pod gone. */
  removalMs: number;
}

function podSpec(virtual: boolean, workload: Workload): PodSpec {
  return {
    ...(virtual ? onVirtualNodes() : {}),
    automountServiceAccountToken: workload.serviceAccountTokens ?? false,
    containers: [{ name: "app", image: "registry.example/app:1", resources: { requests: { cpu: "10m" } } }],
  };
}

const sleepUntil = (at: number) => new Promise((r) => setTimeout(r, Math.max(0, at - performance.now())));

/** Creates the workload in `namespace`; returns when every create was sent, with each pod's send time. */
async function createWorkload(
  client: KubeClient,
  namespace: string,
  workload: Workload,
  virtual: boolean,
): Promise<Map<string, number>> {
  const sentAt = new Map<string, number>();
  if (!workload.rate) {
    await new AppsV1Api(client).deployments(namespace).create({
      metadata: { name: "load" },
      spec: {
        replicas: workload.replicas,
        selector: { matchLabels: { app: "load" } },
        template: { metadata: { labels: { app: "load" } }, spec: podSpec(virtual, workload) },
      },
    });
    return sentAt;
  }
  const pods = new CoreV1Api(client).pods(namespace);
  const start = performance.now();
  const creates: Promise<unknown>[] = [];
  for (let i = 0; i < workload.replicas; i++) {
    await sleepUntil(start + (i * 1000) / workload.rate);
    const name = `load-${i}`;
    sentAt.set(name, performance.now());
    creates.push(
      pods.create({ metadata: { name, labels: { app: "load" } }, spec: podSpec(virtual, workload) }),
    );
  }
  await Promise.all(creates);
  return sentAt;
}

/** Removes the workload: scales to 0, or deletes the pods at the rate they came. */
async function removeWorkload(client: KubeClient, namespace: string, workload: Workload): Promise<void> {
  if (!workload.rate) {
    await new AppsV1Api(client).deployments(namespace).patch("load", { spec: { replicas: 0 } }, {
      type: "merge",
    });
    return;
  }
  const pods = new CoreV1Api(client).pods(namespace);
  const start = performance.now();
  const deletes: Promise<unknown>[] = [];
  for (let i = 0; i < workload.replicas; i++) {
    await sleepUntil(start + (i * 1000) / workload.rate);
    deletes.push(pods.delete(`load-${i}`));
  }
  await Promise.all(deletes);
}

/**
 * Applies the workload in `namespace` of `client` and waits for every pod Running, then removes
 * it and waits for every pod gone; `observe` hears the namespace's pod changes meanwhile.
 */
async function upAndDown(
  client: KubeClient,
  namespace: string,
  workload: Workload,
  virtual: boolean,
  writesOf: KubeClient[],
  observe: (type: "Apply" | "Delete", pod: Pod, at: number) => void,
): Promise<RunResult> {
  const running = new Map<string, number>();
  const gone = new Set<string>();
  const allRunning = Promise.withResolvers<void>();
  const allGone = Promise.withResolvers<void>();
  let removing = false;
  const stop = new AbortController();
  await observeChanges(new CoreV1Api(client).pods(namespace), { signal: stop.signal }, (type, pod, at) => {
    observe(type, pod, at);
    const name = pod.metadata!.name!;
    if (type !== "Delete" && pod.status?.phase === "Running" && !running.has(name)) running.set(name, at);
    if (running.size >= workload.replicas) allRunning.resolve();
    if (type === "Delete" && removing) gone.add(name);
    if (gone.size >= workload.replicas) allGone.resolve();
  });
  const writesBefore = await Promise.all(writesOf.map(apiWrites));
  const cpu0 = await machineCpu();
  const progress = setInterval(
    () => console.log(`    ${namespace}: ${running.size}/${workload.replicas} Running`),
    5000,
  );
  const t0 = performance.now();
  const sentAt = await createWorkload(client, namespace, workload, virtual);
  await allRunning.promise;
  const ms = performance.now() - t0;
  clearInterval(progress);
  const busy = busyShare(cpu0, await machineCpu());
  const written = await Promise.all(
    writesOf.map(async (c, i) => writesBetween(writesBefore[i], await apiWrites(c))),
  );
  removing = true;
  const removedAt = performance.now();
  await removeWorkload(client, namespace, workload);
  await allGone.promise;
  const removalMs = performance.now() - removedAt;
  stop.abort();
  if (!workload.rate) await new AppsV1Api(client).deployments(namespace).delete("load");
  return {
    ms,
    busy,
    writes: written.reduce((sum, w) => sum + w.total, 0),
    writesTop: written.map((w) => w.top).join("; "),
    endToEnd: [...sentAt].filter(([name]) => running.has(name)).map(([name, at]) => running.get(name)! - at),
    removalMs,
  };
}

/** The baseline: the workload straight into the worker (no syncer alive). */
export async function baselineRun(
  worker: KubeClient,
  namespace: string,
  workload: Workload,
): Promise<RunResult> {
  await new CoreV1Api(worker).namespaces().create({ metadata: { name: namespace } });
  return await upAndDown(worker, namespace, workload, false, [worker], () => {});
}

/** Through Kubeocean: the workload in the computing cluster, its twins timed in `twinNamespace`. */
export async function kubeoceanRun(
  computing: KubeClient,
  worker: KubeClient,
  namespace: string,
  twinNamespace: string,
  workload: Workload,
): Promise<RunResult> {
  await new CoreV1Api(computing).namespaces().create({ metadata: { name: namespace } });
  const bound = new Map<string, number>();
  const virtualRunning = new Map<string, number>();
  const deletingAt = new Map<string, number>();
  const twinCreated = new Map<string, number>();
  const twinRunning = new Map<string, number>();
  const twinGone = new Map<string, number>();
  const twinStop = new AbortController();
  await observeChanges(
    new CoreV1Api(worker).pods(twinNamespace),
    { signal: twinStop.signal },
    (type, twin, at) => {
      const uid = twin.metadata?.annotations?.["kubeocean.io/virtual-pod-uid"];
      if (!uid) return;
      if (type === "Delete") twinGone.set(uid, at);
      else {
        if (!twinCreated.has(uid)) twinCreated.set(uid, at);
        if (twin.status?.phase === "Running" && !twinRunning.has(uid)) twinRunning.set(uid, at);
      }
    },
  );
  const result = await upAndDown(
    computing,
    namespace,
    workload,
    true,
    [computing, worker],
    (type, pod, at) => {
      const uid = pod.metadata!.uid!;
      if (pod.metadata?.deletionTimestamp && !deletingAt.has(uid)) deletingAt.set(uid, at);
      if (type === "Delete") return;
      if (pod.spec?.nodeName && !bound.has(uid)) bound.set(uid, at);
      if (pod.status?.phase === "Running" && !virtualRunning.has(uid)) virtualRunning.set(uid, at);
    },
  );
  await eventually("every twin gone", () => Promise.resolve(twinGone.size >= twinCreated.size), {
    timeoutMs: 120_000,
  });
  twinStop.abort();
  const since = (later: Map<string, number>, earlier: Map<string, number>) =>
    [...later].filter(([uid]) => earlier.has(uid)).map(([uid, at]) => at - earlier.get(uid)!);
  return {
    ...result,
    hops: {
      create: since(twinCreated, bound),
      status: since(virtualRunning, twinRunning),
      deleted: since(twinGone, deletingAt),
    },
  };
}
