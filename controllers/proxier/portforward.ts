/**
 * `port-forward` to a twin, for clients speaking SPDY/3.1 (`portforward.k8s.io`: what the API
 * server sends, kubectl's WebSocket tunnel included) or WebSocket (`v4.channel.k8s.io`), each
 * connection relayed to the worker API server's `pods/portforward` of the twin.
 *
 * SPDY, like a kubelet: every forwarded connection is a pair of streams (`streamtype` `data` and
 * `error`, the same `requestid`, the `port`); once both exist the pair is forwarded, and a failure
 * is written as text on its error stream. The client half-closing the data stream (its local
 * connection ended) ends the upstream connection; the pod side ending finishes the data stream.
 *
 * WebSocket: the `port` query names the ports; port `i` uses channels `2i` (data) and `2i+1`
 * (errors), and the first frame on each channel carries the port number (2 bytes, little endian).
 *
 * @module
 */

import type { PortForwardStream } from "../../toolkit/client/pod_client.ts";
import { SpdySession, type SpdyStream } from "../../toolkit/streaming/spdy.ts";
import { acceptWebSocket, type WebSocketConnection } from "../../toolkit/streaming/websocket.ts";
import { KubeletApiError } from "./auth.ts";
import { failure } from "./failure.ts";
import type { StreamContext } from "./remotecommand.ts";
import { acceptSpdy, headerValue, isSpdyUpgrade, isWebSocketUpgrade } from "./upgrade.ts";

/** The SPDY port-forward protocol. */
const SPDY_PROTOCOLS = ["portforward.k8s.io"];
/** WebSocket port-forward protocols served (binary only). */
const WEBSOCKET_PROTOCOLS = ["v4.channel.k8s.io", "portforward.k8s.io", ""];
/** How long half a pair may wait for its other half. */
const PAIR_TIMEOUT_MS = 30_000;

/** Serves a port-forward upgrade. */
export async function servePortForward(context: StreamContext): Promise<void> {
  if (isSpdyUpgrade(context.request)) return await serveSpdy(context);
  if (isWebSocketUpgrade(context.request)) return await serveWebSocket(context);
  throw new KubeletApiError(400, "portForward needs an Upgrade to SPDY/3.1 or websocket");
}

/** Parses a port number; undefined unless it is 1–65535. */
function parsePort(text: string | undefined): number | undefined {
  const port = Number(text);
  return text && /^\d+$/.test(text) && port >= 1 && port <= 65535 ? port : undefined;
}

interface Pair {
  data?: SpdyStream;
  error?: SpdyStream;
  timer: ReturnType<typeof setTimeout>;
}

async function serveSpdy(context: StreamContext): Promise<void> {
  acceptSpdy(context.request, context.socket, SPDY_PROTOCOLS);
  const session = new SpdySession(context.socket, { role: "server", head: context.head });
  const ended = context.metrics.openStream("portforward", "spdy");
  const gone = new AbortController();
  void session.closed.then(() => gone.abort(new Error("the client closed the connection")));
  const pairs = new Map<string, Pair>();
  const forwards = new Set<Promise<void>>();
  try {
    for await (const stream of session.streams()) {
      const id = pairId(stream);
      if (id === undefined) {
        stream.reset();
        continue;
      }
      const pair = pairs.get(id) ?? {
        timer: setTimeout(() => {
          pairs.delete(id);
          pair.data?.reset();
          pair.error?.reset();
        }, PAIR_TIMEOUT_MS),
      };
      pairs.set(id, pair);
      const type = headerValue(stream.headers, "streamtype");
      if ((type === "data" && pair.data) || (type === "error" && pair.error)) {
        stream.reset(); // a second stream of the same kind for one request
        continue;
      }
      if (type === "data") pair.data = stream;
      else pair.error = stream;
      if (pair.data && pair.error) {
        clearTimeout(pair.timer);
        pairs.delete(id);
        const forward = forwardPair(pair.data, pair.error, context, gone.signal);
        forwards.add(forward);
        void forward.finally(() => forwards.delete(forward));
      }
    }
  } catch (err) {
    context.log.debug("port-forward session ended", { error: err });
  } finally {
    for (const pair of pairs.values()) clearTimeout(pair.timer);
    gone.abort();
    await Promise.allSettled([...forwards]);
    await session.close().catch(() => {});
    ended();
  }
}

/**
 * Which pair a stream belongs to: its `requestid`, or for old clients that send none, the error
 * stream's id (a data stream follows its error stream, two ids later) — as a kubelet pairs them.
 */
function pairId(stream: SpdyStream): string | undefined {
  const type = headerValue(stream.headers, "streamtype");
  if (type !== "data" && type !== "error") return undefined;
  const requestId = headerValue(stream.headers, "requestid");
  if (requestId) return requestId;
  return String(type === "error" ? stream.id : stream.id - 2);
}

