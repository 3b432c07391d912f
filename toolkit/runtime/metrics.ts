/**
 * Prometheus metrics of the toolkit (work queues, reconciles, REST requests) on a `prom-client`
 * registry, and a small `/metrics` server.
 *
 * Metric names follow client-go and controller-runtime so that existing dashboards work:
 * `workqueue_depth`, `workqueue_adds_total`, `workqueue_queue_duration_seconds`,
 * `workqueue_work_duration_seconds`, `workqueue_retries_total`,
 * `controller_runtime_reconcile_total{result}`, `controller_runtime_reconcile_errors_total`,
 * `controller_runtime_reconcile_time_seconds`, `rest_client_requests_total{method,code,host}`,
 * `rest_client_request_duration_seconds{verb,host}`.
 *
 * @module
 */

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { RequestObserver } from "../client/transport.ts";
import type { QueueObserver } from "./queue.ts";

/** The toolkit metrics already registered on each registry (a metric name registers once). */
const onRegistry = new WeakMap<Registry, RuntimeMetrics>();

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The toolkit's metrics on one registry. */
export class RuntimeMetrics {
  readonly queueDepth: Gauge<"name">;
  readonly queueAdds: Counter<"name">;
  readonly queueLatency: Histogram<"name">;
  readonly workDuration: Histogram<"name">;
  readonly queueRetries: Counter<"name">;
  readonly reconcileTotal: Counter<"controller" | "result">;
  readonly reconcileErrors: Counter<"controller">;
  readonly reconcileTime: Histogram<"controller">;
  readonly restRequests: Counter<"method" | "code" | "host">;
  readonly restLatency: Histogram<"verb" | "host">;

  constructor(readonly registry: Registry = new Registry(), options: { defaultMetrics?: boolean } = {}) {
    if (onRegistry.has(registry)) {
      throw new Error(
        "the toolkit metrics are registered on this registry already: use RuntimeMetrics.of(registry)",
      );
    }
    onRegistry.set(registry, this);
    const registers = [registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
    this.queueDepth = new Gauge({
      name: "workqueue_depth",
      help: "Current depth of the work queue",
      labelNames: ["name"],
      registers,
    });
    this.queueAdds = new Counter({
      name: "workqueue_adds_total",
      help: "Adds handled by the work queue",
      labelNames: ["name"],
      registers,
    });
    this.queueLatency = new Histogram({
      name: "workqueue_queue_duration_seconds",
      help: "Seconds a key stays in the queue before being processed",
      labelNames: ["name"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.workDuration = new Histogram({
      name: "workqueue_work_duration_seconds",
      help: "Seconds processing a key takes",
      labelNames: ["name"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.queueRetries = new Counter({
      name: "workqueue_retries_total",
      help: "Retries handled by the work queue",
      labelNames: ["name"],
      registers,
    });
    this.reconcileTotal = new Counter({
      name: "controller_runtime_reconcile_total",
      help: "Reconciliations per controller and result (success, error, requeue_after)",
      labelNames: ["controller", "result"],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: "controller_runtime_reconcile_errors_total",
      help: "Reconciliation errors per controller",
      labelNames: ["controller"],
      registers,
    });
    this.reconcileTime = new Histogram({
      name: "controller_runtime_reconcile_time_seconds",
      help: "Seconds per reconciliation",
      labelNames: ["controller"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.restRequests = new Counter({
      name: "rest_client_requests_total",
      help: "HTTP requests to API servers by method, status code (0: no response) and host",
      labelNames: ["method", "code", "host"],
      registers,
    });
    this.restLatency = new Histogram({
      name: "rest_client_request_duration_seconds",
      help: "HTTP request latency to API servers by verb and host",
      labelNames: ["verb", "host"],
      buckets: DURATION_BUCKETS,
      registers,
    });
  }

  /** The toolkit metrics of `registry`, registered on first use (without the process's default metrics). */
  static of(registry: Registry): RuntimeMetrics {
    return onRegistry.get(registry) ?? new RuntimeMetrics(registry, { defaultMetrics: false });
  }

  /** Queue observer for the queue called `name`. */
  queueObserver(name: string): QueueObserver {
    return {
      add: () => this.queueAdds.inc({ name }),
      depth: (depth) => this.queueDepth.set({ name }, depth),
      latency: (seconds) => this.queueLatency.observe({ name }, seconds),
      workDuration: (seconds) => this.workDuration.observe({ name }, seconds),
      retry: () => this.queueRetries.inc({ name }),
    };
  }

  /** Request observer for the API server at `host`. */
  requestObserver(host: string): RequestObserver {
    return ({ method, code, seconds }) => {
      this.restRequests.inc({ method, code: String(code), host });
      this.restLatency.observe({ verb: method, host }, seconds);
    };
  }

  /** Records one reconciliation. */
  recordReconcile(controller: string, result: "success" | "error" | "requeue_after", seconds: number): void {
    this.reconcileTotal.inc({ controller, result });
    if (result === "error") this.reconcileErrors.inc({ controller });
    this.reconcileTime.observe({ controller }, seconds);
  }

  /** The registry in Prometheus text format. */
  async text(): Promise<string> {
    return await this.registry.metrics();
  }
}

/** Serves `registry` at `/metrics` on `hostname:port` (default `:8080`). */
export function serveMetrics(
  registry: Registry,
  options: { hostname?: string; port?: number; signal?: AbortSignal } = {},
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({
    hostname: options.hostname ?? "0.0.0.0",
    port: options.port ?? 8080,
    signal: options.signal,
    onListen: () => {},
  }, async (request) => {
    if (new URL(request.url).pathname !== "/metrics") return new Response("not found\n", { status: 404 });
    return new Response(await registry.metrics(), { headers: { "content-type": registry.contentType } });
  });
}

export { Registry };
