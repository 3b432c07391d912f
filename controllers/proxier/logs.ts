/**
 * `GET /containerLogs/{namespace}/{pod}/{container}`: the twin's log through the worker API server
 * (`pods/log`), with the kubelet's query parameters (follow, previous, timestamps, sinceSeconds,
 * sinceTime, tailLines, limitBytes), streamed chunk by chunk; when the client goes away the
 * upstream request is aborted, so `kubectl logs -f` leaves nothing open.
 *
 * @module
 */

import type { ServerResponse } from "node:http";
import { ApiError } from "../../toolkit/client/errors.ts";
import type { LogOptions } from "../../toolkit/client/resource_client.ts";
import type { Twin, TwinStreams } from "../syncer/provider.ts";
import { KubeletApiError } from "./auth.ts";
import type { ProxierMetrics } from "./metrics.ts";

/** The log options a kubelet reads from the query (values as the API server sends them). */
export function logOptionsOf(query: URLSearchParams): LogOptions {
  const flag = (name: string) => query.get(name) === "true" || query.get(name) === "1";
  const number = (name: string) => {
    const text = query.get(name);
    if (text === null || text === "") return undefined;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 0) {
      throw new KubeletApiError(400, `${name}: "${text}" is not a count`);
    }
    return value;
  };
  const sinceTime = query.get("sinceTime") ?? undefined;
  if (sinceTime !== undefined && Number.isNaN(Date.parse(sinceTime))) {
    throw new KubeletApiError(400, `sinceTime: "${sinceTime}" is not an RFC 3339 time`);
  }
  return {
    follow: flag("follow") || undefined,
    previous: flag("previous") || undefined,
    timestamps: flag("timestamps") || undefined,
    sinceSeconds: number("sinceSeconds"),
    sinceTime,
    tailLines: number("tailLines"),
    limitBytes: number("limitBytes"),
  };
}

/** Streams the twin's log to `response`. */
export async function serveLogs(
  response: ServerResponse,
  streams: TwinStreams,
  twin: Twin,
  container: string,
  query: URLSearchParams,
  metrics: ProxierMetrics,
): Promise<void> {
  const options = logOptionsOf(query);
  const gone = new AbortController();
  const onClose = () => gone.abort(new Error("the client went away"));
  response.on("close", onClose);
  const ended = metrics.openStream("logs", "http");
  try {
    let body: ReadableStream<Uint8Array>;
    try {
      body = await streams.containerLogs(twin, container, { ...options, signal: gone.signal });
    } catch (err) {
      if (err instanceof ApiError && err.code >= 400 && err.code < 500) {
        throw new KubeletApiError(err.code, err.status?.message ?? err.message);
      }
      throw new KubeletApiError(502, `the worker cluster could not serve the log: ${(err as Error).message}`);
    }
    response.writeHead(200, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-cache" });
    const reader = body.pipeThrough(metrics.counting("to_client")).getReader();
    try {
      while (!gone.signal.aborted) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!response.write(value)) await new Promise((resolve) => response.once("drain", resolve));
      }
    } catch (err) {
      if (!gone.signal.aborted) throw err;
    } finally {
      await reader.cancel().catch(() => {});
    }
    if (!gone.signal.aborted) response.end();
  } finally {
    response.off("close", onClose);
    ended();
  }
}
