/**
 * SPDY/3.1 sessions over a node `stream.Duplex` (a `net.Socket`, a `tls.TLSSocket` handed over by a
 * node:http(s) server's `'upgrade'` event, or an in-memory duplex), written for the Kubernetes streaming
 * protocols: the API server reaches a kubelet for `exec`, `attach` and `port-forward` with SPDY/3.1 after an
 * HTTP/1.1 `Upgrade: SPDY/3.1`, speaking through moby/spdystream v0.5.1. The frame codec lives in
 * {@link ./spdy_frames.ts} and is re-exported here.
 *
 * Supported:
 * - every SPDY/3 frame type on the wire: SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS,
 *   WINDOW_UPDATE and DATA; unknown control types are ignored as the spec asks;
 * - both roles: client streams have odd ids, server streams even ones; either side may open streams;
 * - half-close: a FIN in either direction closes only that direction;
 * - PING echo (a ping whose id parity is the peer's) and our own pings with a round-trip time;
 * - GOAWAY both ways; RST_STREAM both ways; a malformed frame, bad version, oversized frame or header block,
 *   or undecodable compressed headers makes the session send GOAWAY(PROTOCOL_ERROR) and close its own
 *   connection, nothing else.
 *
 * Kubernetes specifics (and deliberate deviations from the SPDY/3.1 draft):
 * - **No flow control.** spdystream never sends WINDOW_UPDATE and treats SETTINGS/WINDOW_UPDATE as unhandled,
 *   so a peer honouring the 64 KiB initial window stalls. Sessions here accept and ignore SETTINGS and
 *   WINDOW_UPDATE, never send them, and never wait for a window.
 * - **Immediate SYN_REPLY.** The API server waits at most 30 s for each stream's SYN_REPLY, and the
 *   remotecommand/port-forward handlers only start once all streams exist; a server session therefore
 *   replies to every SYN_STREAM as soon as it is read (turn off with `autoReply: false` and call
 *   {@link SpdyStream.reply}/{@link SpdyStream.refuse}). DATA for a stream is never written before its reply
 *   (spdystream drops it otherwise).
 * - **Header compression**: one zlib context per direction per connection with the SPDY/3 dictionary,
 *   sync-flushed after each block; header names are lower-case on the wire, so `streamType` arrives as
 *   `streamtype`; several values are NUL-separated and surface as arrays.
 * - Data for an unknown (already closed) stream, SYN_REPLY or HEADERS for an unknown stream, and a second
 *   SYN_REPLY are ignored, like spdystream does. An out-of-order or wrong-parity SYN_STREAM is refused with
 *   RST_STREAM(PROTOCOL_ERROR).
 * - A received GOAWAY fails our streams above its last-good id, forbids new streams and closes the session
 *   once the remaining streams are done (spdystream closes its connection the same way).
 *
 * Back-pressure: frames are written one `socket.write()` each, in order, and the next one waits for
 * `'drain'` whenever `write()` returned false, so writers (a stream's `writable`) are paced by the socket.
 * Reading is never paused on behalf of one stream: a stream whose `readable` is not consumed buffers its
 * data in memory (see {@link SpdyStream.bufferedAmount}) so that one slow consumer cannot stall the other
 * streams of the connection (there is no window to push back on the peer). The socket is only paused while
 * header blocks are being inflated and thousands of frames are queued.
 *
 * Usage with node:https (server role):
 *
 * ```ts
 * server.on("upgrade", (req, socket, head) => {
 *   socket.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n" +
 *     "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n");
 *   const session = new SpdySession(socket, { role: "server", head });
 *   (async () => {
 *     for await (const stream of session.streams()) handle(stream.headers.streamtype, stream);
 *   })();
 * });
 * ```
 *
 * @module
 */

import type { Duplex } from "node:stream";
import {
  compressFrame,
  decompressFrame,
  DEFAULT_MAX_DATA_PAYLOAD,
  encodeDataFrames,
  FLAG_FIN,
  FLAG_UNIDIRECTIONAL,
  FrameParser,
  GoAwayStatus,
  HeaderCompressor,
  HeaderDecompressor,
  isCompressedFrame,
  MAX_STREAM_ID,
  RstStatus,
  serializeFrame,
  SpdyProtocolError,
} from "./spdy_frames.ts";
import type {
  GoAwayFrame,
  HeadersFrame,
  SpdyFrame,
  SpdyHeaders,
  SynReplyFrame,
  SynStreamFrame,
  WireFrame,
} from "./spdy_frames.ts";

export * from "./spdy_frames.ts";

/** Options of a {@link SpdySession}. */
export interface SpdySessionOptions {
  /** `"client"` opens odd-numbered streams and pings, `"server"` even ones. */
  role: "server" | "client";
  /** Bytes already read from the socket, e.g. the `head` argument of node:http's `'upgrade'` event. */
  head?: Uint8Array;
  /** Reply to every incoming SYN_STREAM as soon as it is read (default true). */
  autoReply?: boolean;
  /** Headers of automatic replies (default none). */
  replyHeaders?: SpdyHeaders;
  /** Largest frame payload accepted from the peer (default and maximum 16 MiB − 1). */
  maxFrameLength?: number;
  /** Largest header block accepted, compressed or not (default 1 MiB). */
  maxHeaderBlockLength?: number;
  /** Most header pairs accepted in one block (default 1000). */
  maxHeaderCount?: number;
  /** Largest DATA payload written (default 64 KiB − 8, so a frame is at most 64 KiB). */
  maxDataPayload?: number;
  /** zlib level of outgoing header blocks (default 9). */
  compressionLevel?: number;
  /** How long {@link SpdySession.openStream} waits for SYN_REPLY, in ms (default 30 000; 0 = forever). */
  openTimeoutMs?: number;
  /** How long closing waits for queued writes and the peer before destroying the socket (default 5 000 ms). */
  closeTimeoutMs?: number;
}

