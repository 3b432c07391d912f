/**
 * WebSockets for streaming subresources (exec, attach, port-forward), on both ends, with a small
 * promise/stream API over the `ws` package.
 *
 * Why not Deno's own WebSocket:
 *
 * - **Server side.** The proxier serves the kubelet API on a `node:https` server, because
 *   `Deno.serve` can neither verify client certificates nor hand over an upgraded socket. An upgrade
 *   arrives as the server's `'upgrade'` event with a raw `TLSSocket`; `Deno.upgradeWebSocket` cannot
 *   take that socket (it wraps the TCP fd, under the TLS records), so {@linkcode acceptWebSocket}
 *   runs the RFC 6455 handshake and framing on the given socket with `ws`.
 * - **Client side.** A worker cluster's API server is trusted through its own CA only, may need a
 *   client certificate and a `tls-server-name`. Deno's `WebSocket` (and `fetch`) *add* a CA to the
 *   system roots and take no server name; `node:tls` with `ca` *replaces* the roots (checked under
 *   Deno 2.9.6 with `DENO_CERT`: a CA trusted as a root is still refused when another `ca` is pinned).
 *   {@linkcode connectWebSocket} therefore dials with `ws` over `node:https`.
 *
 * Receive back-pressure is real: when the consumer of {@linkcode WebSocketConnection.messages} falls
 * behind, the socket stops reading, TCP's window closes and the peer's sends stall. Under Deno 2.9.6
 * `TLSSocket.pause()` is not enough for that: the TLS layer keeps reading the TCP socket and buffers
 * the decrypted bytes without bound (measured on loopback: during a one-second stall of the reader
 * the sender pushed all of 256 MiB and RSS grew by ~320 MiB), so the reader also stops the TLS
 * socket's underlying TCP handle (a Deno internal, used only where it exists; Node's own `pause()`
 * already does this). With it the sender gets ~6 MiB ahead (socket buffers) and RSS stays flat.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { type IncomingMessage, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocket as WsWebSocket, WebSocketServer as WsWebSocketServer } from "ws";

/** How a WebSocket connection ended: the close code and reason (1006 = no close frame). */
export interface WebSocketCloseInfo {
  /** The close code the peer sent (or we sent, if the peer did not answer); 1005 = no code, 1006 = abnormal. */
  code: number;
  reason: string;
  /** Whether the closing handshake completed without a transport error. */
  wasClean: boolean;
}

/** An open WebSocket connection, either side. */
export interface WebSocketConnection {
  /** The negotiated subprotocol (`""` when none was offered and the server allowed none). */
  readonly protocol: string;
  /**
   * Incoming messages, binary as they are and text as its UTF-8 bytes, in order. The stream has
   * back-pressure: once {@linkcode WebSocketOptions.readableHighWaterMark} bytes wait unread, the
   * socket stops reading until the consumer catches up. It closes after the peer's close frame and
   * errors with a {@linkcode WebSocketClosedError} when the connection ends without one (or with the
   * abort reason after {@linkcode WebSocketConnection.abort}); unread messages are delivered first,
   * except after a local abort. Cancelling it closes the connection with code 1000.
   */
  readonly messages: ReadableStream<Uint8Array>;
  /**
   * Resolves when the connection is closed, whichever side closed it and however; never rejects.
   */
  readonly closed: Promise<WebSocketCloseInfo>;
  /** Bytes queued for sending that the socket has not taken yet. */
  readonly bufferedAmount: number;
  /**
   * Sends one binary message. Resolves once the message is queued and the send buffer is at or
   * below {@linkcode WebSocketOptions.writableHighWaterMark}; otherwise once this message has been
   * written to the socket — so awaiting every send bounds the memory a fast producer can use.
   * Rejects with an `InvalidStateError` `DOMException` when the connection is not open, or with the
   * socket's error if the write fails before the promise resolved. Do not modify `data` until then.
   */
  send(data: Uint8Array): Promise<void>;
  /**
   * Starts the closing handshake (default code 1000) and resolves with {@linkcode closed}. Reading
   * resumes so the peer's close frame is seen even if `messages` is not being consumed. Throws a
   * `TypeError` for a code that may not be sent (valid: 1000–1003, 1007–1014, 3000–4999).
   */
  close(code?: number, reason?: string): Promise<WebSocketCloseInfo>;
  /**
   * Destroys the socket without a closing handshake: `messages` errors with `reason` (default an
   * `AbortError`), unread messages are dropped, `closed` resolves with code 1006 and the peer sees
   * an abnormal closure (1006).
   */
  abort(reason?: unknown): void;
  /** Sends a ping; resolves on the next pong (which cannot arrive while reading is paused). */
  ping(): Promise<void>;
}

