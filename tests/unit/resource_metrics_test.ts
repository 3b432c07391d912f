/**
 * Virtual nodes' resource metrics from the worker's PodMetrics, against an in-memory API server:
 * cumulative CPU counters that never decrease (a node keeps the CPU time of pods that ended),
 * virtual pod names in both kubelet formats, measurement timestamps, a twin without metrics left
 * out, and a missing metrics API reported once.
 */

import assert from "node:assert/strict";
import { CoreV1Api, type Pod } from "../../apis/core/v1/mod.ts";
import {
  parseNodePath,
  renderResourceMetrics,
  statsSummary,
} from "../../controllers/proxier/resource_metrics.ts";
import { type PodMetrics, WorkerResourceUsage } from "../../controllers/syncer/worker/resource_usage.ts";
import { KubeClient } from "../../toolkit/client/client.ts";
import { MemoryApiServer } from "../../toolkit/testing/mod.ts";

const MOUNT = "mount";
const LABELS = { "kubeocean.io/managed-by": "kubeocean", "kubeocean.io/cluster-binding": "w1" };
const T0 = Date.parse("2026-12-02T10:00:00Z");

/** A twin of virtual pod `default/<name>` on `vnode`, started at T0 − 100 s. */
function twin(name: string, vnode: string): Pod {
  return {
    metadata: {
      name: `twin-${name}`,
      namespace: MOUNT,
      labels: LABELS,
      annotations: {
        "kubeocean.io/virtual-pod-namespace": "default",
        "kubeocean.io/virtual-pod-name": name,
        "kubeocean.io/virtual-pod-uid": `uid-${name}`,
        "kubeocean.io/virtual-node-name": vnode,
      },
    },
    spec: { containers: [{ name: "app", image: "app" }] },
  };
}

/** Sets a twin's measurement: `cpu` cores and `memory` at time `at`. */
async function measure(
  client: KubeClient,
  name: string,
  at: number,
  cpu: string,
  memory: string,
): Promise<void> {
  const path = `/apis/metrics.k8s.io/v1beta1/namespaces/${MOUNT}/pods`;
  const body: PodMetrics & { apiVersion: string; kind: string; metadata: Record<string, unknown> } = {
    apiVersion: "metrics.k8s.io/v1beta1",
    kind: "PodMetrics",
    metadata: { name: `twin-${name}`, namespace: MOUNT, labels: LABELS },
    timestamp: new Date(at).toISOString(),
    window: "15s",
    containers: [{ name: "app", usage: { cpu, memory } }],
  };
  await client.transport.request({ method: "DELETE", path: `${path}/twin-${name}` }).catch(() => {});
  await client.transport.request({ method: "POST", path, body });
}

