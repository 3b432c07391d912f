/**
 * The syncer's Prometheus metrics. Every series carries `cluster_binding`, so that several
 * syncers (the manager's embedded mode) share one registry.
 *
 * Bottom-up: `kubeocean_syncer_vnode_total`, `kubeocean_syncer_vnode_origin_resource`,
 * `…_vnode_available_resource`, `…_vnode_physical_usage`, `…_vnode_virtual_usage` (per node and
 * resource, in base units: cores, bytes, pods) and their `…_cluster_*` sums over the binding's
 * leased nodes. Top-down: `kubeocean_syncer_create_pod_total`,
 * `…_create_pod_errors_total`, `…_virtual_pod_total{phase}`, `…_physical_pod_total{phase}`,
 * `…_orphans_found_total` and the per-hop latency histograms `…_hop_seconds{hop}`.
 *
 * @module
 */

import { Counter, Gauge, Histogram, type Registry } from "prom-client";

const cache = new WeakMap<Registry, SyncerMetrics>();

/** The syncer metrics of one registry. */
export class SyncerMetrics {
  readonly vnodes: Gauge<"cluster_binding">;
  readonly origin: Gauge<"cluster_binding" | "node" | "resource">;
  readonly available: Gauge<"cluster_binding" | "node" | "resource">;
  readonly physicalUsage: Gauge<"cluster_binding" | "node" | "resource">;
  readonly virtualUsage: Gauge<"cluster_binding" | "node" | "resource">;
  readonly clusterOrigin: Gauge<"cluster_binding" | "resource">;
  readonly clusterAvailable: Gauge<"cluster_binding" | "resource">;
  readonly clusterPhysicalUsage: Gauge<"cluster_binding" | "resource">;
  readonly clusterVirtualUsage: Gauge<"cluster_binding" | "resource">;
  readonly createPod: Counter<"cluster_binding">;
  readonly createPodErrors: Counter<"cluster_binding">;
  readonly virtualPods: Gauge<"cluster_binding" | "phase">;
  readonly physicalPods: Gauge<"cluster_binding" | "phase">;
  readonly orphans: Counter<"cluster_binding" | "side">;
  readonly hop: Histogram<"cluster_binding" | "hop">;

  private constructor(registry: Registry) {
    const registers = [registry];
    const gauge = <L extends string>(name: string, help: string, labelNames: L[]) =>
      new Gauge<L>({ name, help, labelNames, registers });
    this.vnodes = gauge("kubeocean_syncer_vnode_total", "Virtual nodes of the binding", ["cluster_binding"]);
    const perNode = ["cluster_binding", "node", "resource"] as ("cluster_binding" | "node" | "resource")[];
    this.origin = gauge(
      "kubeocean_syncer_vnode_origin_resource",
      "Allocatable of the physical node",
      perNode,
    );
    this.available = gauge(
      "kubeocean_syncer_vnode_available_resource",
      "Leased capacity of the virtual node",
      perNode,
    );
    this.physicalUsage = gauge(
      "kubeocean_syncer_vnode_physical_usage",
      "Requests of the physical node's own (non-Kubeocean) pods",
      perNode,
    );
    this.virtualUsage = gauge(
      "kubeocean_syncer_vnode_virtual_usage",
      "Requests of pods placed on the virtual node",
      perNode,
    );
    const perCluster = ["cluster_binding", "resource"] as ("cluster_binding" | "resource")[];
    this.clusterOrigin = gauge(
      "kubeocean_syncer_cluster_origin_resource",
      "Sum of origin resources",
      perCluster,
    );
    this.clusterAvailable = gauge(
      "kubeocean_syncer_cluster_available_resource",
      "Sum of leased capacity",
      perCluster,
    );
    this.clusterPhysicalUsage = gauge(
      "kubeocean_syncer_cluster_physical_usage",
      "Sum of physical usage",
      perCluster,
    );
    this.clusterVirtualUsage = gauge(
      "kubeocean_syncer_cluster_virtual_usage",
      "Sum of virtual usage",
      perCluster,
    );
    this.createPod = new Counter({
      name: "kubeocean_syncer_create_pod_total",
      help: "Worker pods created",
      labelNames: ["cluster_binding"],
      registers,
    });
    this.createPodErrors = new Counter({
      name: "kubeocean_syncer_create_pod_errors_total",
      help: "Failed worker pod creations",
      labelNames: ["cluster_binding"],
      registers,
    });
    this.virtualPods = gauge(
      "kubeocean_syncer_virtual_pod_total",
      "Virtual pods on this binding's nodes by phase",
      [
        "cluster_binding",
        "phase",
      ],
    );
    this.physicalPods = gauge("kubeocean_syncer_physical_pod_total", "Worker twins by phase", [
      "cluster_binding",
      "phase",
    ]);
    this.orphans = new Counter({
      name: "kubeocean_syncer_orphans_found_total",
      help: "Objects without a counterpart found by the drift audit",
      labelNames: ["cluster_binding", "side"],
      registers,
    });
    this.hop = new Histogram({
      name: "kubeocean_syncer_hop_seconds",
      help:
        "Per-hop latency: bound→created (virtual pod bound to twin created), running (twin Running to virtual pod Running), deleted (virtual pod deleted to twin gone)",
      labelNames: ["cluster_binding", "hop"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
  }

  /** The metrics of `registry` (created on first use). */
  static of(registry: Registry): SyncerMetrics {
    let metrics = cache.get(registry);
    if (!metrics) cache.set(registry, metrics = new SyncerMetrics(registry));
    return metrics;
  }
}