/** Options both {@linkcode acceptWebSocket} and {@linkcode connectWebSocket} take. */
export interface WebSocketOptions {
  /** Largest message accepted, in bytes (default 32 MiB); a bigger one closes the connection with 1009. */
  maxPayload?: number;
  /** Unread bytes of `messages` at which the socket stops reading (default 1 MiB); it reads again at half. */
  readableHighWaterMark?: number;
  /** Send-buffer size above which `send()` waits for its message to be written (default 1 MiB). */
  writableHighWaterMark?: number;
  /**
   * Ping the peer every this many milliseconds and abort the connection when a ping is still
   * unanswered at the next one (default: no keep-alive). Paused while back-pressure stops reading.
   */
  keepAliveMs?: number;
}

/** Options of {@linkcode acceptWebSocket}. */
export interface AcceptWebSocketOptions extends WebSocketOptions {
  /**
   * The subprotocols this server speaks. The first protocol of the client's offer (in the client's
   * order, as Kubernetes' wsstream does) that is in this list is chosen. Include `""` to also accept
   * a client that offers no subprotocol at all.
   */
  protocols: string[];
}

/** Options of {@linkcode connectWebSocket}. */
export interface ConnectWebSocketOptions extends WebSocketOptions {
  /** Subprotocols to offer, most preferred first; the server must choose one of them. */
  protocols: string[];
  /** Extra request headers, e.g. `{ authorization: "Bearer …" }`. */
  headers?: Record<string, string>;
  /** PEM CA bundle trusted *instead of* the system roots (pinning). */
  ca?: string;
  /** PEM client certificate (with `key`). */
  cert?: string;
  /** PEM private key of `cert`. */
  key?: string;
  /** TLS server name for SNI and certificate verification (kubeconfig `tls-server-name`). */
  servername?: string;
  /** Verify the server certificate (default true). */
  rejectUnauthorized?: boolean;
  /** Aborts the handshake; after it, use {@linkcode WebSocketConnection.abort}. */
  signal?: AbortSignal;
  /** Rejects with a `TimeoutError` `DOMException` when the handshake takes longer (default 30 000 ms). */
  handshakeTimeoutMs?: number;
}

/** A refused WebSocket upgrade: the HTTP status and body the server answered with. */
export class WebSocketUpgradeError extends Error {
  /** HTTP status code of the refusal, e.g. 400, 401, 403. */
  readonly status: number;
  /** Response body as text (at most 64 KiB), e.g. a Kubernetes `Status` object as JSON. */
  readonly body: string;
  /** Response headers (lower-case names). */
  readonly headers: Record<string, string | string[] | undefined>;

