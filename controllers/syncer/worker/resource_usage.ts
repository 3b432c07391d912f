/**
 * Resource usage of twins from the worker's `metrics.k8s.io` API (what `kubectl top` reads there):
 * the PodMetrics of the binding's twins in the mount namespace — least privilege, through the API
 * server, never a worker kubelet.
 *
 * PodMetrics carry rates (CPU cores over a window) and a timestamp; a kubelet's resource metrics
 * carry cumulative CPU counters. Each container's counter therefore starts at its current rate
 * times its age, and grows by rate × elapsed time with every newer measurement, so it never
 * decreases while the process runs (and restarts near where it was for a steady load). A node's
 * counter grows with its pods' increments, so a pod that ends does not take its CPU time away.
 *
 * Measurements are fetched when asked for and reused for `resolutionMs`. When the metrics API is
 * missing or forbidden, usage comes back without pods and with an `error`, and `onUnavailable`
 * is called once until it recovers.
 *
 * @module
 */

import { CoreV1Api, type Pod } from "../../../apis/core/v1/mod.ts";
import type { ClusterBinding } from "../../../apis/kubeocean.io/v1beta1/mod.ts";
import { parseQuantity } from "../../../toolkit/apimachinery/quantity.ts";
import type { EventInput } from "../../../toolkit/runtime/events.ts";
import type { KubeClient } from "../../../toolkit/client/client.ts";
import { ApiError } from "../../../toolkit/client/errors.ts";
import { SingleFlight } from "../../../toolkit/util/mod.ts";
import {
  ANNOTATION_VIRTUAL_NODE_NAME,
  ANNOTATION_VIRTUAL_POD_NAME,
  ANNOTATION_VIRTUAL_POD_NAMESPACE,
  ANNOTATION_VIRTUAL_POD_UID,
  LABEL_CLUSTER_BINDING,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
} from "../../common/names.ts";
import type { ContainerUsage, NodeUsage, PodUsage, TwinUsage } from "../provider.ts";

/** A `metrics.k8s.io/v1beta1` PodMetrics (the fields read). */
export interface PodMetrics {
  metadata?: { name?: string; namespace?: string };
  /** When the usage was measured (RFC 3339). */
  timestamp?: string;
  /** Over how long (a duration such as `15s`). */
  window?: string;
  containers?: { name: string; usage?: { cpu?: string; memory?: string } }[];
}

/** Options of {@linkcode WorkerResourceUsage}. */
export interface ResourceUsageOptions {
  /** How long a fetched measurement is reused (default 10 s). */
  resolutionMs?: number;
  /** Called once when the metrics API cannot be read, until it can again. */
  onUnavailable?: (message: string) => void;
  now?: () => number;
}

interface Counter {
  cpuSeconds: number;
  /** The measurement time it was last advanced to (ms). */
  at: number;
}

interface Snapshot {
  fetchedAt: number;
  byNode: Map<string, PodUsage[]>;
  error?: string;
}

/** Measures the twins of one binding through the worker's metrics API. */
export class WorkerResourceUsage implements TwinUsage {
  readonly #core: CoreV1Api;
  readonly #refresh = new SingleFlight<Snapshot>();
  readonly #containers = new Map<string, Counter>();
  readonly #nodes = new Map<string, number>();
  #snapshot?: Snapshot;
  #unavailable = false;

  constructor(
    readonly client: KubeClient,
    readonly binding: { name: string; mountNamespace: string },
    readonly options: ResourceUsageOptions = {},
  ) {
    this.#core = new CoreV1Api(client);
  }

  async usageOn(vnode: string): Promise<NodeUsage> {
    const now = this.options.now ?? Date.now;
    const resolution = this.options.resolutionMs ?? 10_000;
    let snapshot = this.#snapshot;
    if (!snapshot || now() - snapshot.fetchedAt >= resolution) {
      snapshot = await this.#refresh.do("all", () => this.#fetch());
    }
    const pods = snapshot.byNode.get(vnode) ?? [];
    const newest = Math.max(...pods.map((p) => p.timestamp.getTime()));
    return {
      node: vnode,
      pods,
      cpuSeconds: this.#nodes.get(vnode) ?? 0,
      timestamp: pods.length ? new Date(newest) : undefined,
      error: snapshot.error,
    };
  }

