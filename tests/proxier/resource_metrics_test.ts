/**
 * Resource metrics of virtual nodes end to end: metrics-server in the computing cluster scrapes the
 * kubelet API of the virtual nodes, which measures the twins through the worker's metrics API
 * (its own metrics-server over kwok's usage). `kubectl top pod|node` in the computing cluster, a
 * HorizontalPodAutoscaler scaling a Deployment on virtual nodes up and down with the twins' load,
 * the raw endpoints, and a worker without a metrics API.
 */

import assert from "node:assert/strict";
import { AppsV1Api } from "../../apis/apps/v1/mod.ts";
import { AutoscalingV2Api } from "../../apis/autoscaling/v2/mod.ts";
import { CoreV1Api, type Pod } from "../../apis/core/v1/mod.ts";
import { onVirtualNodes } from "../../controllers/common/placement.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import type { Cluster } from "../../toolkit/envtest/cluster.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";
import { NS, sample, startScenario } from "./scenario.ts";

/** kwok's per-pod usage annotations (see toolkit/envtest). */
const USAGE_CPU = "kwok.x-k8s.io/usage-cpu";
const USAGE_MEMORY = "kwok.x-k8s.io/usage-memory";
const MOUNT = "kubeocean-worker";

/** `kubectl top pod|node` as name → { cpu millicores, memory MiB }; undefined while it has no data. */
async function top(
  cluster: Cluster,
  args: string[],
): Promise<Map<string, { cpu: number; memory: number }> | undefined> {
  const out = await cluster.kubectl(["top", ...args, "--no-headers"], { check: false });
  if (out.code !== 0) return undefined;
  const rows = new Map<string, { cpu: number; memory: number }>();
  for (const line of out.stdout.trim().split("\n")) {
    // Pods: NAME CPU MEMORY; nodes: NAME CPU CPU% MEMORY MEMORY%.
    const [name, ...columns] = line.trim().split(/\s+/);
    const cpu = columns.find((c) => /^\d+m$/.test(c));
    const memory = columns.find((c) => /^\d+Mi$/.test(c));
    if (!name || !cpu || !memory) continue;
    rows.set(name, { cpu: Number(cpu.slice(0, -1)), memory: Number(memory.slice(0, -2)) });
  }
  return rows;
}

const within = (actual: number, expected: number, share: number) =>
  Math.abs(actual - expected) <= Math.max(1, expected * share);

/** Sets kwok's usage of the twins of `pods` in the worker (the load arises in the worker). */
async function load(worker: KubeClient, pods: Pod[], cpu: string, memory: string): Promise<void> {
  const twins = new CoreV1Api(worker).pods(MOUNT);
  for (const pod of pods) {
    const name = pod.metadata?.annotations?.["kubeocean.io/physical-pod-name"];
    if (!name) continue;
    await twins.patch(name, { metadata: { annotations: { [USAGE_CPU]: cpu, [USAGE_MEMORY]: memory } } }, {
      type: "merge",
    });
  }
}

