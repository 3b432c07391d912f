/**
 * Backoff policies and the stream combinator that applies them: errors travel as items of a
 * stream, and {@linkcode withBackoff} pauses the stream after each one.
 *
 * @module
 */

import { sleep } from "../util/mod.ts";

/** A backoff policy: the delay before the next attempt. */
export interface Backoff {
  /** Delay in ms before the next attempt; advances the policy. */
  next(): number;
  /** Starts over from the initial delay. */
  reset(): void;
}

/** Options of {@linkcode ExponentialBackoff}. */
export interface ExponentialBackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /** Randomise each delay within [d/2, d] (default true). */
  jitter?: boolean;
}

/** Exponential backoff: initial × factorⁿ, capped, with optional jitter. */
export class ExponentialBackoff implements Backoff {
  #current: number;
  readonly #options: Required<ExponentialBackoffOptions>;

  constructor(options: ExponentialBackoffOptions = {}) {
    this.#options = { initialMs: 800, maxMs: 30_000, factor: 2, jitter: true, ...options };
    this.#current = this.#options.initialMs;
  }

  next(): number {
    const delay = this.#current;
    this.#current = Math.min(this.#options.maxMs, this.#current * this.#options.factor);
    return this.#options.jitter ? delay / 2 + Math.random() * (delay / 2) : delay;
  }

  reset(): void {
    this.#current = this.#options.initialMs;
  }
}

/** Wraps a backoff so that it starts over after `resetAfterMs` without any attempt (a quiet period). */
export class ResetTimerBackoff implements Backoff {
  #last?: number;

  constructor(
    readonly inner: Backoff,
    readonly resetAfterMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  next(): number {
    const now = this.now();
    if (this.#last !== undefined && now - this.#last > this.resetAfterMs) this.inner.reset();
    this.#last = now;
    return this.inner.next();
  }

  reset(): void {
    this.#last = undefined;
    this.inner.reset();
  }
}

/** The watcher's default: 0.8 s → 30 s, ×2, with jitter, reset after 120 s without errors. */
export function defaultBackoff(): Backoff {
  return new ResetTimerBackoff(new ExponentialBackoff({ initialMs: 800, maxMs: 30_000, factor: 2 }), 120_000);
}

/**
 * Passes every item of `stream` through and, after an item for which `isError` is true, waits
 * `backoff.next()` ms before asking the stream for the next item. Ends when `signal` aborts.
 */
export async function* withBackoff<E>(
  stream: AsyncIterable<E>,
  isError: (item: E) => boolean,
  backoff: Backoff = defaultBackoff(),
  signal?: AbortSignal,
): AsyncGenerator<E, void, undefined> {
  for await (const item of stream) {
    yield item;
    if (isError(item)) {
      try {
        await sleep(backoff.next(), signal);
      } catch {
        return;
      }
    }
  }
}
