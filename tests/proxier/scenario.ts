/**
 * The stage of the kubelet API tests: a computing cluster whose API server verifies kubelet
 * serving certificates, two kwok workers bound as `bind` does, the manager process with embedded
 * syncers serving the kubelet API on a free port (certificate: the computing CA's kubelet pair,
 * IP SAN 127.0.0.1), and one pod Running on a virtual node of each worker.
 *
 * @module
 */

import { CoreV1Api, type Pod } from "../../apis/core/v1/mod.ts";
import { installCrd } from "../../controllers/bind/bind.ts";
import { LABEL_CLUSTER_BINDING } from "../../controllers/common/names.ts";
import { onVirtualNodes } from "../../controllers/common/placement.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import type { Cluster } from "../../toolkit/envtest/cluster.ts";
import type { Environment } from "../../toolkit/envtest/environment.ts";
import { allocatePort } from "../../toolkit/envtest/ports.ts";
import { connect, eventually } from "../../toolkit/envtest/testing.ts";
import { spawnManager } from "../fixtures/entrypoint.ts";
import { applyPolicy, bindWorker, type BoundWorker } from "../syncer/fixture.ts";

/** The clusters of the scenario. */
export const CLUSTERS = [
  { name: "computing" },
  { name: "worker1", nodes: 1 },
  { name: "worker2", nodes: 1 },
];

/** The namespace of the test pods in the computing cluster. */
export const NS = "default";

/** A running stage; `stop()` ends the manager and closes clients. */
export interface KubeletApiScenario {
  env: Environment;
  computingCluster: Cluster;
  computing: KubeClient;
  /** Pods Running on a virtual node of worker1 and worker2. */
  pods: { worker1: Pod; worker2: Pod };
  /** The kubelet API port the manager serves (and virtual nodes advertise). */
  kubeletPort: number;
  /** The manager's metrics port. */
  metricsPort: number;
  /** Restarts the manager with extra flags (e.g. another serving certificate). */
  restartManager(args?: string[]): Promise<void>;
  stop(): Promise<void>;
}

/** Builds the stage. */
export async function startScenario(env: Environment): Promise<KubeletApiScenario> {
  const computingCluster = env.cluster("computing");
  const computing = await connect(computingCluster);
  const workers = await Promise.all(["worker1", "worker2"].map((name) => connect(env.cluster(name))));
  const bound: BoundWorker[] = [];
  const kubeletPort = allocatePort();
  const metricsPort = allocatePort();
  const healthPort = allocatePort();
  const { pki } = computingCluster;
  const managerArgs = (extra: string[]) => [
    `--proxier-port=${kubeletPort}`,
    "--proxier-listen-address=127.0.0.1",
    `--proxier-client-ca-file=${pki.ca.certFile}`,
    ...(extra.length ? extra : [
      `--proxier-tls-cert-file=${pki.kubelet.certFile}`,
      `--proxier-tls-private-key-file=${pki.kubelet.keyFile}`,
    ]),
  ];
  let manager: Deno.ChildProcess | undefined;
  const stopManager = async () => {
    if (!manager) return;
    manager.kill("SIGTERM");
    await manager.status;
    manager = undefined;
  };
  const startManager = (extra: string[] = []) => {
    manager = spawnManager(computingCluster.kubeconfig, metricsPort, healthPort, managerArgs(extra));
  };
  const ready = () =>
    eventually("the manager is ready", async () => {
      const response = await fetch(`http://127.0.0.1:${healthPort}/readyz`).catch(() => undefined);
      await response?.body?.cancel();
      return response?.ok;
    }, { timeoutMs: 60_000, intervalMs: 250 });
  try {
    await installCrd(computing, "kubeocean.io_clusterbindings.yaml");
    await new CoreV1Api(computing).namespaces().create({ metadata: { name: "kubeocean-system" } }).catch(
      () => {},
    );
    startManager();
    for (const [i, worker] of workers.entries()) {
      const name = `worker${i + 1}`;
      bound.push(await bindWorker(computing, worker, { name, clusterID: `w${i + 1}` }));
      await applyPolicy(worker, `lend-${name}`, { cluster: name });
    }
    await ready();
    const core = new CoreV1Api(computing);
    const pods = await Promise.all(["worker1", "worker2"].map(async (binding) => {
      const node = await eventually(`a virtual node of ${binding}`, async () => {
        const nodes = await core.nodes().list({ labelSelector: `${LABEL_CLUSTER_BINDING}=${binding}` });
        return nodes.items.find((n) =>
          n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
        );
      }, { timeoutMs: 60_000 });
      const name = `app-${binding}`;
      await core.pods(NS).create({
        metadata: { name, labels: { app: "kubelet-api" } },
        spec: {
          ...onVirtualNodes(),
          nodeName: node.metadata!.name!,
          containers: [{ name: "app", image: "registry.example/app:1" }],
        },
      });
      return await eventually(`${name} Running`, async () => {
        const pod = await core.pods(NS).get(name);
        return pod.status?.phase === "Running" && pod.metadata?.annotations?.["kubeocean.io/physical-pod-uid"]
          ? pod
          : undefined;
      }, { timeoutMs: 60_000 });
    }));
    return {
      env,
      computingCluster,
      computing,
      pods: { worker1: pods[0], worker2: pods[1] },
      kubeletPort,
      metricsPort,
      async restartManager(args: string[] = []) {
        await stopManager();
        startManager(args);
        await ready();
      },
      async stop() {
        await stopManager();
        for (const b of bound) b.close();
        for (const c of [computing, ...workers]) c.close();
      },
    };
  } catch (err) {
    await stopManager();
    for (const b of bound) b.close();
    for (const c of [computing, ...workers]) c.close();
    throw err;
  }
}

/** Parses one sample (summed over series matching `labels`) out of Prometheus text. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const series = match[2] ?? "";
    if (Object.entries(labels).every(([k, v]) => series.includes(`${k}="${v}"`))) sum += Number(match[3]);
  }
  return sum;
}

/** The manager's metrics text. */
export async function managerMetrics(s: KubeletApiScenario): Promise<string> {
  return await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text();
}

/** The computing API server's metrics text. */
export async function apiserverMetrics(s: KubeletApiScenario): Promise<string> {
  const response = await s.computing.transport.stream({
    method: "GET",
    path: "/metrics",
    accept: "text/plain",
  });
  return await response.text();
}
