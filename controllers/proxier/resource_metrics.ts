/**
 * A virtual node's usage in the kubelet's two formats: `/metrics/resource` (Prometheus text, the
 * series metrics-server 0.8 parses: node, pod and container CPU counters and working sets,
 * container start times, scrape errors) and `/stats/summary` (the Summary JSON), both naming the
 * **virtual** pods. Samples carry the time the worker measured them, so two scrapes of one
 * measurement are one point for rate computations.
 *
 * Node-scoped kubelet paths name no node, and one proxier serves many virtual nodes: they are
 * served as `/metrics/nodes/{vnode}/metrics/resource` and `/stats/nodes/{vnode}/summary`, and every
 * virtual node carries the annotation `metrics.k8s.io/resource-metrics-path`, which metrics-server
 * follows.
 *
 * @module
 */

import type { ContainerUsage, NodeUsage, PodUsage } from "../syncer/provider.ts";

/** Node-scoped paths: `{ kind, node }` for `/metrics/nodes/{node}/metrics/resource` and `/stats/nodes/{node}/summary`. */
export function parseNodePath(pathname: string): { kind: "resource" | "summary"; node: string } | undefined {
  const resource = /^\/metrics\/nodes\/([^/]+)\/metrics\/resource$/.exec(pathname);
  if (resource) return { kind: "resource", node: decodeURIComponent(resource[1]) };
  const summary = /^\/stats\/nodes\/([^/]+)\/summary$/.exec(pathname);
  if (summary) return { kind: "summary", node: decodeURIComponent(summary[1]) };
  return undefined;
}

/** One metric family of the kubelet's resource metrics. */
interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge";
  samples: { labels?: Record<string, string>; value: number; at?: Date }[];
}

const podLabels = (pod: PodUsage) => ({ namespace: pod.pod.namespace, pod: pod.pod.name });
const containerLabels = (pod: PodUsage, container: ContainerUsage) => ({
  container: container.name,
  ...podLabels(pod),
});
const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

/** The Prometheus text of `/metrics/resource` for one virtual node. */
export function renderResourceMetrics(usage: NodeUsage): string {
  const at = usage.timestamp;
  const memory = (pod: PodUsage) => sum(pod.containers.map((c) => c.memoryWorkingSetBytes));
  /** One sample per container with a value (labelled with its pod and container). */
  const perContainer = (value: (c: PodUsage["containers"][number]) => number | undefined) =>
    usage.pods.flatMap((pod) =>
      pod.containers.flatMap((c) => {
        const v = value(c);
        return v === undefined ? [] : [{ labels: containerLabels(pod, c), value: v, at: pod.timestamp }];
      })
    );
  const families: Family[] = [
    {
      name: "container_cpu_usage_seconds_total",
      help: "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
      type: "counter",
      samples: perContainer((c) => c.cpuSeconds),
    },
    {
      name: "container_memory_working_set_bytes",
      help: "[STABLE] Current working set of the container in bytes",
      type: "gauge",
      samples: perContainer((c) => c.memoryWorkingSetBytes),
    },
    {
      name: "container_start_time_seconds",
      help: "[STABLE] Start time of the container since unix epoch in seconds",
      type: "gauge",
      samples: perContainer((c) => c.startTime && c.startTime.getTime() / 1000),
    },
    {
      name: "node_cpu_usage_seconds_total",
      help: "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
      type: "counter",
      samples: at ? [{ value: usage.cpuSeconds, at }] : [],
    },
    {
      name: "node_memory_working_set_bytes",
      help: "[STABLE] Current working set of the node in bytes",
      type: "gauge",
      samples: at ? [{ value: sum(usage.pods.map(memory)), at }] : [],
    },
    {
      name: "pod_cpu_usage_seconds_total",
      help: "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
      type: "counter",
      samples: usage.pods.map((pod) => ({
        labels: podLabels(pod),
        value: sum(pod.containers.map((c) => c.cpuSeconds)),
        at: pod.timestamp,
      })),
    },
    {
      name: "pod_memory_working_set_bytes",
      help: "[STABLE] Current working set of the pod in bytes",
      type: "gauge",
      samples: usage.pods.map((pod) => ({ labels: podLabels(pod), value: memory(pod), at: pod.timestamp })),
    },
    {
      name: "resource_scrape_error",
      help: "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
      type: "gauge",
      samples: [{ value: usage.error ? 1 : 0 }],
    },
    {
      name: "scrape_error",
      help: "[ALPHA] 1 if there was an error while getting container metrics, 0 otherwise",
      type: "gauge",
      samples: [{ value: usage.error ? 1 : 0 }],
    },
  ];
  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`);
    for (const sample of family.samples) {
      const labels = Object.entries(sample.labels ?? {}).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
      const series = labels.length ? `${family.name}{${labels.join(",")}}` : family.name;
      lines.push(`${series} ${formatValue(sample.value)}${sample.at ? ` ${sample.at.getTime()}` : ""}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** The kubelet's Summary (`/stats/summary`) for one virtual node. */
export function statsSummary(usage: NodeUsage, nodeStartTime?: Date): Record<string, unknown> {
  const time = (at: Date | undefined) => at?.toISOString();
  const cpu = (cores: number, seconds: number, at: Date | undefined) => ({
    time: time(at),
    usageNanoCores: Math.round(cores * 1e9),
    usageCoreNanoSeconds: Math.round(seconds * 1e9),
  });
  const memory = (bytes: number, at: Date | undefined) => ({
    time: time(at),
    usageBytes: Math.round(bytes),
    workingSetBytes: Math.round(bytes),
  });
  const pods = usage.pods.map((pod) => ({
    podRef: { name: pod.pod.name, namespace: pod.pod.namespace, uid: pod.pod.uid },
    startTime: time(pod.startTime),
    containers: pod.containers.map((c) => ({
      name: c.name,
      startTime: time(c.startTime),
      cpu: cpu(c.cpuCores, c.cpuSeconds, pod.timestamp),
      memory: memory(c.memoryWorkingSetBytes, pod.timestamp),
    })),
    cpu: cpu(
      sum(pod.containers.map((c) => c.cpuCores)),
      sum(pod.containers.map((c) => c.cpuSeconds)),
      pod.timestamp,
    ),
    memory: memory(sum(pod.containers.map((c) => c.memoryWorkingSetBytes)), pod.timestamp),
  }));
  return {
    node: {
      nodeName: usage.node,
      startTime: time(nodeStartTime),
      cpu: cpu(
        sum(usage.pods.flatMap((p) => p.containers.map((c) => c.cpuCores))),
        usage.cpuSeconds,
        usage.timestamp,
      ),
      memory: memory(
        sum(usage.pods.flatMap((p) => p.containers.map((c) => c.memoryWorkingSetBytes))),
        usage.timestamp,
      ),
    },
    pods,
  };
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function formatValue(value: number): string {
  return Number.isFinite(value) ? String(value) : "NaN";
}
