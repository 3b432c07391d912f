/**
 * Raw watch streams: one HTTP watch request decoded into typed events, as an `AsyncIterable`.
 * Breaking out of the loop (or aborting the signal) cancels the request.
 *
 * @module
 */

import { LinkedAbort } from "./abort.ts";
import { ApiError, type Status } from "./errors.ts";
import type { KubeObject } from "./resource.ts";
import { type QueryValue, STREAM_CHUNK_BYTES, type Transport } from "./transport.ts";

/** Watch event types sent by the API server. */
export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

/** One decoded watch event. `ERROR` events are turned into a thrown {@linkcode ApiError}. */
export interface WatchEvent<T> {
  type: Exclude<WatchEventType, "ERROR">;
  object: T;
}

/** Options of a raw watch request. */
export interface WatchRequest {
  path: string;
  query: Record<string, QueryValue>;
  signal?: AbortSignal;
}

/** Annotation on the bookmark that ends the initial events of a streaming list. */
export const INITIAL_EVENTS_END_ANNOTATION = "k8s.io/initial-events-end";

/**
 * Opens a watch and yields its events until the server ends the stream, the signal aborts or the
 * consumer stops iterating. A server-sent `ERROR` event throws an {@linkcode ApiError} (e.g. 410
 * Gone when the resourceVersion is too old).
 */
export async function* watchEvents<T extends KubeObject>(
  transport: Transport,
  request: WatchRequest,
): AsyncGenerator<WatchEvent<T>, void, undefined> {
  const link = new LinkedAbort(request.signal);
  let response: Response;
  try {
    response = await transport.stream({
      method: "GET",
      path: request.path,
      query: { ...request.query, watch: true },
      signal: link.signal,
    });
  } catch (err) {
    link.dispose();
    throw err;
  }
  if (!response.body) {
    link.dispose();
    return;
  }
  // A byte stream is read into one reused buffer: a long watch leaves no garbage buffer per chunk.
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = response.body.getReader({ mode: "byob" });
  } catch {
    // not a byte stream
  }
  const reader = byob ?? response.body.getReader();
  let buffer = new ArrayBuffer(STREAM_CHUNK_BYTES);
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    while (true) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = byob
          ? await byob.read(new Uint8Array(buffer))
          : await (reader as ReadableStreamDefaultReader<Uint8Array>).read();
      } catch (err) {
        if (request.signal?.aborted) return;
        throw err;
      }
      if (chunk.done) break;
      if (byob) buffer = chunk.value.buffer as ArrayBuffer; // the read transferred it; take it back
      // One decode and one split per network chunk; the last part may be an incomplete line.
      const lines = (buffered + decoder.decode(chunk.value, { stream: true })).split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        if (line.length > 1) yield decode<T>(line, request.path);
      }
    }
    const rest = (buffered + decoder.decode()).trim();
    if (rest) yield decode<T>(rest, request.path);
  } finally {
    link.abort(new Error("watch closed"));
    link.dispose();
    await reader.cancel().catch(() => {});
  }
}

function decode<T>(line: string, path: string): WatchEvent<T> {
  let event: { type?: WatchEventType; object?: unknown };
  try {
    event = JSON.parse(line);
  } catch {
    throw new Error(`watch ${path}: undecodable event: ${line.slice(0, 200)}`);
  }
  if (event.type === "ERROR") {
    const status = (event.object ?? {}) as Status;
    throw new ApiError(status.code ?? 500, status, `WATCH ${path}`);
  }
  if (!event.type || !event.object) throw new Error(`watch ${path}: malformed event: ${line.slice(0, 200)}`);
  return event as WatchEvent<T>;
}