  async #fetch(): Promise<Snapshot> {
    const now = this.options.now ?? Date.now;
    const selector = `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE},${LABEL_CLUSTER_BINDING}=${this.binding.name}`;
    const namespace = this.binding.mountNamespace;
    const [twins, metrics] = await Promise.all([
      this.#core.pods(namespace).list({ labelSelector: selector }),
      this.client.transport.request<{ items?: PodMetrics[] }>({
        method: "GET",
        path: `/apis/metrics.k8s.io/v1beta1/namespaces/${namespace}/pods`,
        query: { labelSelector: selector },
      }).then((list) => ({ items: list.items ?? [], error: undefined }), (err) => ({
        items: [] as PodMetrics[],
        error: unavailable(err, namespace),
      })),
    ]);
    if (metrics.error && !this.#unavailable) this.options.onUnavailable?.(metrics.error);
    this.#unavailable = metrics.error !== undefined;
    const byName = new Map(twins.items.map((pod) => [pod.metadata!.name!, pod]));
    const byNode = new Map<string, PodUsage[]>();
    const seen = new Set<string>();
    for (const measured of metrics.items) {
      const twin = byName.get(measured.metadata?.name ?? "");
      const usage = twin && this.#podUsage(twin, measured, seen);
      if (!usage) continue;
      const node = twin.metadata!.annotations![ANNOTATION_VIRTUAL_NODE_NAME];
      byNode.set(node, [...byNode.get(node) ?? [], usage]);
    }
    // Containers of twins that are gone stop counting; their CPU time stays in their node's counter.
    if (!metrics.error) {
      for (const key of this.#containers.keys()) if (!seen.has(key)) this.#containers.delete(key);
    }
    const snapshot = { fetchedAt: now(), byNode, error: metrics.error };
    this.#snapshot = snapshot;
    return snapshot;
  }

  /** The virtual pod's usage from its twin's PodMetrics, advancing the counters. */
  #podUsage(twin: Pod, measured: PodMetrics, seen: Set<string>): PodUsage | undefined {
    const annotations = twin.metadata?.annotations ?? {};
    const node = annotations[ANNOTATION_VIRTUAL_NODE_NAME];
    const pod = {
      namespace: annotations[ANNOTATION_VIRTUAL_POD_NAMESPACE],
      name: annotations[ANNOTATION_VIRTUAL_POD_NAME],
      uid: annotations[ANNOTATION_VIRTUAL_POD_UID],
    };
    const at = Date.parse(measured.timestamp ?? "");
    if (!node || !pod.namespace || !pod.name || !pod.uid || Number.isNaN(at)) return undefined;
    const podStart = twin.status?.startTime ? new Date(twin.status.startTime) : undefined;
    const containers: ContainerUsage[] = [];
    let increment = 0;
    for (const container of measured.containers ?? []) {
      const cpuCores = quantity(container.usage?.cpu);
      const memoryWorkingSetBytes = quantity(container.usage?.memory);
      const started = twin.status?.containerStatuses?.find((s) => s.name === container.name)?.state?.running
        ?.startedAt;
      const startTime = started ? new Date(started) : podStart;
      const key = `${twin.metadata!.uid}/${container.name}`;
      seen.add(key);
      let counter = this.#containers.get(key);
      if (!counter) {
        const age = Math.max(0, (at - (startTime?.getTime() ?? at)) / 1000);
        counter = { cpuSeconds: cpuCores * age, at };
        this.#containers.set(key, counter);
        increment += counter.cpuSeconds;
      } else if (at > counter.at) {
        const step = cpuCores * (at - counter.at) / 1000;
        counter.cpuSeconds += step;
        counter.at = at;
        increment += step;
      }
      containers.push({
        name: container.name,
        startTime,
        cpuSeconds: counter.cpuSeconds,
        cpuCores,
        memoryWorkingSetBytes,
      });
    }
    this.#nodes.set(node, (this.#nodes.get(node) ?? 0) + increment);
    return { pod, startTime: podStart, timestamp: new Date(at), containers };
  }
}

/** The Warning Event on the binding when its worker's metrics API cannot be read. */
export function metricsUnavailableEvent(binding: ClusterBinding, message: string): EventInput {
  return {
    regarding: binding,
    type: "Warning",
    reason: "WorkerMetricsUnavailable",
    action: "MeasureUsage",
    note: `kubectl top and autoscaling of pods on its virtual nodes see no usage: ${message}`,
  };
}

/** A quantity as a number (cores, bytes); 0 when absent or unparseable. */
function quantity(text: string | undefined): number {
  if (!text) return 0;
  try {
    return parseQuantity(text).toNumber();
  } catch {
    return 0;
  }
}

/** Why the metrics API could not be read, for the binding's Event. */
function unavailable(err: unknown, namespace: string): string {
  if (err instanceof ApiError && err.code === 404) {
    return "the worker cluster serves no metrics.k8s.io API (install metrics-server there for kubectl top and autoscaling)";
  }
  if (err instanceof ApiError && err.code === 403) {
    return `the worker cluster does not let Kubeocean list pods.metrics.k8s.io in ${namespace} (re-run bind or apply deploy/worker/rbac.yaml)`;
  }
  return `the worker cluster's metrics API failed: ${(err as Error)?.message ?? err}`;
}
