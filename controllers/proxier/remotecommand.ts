/**
 * `exec` and `attach` of a twin, for clients speaking SPDY/3.1 (what the API server uses towards
 * a node: kubectl's WebSocket v5 is translated to it, and SPDY clients pass through) or plain
 * WebSocket (`v4.channel.k8s.io`, `channel.k8s.io`), relayed to the worker API server's
 * `pods/exec|attach` through the binding's {@linkcode TwinStreams}.
 *
 * Like a kubelet: the query names the streams (`input`, `output`, `error`, `tty` = `1`; a TTY has
 * no separate stderr but a resize stream); every SPDY stream is answered at once and all expected
 * streams are awaited (30 s); the remotecommand v4 status (exit code in `details.causes`) goes to the
 * error stream; the outputs are drained and closed before the status is written, and the connection
 * is left for the client to close, so no output is truncated. When the client goes away, the worker
 * session is closed too.
 *
 * @module
 */

import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { Status } from "../../toolkit/client/errors.ts";
import type { RemoteCommandOptions, RemoteCommandSession } from "../../toolkit/client/pod_client.ts";
import type { Logger } from "../../toolkit/runtime/log.ts";
import { SpdySession, type SpdyStream } from "../../toolkit/streaming/spdy.ts";
import { acceptWebSocket, type WebSocketConnection } from "../../toolkit/streaming/websocket.ts";
import type { Twin, TwinStreams } from "../syncer/provider.ts";
import { KubeletApiError } from "./auth.ts";
import { failure } from "./failure.ts";
import type { ProxierMetrics } from "./metrics.ts";
import { acceptSpdy, isSpdyUpgrade, isWebSocketUpgrade, waitForStreams } from "./upgrade.ts";

/** What a streaming handler gets. */
export interface StreamContext {
  request: IncomingMessage;
  socket: Duplex;
  head: Uint8Array;
  query: URLSearchParams;
  twin: Twin;
  streams: TwinStreams;
  metrics: ProxierMetrics;
  log: Logger;
}

/** SPDY remotecommand protocols served, preferred first (v5 over SPDY is v4: not offered). */
const SPDY_PROTOCOLS = ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];
/** WebSocket remotecommand protocols served (the base64 variants are not). */
const WEBSOCKET_PROTOCOLS = ["v4.channel.k8s.io", "channel.k8s.io", ""];
/** How long a finished session waits for the client to close the connection. */
const CLIENT_CLOSE_WAIT_MS = 60_000;
/** WebSocket channels of the remotecommand protocol. */
const CHANNEL = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4 } as const;

