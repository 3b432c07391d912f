/**
 * Linked abort signals with strong references. `AbortSignal.any()` holds its result weakly from
 * the sources (per the spec), and under garbage-collection pressure a long-lived chain of them
 * was seen to stop propagating aborts to an open watch. Here the parent's listener keeps the
 * child alive until {@linkcode LinkedAbort.dispose}.
 *
 * @module
 */

/** An abort controller that also aborts when any parent signal aborts. */
export class LinkedAbort {
  readonly #controller = new AbortController();
  readonly #parents: AbortSignal[];
  readonly #onAbort: (event: Event) => void;

  constructor(...parents: (AbortSignal | undefined)[]) {
    this.#parents = parents.filter((s): s is AbortSignal => s !== undefined);
    this.#onAbort = (event) => this.abort((event.target as AbortSignal).reason);
    for (const parent of this.#parents) {
      if (parent.aborted) {
        this.abort(parent.reason);
        break;
      }
      parent.addEventListener("abort", this.#onAbort, { once: true });
    }
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Aborts this signal (not the parents). */
  abort(reason?: unknown): void {
    if (!this.#controller.signal.aborted) this.#controller.abort(reason);
  }

  /** Detaches from the parents (call when the guarded operation is over). */
  dispose(): void {
    for (const parent of this.#parents) parent.removeEventListener("abort", this.#onAbort);
  }
}
