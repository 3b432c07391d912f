/**
 * Whether the worker's API server answers, the way a kubelet knows whether its runtime does. A
 * probe (`GET /version`, which every authenticated user may read) runs every few seconds with its
 * own deadline, so a frozen API server that accepts connections but never answers counts as
 * unreachable too. Short blips change nothing: the worker counts as *down* only once it has not
 * answered for longer than `downAfterMs` (the virtual nodes' lease duration). While it is down the
 * syncer stops renewing its virtual nodes' leases and writes no status it cannot know, so the
 * computing cluster's node lifecycle marks the nodes unreachable and stops scheduling there; when
 * it answers again, `onRecovered` resyncs everything.
 *
 * @module
 */

import type { Clock } from "../../../toolkit/runtime/clock.ts";
import type { Runnable } from "../../../toolkit/runtime/controller.ts";
import type { Logger } from "../../../toolkit/runtime/log.ts";
import { sleep } from "../../../toolkit/util/mod.ts";

/** Options of {@linkcode WorkerReachability}. */
export interface ReachabilityOptions {
  /** Asks the worker once; rejects when it did not answer (`signal` aborts at the probe deadline). */
  probe: (signal: AbortSignal) => Promise<unknown>;
  clock: Clock;
  log: Logger;
  /** Time between probes (default 2 s). */
  intervalMs?: number;
  /** Deadline of one probe (default 5 s). */
  timeoutMs?: number;
  /** How long the worker may stay silent before it counts as down. */
  downAfterMs: number;
  /** Called when the worker answers again after it was down. */
  onRecovered?: () => void;
  /** Called when the worker starts counting as down. */
  onDown?: () => void;
}

/** What the syncer knows about the worker's API server. */
export interface ReachabilityState {
  /** Whether the last probe got an answer (true before the first probe). */
  answering: boolean;
  /** Whether it has not answered for longer than the down threshold. */
  down: boolean;
  /** Since when it has not answered, if it does not. */
  silentSince?: Date;
  /** The last probe's error, if it failed. */
  lastError?: string;
}

/** Probes the worker's API server while it runs. */
export class WorkerReachability implements Runnable {
  readonly name = "worker-reachability";
  #silentSince?: Date;
  #lastError?: string;
  #down = false;
  #lastProbeAt?: Date;

  constructor(readonly options: ReachabilityOptions) {}

  /** The current state. */
  get state(): ReachabilityState {
    return {
      answering: this.#silentSince === undefined,
      down: this.#down,
      silentSince: this.#silentSince,
      lastError: this.#lastError,
    };
  }

  /** Whether the worker counts as down (silent for longer than the threshold). */
  get down(): boolean {
    return this.#down;
  }

  /** When the last probe finished (the probe loop's own liveness). */
  get lastProbeAt(): Date | undefined {
    return this.#lastProbeAt;
  }

  /** Probes until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const interval = this.options.intervalMs ?? 2_000;
    while (!signal.aborted) {
      await this.probeOnce(signal);
      await sleep(interval, signal).catch(() => {});
    }
  }

  /** One probe; updates the state and calls the hooks on transitions. */
  async probeOnce(signal?: AbortSignal): Promise<void> {
    // A plain controller and timer: composite signals (AbortSignal.any of a timeout) did not
    // always fire under Deno 2.9, and a probe that never ends would hide the outage.
    const startedAt = this.options.clock.now();
    const probe = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      probe.abort(new Error("probe deadline"));
    }, this.options.timeoutMs ?? 5_000);
    const onAbort = () => probe.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await this.options.probe(probe.signal);
      this.#answered();
    } catch (err) {
      if (signal?.aborted) return;
      this.#silent(timedOut ? "no answer within the probe deadline" : describe(err), startedAt);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      this.#lastProbeAt = this.options.clock.now();
    }
  }

  #answered(): void {
    const wasDown = this.#down;
    if (this.#silentSince) {
      this.options.log.info("worker API server answers again", {
        silentSeconds: Math.round((this.options.clock.now().getTime() - this.#silentSince.getTime()) / 1000),
      });
    }
    this.#silentSince = undefined;
    this.#lastError = undefined;
    this.#down = false;
    if (wasDown) this.options.onRecovered?.();
  }

  /** A probe sent at `since` got no answer: the worker has been silent since then at least. */
  #silent(error: string, since: Date): void {
    const now = this.options.clock.now();
    if (!this.#silentSince) {
      this.#silentSince = since;
      this.options.log.warn("worker API server does not answer", { error });
    }
    this.#lastError = error;
    if (!this.#down && now.getTime() - this.#silentSince.getTime() > this.options.downAfterMs) {
      this.#down = true;
      this.options.log.error("worker API server unreachable: virtual nodes stop renewing their leases", {
        silentSeconds: Math.round((now.getTime() - this.#silentSince.getTime()) / 1000),
        error,
      });
      this.options.onDown?.();
    }
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