/** Options of {@link SpdySession.openStream}. */
export interface OpenStreamOptions {
  /** Send FIN with the SYN_STREAM: we will not write on the stream. */
  fin?: boolean;
  /** Ask the peer not to write (UNIDIRECTIONAL flag). */
  unidirectional?: boolean;
  /** 0 (highest) … 7 (default 0). */
  priority?: number;
  /** Associated stream id (default 0). */
  associatedStreamId?: number;
  /** Overrides {@link SpdySessionOptions.openTimeoutMs}. */
  timeoutMs?: number;
}

/** A stream was reset by RST_STREAM. `local` tells whether we sent it. */
export class SpdyStreamResetError extends Error {
  /** The RST_STREAM status, one of {@link RstStatus}. */
  readonly status: number;
  /** The stream id. */
  readonly streamId: number;
  /** True when this side reset the stream. */
  readonly local: boolean;

  /** Creates the error for stream `streamId`. */
  constructor(streamId: number, status: number, local: boolean) {
    const name = Object.entries(RstStatus).find(([, code]) => code === status)?.[0] ?? `status ${status}`;
    super(`SPDY stream ${streamId} was reset ${local ? "locally" : "by the peer"} (${name})`);
    this.name = "SpdyStreamResetError";
    this.status = status;
    this.streamId = streamId;
    this.local = local;
  }
}

/** The session is closed or closing; `cause` holds the session's error, if any. */
export class SpdySessionClosedError extends Error {
  /** Creates the error. */
  constructor(message = "SPDY session is closed", cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "SpdySessionClosedError";
  }
}

/** One SPDY stream of a {@link SpdySession}. */
export interface SpdyStream {
  /** The stream id (odd: opened by the client, even: by the server). */
  readonly id: number;
  /** The session the stream belongs to. */
  readonly session: SpdySession;
  /** True if the peer opened the stream. */
  readonly incoming: boolean;
  /** The SYN_STREAM headers (received for incoming streams, sent for ours); names lower-case. */
  readonly headers: SpdyHeaders;
  /** The SYN_REPLY headers (received for our streams, sent for incoming ones); undefined before the reply. */
  readonly replyHeaders: SpdyHeaders | undefined;
  /** Headers of HEADERS frames received on the stream, in order. */
  readonly receivedHeaders: readonly SpdyHeaders[];
  /**
   * The peer's data. Closes on the peer's FIN; errors with {@link SpdyStreamResetError} on RST_STREAM (either
   * side) and with {@link SpdySessionClosedError} when the session ends before the peer's FIN (buffered data
   * is then dropped; after the FIN, everything received is still delivered). Data that is not read is
   * buffered without limit (the connection is never paused for one stream). Cancelling it only discards
   * further data.
   */
  readonly readable: ReadableStream<Uint8Array>;
  /**
   * Our data: each chunk goes out as DATA frames of at most `maxDataPayload` bytes; a write resolves once
   * the socket accepted it (after `'drain'` when needed). `close()` sends an empty DATA frame with FIN;
   * `abort()` resets the stream with CANCEL.
   */
  readonly writable: WritableStream<Uint8Array>;
  /** Resolves when both directions are finished, the stream was reset, or the session closed. Never rejects. */
  readonly closed: Promise<void>;
  /** We sent FIN (or must not write). */
  readonly localFinished: boolean;
  /** The peer sent FIN (or must not write). */
  readonly remoteFinished: boolean;
  /** The RST_STREAM status if the stream was reset by either side. */
  readonly resetStatus: number | undefined;
  /** Bytes received and not yet read from {@link readable}. */
  readonly bufferedAmount: number;
  /**
   * Sends SYN_REPLY for an incoming stream (only needed with `autoReply: false`; a no-op once replied).
   * With `fin`, we will not write on the stream.
   */
  reply(headers?: SpdyHeaders, options?: { fin?: boolean }): Promise<void>;
  /** Refuses an incoming stream that was not replied to (RST_STREAM REFUSED_STREAM). */
  refuse(): void;
  /** Sends a HEADERS frame; with `fin` it also ends our side. */
  sendHeaders(headers: SpdyHeaders, options?: { fin?: boolean }): Promise<void>;
  /** Resets the stream (RST_STREAM, default CANCEL); a no-op once the stream is closed or reset. */
  reset(status?: number): void;
}

interface PendingPing {
  resolve: (rtt: number) => void;
  reject: (error: unknown) => void;
  start: number;
  timer?: ReturnType<typeof setTimeout>;
}

/** Sentinel in the inbox: the peer ended its side of the socket. */
const EOF = Symbol("eof");
/** Pause the socket while this many frames (or bytes) wait to be handled (behind a header decompression). */
const INBOX_HIGH_WATER = 4096;
const INBOX_HIGH_WATER_BYTES = 16 << 20;

