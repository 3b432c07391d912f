/**
 * The proxier's Prometheus metrics: `kubeocean_proxier_requests_total{endpoint,code}`,
 * `kubeocean_proxier_streams_total{kind,protocol}` (kind exec|attach|portforward|logs, protocol
 * spdy|websocket|http), `kubeocean_proxier_open_streams` and
 * `kubeocean_proxier_bytes_total{direction}` (to_client, from_client).
 *
 * @module
 */

import { Counter, Gauge, type Registry } from "prom-client";

const cache = new WeakMap<Registry, ProxierMetrics>();

/** The proxier metrics of one registry. */
export class ProxierMetrics {
  readonly requests: Counter<"endpoint" | "code">;
  readonly streams: Counter<"kind" | "protocol">;
  readonly openStreams: Gauge;
  readonly bytes: Counter<"direction">;

  private constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: "kubeocean_proxier_requests_total",
      help: "Kubelet API requests by endpoint and HTTP status (101 for upgraded streams)",
      labelNames: ["endpoint", "code"],
      registers,
    });
    this.streams = new Counter({
      name: "kubeocean_proxier_streams_total",
      help:
        "Streams opened, by kind (exec, attach, portforward, logs) and client protocol (spdy, websocket, http)",
      labelNames: ["kind", "protocol"],
      registers,
    });
    this.openStreams = new Gauge({
      name: "kubeocean_proxier_open_streams",
      help: "Streams open right now",
      registers,
    });
    this.bytes = new Counter({
      name: "kubeocean_proxier_bytes_total",
      help: "Bytes relayed, to the client (from the worker) and from the client (to the worker)",
      labelNames: ["direction"],
      registers,
    });
  }

  /** The proxier metrics of `registry` (created on first use). */
  static of(registry: Registry): ProxierMetrics {
    let metrics = cache.get(registry);
    if (!metrics) cache.set(registry, metrics = new ProxierMetrics(registry));
    return metrics;
  }

  /** Counts a stream for its lifetime: call the returned function when it ends. */
  openStream(kind: string, protocol: string): () => void {
    this.streams.inc({ kind, protocol });
    this.openStreams.inc();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.openStreams.dec();
    };
  }

  /** A TransformStream that counts the bytes passing through it. */
  counting(direction: "to_client" | "from_client"): TransformStream<Uint8Array, Uint8Array> {
    return new TransformStream({
      transform: (chunk, controller) => {
        this.bytes.inc({ direction }, chunk.byteLength);
        controller.enqueue(chunk);
      },
    });
  }
}