  constructor(
    message: string,
    status: number,
    body: string,
    headers: Record<string, string | string[] | undefined> = {},
  ) {
    super(message);
    this.name = "WebSocketUpgradeError";
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

/** A connection that ended without a closing handshake (or after an error), as `messages` reports it. */
export class WebSocketClosedError extends Error {
  /** The close code (1006 when the connection was lost). */
  readonly code: number;
  readonly reason: string;

  constructor(code: number, reason: string, options?: ErrorOptions) {
    super(`WebSocket closed abnormally (code ${code}${reason ? `: ${reason}` : ""})`, options);
    this.name = "WebSocketClosedError";
    this.code = code;
    this.reason = reason;
  }
}

const DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024;
const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;
const MAX_ERROR_BODY = 64 * 1024;
const OPEN = 1;
const CONNECTING = 0;

// --- the parts of `ws` used here (the package ships no types) ---

type WsData = Buffer | ArrayBuffer | Buffer[];

interface WsSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  readonly _socket?: Duplex | null;
  send(data: Uint8Array, options: { binary: boolean }, cb: (err?: Error) => void): void;
  ping(data?: Uint8Array, mask?: boolean, cb?: (err?: Error) => void): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  on(event: "message", listener: (data: WsData, isBinary: boolean) => void): this;
  on(event: "close", listener: (code: number, reason: Buffer) => void): this;
  on(event: "error", listener: (err: Error) => void): this;
  on(event: "pong", listener: () => void): this;
  on(event: "open", listener: () => void): this;
  on(event: "upgrade", listener: (res: IncomingMessage) => void): this;
  on(
    event: "unexpected-response",
    listener: (req: { destroy(): void }, res: IncomingMessage) => void,
  ): this;
  removeAllListeners(event?: string): this;
}

interface WsClientOptions {
  headers?: Record<string, string>;
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
  rejectUnauthorized: boolean;
  maxPayload: number;
  perMessageDeflate: false;
  followRedirects: false;
}

type WsClientConstructor = new (url: string, protocols: string[], options: WsClientOptions) => WsSocket;

interface WsServer {
  handleUpgrade(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    callback: (ws: WsSocket) => void,
  ): void;
  on(event: "wsClientError", listener: (err: Error, socket: Duplex) => void): this;
}

type WsServerConstructor = new (options: {
  noServer: true;
  clientTracking: false;
  perMessageDeflate: false;
  maxPayload: number;
  handleProtocols: () => string | false;
}) => WsServer;

const WsClient = WsWebSocket as unknown as WsClientConstructor;
const WsServerClass = WsWebSocketServer as unknown as WsServerConstructor;

/** A stream handle that can stop and restart reading. */
interface ReadableHandle {
  readStart(): unknown;
  readStop(): unknown;
}

/**
 * The TCP handle under a Deno `TLSSocket` (`_handle._nativeTcpHandle`), whose `readStop()` really
 * stops reading. Undefined elsewhere (Node, plain TCP, JS-stream transports).
 */
function denoTcpHandleUnderTls(socket: Duplex | null | undefined): ReadableHandle | undefined {
  const handle = (socket as { _handle?: { _nativeTcpHandle?: Partial<ReadableHandle> } } | null | undefined)
    ?._handle;
  const tcp = handle?._nativeTcpHandle;
  return typeof tcp?.readStart === "function" && typeof tcp.readStop === "function"
    ? tcp as ReadableHandle
    : undefined;
}

/** The bytes of a `ws` message payload. */
function payloadBytes(data: WsData): Uint8Array {
  if (Array.isArray(data)) {
    const whole = Buffer.concat(data);
    return new Uint8Array(whole.buffer, whole.byteOffset, whole.byteLength);
  }
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function validCloseCode(code: number): boolean {
  return Number.isInteger(code) &&
    ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999));
}

/** Wraps an open `ws` socket. */
class Connection implements WebSocketConnection {
  readonly protocol: string;
  readonly messages: ReadableStream<Uint8Array>;
  readonly closed: Promise<WebSocketCloseInfo>;

  readonly #ws: WsSocket;
  readonly #readableHighWaterMark: number;
  readonly #writableHighWaterMark: number;
  readonly #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #paused = false;
  /** No more messages will be queued (the socket closed or was aborted). */
  #ended = false;
  #endError: unknown = undefined;
  /** `messages` has closed, errored or been cancelled. */
  #finished = false;
  #discard = false;
  #wake: (() => void) | undefined;
  #error: Error | undefined;
  #aborted = false;
  #pongWaiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  #keepAlive: ReturnType<typeof setInterval> | undefined;
  #awaitingPong = false;