envTest("proxier: kubectl top and a HorizontalPodAutoscaler on virtual nodes, measured in the worker", {
  clusters: [
    { name: "computing", controlPlane: true, metricsServer: true },
    { name: "worker1", nodes: 1, metricsServer: true },
    // No metrics API in worker2: its binding is told once, and everything else keeps working.
    { name: "worker2", nodes: 1 },
  ],
}, async (env, t) => {
  const s = await startScenario(env);
  const worker1 = await connect(env.cluster("worker1"));
  const computing = env.cluster("computing");
  const core = new CoreV1Api(s.computing);
  try {
    await t.step(
      "kubectl top pod in the computing cluster shows what the worker measures for the twins",
      async () => {
        await load(worker1, [s.pods.worker1], "250m", "100Mi");
        const twin = s.pods.worker1.metadata!.annotations!["kubeocean.io/physical-pod-name"];
        const inWorker = await eventually("the worker's kubectl top of the twin", async () => {
          const rows = await top(env.cluster("worker1"), ["pod", "-n", MOUNT]);
          const row = rows?.get(twin);
          return row && row.cpu >= 200 ? row : undefined;
        }, { timeoutMs: 120_000, intervalMs: 2_000 });
        const virtual = await eventually(
          "the computing cluster's kubectl top of the virtual pod",
          async () => {
            const rows = await top(computing, ["pod", "-n", NS]);
            const row = rows?.get(s.pods.worker1.metadata!.name!);
            return row && within(row.cpu, inWorker.cpu, 0.1) ? row : undefined;
          },
          { timeoutMs: 120_000, intervalMs: 2_000 },
        );
        assert.ok(
          within(virtual.memory, inWorker.memory, 0.1),
          `${virtual.memory} vs ${inWorker.memory} MiB`,
        );
      },
    );

    await t.step("kubectl top node: a virtual node's usage is the sum of its pods'", async () => {
      const vnode = s.pods.worker1.spec!.nodeName!;
      await eventually("the virtual node in kubectl top node", async () => {
        const [nodes, pods] = await Promise.all([
          top(computing, ["node"]),
          top(computing, ["pod", "-n", NS]),
        ]);
        const node = nodes?.get(vnode);
        if (!node || !pods) return undefined;
        const onNode = (await core.pods(NS).list()).items.filter((p) => p.spec?.nodeName === vnode);
        const cpu = onNode.reduce((n, p) => n + (pods.get(p.metadata!.name!)?.cpu ?? 0), 0);
        const memory = onNode.reduce((n, p) => n + (pods.get(p.metadata!.name!)?.memory ?? 0), 0);
        return within(node.cpu, cpu, 0.05) && within(node.memory, memory, 0.05);
      }, { timeoutMs: 120_000, intervalMs: 2_000 });
    });

    await t.step(
      "the raw endpoints: counters never decrease, timestamps advance, virtual names",
      async () => {
        const vnode = s.pods.worker1.spec!.nodeName!;
        const { pki } = computing;
        const client = Deno.createHttpClient({
          caCerts: [pki.ca.certPem],
          cert: pki.admin.certPem,
          key: pki.admin.keyPem,
        });
        try {
          const node = await core.nodes().get(vnode);
          const path = node.metadata!.annotations!["metrics.k8s.io/resource-metrics-path"];
          assert.equal(path, `/metrics/nodes/${vnode}/metrics/resource`);
          const scrape = async () => {
            const text = await (await fetch(`https://127.0.0.1:${s.kubeletPort}${path}`, { client })).text();
            const line = text.split("\n").find((l) => l.startsWith("node_cpu_usage_seconds_total "))!;
            const [, value, at] = line.split(" ");
            return { text, value: Number(value), at: Number(at) };
          };
          const first = await scrape();
          assert.match(first.text, new RegExp(`pod="${s.pods.worker1.metadata!.name}"`));
          const second = await eventually("a newer measurement", async () => {
            const next = await scrape();
            return next.at > first.at ? next : undefined;
          }, { timeoutMs: 60_000, intervalMs: 2_000 });
          assert.ok(second.value >= first.value, `node counter ${first.value} → ${second.value}`);
          const summary =
            await (await fetch(`https://127.0.0.1:${s.kubeletPort}/stats/nodes/${vnode}/summary`, {
              client,
            })).json();
          assert.equal(summary.node.nodeName, vnode);
          assert.deepEqual(summary.pods.map((p: { podRef: unknown }) => p.podRef), [{
            name: s.pods.worker1.metadata!.name,
            namespace: NS,
            uid: s.pods.worker1.metadata!.uid,
          }]);
        } finally {
          client.close();
        }
      },
    );

    await t.step(
      "a HorizontalPodAutoscaler scales pods on virtual nodes up and down with the twins' load",
      async () => {
        const apps = new AppsV1Api(s.computing).deployments(NS);
        const vnode = s.pods.worker1.spec!.nodeName!;
        await apps.create({
          metadata: { name: "web" },
          spec: {
            replicas: 1,
            selector: { matchLabels: { app: "web" } },
            template: {
              metadata: { labels: { app: "web" } },
              spec: {
                ...onVirtualNodes(),
                nodeSelector: { "kubernetes.io/hostname": vnode },
                containers: [{
                  name: "web",
                  image: "registry.example/web:1",
                  resources: { requests: { cpu: "100m" } },
                }],
              },
            },
          },
        });
        await new AutoscalingV2Api(s.computing).horizontalpodautoscalers(NS).create({
          metadata: { name: "web" },
          spec: {
            scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: "web" },
            minReplicas: 1,
            maxReplicas: 3,
            metrics: [{
              type: "Resource",
              resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 50 } },
            }],
            behavior: {
              scaleUp: { stabilizationWindowSeconds: 0 },
              scaleDown: {
                stabilizationWindowSeconds: 0,
                policies: [{ type: "Percent", value: 100, periodSeconds: 15 }],
              },
            },
          },
        });
        const webPods = async () =>
          (await core.pods(NS).list({ labelSelector: "app=web" })).items.filter((p) =>
            !p.metadata?.deletionTimestamp
          );
        // Load: 200m per pod against a 100m request, 200 % of the 50 % target → the maximum.
        const scaledUp = await eventually("scaled up", async () => {
          await load(worker1, await webPods(), "200m", "50Mi");
          const deployment = await apps.get("web");
          return (deployment.spec?.replicas ?? 1) > 1 ? deployment.spec!.replicas : undefined;
        }, { timeoutMs: 240_000, intervalMs: 5_000 });
        assert.ok(scaledUp! > 1);
        const scaledDown = await eventually("scaled down", async () => {
          await load(worker1, await webPods(), "5m", "50Mi");
          const deployment = await apps.get("web");
          return deployment.spec?.replicas === 1 ? deployment : undefined;
        }, { timeoutMs: 240_000, intervalMs: 5_000 });
        assert.equal(scaledDown.spec?.replicas, 1);
      },
    );

    await t.step(
      "a worker without a metrics API: one Warning on its binding; logs and exec still served",
      async () => {
        const warnings = await eventually("the binding's Warning", async () => {
          const events = await core.events("default").list({
            fieldSelector: "involvedObject.kind=ClusterBinding,involvedObject.name=worker2",
          });
          const found = events.items.filter((e) => e.reason === "WorkerMetricsUnavailable");
          return found.length ? found : undefined;
        }, { timeoutMs: 60_000, intervalMs: 2_000 });
        assert.equal(warnings.length, 1);
        assert.ok((warnings[0].count ?? 1) <= 1, "reported once, not once per scrape");
        assert.match(warnings[0].message ?? "", /no metrics\.k8s\.io API/);
        const pod = s.pods.worker2.metadata!.name!;
        const logs = await computing.kubectl(["logs", "-n", NS, pod], { check: false });
        assert.match(logs.stdout, /kubeocean envtest/);
        const exec = await computing.kubectl([
          "exec",
          "-n",
          NS,
          pod,
          "--",
          "sh",
          "-c",
          "echo $KUBEOCEAN_ENVTEST",
        ], {
          check: false,
        });
        assert.equal(exec.stdout.trim(), "worker2");
        // metrics-server parsed every virtual node's answer: no error logged about one.
        const log = await computing.logTail("metrics-server", 2_000);
        const errors = log.split("\n").filter((l) => /^E\d{4}/.test(l) && l.includes("vnode-"));
        assert.deepEqual(errors, [], "metrics-server errors about virtual nodes");
        const metrics = await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text();
        assert.ok(
          sample(metrics, "kubeocean_proxier_requests_total", { endpoint: "metrics", code: "200" }) > 0,
        );
      },
    );
  } finally {
    worker1.close();
    await s.stop();
  }
});
