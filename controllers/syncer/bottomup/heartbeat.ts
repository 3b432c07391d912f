/**
 * Node heartbeats: a `coordination.k8s.io/v1` Lease per virtual node in `kube-node-lease`
 * (duration 40 s, owned by the Node), renewed about every 10 s with jitter, spread over the
 * period so that many nodes do not renew at once. When the syncer stops, or while the worker's API
 * server counts as down (silent for longer than the lease duration, `ctx.worker`), the leases
 * expire and the computing cluster's node-lifecycle controller marks the virtual nodes NotReady —
 * as it would for a kubelet cut off from its node — and stops scheduling there.
 *
 * @module
 */

import type { Lease } from "../../../apis/coordination.k8s.io/v1/mod.ts";
import type { Node } from "../../../apis/core/v1/mod.ts";
import { isAlreadyExists, isConflict, isNotFound } from "../../../toolkit/client/errors.ts";
import { microTime } from "../../../toolkit/apimachinery/time.ts";
import type { Runnable } from "../../../toolkit/runtime/controller.ts";
import { LABEL_CLUSTER_BINDING, LABEL_MANAGED_BY, MANAGED_BY_VALUE } from "../../common/names.ts";
import type { SyncerContext } from "../context.ts";

const NAMESPACE = "kube-node-lease";

/** Renews the leases of this binding's virtual nodes while it runs. */
export class Heartbeat implements Runnable {
  readonly #leases = new Map<string, { lease: Lease; renewedAt: number; jitter: number }>();
  #timer?: ReturnType<typeof setInterval>;
  #busy = false;
  readonly #inFlight = new Set<string>();
  /** Lease writes since start (for the benchmark's writes per second). */
  writes = 0;

  constructor(readonly ctx: SyncerContext) {}

  get name(): string {
    return `heartbeat/${this.ctx.config.bindingName}`;
  }

  /** Renews leases until `signal` aborts (checks once a second which leases are due). */
  async run(signal: AbortSignal): Promise<void> {
    await this.#adoptExisting().catch((err) =>
      this.ctx.log.warn("listing existing node leases failed; they are taken over one by one", { error: err })
    );
    this.#timer ??= setInterval(() => void this.#tick(), 1_000);
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #tick(): Promise<void> {
    if (this.#busy || this.ctx.worker.down) return;
    this.#busy = true;
    try {
      const now = performance.now();
      const nodes = this.ctx.virtualNodeInformer.store.list();
      const live = new Set(nodes.map((n) => n.metadata!.name!));
      for (const name of this.#leases.keys()) if (!live.has(name)) this.#leases.delete(name);
      const due = nodes.filter((n) => {
        const entry = this.#leases.get(n.metadata!.name!);
        return !entry || now - entry.renewedAt >= this.ctx.config.leaseRenewMs * entry.jitter;
      });
      await Promise.all(
        due.map((n) =>
          this.renew(n).catch((err) =>
            this.ctx.log.warn("lease renewal failed", { vnode: n.metadata?.name, error: err })
          )
        ),
      );
    } finally {
      this.#busy = false;
    }
  }

  /**
   * Takes over the leases an earlier run left (a restart, a new leader) with one list: each is
   * renewed on its own schedule from its last renewal, not all at once, and none is first
   * created again only to hear that it exists.
   */
  async #adoptExisting(): Promise<void> {
    const list = await this.ctx.virtual.coordination.leases(NAMESPACE).list({
      labelSelector: `${LABEL_CLUSTER_BINDING}=${this.ctx.config.bindingName}`,
    });
    const now = performance.now();
    for (const lease of list.items) {
      const renewed = Date.parse(lease.spec?.renewTime ?? "");
      const age = Number.isNaN(renewed) ? Infinity : Math.max(0, Date.now() - renewed);
      this.#leases.set(lease.metadata!.name!, {
        lease,
        renewedAt: now - Math.min(age, this.ctx.config.leaseRenewMs * 2),
        jitter: 0.9 + Math.random() * 0.2,
      });
    }
  }

  /** Creates or renews the lease of `node` now. */
  async renew(node: Node): Promise<void> {
    const name = node.metadata!.name!;
    if (this.#inFlight.has(name)) return; // the tick and a new node's first renewal may overlap
    this.#inFlight.add(name);
    try {
      await this.#renew(node, name);
    } finally {
      this.#inFlight.delete(name);
    }
  }

  async #renew(node: Node, name: string): Promise<void> {
    const leases = this.ctx.virtual.coordination.leases(NAMESPACE);
    const renewTime = microTime(this.#now());
    const cached = this.#leases.get(name);
    const jitter = cached?.jitter ?? 0.9 + Math.random() * 0.2;
    try {
      let lease: Lease;
      if (cached) {
        lease = await leases.replace({ ...cached.lease, spec: { ...cached.lease.spec, renewTime } });
      } else {
        lease = await this.#getOrCreate(node, renewTime);
      }
      this.writes++;
      this.#leases.set(name, { lease, renewedAt: performance.now(), jitter });
    } catch (err) {
      if (isConflict(err) || isNotFound(err)) {
        this.#leases.delete(name); // re-read next time
        return;
      }
      throw err;
    }
  }

  async #getOrCreate(node: Node, renewTime: string): Promise<Lease> {
    const name = node.metadata!.name!;
    const leases = this.ctx.virtual.coordination.leases(NAMESPACE);
    // Create first: a new virtual node (the common case) then costs one request.
    try {
      return await leases.create({
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: {
          name,
          namespace: NAMESPACE,
          labels: {
            [LABEL_MANAGED_BY]: MANAGED_BY_VALUE,
            [LABEL_CLUSTER_BINDING]: this.ctx.config.bindingName,
          },
          ownerReferences: [{
            apiVersion: "v1",
            kind: "Node",
            name,
            uid: node.metadata!.uid!,
            controller: true,
          }],
        },
        spec: { holderIdentity: name, leaseDurationSeconds: this.ctx.config.leaseDurationSeconds, renewTime },
      });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    // A lease left by an earlier run: take it over.
    const existing = await leases.get(name);
    return await leases.replace({
      ...existing,
      spec: {
        ...existing.spec,
        holderIdentity: name,
        leaseDurationSeconds: this.ctx.config.leaseDurationSeconds,
        renewTime,
      },
    });
  }

  /**
   * The renew time written: wall-clock time, not the syncer's injected clock. The computing
   * cluster's node lifecycle counts a renewal only when `renewTime` moves forward, so a clock a
   * test moved backwards would let every virtual node go NotReady. Renewal intervals are measured
   * with the monotonic `performance.now()` for the same reason.
   */
  #now(): number {
    return Date.now();
  }
}
