/**
 * Shared set-up of the reliability tests: the manager's ClusterBinding controller with embedded
 * syncers (one process, as `--syncer-mode=embedded` runs), a worker bound with `bind`, a policy
 * leasing every node, and helpers to run virtual pods and check their twins.
 *
 * @module
 */

import { CoreV1Api, type Pod } from "../../apis/core/v1/mod.ts";
import type { ClusterBinding } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { bind, installCrd } from "../../controllers/bind/bind.ts";
import { ANNOTATION_VIRTUAL_POD_UID, LABEL_CLUSTER_BINDING } from "../../controllers/common/names.ts";
import { onVirtualNodes } from "../../controllers/common/placement.ts";
import { clusterBindingController } from "../../controllers/manager/clusterbinding_controller.ts";
import { EmbeddedRunner } from "../../controllers/manager/embedded_runner.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { eventually } from "../../toolkit/envtest/testing.ts";
import { EventRecorder } from "../../toolkit/runtime/events.ts";
import { Logger } from "../../toolkit/runtime/log.ts";
import { Manager } from "../../toolkit/runtime/manager.ts";
import { Registry } from "../../toolkit/runtime/metrics.ts";
import { applyPolicy } from "../syncer/fixture.ts";

const SYSTEM = "kubeocean-system";

/** A running manager with embedded syncers and one bound worker. */
export interface EmbeddedWorld {
  runner: EmbeddedRunner;
  /** Stops the manager and its syncers. */
  stop(): Promise<void>;
}

/** Starts the manager (embedded syncers) and binds `worker` as binding `name` with `spec` extras. */
export async function startEmbeddedWorld(
  computing: KubeClient,
  worker: KubeClient,
  options: { name: string; clusterID: string; spec?: Partial<ClusterBinding["spec"]> },
): Promise<EmbeddedWorld> {
  const log = new Logger({ level: Deno.env.get("KUBEOCEAN_TEST_VERBOSE") ? "debug" : "error" });
  await installCrd(computing, "kubeocean.io_clusterbindings.yaml");
  await new CoreV1Api(computing).namespaces().create({ metadata: { name: SYSTEM } }).catch(() => {});
  const runner = new EmbeddedRunner({ virtual: computing, log, registry: new Registry() });
  const manager = new Manager({ name: "manager", logger: log });
  const recorder = new EventRecorder(computing.transport, { controller: "kubeocean.io/manager", log });
  clusterBindingController(manager, { client: computing, runner, recorder, namespace: SYSTEM });
  const stop = new AbortController();
  const running = manager.run(stop.signal);
  await bind({
    computing,
    worker,
    name: options.name,
    clusterID: options.clusterID,
    mountNamespace: "kubeocean-worker",
    spec: options.spec,
    waitMs: 0,
    log: () => {},
  });
  await applyPolicy(worker, "all", { cluster: options.name });
  return {
    runner,
    async stop() {
      stop.abort();
      await running.catch(() => {});
      await runner.stop();
      await recorder.flush().catch(() => {});
    },
  };
}

/** Creates `count` virtual pods `prefix-0…` in `namespace` (on virtual nodes only). */
export async function createVirtualPods(
  computing: KubeClient,
  namespace: string,
  prefix: string,
  count: number,
  extra: Partial<Pod["spec"]> = {},
): Promise<void> {
  const pods = new CoreV1Api(computing).pods(namespace);
  for (let i = 0; i < count; i++) {
    await pods.create({
      metadata: { name: `${prefix}-${i}`, labels: { app: prefix } },
      spec: {
        ...onVirtualNodes(),
        containers: [{
          name: "app",
          image: "registry.example/app:1",
          resources: { requests: { cpu: "10m" } },
        }],
        ...extra,
      },
    });
  }
}

/** Whether a pod is Running with condition Ready=True. */
export function runningAndReady(pod: Pod): boolean {
  return pod.status?.phase === "Running" && !pod.metadata?.deletionTimestamp &&
    pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;
}

/** Waits until every pod with label `app=<app>` in `namespace` is Running and Ready; returns them. */
export async function allRunning(
  computing: KubeClient,
  namespace: string,
  app: string,
  count: number,
  timeoutMs = 90_000,
): Promise<Pod[]> {
  return await eventually(`${count} ${app} pods Running and Ready`, async () => {
    const pods = (await new CoreV1Api(computing).pods(namespace).list({ labelSelector: `app=${app}` })).items;
    return pods.length === count && pods.every(runningAndReady) ? pods : undefined;
  }, { timeoutMs });
}

/** Twins in the worker per virtual pod UID (1:1 means one entry of 1 per virtual pod). */
export async function twinsByVirtualUid(worker: KubeClient, binding: string): Promise<Map<string, number>> {
  const twins = await new CoreV1Api(worker).pods("kubeocean-worker").list({
    labelSelector: `${LABEL_CLUSTER_BINDING}=${binding}`,
  });
  const counts = new Map<string, number>();
  for (const twin of twins.items) {
    if (twin.metadata?.deletionTimestamp) continue;
    const uid = twin.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_UID] ?? "";
    counts.set(uid, (counts.get(uid) ?? 0) + 1);
  }
  return counts;
}
