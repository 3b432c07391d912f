/**
 * Waiting on conditions in the chaos suite: every wait polls, is bounded, and stops as soon as the
 * scenario's signal aborts (its time is up).
 *
 * @module
 */

import { sleep } from "../../toolkit/util/mod.ts";

/** Options of {@linkcode poll}. */
export interface PollOptions {
  /** Give up after this long (the error names `what` and the last failure). */
  timeoutMs: number;
  /** Pause between attempts (default 250 ms). */
  intervalMs?: number;
  /** Stops waiting at once (rejecting with the signal's reason). */
  signal?: AbortSignal;
}

/**
 * Calls `check` until it returns a truthy value and returns that value. Errors thrown by `check`
 * count as "not yet" (API servers go away in these scenarios); the last one is named when the
 * time is up.
 */
export async function poll<T>(
  what: string,
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  options: PollOptions,
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  while (true) {
    options.signal?.throwIfAborted();
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const cause = lastError ? `: ${firstLine(lastError)}` : "";
      throw new Error(
        `timed out after ${Math.round(options.timeoutMs / 1000)} s waiting for ${what}${cause}`,
      );
    }
    await sleep(options.intervalMs ?? 250, options.signal);
  }
}

/** The first line of an error's message (API errors can carry whole objects). */
export function firstLine(err: unknown, max = 200): string {
  const text = err instanceof Error ? err.message : String(err);
  const line = text.split("\n")[0];
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

/** Seconds with one decimal, e.g. `12.3`. */
export function seconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}
