/**
 * Leader election on a `coordination.k8s.io/v1` Lease with client-go's semantics: a lease held by
 * someone else counts as valid until `leaseDuration` after the *local* time at which this process
 * last saw the record change (never the record's own `renewTime`, so clock skew does not matter);
 * the leader renews every `retryPeriod` and steps down when it could not renew for
 * `renewDeadline`; on a graceful shutdown it releases the lease so a successor takes over at once.
 *
 * @module
 */

import { LinkedAbort } from "../client/abort.ts";
import { isAlreadyExists, isConflict, isNotFound } from "../client/errors.ts";
import type { KubeObject, ResourceDescriptor } from "../client/resource.ts";
import { ResourceClient } from "../client/resource_client.ts";
import { microTime } from "../apimachinery/time.ts";
import { sleep } from "../util/mod.ts";
import type { Transport } from "../client/transport.ts";
import { type Logger, silentLogger } from "./log.ts";

/** `coordination.k8s.io/v1` Lease (the fields leader election uses). */
export interface Lease extends KubeObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** Descriptor of `coordination.k8s.io/v1` leases. */
export const LEASE_DESCRIPTOR: ResourceDescriptor = {
  group: "coordination.k8s.io",
  version: "v1",
  kind: "Lease",
  plural: "leases",
  namespaced: true,
};

/** Options of {@linkcode LeaderElector}. */
export interface LeaderElectionOptions {
  transport: Transport;
  namespace: string;
  /** Lease name, e.g. `kubeocean-manager`. */
  name: string;
  /** This candidate's identity (default: hostname + random suffix). */
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Release the lease when the run is cancelled (default true). */
  releaseOnCancel?: boolean;
  /** Called when this candidate becomes leader; `signal` aborts when it stops leading. */
  onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  onStoppedLeading?: () => void;
  /** Called whenever the observed leader changes. */
  onNewLeader?: (identity: string) => void;
  log?: Logger;
  /** Clock (for tests). */
  now?: () => number;
}

type Spec = NonNullable<Lease["spec"]>;

/** A leader-election candidate. */
export class LeaderElector {
  readonly identity: string;
  readonly #leases: ResourceClient<Lease>;
  readonly #opts: Required<
    Omit<LeaderElectionOptions, "onStoppedLeading" | "onNewLeader" | "log" | "now" | "identity">
  >;
  readonly #log: Logger;
  readonly #now: () => number;
  #observed?: Spec;
  #observedAt = 0;
  #observedLease?: Lease;
  #leader?: string;
  #isLeader = false;

