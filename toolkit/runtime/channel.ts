/**
 * An unbounded async channel: producers push, one consumer iterates. Used to fan events out to
 * subscribers and to merge trigger streams.
 *
 * @module
 */

/** A FIFO channel whose iteration ends after {@linkcode close} once drained. */
export class Channel<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #head = 0;
  #waiter?: (result: IteratorResult<T>) => void;
  #closed = false;
  #error?: unknown;
  #rejecter?: (err: unknown) => void;

  /** Number of buffered items. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Adds an item; ignored after close. */
  push(item: T): void {
    if (this.#closed) return;
    if (this.#waiter) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      this.#rejecter = undefined;
      waiter({ value: item, done: false });
      return;
    }
    this.#items.push(item);
  }

  /** Ends the iteration once the buffered items are consumed; with `error`, the iteration then throws it. */
  close(error?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#error = error;
    if (this.#waiter && this.size === 0) {
      const waiter = this.#waiter;
      const rejecter = this.#rejecter;
      this.#waiter = undefined;
      this.#rejecter = undefined;
      if (error !== undefined) rejecter?.(error);
      else waiter({ value: undefined, done: true });
    }
  }

  /** Next item, or `done` once closed and drained. */
  next(): Promise<IteratorResult<T>> {
    if (this.size > 0) {
      const value = this.#items[this.#head++];
      if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
        this.#items = this.#items.slice(this.#head);
        this.#head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.#closed) {
      return this.#error !== undefined
        ? Promise.reject(this.#error)
        : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.#waiter = resolve;
      this.#rejecter = reject;
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => this.next(),
      return: () => {
        this.close();
        this.#items = [];
        this.#head = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

/** Merges several async iterables into one; ends when all have ended, or throws the first error of any. */
export function merge<T>(...sources: AsyncIterable<T>[]): AsyncIterable<T> {
  const channel = new Channel<T>();
  let active = sources.length;
  if (active === 0) channel.close();
  for (const source of sources) {
    (async () => {
      try {
        for await (const item of source) {
          if (channel.closed) break;
          channel.push(item);
        }
        if (--active === 0) channel.close();
      } catch (err) {
        channel.close(err);
      }
    })();
  }
  return channel;
}