/** Forwards one connection: the data stream to a new upstream connection to the pod's port. */
async function forwardPair(
  data: SpdyStream,
  error: SpdyStream,
  context: StreamContext,
  signal: AbortSignal,
): Promise<void> {
  const { metrics } = context;
  const port = parsePort(headerValue(data.headers, "port"));
  const fail = async (message: string) => {
    const writer = error.writable.getWriter();
    await writer.write(new TextEncoder().encode(message)).catch(() => {});
    await writer.close().catch(() => {});
    await data.writable.close().catch(() => {});
  };
  if (port === undefined) {
    await fail(`invalid port "${headerValue(data.headers, "port") ?? ""}"`);
    return;
  }
  const connection = new AbortController();
  const abort = () => connection.abort();
  signal.addEventListener("abort", abort, { once: true });
  let upstream: PortForwardStream;
  try {
    upstream = await context.streams.portForward(context.twin, port, connection.signal);
  } catch (err) {
    signal.removeEventListener("abort", abort);
    await fail(`error forwarding port ${port} to pod ${context.twin.owner.name}: ${failure(err).message}`);
    return;
  }
  try {
    // Client → pod; the client's FIN (its local connection ended) ends the upstream connection.
    void data.readable.pipeThrough(metrics.counting("from_client")).pipeTo(upstream.writable).catch(() =>
      upstream.close()
    );
    // Pod → client, then FIN.
    let upstreamError: unknown;
    await upstream.readable.pipeThrough(metrics.counting("to_client")).pipeTo(data.writable, {
      preventAbort: true,
    }).catch((err) => upstreamError = err);
    if (upstreamError !== undefined && !data.resetStatus && !connection.signal.aborted) {
      await fail(
        `error forwarding port ${port} to pod ${context.twin.owner.name}: ${
          (upstreamError as Error)?.message ?? upstreamError
        }`,
      );
    } else {
      await data.writable.close().catch(() => {});
      await error.writable.close().catch(() => {});
    }
  } finally {
    signal.removeEventListener("abort", abort);
    upstream.close();
  }
}

async function serveWebSocket(context: StreamContext): Promise<void> {
  const ports = context.query.getAll("port").flatMap((p) => p.split(",")).map((p) => p.trim()).filter(
    Boolean,
  );
  if (ports.length === 0) {
    throw new KubeletApiError(400, "port-forward over WebSocket needs the port query parameter");
  }
  const numbers = ports.map((text) => {
    const port = parsePort(text);
    if (port === undefined) throw new KubeletApiError(400, `invalid port "${text}"`);
    return port;
  });
  const connection = await acceptWebSocket(context.request, context.socket, context.head, {
    protocols: WEBSOCKET_PROTOCOLS,
  });
  const ended = context.metrics.openStream("portforward", "websocket");
  const gone = new AbortController();
  void connection.closed.then(() => gone.abort(new Error("the client closed the connection")));
  try {
    const portHeader = (port: number) => new Uint8Array([port & 0xff, port >> 8]);
    for (const [i, port] of numbers.entries()) {
      await send(connection, 2 * i, portHeader(port));
      await send(connection, 2 * i + 1, portHeader(port));
    }
    const upstreams = await Promise.all(numbers.map(async (port, i) => {
      try {
        return await context.streams.portForward(context.twin, port, gone.signal);
      } catch (err) {
        const message = `error forwarding port ${port} to pod ${context.twin.owner.name}: ${
          failure(err).message
        }`;
        await send(connection, 2 * i + 1, new TextEncoder().encode(message));
        return undefined;
      }
    }));
    const writers = upstreams.map((upstream) => upstream?.writable.getWriter());
    const incoming = (async () => {
      for await (const message of connection.messages) {
        const channel = message[0];
        if (message.byteLength < 2 || channel % 2 !== 0) continue;
        const writer = writers[channel / 2];
        if (!writer) continue;
        context.metrics.bytes.inc({ direction: "from_client" }, message.byteLength - 1);
        await writer.write(message.slice(1)).catch(() => {});
      }
    })().catch(() => {});
    await Promise.all(upstreams.map(async (upstream, i) => {
      if (!upstream) return;
      try {
        for await (const chunk of upstream.readable) {
          context.metrics.bytes.inc({ direction: "to_client" }, chunk.byteLength);
          await send(connection, 2 * i, chunk);
        }
      } catch (err) {
        if (!gone.signal.aborted) {
          await send(connection, 2 * i + 1, new TextEncoder().encode(`${(err as Error)?.message ?? err}`));
        }
      }
    }));
    for (const upstream of upstreams) upstream?.close();
    await connection.close(1000).catch(() => {});
    await incoming;
  } catch (err) {
    context.log.debug("port-forward session ended", { error: err });
    connection.abort(err);
  } finally {
    gone.abort();
    ended();
  }
}

async function send(connection: WebSocketConnection, channel: number, payload: Uint8Array): Promise<void> {
  const framed = new Uint8Array(payload.byteLength + 1);
  framed[0] = channel;
  framed.set(payload, 1);
  await connection.send(framed).catch(() => {});
}
