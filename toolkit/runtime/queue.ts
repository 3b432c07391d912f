/**
 * A keyed work queue with client-go semantics: a key is queued at most once (dedupe), is never
 * handed to two workers at once, and is queued again if it was added while in flight. Delayed and
 * rate-limited adds use a per-key exponential backoff combined with a global token bucket.
 *
 * @module
 */

/** Decides how long a key waits before its next retry. */
export interface RateLimiter<K> {
  /** Delay for `key`'s next retry; advances its failure count. */
  when(key: K): number;
  /** Forgets `key`'s failures. */
  forget(key: K): void;
  /** How many times `key` was retried since it was last forgotten. */
  retries(key: K): number;
}

/** Per-key exponential backoff: base × 2^failures, capped (client-go: 5 ms → 1000 s). */
export class ItemExponentialRateLimiter<K> implements RateLimiter<K> {
  readonly #failures = new Map<K, number>();
  constructor(readonly baseMs = 5, readonly maxMs = 1_000_000) {}

  when(key: K): number {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    return Math.min(this.maxMs, this.baseMs * 2 ** failures);
  }
  forget(key: K): void {
    this.#failures.delete(key);
  }
  retries(key: K): number {
    return this.#failures.get(key) ?? 0;
  }
}

/** A global token bucket limiter (client-go: 10 qps, burst 100): spreads retries of many keys. */
export class BucketRateLimiter<K> implements RateLimiter<K> {
  #tokens: number;
  #last: number;
  constructor(readonly qps = 10, readonly burst = 100, private readonly now: () => number = Date.now) {
    this.#tokens = burst;
    this.#last = now();
  }
  when(_key: K): number {
    const now = this.now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.qps);
    this.#last = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens / this.qps) * 1000);
  }
  forget(_key: K): void {}
  retries(_key: K): number {
    return 0;
  }
}

/** The larger delay of several limiters. */
export class MaxOfRateLimiter<K> implements RateLimiter<K> {
  readonly limiters: RateLimiter<K>[];
  constructor(...limiters: RateLimiter<K>[]) {
    this.limiters = limiters;
  }
  when(key: K): number {
    return Math.max(...this.limiters.map((l) => l.when(key)));
  }
  forget(key: K): void {
    for (const l of this.limiters) l.forget(key);
  }
  retries(key: K): number {
    return Math.max(...this.limiters.map((l) => l.retries(key)));
  }
}

/** client-go's default controller rate limiter. */
export function defaultRateLimiter<K>(): RateLimiter<K> {
  return new MaxOfRateLimiter<K>(
    new ItemExponentialRateLimiter<K>(5, 1_000_000),
    new BucketRateLimiter<K>(10, 100),
  );
}

/** Observes the queue (for metrics). */
export interface QueueObserver {
  add?(): void;
  depth?(depth: number): void;
  /** Seconds a key waited between being queued and picked up. */
  latency?(seconds: number): void;
  /** Seconds a key was processed. */
  workDuration?(seconds: number): void;
  retry?(): void;
}

/** The work queue. */
export class WorkQueue<K = string> {
  #queue: K[] = [];
  readonly #dirty = new Set<K>();
  readonly #processing = new Set<K>();
  readonly #addedAt = new Map<K, number>();
  readonly #startedAt = new Map<K, number>();
  readonly #timers = new Map<K, { at: number; timer: ReturnType<typeof setTimeout> }>();
  #waiters: ((key: K | undefined) => void)[] = [];
  #drainWaiters: (() => void)[] = [];
  #shuttingDown = false;

  constructor(
    readonly rateLimiter: RateLimiter<K> = defaultRateLimiter<K>(),
    readonly observer: QueueObserver = {},
  ) {}

  /** Keys waiting to be processed. */
  get length(): number {
    return this.#queue.length;
  }

  /** Keys being processed right now. */
  get inFlight(): number {
    return this.#processing.size;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Queues `key` unless it is already queued; if it is being processed, it is queued again afterwards. */
  add(key: K): void {
    if (this.#shuttingDown) return;
    this.observer.add?.();
    if (this.#dirty.has(key)) return;
    this.#dirty.add(key);
    this.#addedAt.set(key, performance.now());
    if (this.#processing.has(key)) return;
    this.#enqueue(key);
  }

  #enqueue(key: K): void {
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#take(key);
      waiter(key);
    } else {
      this.#queue.push(key);
    }
    this.observer.depth?.(this.#queue.length);
  }

  #take(key: K): void {
    this.#processing.add(key);
    this.#dirty.delete(key);
    const added = this.#addedAt.get(key);
    this.#addedAt.delete(key);
    if (added !== undefined) this.observer.latency?.((performance.now() - added) / 1000);
    this.#startedAt.set(key, performance.now());
  }

  /** Queues `key` after `delayMs`; an earlier pending delay for the same key wins. */
  addAfter(key: K, delayMs: number): void {
    if (this.#shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const at = Date.now() + delayMs;
    const existing = this.#timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, delayMs);
    this.#timers.set(key, { at, timer });
  }

  /** Queues `key` after the rate limiter's delay (a retry). */
  addRateLimited(key: K): void {
    this.observer.retry?.();
    this.addAfter(key, this.rateLimiter.when(key));
  }

  /** Clears `key`'s retry history (after a success). */
  forget(key: K): void {
    this.rateLimiter.forget(key);
  }

  /** How many times `key` has been retried. */
  retries(key: K): number {
    return this.rateLimiter.retries(key);
  }

  /** The next key to process, waiting if none; `undefined` once shut down and drained. */
  get(): Promise<K | undefined> {
    const key = this.#queue.shift();
    if (key !== undefined) {
      this.#take(key);
      this.observer.depth?.(this.#queue.length);
      return Promise.resolve(key);
    }
    if (this.#shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Marks `key` processed; if it was added meanwhile it is queued again. */
  done(key: K): void {
    this.#processing.delete(key);
    const started = this.#startedAt.get(key);
    this.#startedAt.delete(key);
    if (started !== undefined) this.observer.workDuration?.((performance.now() - started) / 1000);
    if (this.#dirty.has(key) && !this.#shuttingDown) this.#enqueue(key);
    if (this.#processing.size === 0) { for (const resolve of this.#drainWaiters.splice(0)) resolve(); }
  }

  /**
   * Stops accepting keys, wakes idle workers (their `get()` returns `undefined`) and resolves once
   * every key in flight is done. Queued keys that were not started are dropped.
   */
  async shutDown(): Promise<void> {
    this.#shuttingDown = true;
    for (const { timer } of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#queue = [];
    this.#dirty.clear();
    for (const waiter of this.#waiters.splice(0)) waiter(undefined);
    if (this.#processing.size > 0) await new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
  }
}
