/**
 * The manager's Prometheus metrics, on top of the toolkit's runtime metrics:
 * `kubeocean_manager_sync_duration_seconds`, `kubeocean_manager_sync_total`,
 * `kubeocean_manager_sync_errors_total` and `kubeocean_clusterbindings_total{status}`.
 *
 * @module
 */

import { Counter, Gauge, Histogram } from "prom-client";
import type { ClusterBinding } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { RuntimeMetrics } from "../../toolkit/runtime/metrics.ts";

/** Metrics of the manager process. */
export class ManagerMetrics {
  readonly runtime: RuntimeMetrics;
  readonly syncDuration: Histogram;
  readonly syncTotal: Counter;
  readonly syncErrors: Counter;
  readonly bindings: Gauge<"status">;

  constructor(runtime: RuntimeMetrics = new RuntimeMetrics()) {
    this.runtime = runtime;
    const registers = [runtime.registry];
    this.syncDuration = new Histogram({
      name: "kubeocean_manager_sync_duration_seconds",
      help: "Seconds per ClusterBinding reconcile",
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.syncTotal = new Counter({
      name: "kubeocean_manager_sync_total",
      help: "ClusterBinding reconciles",
      registers,
    });
    this.syncErrors = new Counter({
      name: "kubeocean_manager_sync_errors_total",
      help: "ClusterBinding reconciles that failed",
      registers,
    });
    this.bindings = new Gauge({
      name: "kubeocean_clusterbindings_total",
      help: "ClusterBindings by status (Pending, Ready, Failed, Deleting)",
      labelNames: ["status"],
      registers,
    });
  }

  /** Recomputes the per-status gauge from the cached bindings. */
  updateBindingGauge(bindings: ClusterBinding[]): void {
    const counts: Record<string, number> = { Pending: 0, Ready: 0, Failed: 0, Deleting: 0 };
    for (const b of bindings) {
      const status = b.metadata?.deletionTimestamp ? "Deleting" : b.status?.phase ?? "Pending";
      counts[status] = (counts[status] ?? 0) + 1;
    }
    for (const [status, count] of Object.entries(counts)) this.bindings.set({ status }, count);
  }
}