/** The streams a request asks for, as a kubelet reads them (`1` or `true`; a TTY has no stderr). */
export interface WantedStreams {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

/** The streams the client asked for (`input`, `output`, `error`, `tty`). */
export function wantedStreams(query: URLSearchParams): WantedStreams {
  const on = (name: string) => query.get(name) === "1" || query.get(name) === "true";
  const tty = on("tty");
  return { stdin: on("input"), stdout: on("output"), stderr: on("error") && !tty, tty };
}

type Opener = (signal: AbortSignal) => Promise<RemoteCommandSession>;

/** Serves an exec or attach upgrade. */
export async function serveRemoteCommand(
  kind: "exec" | "attach",
  container: string,
  context: StreamContext,
): Promise<void> {
  const wants = wantedStreams(context.query);
  const command = context.query.getAll("command");
  if (kind === "exec" && command.length === 0) throw new KubeletApiError(400, "exec needs a command");
  if (!wants.stdin && !wants.stdout && !wants.stderr) {
    throw new KubeletApiError(400, "at least one of input, output and error must be requested");
  }
  const request: RemoteCommandOptions = { container, ...wants };
  const open: Opener = (signal) =>
    kind === "exec"
      ? context.streams.exec(context.twin, { ...request, command }, signal)
      : context.streams.attach(context.twin, request, signal);
  if (isSpdyUpgrade(context.request)) return await serveSpdy(kind, context, wants, open);
  if (isWebSocketUpgrade(context.request)) return await serveWebSocket(kind, context, wants, open);
  throw new KubeletApiError(400, `${kind} needs an Upgrade to SPDY/3.1 or websocket`);
}

async function serveSpdy(
  kind: string,
  context: StreamContext,
  wants: WantedStreams,
  open: Opener,
): Promise<void> {
  const { metrics } = context;
  const protocol = acceptSpdy(context.request, context.socket, SPDY_PROTOCOLS);
  const session = new SpdySession(context.socket, { role: "server", head: context.head });
  const ended = metrics.openStream(kind, "spdy");
  const gone = new AbortController();
  void session.closed.then(() => gone.abort(new Error("the client closed the connection")));
  try {
    const expected = [
      "error",
      ...(wants.stdin ? ["stdin"] : []),
      ...(wants.stdout ? ["stdout"] : []),
      ...(wants.stderr ? ["stderr"] : []),
      ...(wants.tty ? ["resize"] : []),
    ];
    const streams = await waitForStreams(session, expected);
    let worker: RemoteCommandSession;
    try {
      worker = await open(gone.signal);
    } catch (err) {
      await finishSpdy(session, streams, failureStatus(err), protocol);
      return;
    }
    if (streams.stdin && worker.stdin) {
      void streams.stdin.readable.pipeThrough(metrics.counting("from_client")).pipeTo(worker.stdin).catch(
        () => {},
      );
    }
    if (streams.resize) void relayResize(streams.resize.readable, worker);
    const outputs = [
      relayOutput(worker.stdout, streams.stdout, metrics),
      relayOutput(worker.stderr, streams.stderr, metrics),
    ];
    const status = await worker.status;
    await Promise.all(outputs);
    await finishSpdy(session, streams, status, protocol);
  } catch (err) {
    context.log.debug(`${kind} session ended`, { error: err });
    session.abort(err);
  } finally {
    gone.abort();
    ended();
  }
}

/** Copies a worker output to a client stream, ending it (FIN) when the worker's ends. */
async function relayOutput(
  from: ReadableStream<Uint8Array> | undefined,
  to: SpdyStream | undefined,
  metrics: ProxierMetrics,
): Promise<void> {
  if (!from) return;
  if (!to) {
    await from.cancel().catch(() => {});
    return;
  }
  await from.pipeThrough(metrics.counting("to_client")).pipeTo(to.writable).catch(() => {});
}

/**
 * The kubelet's finish: the status on the error stream (v4: the JSON Status; earlier versions: the
 * message of a failure), FIN on every output, RST on the inputs, then the client closes.
 */
async function finishSpdy(
  session: SpdySession,
  streams: Record<string, SpdyStream>,
  status: Status,
  protocol: string,
): Promise<void> {
  const text = statusText(status, protocol);
  const writer = streams.error.writable.getWriter();
  if (text) await writer.write(new TextEncoder().encode(text)).catch(() => {});
  await writer.close().catch(() => {});
  for (const name of ["stdout", "stderr"]) await streams[name]?.writable.close().catch(() => {});
  for (const name of ["stdin", "resize"]) streams[name]?.reset();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, CLIENT_CLOSE_WAIT_MS));
  await Promise.race([session.closed, timeout]);
  clearTimeout(timer);
  await session.close();
}