Deno.test("resource usage: counters integrate the worker's rates and never decrease; virtual names; timestamps", async () => {
  const server = new MemoryApiServer();
  const client = new KubeClient(server.transport());
  const pods = new CoreV1Api(client).pods(MOUNT);
  for (const [name, node] of [["a", "vn-1"], ["b", "vn-1"], ["c", "vn-2"]]) {
    const created = await pods.create(twin(name, node));
    created.status = {
      startTime: new Date(T0 - 100_000).toISOString(),
      containerStatuses: [{
        name: "app",
        ready: true,
        restartCount: 0,
        image: "app",
        imageID: "",
        state: { running: { startedAt: new Date(T0 - 100_000).toISOString() } },
      }],
    };
    await pods.replaceStatus(created);
  }
  let now = T0;
  const usage = new WorkerResourceUsage(client, { name: "w1", mountNamespace: MOUNT }, {
    resolutionMs: 10_000,
    now: () => now,
  });
  await measure(client, "a", T0, "500m", "100Mi");
  await measure(client, "b", T0, "250m", "50Mi");
  // c has no measurement: left out, not reported as idle.

  const first = await usage.usageOn("vn-1");
  assert.equal(first.pods.length, 2);
  const a1 = first.pods.find((p) => p.pod.name === "a")!;
  assert.deepEqual(a1.pod, { namespace: "default", name: "a", uid: "uid-a" });
  assert.equal(a1.containers[0].cpuSeconds, 50, "0.5 cores for the 100 s since the container started");
  assert.equal(a1.containers[0].memoryWorkingSetBytes, 100 * 1024 * 1024);
  assert.equal(first.cpuSeconds, 75, "the node's counter is its pods' CPU time");
  assert.equal((await usage.usageOn("vn-2")).pods.length, 0);

  // 15 s later, a measured at 1 core: +15 core-seconds; b ended.
  now += 15_000;
  await measure(client, "a", T0 + 15_000, "1", "120Mi");
  await pods.delete("twin-b");
  await client.transport.request({
    method: "DELETE",
    path: `/apis/metrics.k8s.io/v1beta1/namespaces/${MOUNT}/pods/twin-b`,
  });
  const second = await usage.usageOn("vn-1");
  assert.equal(second.pods.length, 1);
  assert.equal(second.pods[0].containers[0].cpuSeconds, 65);
  assert.equal(second.cpuSeconds, 90, "b's CPU time stays in the node's counter");
  assert.equal(second.timestamp?.getTime(), T0 + 15_000);

  // Asked again within the resolution: the same measurement, the same counters.
  now += 1_000;
  assert.equal((await usage.usageOn("vn-1")).cpuSeconds, 90);

  const text = renderResourceMetrics(second);
  assert.match(text, /^# TYPE container_cpu_usage_seconds_total counter$/m);
  assert.match(
    text,
    new RegExp(
      `^container_cpu_usage_seconds_total\\{container="app",namespace="default",pod="a"\\} 65 ${
        T0 + 15_000
      }$`,
      "m",
    ),
  );
  assert.match(text, new RegExp(`^node_cpu_usage_seconds_total 90 ${T0 + 15_000}$`, "m"));
  assert.match(text, new RegExp(`^node_memory_working_set_bytes ${120 * 1024 * 1024} ${T0 + 15_000}$`, "m"));
  assert.match(text, /^container_start_time_seconds\{container="app",namespace="default",pod="a"\} \d+/m);
  assert.match(text, /^scrape_error 0$/m);
  const summary = statsSummary(second, new Date(T0 - 1_000_000)) as {
    node: { nodeName: string; cpu: { usageCoreNanoSeconds: number } };
    pods: { podRef: { name: string; namespace: string; uid: string } }[];
  };
  assert.equal(summary.node.nodeName, "vn-1");
  assert.equal(summary.node.cpu.usageCoreNanoSeconds, 90e9);
  assert.deepEqual(summary.pods.map((p) => p.podRef), [{ name: "a", namespace: "default", uid: "uid-a" }]);
});

Deno.test("resource usage: a worker without a metrics API is reported once, and scraping still answers", async () => {
  const server = new MemoryApiServer();
  server.failNext({ path: /metrics\.k8s\.io/, status: 404, times: 3 });
  const client = new KubeClient(server.transport());
  const warnings: string[] = [];
  let now = T0;
  const usage = new WorkerResourceUsage(client, { name: "w1", mountNamespace: MOUNT }, {
    resolutionMs: 1_000,
    now: () => now,
    onUnavailable: (message) => warnings.push(message),
  });
  for (let i = 0; i < 3; i++) {
    const result = await usage.usageOn("vn-1");
    assert.ok(result.error, "the error is reported with the (empty) usage");
    assert.match(renderResourceMetrics(result), /^scrape_error 1$/m);
    now += 2_000;
  }
  assert.equal(warnings.length, 1, "one warning, not one per scrape");
});

Deno.test("resource metrics paths name the virtual node", () => {
  assert.deepEqual(parseNodePath("/metrics/nodes/vnode-w1-n1/metrics/resource"), {
    kind: "resource",
    node: "vnode-w1-n1",
  });
  assert.deepEqual(parseNodePath("/stats/nodes/vnode-w1-n1/summary"), {
    kind: "summary",
    node: "vnode-w1-n1",
  });
  assert.equal(parseNodePath("/metrics/resource"), undefined);
});