function frameSize(frame: WireFrame): number {
  if (frame.type === "DATA") return frame.data.length;
  if (frame.type === "UNKNOWN") return frame.payload.length;
  return "headerBlock" in frame ? frame.headerBlock.length : 16;
}

/** A tiny single-consumer async queue. */
class AsyncQueue<T> {
  #items: T[] = [];
  #waiters: ((result: IteratorResult<T>) => void)[] = [];
  #ended = false;

  push(item: T): void {
    if (this.#ended) return;
    const waiter = this.#waiters.shift();
    if (waiter) waiter({ value: item, done: false });
    else this.#items.push(item);
  }

  end(): void {
    this.#ended = true;
    for (const waiter of this.#waiters.splice(0)) waiter({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#items.length > 0) return Promise.resolve({ value: this.#items.shift()!, done: false });
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}

function toBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === "string") return new TextEncoder().encode(chunk);
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  throw new TypeError(`SPDY stream writes take Uint8Array chunks, got ${typeof chunk}`);
}

/**
 * A SPDY/3.1 session over one connection. See the module documentation for what is supported.
 */
export class SpdySession {
  /** This side's role. */
  readonly role: "server" | "client";
  /** Resolves once the socket is closed (cleanly or not; see {@link error}). Never rejects. */
  readonly closed: Promise<void>;

  readonly #socket: Duplex;
  readonly #options: Required<Omit<SpdySessionOptions, "head">>;
  readonly #parser: FrameParser;
  readonly #compressor: HeaderCompressor;
  readonly #decompressor: HeaderDecompressor;
  readonly #streams = new Map<number, StreamImpl>();
  readonly #incoming = new AsyncQueue<SpdyStream>();
  readonly #pings = new Map<number, PendingPing>();
  #nextStreamId: number;
  #nextPingId: number;
  #lastRemoteStreamId = 0;
  #inbox: (WireFrame | typeof EOF | SpdyProtocolError | undefined)[] = [];
  #inboxHead = 0;
  #inboxBytes = 0;
  #pumping = false;
  #pausedForInbox = false;
  #readStopped = false;
  #writeChain: Promise<void> = Promise.resolve();
  #writeError?: Error;
  #goAwaySent = false;
  #goAwayStatus?: number;
  #goAwayReceived?: GoAwayFrame;
  #closing = false;
  #failed = false;
  #isClosed = false;
  #error: unknown;
  #closeTimer?: ReturnType<typeof setTimeout>;
  #resolveClosed!: () => void;