  constructor(readonly options: LeaderElectionOptions) {
    this.identity = options.identity ?? `${Deno.hostname()}_${crypto.randomUUID().slice(0, 8)}`;
    this.#leases = new ResourceClient<Lease>(options.transport, LEASE_DESCRIPTOR, options.namespace);
    this.#opts = {
      transport: options.transport,
      namespace: options.namespace,
      name: options.name,
      leaseDurationMs: options.leaseDurationMs ?? 15_000,
      renewDeadlineMs: options.renewDeadlineMs ?? 10_000,
      retryPeriodMs: options.retryPeriodMs ?? 2_000,
      releaseOnCancel: options.releaseOnCancel ?? true,
      onStartedLeading: options.onStartedLeading,
    };
    if (this.#opts.leaseDurationMs <= this.#opts.renewDeadlineMs) {
      throw new Error("leaseDuration must exceed renewDeadline");
    }
    this.#log = (options.log ?? silentLogger).with({
      lease: `${options.namespace}/${options.name}`,
      identity: this.identity,
    });
    this.#now = options.now ?? Date.now;
  }

  /** Whether this candidate leads right now. */
  get isLeader(): boolean {
    return this.#isLeader;
  }

  /** The identity of the leader as last observed. */
  get leader(): string | undefined {
    return this.#leader;
  }

  /**
   * Campaigns until leadership is won, leads until it is lost, the leading work ends, or `signal`
   * aborts, then returns. Leading work that ends or fails ends the leadership too: the lease is
   * released at once (a standby takes over instead of a leader that renews but does nothing), and
   * the work's error is thrown from here. Run it again to campaign again (or exit the process, as
   * most controllers do).
   */
  async run(signal: AbortSignal): Promise<void> {
    // Acquire.
    while (!signal.aborted) {
      if (await this.#tryAcquireOrRenew(signal)) break;
      await sleep(jitter(this.#opts.retryPeriodMs), signal).catch(() => {});
    }
    if (signal.aborted) return;
    this.#isLeader = true;
    this.#log.info("became leader");
    const leading = new AbortController();
    const workEnded = new AbortController();
    let workError: unknown;
    const leadership = Promise.resolve().then(() => this.#opts.onStartedLeading(leading.signal)).then(
      () => workEnded.abort(),
      (err) => {
        workError = err ?? new Error("leading work failed");
        workEnded.abort();
      },
    );
    // Renew while leading and working.
    const stop = new LinkedAbort(signal, workEnded.signal);
    let lastRenew = this.#now();
    while (!stop.signal.aborted) {
      await sleep(this.#opts.retryPeriodMs, stop.signal).catch(() => {});
      if (stop.signal.aborted) break;
      const attempt = new LinkedAbort(signal);
      const timer = setTimeout(
        () => attempt.abort(new Error("renew deadline")),
        Math.max(1, this.#opts.renewDeadlineMs - (this.#now() - lastRenew)),
      );
      const renewed = await this.#tryAcquireOrRenew(attempt.signal).catch(() => false);
      clearTimeout(timer);
      attempt.dispose();
      if (renewed) {
        lastRenew = this.#now();
      } else if (this.#now() - lastRenew >= this.#opts.renewDeadlineMs) {
        this.#log.warn("failed to renew the lease within the renew deadline: stepping down");
        break;
      }
    }
    stop.dispose();
    const workStopped = workEnded.signal.aborted && !signal.aborted;
    this.#isLeader = false;
    leading.abort(new Error("leadership lost"));
    await leadership;
    if ((signal.aborted && this.#opts.releaseOnCancel) || workStopped) await this.release();
    this.options.onStoppedLeading?.();
    if (workStopped && workError !== undefined) {
      this.#log.error("leading work failed: stepped down", { error: workError });
      throw workError;
    }
    this.#log.info(workStopped ? "leading work ended: stepped down" : "stopped leading");
  }

  /** Gives the lease up if this candidate holds it (holder cleared, duration 1 s). */
  async release(): Promise<void> {
    const lease = this.#observedLease;
    if (!lease || this.#observed?.holderIdentity !== this.identity) return;
    const now = this.#now();
    try {
      await this.#leases.replace({
        ...lease,
        spec: {
          holderIdentity: "",
          leaseDurationSeconds: 1,
          acquireTime: microTime(now),
          renewTime: microTime(now),
          leaseTransitions: this.#observed.leaseTransitions ?? 0,
        },
      });
      this.#log.info("released the lease");
    } catch (err) {
      this.#log.warn("failed to release the lease", { error: err });
    }
  }

  async #tryAcquireOrRenew(signal: AbortSignal): Promise<boolean> {
    const now = this.#now();
    const durationSeconds = Math.ceil(this.#opts.leaseDurationMs / 1000);
    let lease: Lease;
    try {
      lease = await this.#leases.get(this.#opts.name, { signal });
    } catch (err) {
      if (!isNotFound(err)) {
        this.#log.debug("lease get failed", { error: err });
        return false;
      }
      const spec: Spec = {
        holderIdentity: this.identity,
        leaseDurationSeconds: durationSeconds,
        acquireTime: microTime(now),
        renewTime: microTime(now),
        leaseTransitions: 0,
      };
      try {
        this.#observedLease = await this.#leases.create(
          { metadata: { name: this.#opts.name }, spec } as Lease,
          { signal },
        );
      } catch (createErr) {
        if (!isAlreadyExists(createErr)) this.#log.debug("lease create failed", { error: createErr });
        return false;
      }
      this.#observe(spec, now);
      return true;
    }
    const record = lease.spec ?? {};
    if (!sameSpec(record, this.#observed)) this.#observe(record, now);
    this.#observedLease = lease;
    const holder = record.holderIdentity ?? "";
    const validUntil = this.#observedAt + (record.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (holder && holder !== this.identity && validUntil > now) return false;
    const spec: Spec = {
      holderIdentity: this.identity,
      leaseDurationSeconds: durationSeconds,
      acquireTime: holder === this.identity ? record.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: holder === this.identity
        ? record.leaseTransitions ?? 0
        : (record.leaseTransitions ?? 0) + 1,
    };
    try {
      this.#observedLease = await this.#leases.replace({ ...lease, spec }, { signal });
    } catch (err) {
      if (!isConflict(err)) this.#log.debug("lease update failed", { error: err });
      return false;
    }
    this.#observe(spec, now);
    return true;
  }

  #observe(spec: Spec, now: number): void {
    this.#observed = spec;
    this.#observedAt = now;
    const holder = spec.holderIdentity ?? "";
    if (holder && holder !== this.#leader) {
      this.#leader = holder;
      this.options.onNewLeader?.(holder);
    }
  }
}

function sameSpec(a: Spec, b: Spec | undefined): boolean {
  return !!b && a.holderIdentity === b.holderIdentity && a.renewTime === b.renewTime &&
    a.acquireTime === b.acquireTime && a.leaseTransitions === b.leaseTransitions &&
    a.leaseDurationSeconds === b.leaseDurationSeconds;
}

function jitter(ms: number): number {
  return ms * (1 + Math.random() * 0.2);
}
