/**
 * Shared set-up of the syncer's end-to-end tests: bind a worker cluster to the computing cluster
 * exactly as `deno task run bind` does, then run a syncer that talks to the worker with the
 * minted, least-privilege ServiceAccount kubeconfig (never the admin one).
 *
 * @module
 */

import type { ClusterBinding, ResourceLeasingPolicy } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { bind } from "../../controllers/bind/bind.ts";
import type { PodSecurityLevel } from "../../controllers/common/pod_security.ts";
import { kubeconfigFromSecret, workerClient } from "../../controllers/manager/worker_access.ts";
import { Syncer, type SyncerOptions } from "../../controllers/syncer/syncer.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { isNotFound } from "../../toolkit/client/errors.ts";
import { Logger } from "../../toolkit/runtime/log.ts";

export { TestClock } from "../../toolkit/runtime/clock.ts";

/** A bound worker: admin clients for both clusters and the syncer's least-privilege worker client. */
export interface BoundWorker {
  binding: ClusterBinding;
  /** The worker as the syncer sees it: the kubeconfig stored in the binding's Secret. */
  workerAsSyncer: KubeClient;
  close(): void;
}

/** Runs `bind` (without waiting for a manager) and returns the syncer's view of the worker. */
export async function bindWorker(
  computing: KubeClient,
  worker: KubeClient,
  options: {
    name: string;
    clusterID: string;
    mountNamespace?: string;
    spec?: Partial<ClusterBinding["spec"]>;
    podSecurity?: PodSecurityLevel;
  },
): Promise<BoundWorker> {
  const binding = await bind({
    podSecurity: options.podSecurity,
    computing,
    worker,
    name: options.name,
    clusterID: options.clusterID,
    mountNamespace: options.mountNamespace ?? "kubeocean-worker",
    spec: options.spec,
    waitMs: 0,
    log: Deno.env.get("KUBEOCEAN_TEST_VERBOSE") ? (line) => console.error(`[bind] ${line}`) : () => {},
  });
  const ref = binding.spec!.secretRef;
  const secret = await new CoreV1Api(computing).secrets(ref.namespace).get(ref.name);
  const text = kubeconfigFromSecret(binding, secret);
  if (typeof text !== "string") throw new Error(text.message);
  const client = await workerClient(binding, text);
  if (!("transport" in client)) throw new Error(client.message);
  return { binding, workerAsSyncer: client, close: () => client.close() };
}

/** Starts a syncer for `bound` with quick leases; stop it with `stop()`. */
export function startSyncer(
  computing: KubeClient,
  bound: BoundWorker,
  options: Partial<SyncerOptions> = {},
): Syncer {
  return new Syncer(computing, bound.workerAsSyncer, {
    bindingName: bound.binding.metadata!.name!,
    clusterID: bound.binding.spec!.clusterID,
    mountNamespace: bound.binding.spec!.mountNamespace,
    leaseRenewMs: 2_000,
    log: new Logger({ level: Deno.env.get("KUBEOCEAN_TEST_VERBOSE") ? "debug" : "error" }),
    ...options,
  }).start();
}

/**
 * What a syncer is waiting for, to explain a test that timed out: its caches that have not listed
 * yet and the last error of each cache that had one.
 */
export function describeSyncer(syncer: Syncer | undefined): string {
  if (!syncer) return "not running";
  const computing = syncer.ctx.virtual.client.transport;
  const caches = syncer.manager.caches.map((i) => ({
    name: `${i.client.transport === computing ? "computing" : "worker"} ${i.client.descriptor.plural}`,
    ready: i.store.isReady,
    error: i.lastError ? `${i.lastError.error.message} at ${i.lastError.at.toISOString()}` : undefined,
  }));
  const waiting = caches.filter((c) => !c.ready).map((c) => c.name);
  const errors = caches.filter((c) => c.error).map((c) => `${c.name}: ${c.error}`);
  return `caches not listed: ${waiting.join(", ") || "none"}; last errors: ${errors.join("; ") || "none"}`;
}

/** Creates or replaces a ResourceLeasingPolicy in the worker. */
export async function applyPolicy(
  worker: KubeClient,
  name: string,
  spec: ResourceLeasingPolicy["spec"],
): Promise<ResourceLeasingPolicy> {
  const policies = new KubeoceanIoV1beta1Api(worker).resourceleasingpolicies();
  try {
    const current = await policies.get(name);
    return await policies.replace({ ...current, spec });
  } catch (err) {
    if (!isNotFound(err)) throw err;
    return await policies.create({
      apiVersion: "kubeocean.io/v1beta1",
      kind: "ResourceLeasingPolicy",
      metadata: { name },
      spec,
    });
  }
}

/** Deletes a policy, ignoring a missing one. */
export async function deletePolicy(worker: KubeClient, name: string): Promise<void> {
  await new KubeoceanIoV1beta1Api(worker).resourceleasingpolicies().delete(name).catch((err) =>
    isNotFound(err) ? undefined : Promise.reject(err)
  );
}

/**
 * Plays the kubelet for a twin whose container exits 0 (kwok completes only pods a Job owns
 * directly): phase Succeeded, Ready and ContainersReady False, every container terminated.
 */
export async function completeTwin(worker: KubeClient, namespace: string, name: string): Promise<void> {
  const twins = new CoreV1Api(worker).pods(namespace);
  const twin = await twins.get(name);
  const finished = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  await twins.patchStatus(name, {
    status: {
      phase: "Succeeded",
      conditions: twin.status!.conditions!.map((c) =>
        c.type === "Ready" || c.type === "ContainersReady"
          ? { ...c, status: "False", reason: "PodCompleted" }
          : c
      ),
      containerStatuses: twin.status!.containerStatuses!.map((s) => ({
        ...s,
        ready: false,
        started: false,
        state: {
          terminated: { exitCode: 0, reason: "Completed", startedAt: finished, finishedAt: finished },
        },
      })),
    },
  }, { type: "merge" });
}