  /**
   * Starts a session on `socket` (which must carry nothing but SPDY frames from now on; write any HTTP
   * upgrade response before). The session owns the socket: it reads it, writes it and ends it.
   */
  constructor(socket: Duplex, options: SpdySessionOptions) {
    this.role = options.role;
    this.#socket = socket;
    this.#options = {
      role: options.role,
      autoReply: options.autoReply ?? true,
      replyHeaders: options.replyHeaders ?? {},
      maxFrameLength: options.maxFrameLength ?? 0xffffff,
      maxHeaderBlockLength: options.maxHeaderBlockLength ?? 1 << 20,
      maxHeaderCount: options.maxHeaderCount ?? 1000,
      maxDataPayload: options.maxDataPayload ?? DEFAULT_MAX_DATA_PAYLOAD,
      compressionLevel: options.compressionLevel ?? 9,
      openTimeoutMs: options.openTimeoutMs ?? 30_000,
      closeTimeoutMs: options.closeTimeoutMs ?? 5_000,
    };
    const client = options.role === "client";
    this.#nextStreamId = client ? 1 : 2;
    this.#nextPingId = client ? 1 : 2;
    this.#parser = new FrameParser({
      maxFrameLength: this.#options.maxFrameLength,
      maxHeaderBlockLength: this.#options.maxHeaderBlockLength,
    });
    this.#compressor = new HeaderCompressor({ level: this.#options.compressionLevel });
    this.#decompressor = new HeaderDecompressor({
      maxHeaderBlockLength: this.#options.maxHeaderBlockLength,
      maxHeaderCount: this.#options.maxHeaderCount,
    });
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);

    const tuned = socket as Duplex & { setNoDelay?: (noDelay: boolean) => unknown };
    try {
      tuned.setNoDelay?.(true);
    } catch { /* not a TCP socket */ }
    socket.on("data", this.#onData);
    socket.on("end", this.#onEnd);
    socket.on("error", this.#onSocketError);
    socket.on("close", this.#onClose);
    if (socket.destroyed) {
      queueMicrotask(this.#onClose);
      return;
    }
    socket.resume();
    if (options.head && options.head.length > 0) this.#onData(options.head);
  }

  /** Why the session ended, if not by an orderly close/GOAWAY: a {@link SpdyProtocolError}, a socket error… */
  get error(): unknown {
    return this.#error;
  }

  /** True once the socket is closed. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** The GOAWAY the peer sent, if any. */
  get goAwayReceived(): GoAwayFrame | undefined {
    return this.#goAwayReceived;
  }

  /** Number of streams not yet fully closed. */
  get activeStreams(): number {
    return this.#streams.size;
  }

  /** The highest stream id the peer opened and we accepted. */
  get lastRemoteStreamId(): number {
    return this.#lastRemoteStreamId;
  }

  /**
   * Streams the peer opens, in order. Single consumer; ends once the session stops reading (closed, failed,
   * or the peer ended the connection). Streams arriving before iteration starts are kept.
   */
  streams(): AsyncIterableIterator<SpdyStream> {
    const queue = this.#incoming;
    const iterator: AsyncIterableIterator<SpdyStream> = {
      next: () => queue.next(),
      return: () => Promise.resolve({ value: undefined, done: true }),
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /**
   * Opens a stream (SYN_STREAM; odd id for a client, even for a server) and resolves once the peer
   * replied.
   *
   * @throws {SpdyStreamResetError} if the peer refused/reset it; {@link SpdySessionClosedError} if the session
   * closed or went away; `Error` on timeout (the stream is then reset with CANCEL).
   */
  async openStream(headers: SpdyHeaders, options: OpenStreamOptions = {}): Promise<SpdyStream> {
    if (this.#closing || this.#isClosed || this.#goAwaySent || this.#goAwayReceived) {
      throw new SpdySessionClosedError("SPDY session is closing or going away: no new streams", this.#error);
    }
    const id = this.#nextStreamId;
    if (id > MAX_STREAM_ID) throw new SpdySessionClosedError("SPDY stream ids are exhausted");
    this.#nextStreamId += 2;
    let flags = 0;
    if (options.fin) flags |= FLAG_FIN;
    if (options.unidirectional) flags |= FLAG_UNIDIRECTIONAL;
    const stream = new StreamImpl(this, this.#link, id, false, headers, {
      localFinished: options.fin ?? false,
      remoteFinished: options.unidirectional ?? false,
    });
    this.#streams.set(id, stream);
    const frame: SynStreamFrame = {
      type: "SYN_STREAM",
      flags,
      streamId: id,
      associatedStreamId: options.associatedStreamId ?? 0,
      priority: options.priority ?? 0,
      slot: 0,
      headers,
    };
    try {
      await this.#send(frame);
    } catch (error) {
      stream.terminate(error);
      throw error;
    }
    const timeoutMs = options.timeoutMs ?? this.#options.openTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await (timeoutMs > 0
        ? Promise.race([
          stream.replied,
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`SPDY stream ${id}: no SYN_REPLY within ${timeoutMs} ms`)),
              timeoutMs,
            );
          }),
        ])
        : stream.replied);
    } catch (error) {
      stream.reset(RstStatus.CANCEL);
      throw error;
    } finally {
      clearTimeout(timer);
    }
    stream.checkFinished();
    return stream;
  }

  /**
   * Sends a PING and resolves with the round-trip time in ms.
   *
   * @throws {SpdySessionClosedError} when the session closes first; `Error` on timeout.
   */
  async ping(timeoutMs = 30_000): Promise<number> {
    if (this.#isClosed || this.#closing) throw new SpdySessionClosedError(undefined, this.#error);
    const id = this.#nextPingId;
    this.#nextPingId = id + 2 > 0x7fffffff ? (this.role === "client" ? 1 : 2) : id + 2;
    const result = new Promise<number>((resolve, reject) => {
      const pending: PendingPing = { resolve, reject, start: performance.now() };
      if (timeoutMs > 0) {
        pending.timer = setTimeout(() => {
          this.#pings.delete(id);
          reject(new Error(`SPDY ping ${id}: no answer within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.#pings.set(id, pending);
    });
    try {
      await this.#send({ type: "PING", id });
    } catch (error) {
      const pending = this.#pings.get(id);
      this.#pings.delete(id);
      clearTimeout(pending?.timer);
      result.catch(() => {});
      throw error;
    }
    return await result;
  }

  /**
   * Sends GOAWAY (default status OK) naming the last stream we accepted; new streams from the peer are
   * refused afterwards and {@link openStream} fails. The connection stays open for the existing streams.
   */
  async goAway(status: number = GoAwayStatus.OK): Promise<void> {
    if (this.#goAwaySent || this.#isClosed) return;
    this.#goAwaySent = true;
    this.#goAwayStatus = status;
    await this.#send({ type: "GOAWAY", lastGoodStreamId: this.#lastRemoteStreamId, status });
  }

  /**
   * Closes gracefully: GOAWAY(OK), then the queued frames, then the end of the socket (TCP FIN, so nothing
   * written is truncated). Resolves when the socket is closed; after `closeTimeoutMs` the socket is
   * destroyed. Open streams end with {@link SpdySessionClosedError} when the socket closes.
   */
  async close(): Promise<void> {
    if (!this.#closing && !this.#isClosed) {
      this.#closing = true;
      this.#armCloseTimer();
      this.goAway().catch(() => {});
      this.#enqueue(() => this.#endSocket()).catch(() => {});
    }
    await this.closed;
  }

  /** Destroys the socket at once; open streams and pending calls fail with `reason`. */
  abort(reason?: unknown): void {
    if (this.#isClosed) return;
    this.#error ??= reason ?? new SpdySessionClosedError("SPDY session aborted");
    this.#closing = true;
    this.#writeError ??= new SpdySessionClosedError("SPDY session aborted", this.#error);
    this.#socket.destroy();
    // 'close' follows asynchronously and finalizes.
  }

  // -------------------------------------------------------------------------------------------------------
  // Link used by streams

  readonly #link: StreamLink = {
    send: (frame) => this.#send(frame),
    sendData: (id, data, fin, stopped) => this.#sendData(id, data, fin, stopped),
    maxDataPayload: () => this.#options.maxDataPayload,
    finished: (stream) => this.#streamFinished(stream),
  };

  // -------------------------------------------------------------------------------------------------------
  // Writing

  /** Queues `task` after every earlier write; tasks run one at a time, in order. */
  #enqueue(task: () => Promise<void> | void): Promise<void> {
    const run = this.#writeChain.then(() => {
      if (this.#writeError) throw this.#writeError;
      return task();
    });
    this.#writeChain = run.catch(() => {});
    return run;
  }

  #send(frame: SpdyFrame): Promise<void> {
    return this.#enqueue(async () => {
      const wire: WireFrame =
        frame.type === "SYN_STREAM" || frame.type === "SYN_REPLY" || frame.type === "HEADERS"
          ? await compressFrame(frame, this.#compressor)
          : frame;
      await this.#write(serializeFrame(wire));
    });
  }

  /**
   * Writes `data` as DATA frames, queuing each frame only once the previous one was written, so that frames
   * of other streams interleave with a large write. `stopped` says why to give up between frames (reset).
   */
  async #sendData(
    streamId: number,
    data: Uint8Array,
    fin: boolean,
    stopped: () => Error | undefined,
  ): Promise<void> {
    const max = this.#options.maxDataPayload;
    let offset = 0;
    do {
      const end = Math.min(offset + max, data.length);
      const [frame] = encodeDataFrames(streamId, data.subarray(offset, end), fin && end === data.length, max);
      if (frame) {
        await this.#enqueue(() => {
          const error = stopped();
          if (error) throw error;
          return this.#write(frame);
        });
      }
      offset = end;
    } while (offset < data.length);
  }

  /** Writes one whole frame; resolves at once, or on 'drain' when the socket's buffer is full. */
  #write(bytes: Uint8Array): Promise<void> | void {
    const socket = this.#socket;
    if (socket.destroyed || socket.writableEnded) {
      throw new SpdySessionClosedError("SPDY session socket is closed", this.#error);
    }
    if (socket.write(bytes)) return;
    return new Promise<void>((resolve) => {
      const done = () => {
        socket.off("drain", done);
        socket.off("close", done);
        resolve();
      };
      socket.on("drain", done);
      socket.on("close", done);
    });
  }

  #endSocket(): void {
    const socket = this.#socket;
    if (!socket.destroyed && !socket.writableEnded) socket.end();
  }

  #armCloseTimer(): void {
    if (this.#closeTimer !== undefined || this.#isClosed) return;
    this.#closeTimer = setTimeout(() => {
      this.#writeError ??= new SpdySessionClosedError("SPDY session close timed out", this.#error);
      this.#socket.destroy();
    }, this.#options.closeTimeoutMs);
  }

  // -------------------------------------------------------------------------------------------------------
  // Reading

  #onData = (chunk: unknown): void => {
    if (this.#readStopped || this.#parser.error) return;
    let frames: WireFrame[];
    try {
      frames = this.#parser.push(toBytes(chunk));
    } catch (error) {
      frames = [];
      if (!this.#parser.error) {
        this.#fail(error);
        return;
      }
    }
    for (const frame of frames) {
      this.#inbox.push(frame);
      this.#inboxBytes += frameSize(frame);
    }
    // A parse error is handled after the good frames before it, in wire order.
    if (this.#parser.error) this.#inbox.push(this.#parser.error);
    if (this.#inbox.length === this.#inboxHead) return;
    const queued = this.#inbox.length - this.#inboxHead;
    if ((queued > INBOX_HIGH_WATER || this.#inboxBytes > INBOX_HIGH_WATER_BYTES) && !this.#pausedForInbox) {
      this.#pausedForInbox = true;
      this.#socket.pause();
    }
    void this.#pump();
  };

  #onEnd = (): void => {
    if (this.#readStopped || this.#parser.error) return;
    this.#inbox.push(EOF);
    void this.#pump();
  };

  #onSocketError = (error: unknown): void => {
    this.#error ??= error;
    this.#writeError ??= new SpdySessionClosedError("SPDY session socket failed", error);
    this.#socket.destroy();
  };

  #onClose = (): void => {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.#closing = true;
    this.#readStopped = true;
    clearTimeout(this.#closeTimer);
    this.#writeError ??= new SpdySessionClosedError("SPDY session is closed", this.#error);
    const error = new SpdySessionClosedError(
      this.#error === undefined ? "SPDY session closed" : `SPDY session closed: ${describe(this.#error)}`,
      this.#error,
    );
    for (const stream of [...this.#streams.values()]) stream.terminate(error);
    this.#streams.clear();
    for (const [id, ping] of this.#pings) {
      clearTimeout(ping.timer);
      ping.reject(error);
      this.#pings.delete(id);
    }
    this.#incoming.end();
    this.#inbox = [];
    this.#inboxHead = 0;
    this.#compressor.close();
    this.#decompressor.close();
    this.#socket.off("data", this.#onData);
    this.#resolveClosed();
  };

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#inboxHead < this.#inbox.length && !this.#readStopped) {
        const item = this.#inbox[this.#inboxHead];
        this.#inbox[this.#inboxHead++] = undefined;
        if (this.#inboxHead > 1024 && this.#inboxHead * 2 > this.#inbox.length) {
          this.#inbox = this.#inbox.slice(this.#inboxHead);
          this.#inboxHead = 0;
        }
        if (item === EOF) {
          this.#handleEof();
          continue;
        }
        if (item === undefined) continue;
        if (item instanceof SpdyProtocolError) throw item;
        this.#inboxBytes -= frameSize(item);
        const frame: SpdyFrame = isCompressedFrame(item)
          ? await decompressFrame(item, this.#decompressor)
          : item;
        if (this.#readStopped) break;
        this.#handle(frame);
      }
      if (this.#inboxHead >= this.#inbox.length) {
        this.#inbox = [];
        this.#inboxHead = 0;
        this.#inboxBytes = 0;
      }
      if (
        this.#pausedForInbox && this.#inbox.length - this.#inboxHead < INBOX_HIGH_WATER / 2 &&
        this.#inboxBytes < INBOX_HIGH_WATER_BYTES / 2
      ) {
        this.#pausedForInbox = false;
        if (!this.#readStopped) this.#socket.resume();
      }
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#pumping = false;
    }
  }

  #handleEof(): void {
    try {
      this.#parser.finish();
    } catch (error) {
      this.#fail(error);
      return;
    }
    this.#readStopped = true;
    const error = new SpdySessionClosedError("SPDY peer closed the connection");
    for (const stream of [...this.#streams.values()]) stream.remoteEnded(error);
    this.#incoming.end();
    if (!this.#closing) {
      this.#closing = true;
      this.#armCloseTimer();
      this.#enqueue(() => this.#endSocket()).catch(() => {});
    }
  }

  /**
   * A protocol (or internal) error: stop reading, fail the streams, write what is already queued, then
   * GOAWAY and the end of the socket (destroyed after `closeTimeoutMs` if the peer does not read).
   */
  #fail(error: unknown): void {
    if (this.#failed || this.#isClosed) return;
    this.#failed = true;
    this.#error ??= error;
    this.#readStopped = true;
    this.#inbox = [];
    this.#inboxHead = 0;
    this.#inboxBytes = 0;
    // Input is discarded from now on, but read on so that the peer's FIN is seen.
    if (this.#pausedForInbox) this.#socket.resume();
    this.#closing = true;
    this.#armCloseTimer();
    const status = error instanceof SpdyProtocolError
      ? GoAwayStatus.PROTOCOL_ERROR
      : GoAwayStatus.INTERNAL_ERROR;
    const closedError = new SpdySessionClosedError(`SPDY session failed: ${describe(error)}`, error);
    // A GOAWAY(OK) already sent by close() is followed by the error status.
    const goAway = this.#goAwayStatus === undefined || this.#goAwayStatus === GoAwayStatus.OK;
    this.#goAwaySent = true;
    this.#goAwayStatus = status;
    this.#enqueue(() => {
      this.#writeError ??= closedError; // nothing after the GOAWAY
      if (goAway) {
        return this.#write(
          serializeFrame({ type: "GOAWAY", lastGoodStreamId: this.#lastRemoteStreamId, status }),
        );
      }
    }).catch(() => {}).then(() => this.#endSocket());
    for (const stream of [...this.#streams.values()]) stream.terminate(closedError);
    this.#incoming.end();
  }

  #handle(frame: SpdyFrame): void {
    switch (frame.type) {
      case "SYN_STREAM":
        this.#onSynStream(frame);
        return;
      case "SYN_REPLY":
        this.#streams.get(frame.streamId)?.onReply(frame);
        return;
      case "DATA":
        this.#streams.get(frame.streamId)?.onData(frame.data, ((frame.flags ?? 0) & FLAG_FIN) !== 0);
        return;
      case "RST_STREAM":
        this.#streams.get(frame.streamId)?.onReset(frame.status);
        return;
      case "HEADERS":
        this.#streams.get(frame.streamId)?.onHeaders(frame);
        return;
      case "PING": {
        if ((frame.id & 1) === (this.#nextPingId & 1)) {
          const pending = this.#pings.get(frame.id);
          if (pending) {
            this.#pings.delete(frame.id);
            clearTimeout(pending.timer);
            pending.resolve(performance.now() - pending.start);
          }
        } else {
          this.#send({ type: "PING", id: frame.id }).catch(() => {});
        }
        return;
      }
      case "GOAWAY":
        this.#onGoAway(frame);
        return;
      case "SETTINGS":
      case "WINDOW_UPDATE":
      case "UNKNOWN":
        return; // no flow control; unknown control frames are ignored
    }
  }

  #onSynStream(frame: SynStreamFrame): void {
    const id = frame.streamId;
    const peerParity = this.role === "server" ? 1 : 0;
    if ((id & 1) !== peerParity || id <= this.#lastRemoteStreamId) {
      this.#send({ type: "RST_STREAM", streamId: id, status: RstStatus.PROTOCOL_ERROR }).catch(() => {});
      return;
    }
    if (this.#goAwaySent || this.#closing) {
      this.#send({ type: "RST_STREAM", streamId: id, status: RstStatus.REFUSED_STREAM }).catch(() => {});
      return;
    }
    this.#lastRemoteStreamId = id;
    const flags = frame.flags ?? 0;
    const unidirectional = (flags & FLAG_UNIDIRECTIONAL) !== 0;
    const stream = new StreamImpl(this, this.#link, id, true, frame.headers, {
      localFinished: unidirectional,
      remoteFinished: (flags & FLAG_FIN) !== 0,
    });
    this.#streams.set(id, stream);
    if (this.#options.autoReply && !unidirectional) {
      stream.reply(this.#options.replyHeaders).catch(() => {});
    }
    this.#incoming.push(stream);
    stream.checkFinished();
  }

  #onGoAway(frame: GoAwayFrame): void {
    if (this.#goAwayReceived) return;
    this.#goAwayReceived = frame;
    const ourParity = this.role === "client" ? 1 : 0;
    const refused = new SpdySessionClosedError(
      `SPDY peer sent GOAWAY (last good stream ${frame.lastGoodStreamId}, status ${frame.status})`,
    );
    for (const stream of [...this.#streams.values()]) {
      if ((stream.id & 1) === ourParity && stream.id > frame.lastGoodStreamId) stream.terminate(refused);
    }
    if (this.#streams.size === 0) this.close().catch(() => {});
  }

  #streamFinished(stream: StreamImpl): void {
    if (this.#streams.get(stream.id) === stream) this.#streams.delete(stream.id);
    if (this.#goAwayReceived && this.#streams.size === 0 && !this.#closing) this.close().catch(() => {});
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** What a stream needs from its session. */
interface StreamLink {
  send(frame: SpdyFrame): Promise<void>;
  sendData(streamId: number, data: Uint8Array, fin: boolean, stopped: () => Error | undefined): Promise<void>;
  maxDataPayload(): number;
  finished(stream: StreamImpl): void;
}

class StreamImpl implements SpdyStream {
  readonly id: number;
  readonly session: SpdySession;
  readonly incoming: boolean;
  readonly headers: SpdyHeaders;
  readonly receivedHeaders: SpdyHeaders[] = [];
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly closed: Promise<void>;
  /** Resolves when the stream may carry data from us (reply sent / received); rejects on reset. */
  readonly replied: Promise<void>;

  readonly #link: StreamLink;
  #replyHeaders?: SpdyHeaders;
  #localFinished: boolean;
  #remoteFinished: boolean;
  #resetError?: SpdyStreamResetError;
  #done = false;
  #replySent = false;
  #replyReceived = false;
  #readableController!: ReadableStreamDefaultController<Uint8Array>;
  /** Received data not yet handed to the reader (delivered one chunk per pull). */
  #received: Uint8Array[] = [];
  #receivedHead = 0;
  #receivedBytes = 0;
  #readPending = false;
  #readEndPending = false;
  #readableDone = false;
  #writableController?: WritableStreamDefaultController;
  #resolveReplied!: () => void;
  #rejectReplied!: (error: unknown) => void;
  #resolveClosed!: () => void;

  constructor(
    session: SpdySession,
    link: StreamLink,
    id: number,
    incoming: boolean,
    headers: SpdyHeaders,
    state: { localFinished: boolean; remoteFinished: boolean },
  ) {
    this.session = session;
    this.#link = link;
    this.id = id;
    this.incoming = incoming;
    this.headers = headers;
    this.#localFinished = state.localFinished;
    this.#remoteFinished = state.remoteFinished;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.replied = new Promise((resolve, reject) => {
      this.#resolveReplied = resolve;
      this.#rejectReplied = reject;
    });
    this.replied.catch(() => {});
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#readableController = controller;
      },
      pull: () => this.#pull(),
      cancel: () => {
        this.#readableDone = true;
        this.#dropReceived();
      },
    }, { highWaterMark: 0 });
    this.writable = new WritableStream<Uint8Array>({
      start: (controller) => {
        this.#writableController = controller;
      },
      write: (chunk) => this.#write(chunk),
      close: () => this.#finishLocal(),
      abort: () => this.reset(RstStatus.CANCEL),
    });
    if (this.#remoteFinished) this.#closeReadable();
  }

  get replyHeaders(): SpdyHeaders | undefined {
    return this.#replyHeaders;
  }

  get localFinished(): boolean {
    return this.#localFinished;
  }

  get remoteFinished(): boolean {
    return this.#remoteFinished;
  }

  get resetStatus(): number | undefined {
    return this.#resetError?.status;
  }

  get bufferedAmount(): number {
    return this.#receivedBytes;
  }

  async reply(headers: SpdyHeaders = {}, options: { fin?: boolean } = {}): Promise<void> {
    if (!this.incoming) {
      throw new Error(`SPDY stream ${this.id} was opened by this side: nothing to reply to`);
    }
    if (this.#replySent || this.#done) return;
    this.#replySent = true;
    this.#replyHeaders = headers;
    const frame: SynReplyFrame = {
      type: "SYN_REPLY",
      flags: options.fin ? FLAG_FIN : 0,
      streamId: this.id,
      headers,
    };
    if (options.fin) this.#localFinished = true;
    const sent = this.#link.send(frame);
    // Data queued after this point follows the SYN_REPLY on the wire.
    this.#resolveReplied();
    await sent;
    if (options.fin) this.checkFinished();
  }

  refuse(): void {
    if (this.#replySent || this.#done) return;
    this.#replySent = true;
    this.reset(RstStatus.REFUSED_STREAM);
  }

  async sendHeaders(headers: SpdyHeaders, options: { fin?: boolean } = {}): Promise<void> {
    if (this.#resetError) throw this.#resetError;
    if (this.#localFinished) throw new Error(`SPDY stream ${this.id}: HEADERS after FIN`);
    await this.replied;
    const frame: HeadersFrame = {
      type: "HEADERS",
      flags: options.fin ? FLAG_FIN : 0,
      streamId: this.id,
      headers,
    };
    if (options.fin) this.#localFinished = true;
    await this.#link.send(frame);
    if (options.fin) {
      this.#writableController?.error(new Error(`SPDY stream ${this.id} was finished with HEADERS`));
      this.checkFinished();
    }
  }

  reset(status: number = RstStatus.CANCEL): void {
    if (this.#done || this.#resetError) return;
    this.#resetError = new SpdyStreamResetError(this.id, status, true);
    this.#link.send({ type: "RST_STREAM", streamId: this.id, status }).catch(() => {});
    this.#terminateWith(this.#resetError);
  }

  // --- called by the session -------------------------------------------------------------------------------

  onReply(frame: SynReplyFrame): void {
    if (this.incoming || this.#replyReceived || this.#done) return;
    this.#replyReceived = true;
    this.#replyHeaders = frame.headers;
    this.#resolveReplied();
    if (((frame.flags ?? 0) & FLAG_FIN) !== 0) this.#remoteFin();
  }

  onData(data: Uint8Array, fin: boolean): void {
    if (this.#done || this.#remoteFinished) return;
    if (data.length > 0 && !this.#readableDone) {
      if (this.#readPending) {
        this.#readPending = false;
        this.#readableController.enqueue(data);
      } else {
        this.#received.push(data);
        this.#receivedBytes += data.length;
      }
    }
    if (fin) this.#remoteFin();
  }

  onHeaders(frame: HeadersFrame): void {
    if (this.#done || this.#remoteFinished) return;
    this.receivedHeaders.push(frame.headers);
    if (((frame.flags ?? 0) & FLAG_FIN) !== 0) this.#remoteFin();
  }

  onReset(status: number): void {
    if (this.#done) return;
    this.#resetError = new SpdyStreamResetError(this.id, status, false);
    this.#terminateWith(this.#resetError);
  }

  /** The peer ended the connection: no more data will come. */
  remoteEnded(error: Error): void {
    if (this.#done) return;
    if (!this.#remoteFinished) {
      this.#remoteFinished = true;
      this.#errorReadable(error);
      this.#rejectReplied(error);
    }
    this.checkFinished();
  }

  /** The stream is over because the session ended or refused it. */
  terminate(error: unknown): void {
    if (this.#done) return;
    this.#terminateWith(error);
  }

  checkFinished(): void {
    if (!this.#done && this.#localFinished && this.#remoteFinished) {
      this.#done = true;
      this.#resolveClosed();
      this.#link.finished(this);
    }
  }

  // --- internals ---------------------------------------------------------------------------------------------

  #terminateWith(error: unknown): void {
    this.#done = true;
    this.#errorReadable(error);
    this.#rejectReplied(error);
    try {
      this.#writableController?.error(error);
    } catch { /* already errored */ }
    this.#resolveClosed();
    this.#link.finished(this);
  }

  #remoteFin(): void {
    this.#remoteFinished = true;
    this.#closeReadable();
    this.checkFinished();
  }

  /** The reader wants a chunk: hand over the oldest, or the end, or wait for data. */
  #pull(): void {
    if (this.#receivedHead < this.#received.length) {
      const chunk = this.#received[this.#receivedHead];
      this.#received[this.#receivedHead++] = undefined as unknown as Uint8Array;
      this.#receivedBytes -= chunk.length;
      if (this.#receivedHead === this.#received.length) {
        this.#received = [];
        this.#receivedHead = 0;
      } else if (this.#receivedHead > 1024 && this.#receivedHead * 2 > this.#received.length) {
        this.#received = this.#received.slice(this.#receivedHead);
        this.#receivedHead = 0;
      }
      this.#readableController.enqueue(chunk);
    } else if (this.#readEndPending) {
      this.#readEndPending = false;
      this.#readableController.close();
    } else {
      this.#readPending = true;
    }
  }

  #dropReceived(): void {
    this.#received = [];
    this.#receivedHead = 0;
    this.#receivedBytes = 0;
  }

  /** The peer's FIN: the reader gets the end after the buffered data. */
  #closeReadable(): void {
    if (this.#readableDone) return;
    this.#readableDone = true;
    if (this.#receivedHead < this.#received.length) this.#readEndPending = true;
    else this.#readableController.close();
  }

  /**
   * RST or a lost connection before the peer's FIN: buffered data is dropped and the reader gets `error`.
   * After the FIN the data is complete, and the reader still gets all of it.
   */
  #errorReadable(error: unknown): void {
    if (this.#readableDone) return;
    this.#readableDone = true;
    this.#dropReceived();
    this.#readableController.error(error);
  }

  /** Why data can no longer be sent: the stream was reset or terminated. */
  #stopped = (): Error | undefined => {
    if (this.#resetError) return this.#resetError;
    if (this.#done && !this.#localFinished) {
      return new SpdySessionClosedError(`SPDY stream ${this.id} is closed`);
    }
    return undefined;
  };

  async #write(chunk: Uint8Array): Promise<void> {
    const bytes = toBytes(chunk);
    const stopped = this.#stopped();
    if (stopped) throw stopped;
    if (this.#localFinished) throw new Error(`SPDY stream ${this.id}: write after FIN`);
    await this.replied;
    if (bytes.length === 0) return;
    await this.#link.sendData(this.id, bytes, false, this.#stopped);
  }

  async #finishLocal(): Promise<void> {
    if (this.#localFinished || this.#done) return;
    await this.replied;
    await this.#link.sendData(this.id, new Uint8Array(0), true, this.#stopped);
    this.#localFinished = true;
    this.checkFinished();
  }
}
