/**
 * A clock controllers read instead of `Date.now()`, so that tests can move time (time windows,
 * token renewal, heartbeats, grace periods) without waiting for it.
 *
 * @module
 */

/** Tells the time. */
export interface Clock {
  /** The current time. */
  now(): Date;
}

/** The real clock. */
export const systemClock: Clock = { now: () => new Date() };

/** A clock that tests move; it runs at the real pace from wherever it was set. */
export class TestClock implements Clock {
  #offsetMs = 0;

  /** The moved time. */
  now(): Date {
    return new Date(Date.now() + this.#offsetMs);
  }

  /** Makes `now()` return `instant` from here on (then advancing in real time). */
  set(instant: Date | string): void {
    this.#offsetMs = new Date(instant).getTime() - Date.now();
  }

  /** Moves the clock by `ms`. */
  advance(ms: number): void {
    this.#offsetMs += ms;
  }
}
