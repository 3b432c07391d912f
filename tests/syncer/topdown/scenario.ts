/**
 * The shared stage of the top-down end-to-end test: a computing cluster and two kwok workers,
 * each bound exactly as `deno task run bind` does, with a policy lending every node, a syncer per
 * binding (least-privilege worker ServiceAccount), and the helpers every concern's steps use.
 *
 * @module
 */

import assert from "node:assert/strict";
import { AppsV1Api } from "../../../apis/apps/v1/mod.ts";
import { CoreV1Api, type Pod, type PodSpec, type PodTemplateSpec } from "../../../apis/core/v1/mod.ts";
import { onVirtualNodes } from "../../../controllers/common/placement.ts";
import type { Syncer } from "../../../controllers/syncer/syncer.ts";
import type { KubeClient } from "../../../toolkit/client/client.ts";
import type { Environment } from "../../../toolkit/envtest/environment.ts";
import { connect, eventually } from "../../../toolkit/envtest/testing.ts";
import { applyPolicy, bindWorker, type BoundWorker, startSyncer } from "../fixture.ts";

/** The mount namespace of both bindings. */
export const NS = "kubeocean-worker";
/** The label selector of everything Kubeocean manages. */
export const MANAGED = "kubeocean.io/managed-by=kubeocean";

/** The clusters of the scenario. */
export const CLUSTERS = [
  { name: "computing", controlPlane: true },
  { name: "worker1", nodes: 3, nodeTemplate: { capacity: { cpu: "32", memory: "64Gi", pods: "250" } } },
  { name: "worker2", nodes: 3, nodeTemplate: { capacity: { cpu: "32", memory: "64Gi", pods: "250" } } },
];

/** A pod template that lands on virtual nodes only, spread over the two workers. */
export function template(app: string, extra: Partial<PodSpec> = {}): PodTemplateSpec & { spec: PodSpec } {
  return {
    metadata: { labels: { app } },
    spec: {
      ...onVirtualNodes(),
      topologySpreadConstraints: [{
        maxSkew: 1,
        topologyKey: "kubeocean.io/physical-cluster-id",
        whenUnsatisfiable: "DoNotSchedule",
        labelSelector: { matchLabels: { app } },
      }],
      containers: [{ name: "app", image: "registry.example/app:1", resources: { requests: { cpu: "10m" } } }],
      ...extra,
    },
  };
}

/** Live Running pods among `pods`. */
export function running(pods: Pod[]): Pod[] {
  return pods.filter((p) => p.status?.phase === "Running" && !p.metadata?.deletionTimestamp);
}

/** One step of the scenario. */
export interface Step {
  name: string;
  run(s: TopDownScenario): Promise<void>;
}

/** Two bound workers, their syncers and the helpers the steps share. */
export class TopDownScenario {
  readonly vcore: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly bound: BoundWorker[] = [];
  readonly syncers: (Syncer | undefined)[] = [];

  private constructor(
    readonly env: Environment,
    readonly computing: KubeClient,
    readonly workers: KubeClient[],
  ) {
    this.vcore = new CoreV1Api(computing);
    this.apps = new AppsV1Api(computing);
  }

  /** Binds both workers, lends every node, starts the syncers and creates the shared dependencies. */
  static async start(env: Environment): Promise<TopDownScenario> {
    const computing = await connect(env.cluster("computing"), { qps: 200, burst: 400 });
    const workers = [await connect(env.cluster("worker1")), await connect(env.cluster("worker2"))];
    const s = new TopDownScenario(env, computing, workers);
    for (const [i, worker] of workers.entries()) {
      s.bound.push(
        await bindWorker(computing, worker, {
          name: `worker${i + 1}`,
          clusterID: `w${i + 1}`,
          spec: {
            kubernetesEndpoint: {
              host: "127.0.0.1",
              port: Number(new URL(env.cluster("computing").server).port),
            },
          },
        }),
      );
      await applyPolicy(worker, "all", { cluster: `worker${i + 1}` });
    }
    s.startAll();
    await eventually("6 Ready vnodes", async () => {
      const nodes = await s.vcore.nodes().list({ labelSelector: MANAGED });
      return nodes.items.length === 6 &&
        nodes.items.every((n) =>
          n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
        );
    }, { timeoutMs: 60_000 });
    await s.vcore.configmaps("default").create({ metadata: { name: "app-config" }, data: { mode: "one" } });
    await s.vcore.secrets("default").create({
      metadata: { name: "app-secret" },
      stringData: { token: "s3cret" },
    });
    await s.vcore.serviceaccounts("default").create({ metadata: { name: "app-sa" } });
    return s;
  }

  /** Starts a syncer per binding (in this process). */
  startAll(): void {
    for (const [i, b] of this.bound.entries()) this.syncers[i] = startSyncer(this.computing, b);
  }

  /** Stops every syncer. */
  async stopAll(): Promise<void> {
    await Promise.all(this.syncers.map((s) => s?.stop()));
    this.syncers.fill(undefined);
  }

  /** The twins in one worker. */
  async twinsOf(worker: KubeClient): Promise<Pod[]> {
    return (await new CoreV1Api(worker).pods(NS).list({ labelSelector: MANAGED })).items;
  }

  /** The twins in both workers. */
  async allTwins(): Promise<Pod[]> {
    return (await Promise.all(this.workers.map((w) => this.twinsOf(w)))).flat();
  }

  /** The virtual pods of `app`. */
  async virtualPods(app: string): Promise<Pod[]> {
    return (await this.vcore.pods("default").list({ labelSelector: `app=${app}` })).items;
  }

  /** Every live virtual pod of `app` has exactly one twin, carrying its UID, in the worker of its node. */
  async assertOneTwinEach(app: string): Promise<void> {
    const pods = (await this.virtualPods(app)).filter((p) => p.status?.phase === "Running");
    const byUid = new Map<string, Pod[]>();
    for (const twin of await this.allTwins()) {
      const uid = twin.metadata!.annotations!["kubeocean.io/virtual-pod-uid"];
      byUid.set(uid, [...(byUid.get(uid) ?? []), twin]);
    }
    for (const pod of pods) {
      const mine = byUid.get(pod.metadata!.uid!) ?? [];
      assert.equal(mine.length, 1, `pod ${pod.metadata!.name} has ${mine.length} twins`);
      const twin = mine[0];
      assert.equal(twin.metadata!.annotations!["kubeocean.io/virtual-pod-name"], pod.metadata!.name);
      assert.equal(twin.metadata!.annotations!["kubeocean.io/virtual-pod-namespace"], "default");
      assert.equal(pod.metadata!.annotations!["kubeocean.io/physical-pod-name"], twin.metadata!.name);
      assert.equal(pod.metadata!.annotations!["kubeocean.io/physical-pod-uid"], twin.metadata!.uid);
      assert.equal(pod.status!.podIP, twin.status!.podIP);
      const clusterID = pod.spec!.nodeName!.split("-")[1];
      assert.equal(twin.metadata!.labels!["kubeocean.io/cluster-binding"], `worker${clusterID.slice(1)}`);
    }
  }

  /** Stops the syncers and closes every client. */
  async stop(): Promise<void> {
    await this.stopAll();
    for (const b of this.bound) b.close();
    this.computing.close();
    for (const w of this.workers) w.close();
  }
}
