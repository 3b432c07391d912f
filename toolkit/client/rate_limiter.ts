/**
 * A token bucket: `qps` tokens per second, at most `burst` saved up. Waiters are served in order.
 *
 * @module
 */

import { sleep } from "../util/mod.ts";

/** Client-side request rate limit. */
export class TokenBucket {
  #tokens: number;
  #last: number;
  #queue: Promise<void> = Promise.resolve();

  /** `qps <= 0` disables limiting. */
  constructor(readonly qps: number, readonly burst: number, private readonly now: () => number = Date.now) {
    this.#tokens = burst;
    this.#last = now();
  }

  #refill(): void {
    const now = this.now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.qps);
    this.#last = now;
  }

  /** Milliseconds until a token would be available (0 when one is available now); does not take it. */
  when(): number {
    if (this.qps <= 0) return 0;
    this.#refill();
    return this.#tokens >= 1 ? 0 : Math.ceil(((1 - this.#tokens) / this.qps) * 1000);
  }

  /** Takes a token if one is available now. */
  tryTake(): boolean {
    if (this.qps <= 0) return true;
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Waits for a token (in FIFO order); rejects if `signal` aborts first. */
  take(signal?: AbortSignal): Promise<void> {
    if (this.qps <= 0) return Promise.resolve();
    const turn = this.#queue.then(() => this.#wait(signal));
    // Keep the chain alive even when one waiter is aborted.
    this.#queue = turn.catch(() => {});
    return turn;
  }

  async #wait(signal?: AbortSignal): Promise<void> {
    while (!this.tryTake()) {
      signal?.throwIfAborted();
      await sleep(this.when(), signal);
    }
  }
}