async function serveWebSocket(
  kind: string,
  context: StreamContext,
  wants: WantedStreams,
  open: Opener,
): Promise<void> {
  const { metrics } = context;
  const connection = await acceptWebSocket(context.request, context.socket, context.head, {
    protocols: WEBSOCKET_PROTOCOLS,
  });
  const ended = metrics.openStream(kind, "websocket");
  const gone = new AbortController();
  void connection.closed.then(() => gone.abort(new Error("the client closed the connection")));
  try {
    let worker: RemoteCommandSession;
    try {
      worker = await open(gone.signal);
    } catch (err) {
      await sendFrame(connection, CHANNEL.error, statusText(failureStatus(err), connection.protocol));
      await connection.close(1000);
      return;
    }
    // Like a kubelet, an empty frame on the lowest channel it writes says the session is ready.
    await connection.send(
      new Uint8Array([wants.stdout ? CHANNEL.stdout : wants.stderr ? CHANNEL.stderr : CHANNEL.error]),
    );
    void relayWebSocketInput(connection, worker, metrics);
    const forward = async (stream: ReadableStream<Uint8Array> | undefined, channel: number) => {
      if (!stream) return;
      for await (const chunk of stream) {
        metrics.bytes.inc({ direction: "to_client" }, chunk.byteLength);
        await sendFrame(connection, channel, chunk);
      }
    };
    const outputs = Promise.all([
      forward(worker.stdout, CHANNEL.stdout),
      forward(worker.stderr, CHANNEL.stderr),
    ]);
    const status = await worker.status;
    await outputs.catch(() => {});
    await sendFrame(connection, CHANNEL.error, statusText(status, connection.protocol));
    await connection.close(1000);
  } catch (err) {
    context.log.debug(`${kind} session ended`, { error: err });
    connection.abort(err);
  } finally {
    gone.abort();
    ended();
  }
}

/** Client frames: stdin (channel 0) to the worker, terminal sizes (channel 4). */
async function relayWebSocketInput(
  connection: WebSocketConnection,
  worker: RemoteCommandSession,
  metrics: ProxierMetrics,
): Promise<void> {
  const stdin = worker.stdin?.getWriter();
  try {
    for await (const message of connection.messages) {
      if (message.byteLength < 2) continue;
      const payload = message.subarray(1);
      metrics.bytes.inc({ direction: "from_client" }, payload.byteLength);
      if (message[0] === CHANNEL.stdin && stdin) await stdin.write(payload.slice());
      else if (message[0] === CHANNEL.resize) resizeFrom(payload, worker);
    }
  } catch {
    // the client went away: the session ends with it
  }
}

async function sendFrame(
  connection: WebSocketConnection,
  channel: number,
  payload: Uint8Array | string,
): Promise<void> {
  const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  if (typeof payload === "string" && bytes.byteLength === 0) return;
  const framed = new Uint8Array(bytes.byteLength + 1);
  framed[0] = channel;
  framed.set(bytes, 1);
  await connection.send(framed).catch(() => {});
}

/** What goes on the error stream: v4 the JSON Status; v1–v3 the message of a failure, else nothing. */
function statusText(status: Status, protocol: string): string {
  if (protocol === "v4.channel.k8s.io") return JSON.stringify({ metadata: {}, ...status });
  return status.status === "Failure" ? status.message ?? "command failed" : "";
}

/** Terminal sizes arrive as JSON objects (`{"Width":80,"Height":24}`), possibly several per chunk. */
async function relayResize(stream: ReadableStream<Uint8Array>, worker: RemoteCommandSession): Promise<void> {
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    for await (const chunk of stream) {
      buffered += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffered.indexOf("}")) >= 0) {
        resizeFrom(new TextEncoder().encode(buffered.slice(0, end + 1)), worker);
        buffered = buffered.slice(end + 1);
      }
    }
  } catch {
    // the client reset the resize stream: nothing more to relay
  }
}

function resizeFrom(json: Uint8Array, worker: RemoteCommandSession): void {
  try {
    const size = JSON.parse(new TextDecoder().decode(json)) as { Width?: unknown; Height?: unknown };
    if (typeof size.Width === "number" && typeof size.Height === "number") {
      worker.resize({ width: size.Width, height: size.Height });
    }
  } catch {
    // not a terminal size: ignored, as a kubelet does
  }
}

/** The remotecommand Status of a session the worker could not start (twin gone, worker refused, …). */
function failureStatus(err: unknown): Status {
  const { status, message } = failure(err);
  return {
    apiVersion: "v1",
    kind: "Status",
    status: "Failure",
    message,
    reason: status === 404 ? "NotFound" : status === 400 ? "BadRequest" : "InternalError",
    code: status,
  };
}