  constructor(ws: WsSocket, protocol: string, options: WebSocketOptions) {
    this.#ws = ws;
    this.protocol = protocol;
    this.#readableHighWaterMark = Math.max(1, options.readableHighWaterMark ?? DEFAULT_HIGH_WATER_MARK);
    this.#writableHighWaterMark = Math.max(0, options.writableHighWaterMark ?? DEFAULT_HIGH_WATER_MARK);

    this.messages = new ReadableStream<Uint8Array>({
      pull: (controller) => this.#pull(controller),
      cancel: () => {
        this.#finished = true;
        this.#discard = true;
        this.#queue.length = 0;
        this.#queuedBytes = 0;
        this.#setReading(true);
        if (this.#ws.readyState === OPEN) this.#ws.close(1000, "");
      },
    }, { highWaterMark: 0 });

    let resolveClosed!: (info: WebSocketCloseInfo) => void;
    this.closed = new Promise((resolve) => resolveClosed = resolve);

    ws.on("message", (data, _isBinary) => {
      if (this.#discard) return;
      const bytes = payloadBytes(data);
      this.#queue.push(bytes);
      this.#queuedBytes += bytes.byteLength;
      if (this.#queuedBytes >= this.#readableHighWaterMark) this.#setReading(false);
      this.#notify();
    });
    ws.on("pong", () => {
      this.#awaitingPong = false;
      for (const waiter of this.#pongWaiters.splice(0)) waiter.resolve();
    });
    ws.on("error", (err) => {
      this.#error ??= err;
    });
    ws.on("close", (code, reasonBuffer) => {
      const reason = reasonBuffer.toString();
      if (this.#keepAlive !== undefined) clearInterval(this.#keepAlive);
      const wasClean = code !== 1006 && this.#error === undefined && !this.#aborted;
      if (!this.#ended) {
        this.#ended = true;
        if (!wasClean) this.#endError = new WebSocketClosedError(code, reason, { cause: this.#error });
      }
      const closedError = new WebSocketClosedError(code, reason, { cause: this.#error });
      for (const waiter of this.#pongWaiters.splice(0)) waiter.reject(closedError);
      this.#notify();
      resolveClosed({ code, reason, wasClean });
    });

    if (options.keepAliveMs !== undefined && options.keepAliveMs > 0) {
      this.#keepAlive = setInterval(() => this.#keepAliveTick(), options.keepAliveMs);
    }
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  send(data: Uint8Array): Promise<void> {
    if (this.#ws.readyState !== OPEN) {
      return Promise.reject(new DOMException("WebSocket is not open", "InvalidStateError"));
    }
    return new Promise((resolve, reject) => {
      let settled = false;
      this.#ws.send(data, { binary: true }, (err) => {
        if (settled) return;
        settled = true;
        if (err) reject(err);
        else resolve();
      });
      if (!settled && this.#ws.bufferedAmount <= this.#writableHighWaterMark) {
        settled = true;
        resolve();
      }
    });
  }

  close(code = 1000, reason = ""): Promise<WebSocketCloseInfo> {
    if (!validCloseCode(code)) throw new TypeError(`invalid WebSocket close code ${code}`);
    if (Buffer.byteLength(reason) > 123) throw new TypeError("WebSocket close reason longer than 123 bytes");
    this.#setReading(true);
    this.#ws.close(code, reason);
    return this.closed;
  }

  abort(reason?: unknown): void {
    if (!this.#finished) {
      this.#ended = true;
      this.#endError = reason ?? new DOMException("WebSocket aborted", "AbortError");
    }
    this.#aborted = true;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    this.#notify();
    this.#ws.terminate();
  }

  ping(): Promise<void> {
    if (this.#ws.readyState !== OPEN) {
      return Promise.reject(new DOMException("WebSocket is not open", "InvalidStateError"));
    }
    return new Promise((resolve, reject) => {
      this.#pongWaiters.push({ resolve, reject });
      this.#ws.ping(undefined, undefined, (err) => {
        if (err) reject(err);
      });
    });
  }

  async #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    for (;;) {
      const chunk = this.#queue.shift();
      if (chunk) {
        this.#queuedBytes -= chunk.byteLength;
        if (this.#paused && this.#queuedBytes <= this.#readableHighWaterMark / 2) this.#setReading(true);
        controller.enqueue(chunk);
        return;
      }
      if (this.#ended) {
        this.#finished = true;
        if (this.#endError !== undefined) controller.error(this.#endError);
        else controller.close();
        return;
      }
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Stops or restarts reading from the socket (ws level, and the TCP handle under Deno's TLS). */
  #setReading(reading: boolean): void {
    if (reading === !this.#paused) return;
    this.#paused = !reading;
    const tcp = denoTcpHandleUnderTls(this.#ws._socket);
    try {
      if (reading) {
        tcp?.readStart();
        this.#ws.resume();
      } else {
        this.#ws.pause();
        tcp?.readStop();
      }
    } catch {
      // The socket is being torn down; 'close' follows.
    }
  }

  #keepAliveTick(): void {
    if (this.#ws.readyState !== OPEN) return;
    if (this.#paused) {
      // A pong cannot be read while reading is stopped; the peer is alive enough to fill our buffer.
      this.#awaitingPong = false;
      return;
    }
    if (this.#awaitingPong) {
      this.abort(new WebSocketClosedError(1006, "keep-alive ping unanswered"));
      return;
    }
    this.#awaitingPong = true;
    this.#ws.ping(undefined, undefined, () => {});
  }
}

/** Answers an upgrade request with a plain-text HTTP error and closes the socket. */
function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  if (socket.writable) {
    socket.once("finish", () => socket.destroy());
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n` +
        "Connection: close\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        `Content-Length: ${Buffer.byteLength(message)}\r\n\r\n` +
        message,
    );
  } else {
    socket.destroy();
  }
}

/** The subprotocols a request offers, in its order. */
function offeredProtocols(request: IncomingMessage): string[] {
  const header = request.headers["sec-websocket-protocol"];
  const values = Array.isArray(header) ? header : header === undefined ? [] : [header];
  return values.flatMap((v) => v.split(",")).map((p) => p.trim()).filter((p) => p !== "");
}

/**
 * Completes a WebSocket upgrade received by a `node:http`/`node:https` server's `'upgrade'` event
 * on that event's `socket` (a `TLSSocket` for HTTPS) and `head` (bytes read past the request head).
 *
 * The subprotocol is the first of the client's offers that `options.protocols` contains. When
 * there is none (or the request is not a valid WebSocket handshake), the socket gets an HTTP 400
 * with a plain-text message naming the supported protocols, and the promise rejects with a
 * {@linkcode WebSocketUpgradeError}. Authenticate and authorize the request before calling this.
 */
export function acceptWebSocket(
  request: IncomingMessage,
  socket: Duplex,
  head: Uint8Array,
  options: AcceptWebSocketOptions,
): Promise<WebSocketConnection> {
  const offered = offeredProtocols(request);
  const protocol = offered.length === 0
    ? (options.protocols.includes("") ? "" : undefined)
    : offered.find((p) => p !== "" && options.protocols.includes(p));
  if (protocol === undefined) {
    const supported = options.protocols.map((p) => p === "" ? '"" (none)' : p).join(", ");
    const message = `unsupported WebSocket subprotocol: offered ${
      offered.length ? offered.join(", ") : "none"
    }; supported: ${supported}\n`;
    refuseUpgrade(socket, 400, message);
    return Promise.reject(new WebSocketUpgradeError(message.trim(), 400, message));
  }
  return new Promise((resolve, reject) => {
    let done = false;
    const server = new WsServerClass({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: options.maxPayload ?? DEFAULT_MAX_PAYLOAD,
      handleProtocols: () => protocol === "" ? false : protocol,
    });
    server.on("wsClientError", (err, badSocket) => {
      done = true;
      const message = `${err.message}\n`;
      refuseUpgrade(badSocket, 400, message);
      reject(new WebSocketUpgradeError(err.message, 400, message));
    });
    // ws accepts only RFC 7230 tokens as subprotocols, and Kubernetes uses
    // `SPDY/3.1+portforward.k8s.io`: the choice is made above, ws sees a stand-in token and
    // writes the chosen protocol into the response verbatim.
    const offeredHeader = request.headers["sec-websocket-protocol"];
    if (protocol === "") delete request.headers["sec-websocket-protocol"];
    else request.headers["sec-websocket-protocol"] = "chosen";
    try {
      const headBuffer = Buffer.isBuffer(head)
        ? head
        : Buffer.from(head.buffer, head.byteOffset, head.byteLength);
      server.handleUpgrade(request, socket, headBuffer, (ws) => {
        done = true;
        resolve(new Connection(ws, protocol, options));
      });
    } finally {
      if (offeredHeader === undefined) delete request.headers["sec-websocket-protocol"];
      else request.headers["sec-websocket-protocol"] = offeredHeader;
    }
    // Without an asynchronous verifyClient, ws answers synchronously; silence means it dropped a
    // socket that was no longer readable and writable.
    if (!done) {
      socket.destroy();
      reject(new Error("WebSocket upgrade: the socket closed before the handshake"));
    }
  });
}

/**
 * Opens a WebSocket (`wss://` or `ws://`) with pinned TLS settings and resolves once the server
 * accepted one of `options.protocols`.
 *
 * Rejects with a {@linkcode WebSocketUpgradeError} carrying the status and body when the server
 * answers the upgrade with anything but 101 (e.g. 403 with a Kubernetes `Status`), with the TLS or
 * network error (e.g. `code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE"` for an untrusted server), with the
 * signal's reason when `signal` aborts, or with a `TimeoutError` `DOMException`.
 */
export function connectWebSocket(
  url: string,
  options: ConnectWebSocketOptions,
): Promise<WebSocketConnection> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  const invalid = options.protocols.find((p, i) =>
    !/^[\x21-\x7e]+$/.test(p) || p.includes(",") || options.protocols.indexOf(p) !== i
  );
  if (invalid !== undefined) {
    return Promise.reject(
      new SyntaxError(`invalid or duplicated WebSocket subprotocol ${JSON.stringify(invalid)}`),
    );
  }
  return new Promise((resolve, reject) => {
    let settled = false;
    let negotiated: string | undefined;
    let protocolError: string | undefined;
    const clientOptions: WsClientOptions = {
      rejectUnauthorized: options.rejectUnauthorized ?? true,
      maxPayload: options.maxPayload ?? DEFAULT_MAX_PAYLOAD,
      perMessageDeflate: false,
      followRedirects: false,
    };
    // ws accepts only RFC 7230 tokens as subprotocols, and Kubernetes uses
    // `SPDY/3.1+portforward.k8s.io`: offer them in our own header and check the answer here.
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      if (name.toLowerCase() !== "sec-websocket-protocol") headers[name] = value;
    }
    if (options.protocols.length) headers["Sec-WebSocket-Protocol"] = options.protocols.join(", ");
    clientOptions.headers = headers;
    if (options.ca !== undefined) clientOptions.ca = options.ca;
    if (options.cert !== undefined) clientOptions.cert = options.cert;
    if (options.key !== undefined) clientOptions.key = options.key;
    if (options.servername !== undefined) clientOptions.servername = options.servername;

    let ws: WsSocket;
    try {
      ws = new WsClient(url, [], clientOptions);
    } catch (err) {
      reject(err);
      return;
    }

    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      cleanup();
      reject(err);
      if (ws.readyState === CONNECTING || ws.readyState === OPEN) ws.terminate();
    };
    const onAbort = () => fail(signal?.reason);
    const timer = setTimeout(
      () => fail(new DOMException(`WebSocket handshake with ${url} timed out`, "TimeoutError")),
      options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    );
    const cleanup = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    signal?.addEventListener("abort", onAbort, { once: true });

    ws.on("unexpected-response", (_req, res) => {
      const status = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let size = 0;
      const finish = () => {
        const body = Buffer.concat(chunks).toString("utf8");
        let detail = body.trim();
        try {
          const status = JSON.parse(body) as { message?: unknown };
          if (typeof status.message === "string") detail = status.message;
        } catch {
          // not a Kubernetes Status
        }
        fail(
          new WebSocketUpgradeError(
            `WebSocket upgrade refused: ${status} ${res.statusMessage ?? ""}${detail ? `: ${detail}` : ""}`,
            status,
            body,
            res.headers,
          ),
        );
      };
      res.on("data", (chunk: Buffer) => {
        if (size < MAX_ERROR_BODY) chunks.push(chunk.subarray(0, MAX_ERROR_BODY - size));
        size += chunk.length;
        if (size >= MAX_ERROR_BODY) finish();
      });
      res.on("end", finish);
      res.on("error", finish);
    });
    ws.on("upgrade", (res) => {
      const chosen = res.headers["sec-websocket-protocol"];
      if (typeof chosen === "string" && options.protocols.includes(chosen)) {
        negotiated = chosen;
        // ws offered nothing itself, so it would refuse any answer.
        delete res.headers["sec-websocket-protocol"];
      } else if (chosen !== undefined) {
        // Left in place: ws refuses the handshake and closes the socket; we report why.
        protocolError = `the server chose the subprotocol ${JSON.stringify(chosen)}, which was not offered (${
          options.protocols.join(", ") || "none"
        })`;
      }
    });
    ws.on("error", (err) => fail(protocolError ? new Error(protocolError, { cause: err }) : err));
    ws.on(
      "close",
      (code, reason) =>
        fail(
          new WebSocketClosedError(code, reason.toString(), {
            cause: new Error("closed during the handshake"),
          }),
        ),
    );
    ws.on("open", () => {
      if (settled) return;
      if (negotiated === undefined && options.protocols.length > 0) {
        fail(
          new Error(`the server chose none of the offered subprotocols (${options.protocols.join(", ")})`),
        );
        return;
      }
      settled = true;
      cleanup();
      for (const event of ["error", "close", "unexpected-response", "upgrade"]) ws.removeAllListeners(event);
      resolve(new Connection(ws, negotiated ?? "", options));
    });
  });
}
