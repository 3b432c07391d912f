/**
 * SPDY/3.1 frame codec: frame types, a byte-exact serializer, an incremental parser and the per-connection
 * header-block (de)compressors. No I/O; {@link ./spdy.ts} builds a session on top of it.
 *
 * Layout (SPDY Protocol Draft 3.1, as spoken by moby/spdystream v0.5.1):
 *
 * - control frame: `1 | version(15) = 3 | type(16) | flags(8) | length(24) | payload`
 * - data frame: `0 | stream id(31) | flags(8) | length(24) | payload`, flag FIN = 0x01
 * - header block (inside SYN_STREAM, SYN_REPLY, HEADERS): `count(32)` then per pair `len(32) name len(32)
 *   value`, names lower-case, several values joined with NUL; the block is zlib-compressed with one
 *   context per direction per connection, primed with the SPDY/3 dictionary, and sync-flushed after every
 *   block so each frame carries a self-delimited piece of one endless zlib stream.
 *
 * Compression order is wire order: a {@link HeaderCompressor} must see the blocks in the order their frames
 * are written, and a {@link HeaderDecompressor} in the order they were read. Both serialize their calls
 * internally, so calling them in the right order without awaiting in between is enough.
 *
 * Why the compressor does not pass `dictionary` to node:zlib: Deno 2.9.6 silently ignores the option for
 * deflate (its output has no FDICT flag), although inflate honours it. {@link HeaderCompressor} therefore
 * writes the zlib header itself (FDICT set, Adler-32 of the dictionary) and primes a raw deflate stream by
 * compressing the dictionary and discarding that output, which leaves the dictionary in the sliding window
 * exactly as `deflateSetDictionary` would. The result is the stream a C zlib or Go `compress/zlib`
 * compressor with the dictionary produces, modulo compressor choices, and works under Node as well.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { constants as zlibConstants, createDeflateRaw, createInflate } from "node:zlib";
import type { DeflateRaw, Inflate } from "node:zlib";
import { concatBytes } from "../util/mod.ts";
import { SPDY3_DICTIONARY } from "./spdy_dictionary.ts";

export { SPDY3_DICTIONARY } from "./spdy_dictionary.ts";

/** The protocol version carried by every control frame. */
export const SPDY_VERSION = 3;

/** Control frame type codes. */
export const FrameType = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;

/** FIN flag of DATA, SYN_STREAM, SYN_REPLY and HEADERS frames: the sender will send no more on the stream. */
export const FLAG_FIN = 0x01;
/** UNIDIRECTIONAL flag of SYN_STREAM: the recipient must not send on the stream. */
export const FLAG_UNIDIRECTIONAL = 0x02;
/** SETTINGS flag: clear previously persisted settings. */
export const FLAG_SETTINGS_CLEAR_SETTINGS = 0x01;

/** RST_STREAM status codes. */
export const RstStatus = {
  PROTOCOL_ERROR: 1,
  INVALID_STREAM: 2,
  REFUSED_STREAM: 3,
  UNSUPPORTED_VERSION: 4,
  CANCEL: 5,
  INTERNAL_ERROR: 6,
  FLOW_CONTROL_ERROR: 7,
  STREAM_IN_USE: 8,
  STREAM_ALREADY_CLOSED: 9,
  INVALID_CREDENTIALS: 10,
  FRAME_TOO_LARGE: 11,
} as const;

/** GOAWAY status codes. */
export const GoAwayStatus = {
  OK: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
} as const;

/** Largest payload the 24-bit length field can carry (16 MiB − 1). */
export const MAX_FRAME_LENGTH = 0xffffff;
/** Largest 31-bit stream id. */
export const MAX_STREAM_ID = 0x7fffffff;
/** Default cap on a header block, compressed (in the frame) and decompressed: 1 MiB. */
export const DEFAULT_MAX_HEADER_BLOCK_LENGTH = 1 << 20;
/** Default cap on the number of name/value pairs in one header block. */
export const DEFAULT_MAX_HEADER_COUNT = 1000;
/** Default DATA payload size when splitting writes: a whole frame is then 64 KiB. */
export const DEFAULT_MAX_DATA_PAYLOAD = 65536 - 8;

/**
 * Header names and values. Names are lower-case; a value that arrived NUL-separated (several values for
 * one name) is an array, otherwise a string. On encode, arrays are joined with NUL.
 */
export type SpdyHeaders = Record<string, string | string[]>;

/** A DATA frame. */
export interface DataFrame {
  /** Discriminant. */
  type: "DATA";
  /** The stream the data belongs to (31 bits, not 0). */
  streamId: number;
  /** {@link FLAG_FIN} or 0 (default 0). */
  flags?: number;
  /** The payload (at most 16 MiB − 1 bytes). */
  data: Uint8Array;
}

/** A SYN_STREAM frame: opens a stream. */
export interface SynStreamFrame {
  /** Discriminant. */
  type: "SYN_STREAM";
  /** {@link FLAG_FIN} and/or {@link FLAG_UNIDIRECTIONAL} (default 0). */
  flags?: number;
  /** The new stream's id: odd from a client, even from a server, increasing. */
  streamId: number;
  /** 0 unless the stream is pushed in association with another (default 0). */
  associatedStreamId?: number;
  /** 0 (highest) … 7 (default 0). */
  priority?: number;
  /** Credential slot (default 0). */
  slot?: number;
  /** The stream's headers. */
  headers: SpdyHeaders;
}

/** A SYN_REPLY frame: accepts a stream. */
export interface SynReplyFrame {
  /** Discriminant. */
  type: "SYN_REPLY";
  /** {@link FLAG_FIN} or 0 (default 0). */
  flags?: number;
  /** The stream being accepted. */
  streamId: number;
  /** The reply's headers. */
  headers: SpdyHeaders;
}

/** A RST_STREAM frame: aborts a stream. */
export interface RstStreamFrame {
  /** Discriminant. */
  type: "RST_STREAM";
  /** Unused; 0. */
  flags?: number;
  /** The stream being reset. */
  streamId: number;
  /** One of {@link RstStatus}. */
  status: number;
}

/** One SETTINGS entry (flags 8 bits, id 24 bits, value 32 bits). */
export interface SettingsEntry {
  /** Setting id, e.g. 4 = MAX_CONCURRENT_STREAMS, 7 = INITIAL_WINDOW_SIZE. */
  id: number;
  /** 1 = PERSIST_VALUE, 2 = PERSISTED (default 0). */
  flags?: number;
  /** The setting's value. */
  value: number;
}

/** A SETTINGS frame (parsed and ignored by the session). */
export interface SettingsFrame {
  /** Discriminant. */
  type: "SETTINGS";
  /** {@link FLAG_SETTINGS_CLEAR_SETTINGS} or 0 (default 0). */
  flags?: number;
  /** The settings. */
  entries: SettingsEntry[];
}

/** A PING frame. */
export interface PingFrame {
  /** Discriminant. */
  type: "PING";
  /** Unused; 0. */
  flags?: number;
  /** Ping id: odd from a client, even from a server; the recipient echoes the peer's pings. */
  id: number;
}

/** A GOAWAY frame. */
export interface GoAwayFrame {
  /** Discriminant. */
  type: "GOAWAY";
  /** Unused; 0. */
  flags?: number;
  /** The last stream id the sender accepted from the recipient. */
  lastGoodStreamId: number;
  /** One of {@link GoAwayStatus}. */
  status: number;
}

/** A HEADERS frame: more headers for an open stream. */
export interface HeadersFrame {
  /** Discriminant. */
  type: "HEADERS";
  /** {@link FLAG_FIN} or 0 (default 0). */
  flags?: number;
  /** The stream the headers belong to. */
  streamId: number;
  /** The additional headers. */
  headers: SpdyHeaders;
}

/** A WINDOW_UPDATE frame (parsed and ignored by the session: no flow control). */
export interface WindowUpdateFrame {
  /** Discriminant. */
  type: "WINDOW_UPDATE";
  /** Unused; 0. */
  flags?: number;
  /** The stream whose window grows (0: the connection). */
  streamId: number;
  /** Bytes added to the window (31 bits). */
  deltaWindowSize: number;
}

/**
 * A version-3 control frame of a type this codec does not know (e.g. CREDENTIAL, 10). The spec says to
 * ignore it; the parser surfaces it so callers can.
 */
export interface UnknownControlFrame {
  /** Discriminant. */
  type: "UNKNOWN";
  /** The control frame type code. */
  frameType: number;
  /** The frame's flags (default 0). */
  flags?: number;
  /** The raw payload. */
  payload: Uint8Array;
}

/** Any SPDY/3.1 frame, header blocks decompressed. */
export type SpdyFrame =
  | DataFrame
  | SynStreamFrame
  | SynReplyFrame
  | RstStreamFrame
  | SettingsFrame
  | PingFrame
  | GoAwayFrame
  | HeadersFrame
  | WindowUpdateFrame
  | UnknownControlFrame;

/** The frames that carry a compressed header block. */
export type HeaderBlockFrame = SynStreamFrame | SynReplyFrame | HeadersFrame;

/** A header-carrying frame whose header block is still compressed (`headerBlock` replaces `headers`). */
export type CompressedFrame<F extends HeaderBlockFrame = HeaderBlockFrame> = F extends HeaderBlockFrame
  ? Omit<F, "headers"> & { headerBlock: Uint8Array }
  : never;

/** A frame as it is on the wire: what {@link FrameParser} yields and {@link serializeFrame} writes. */
export type WireFrame = Exclude<SpdyFrame, HeaderBlockFrame> | CompressedFrame;

/** Machine-readable reason of a {@link SpdyProtocolError}. */
export type SpdyErrorCode =
  | "UNSUPPORTED_VERSION"
  | "FRAME_TOO_LARGE"
  | "INVALID_FRAME"
  | "INVALID_HEADER_BLOCK"
  | "COMPRESSION_ERROR"
  | "TRUNCATED_FRAME";

/** Malformed input from the peer. A session answers it with GOAWAY(PROTOCOL_ERROR) and closes. */
export class SpdyProtocolError extends Error {
  /** What was wrong. */
  readonly code: SpdyErrorCode;
  /** The stream the offending frame named, when known. */
  readonly streamId?: number;

  /** Creates an error; `message` should name the offending field and value. */
  constructor(code: SpdyErrorCode, message: string, options?: { streamId?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SpdyProtocolError";
    this.code = code;
    if (options?.streamId !== undefined) this.streamId = options.streamId;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Header blocks (uncompressed)

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

/**
 * Serializes headers into an uncompressed header block: names lower-cased (names that collide after
 * lower-casing are merged), array values joined with NUL, pairs in insertion order.
 *
 * @throws {TypeError} on an empty name.
 */
export function encodeHeaderBlock(headers: SpdyHeaders): Uint8Array {
  const merged = new Map<string, string[]>();
  for (const [rawName, value] of Object.entries(headers)) {
    if (rawName.length === 0) throw new TypeError("SPDY header names must not be empty");
    const name = rawName.toLowerCase();
    const values = Array.isArray(value) ? value.map(String) : [String(value)];
    const existing = merged.get(name);
    if (existing) existing.push(...values);
    else merged.set(name, values);
  }
  const parts: Uint8Array[] = [];
  let total = 4;
  for (const [name, values] of merged) {
    const nameBytes = utf8Encoder.encode(name);
    const valueBytes = utf8Encoder.encode(values.join("\0"));
    parts.push(nameBytes, valueBytes);
    total += 8 + nameBytes.length + valueBytes.length;
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, merged.size);
  let offset = 4;
  for (const part of parts) {
    view.setUint32(offset, part.length);
    out.set(part, offset + 4);
    offset += 4 + part.length;
  }
  return out;
}

/** Limits applied while decoding a header block. */
export interface HeaderBlockLimits {
  /** Most name/value pairs accepted (default {@link DEFAULT_MAX_HEADER_COUNT}). */
  maxHeaderCount?: number;
}

/**
 * Parses an uncompressed header block. Names are lower-cased; repeated names and NUL-separated values
 * become arrays; single values stay strings.
 *
 * @throws {SpdyProtocolError} `INVALID_HEADER_BLOCK` on truncation, trailing bytes, an empty name or too
 * many pairs.
 */
export function decodeHeaderBlock(block: Uint8Array, limits: HeaderBlockLimits = {}): SpdyHeaders {
  const maxCount = limits.maxHeaderCount ?? DEFAULT_MAX_HEADER_COUNT;
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const bad = (message: string) => new SpdyProtocolError("INVALID_HEADER_BLOCK", message);
  if (block.length < 4) throw bad(`truncated header block: ${block.length} bytes, no pair count`);
  const count = view.getUint32(0);
  if (count > maxCount) throw bad(`header block has ${count} pairs, more than the limit ${maxCount}`);
  if (count * 8 > block.length - 4) {
    throw bad(`header block claims ${count} pairs but has only ${block.length - 4} bytes`);
  }
  let offset = 4;
  const readString = (what: string): string => {
    if (offset + 4 > block.length) throw bad(`truncated header block: no length for ${what}`);
    const length = view.getUint32(offset);
    offset += 4;
    if (length > block.length - offset) {
      throw bad(`truncated header block: ${what} of ${length} bytes, ${block.length - offset} left`);
    }
    const text = utf8Decoder.decode(block.subarray(offset, offset + length));
    offset += length;
    return text;
  };
  const merged = new Map<string, string[]>();
  for (let i = 0; i < count; i++) {
    const name = readString(`name ${i}`).toLowerCase();
    if (name.length === 0) throw bad(`header block pair ${i} has an empty name`);
    const values = readString(`value of ${JSON.stringify(name)}`).split("\0");
    const existing = merged.get(name);
    if (existing) existing.push(...values);
    else merged.set(name, values);
  }
  if (offset !== block.length) throw bad(`header block has ${block.length - offset} trailing bytes`);
  return Object.fromEntries(
    [...merged].map(([name, values]) => [name, values.length === 1 ? values[0] : values]),
  );
}

// ---------------------------------------------------------------------------------------------------------
// Serializer

function checkStreamId(id: number, what: string, allowZero = false): void {
  if (!Number.isInteger(id) || id < (allowZero ? 0 : 1) || id > MAX_STREAM_ID) {
    throw new RangeError(`${what} ${id} is not a valid 31-bit stream id`);
  }
}

function checkUint(value: number, bits: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 2 ** bits - 1) {
    throw new RangeError(`${what} ${value} does not fit in ${bits} bits`);
  }
}

function controlFrame(type: number, flags: number | undefined, payloadLength: number): {
  bytes: Uint8Array;
  view: DataView;
} {
  checkUint(flags ?? 0, 8, "flags");
  if (payloadLength > MAX_FRAME_LENGTH) {
    throw new RangeError(`control frame payload of ${payloadLength} bytes exceeds ${MAX_FRAME_LENGTH}`);
  }
  const bytes = new Uint8Array(8 + payloadLength);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, 0x8000 | SPDY_VERSION);
  view.setUint16(2, type);
  view.setUint32(4, ((flags ?? 0) << 24 | payloadLength) >>> 0);
  return { bytes, view };
}

/**
 * Serializes one frame byte for byte. Header-carrying frames must already hold their compressed block
 * (see {@link compressFrame}).
 *
 * @throws {RangeError} on out-of-range ids, flags or lengths.
 */
export function serializeFrame(frame: WireFrame): Uint8Array {
  switch (frame.type) {
    case "DATA": {
      checkStreamId(frame.streamId, "DATA stream id");
      checkUint(frame.flags ?? 0, 8, "flags");
      if (frame.data.length > MAX_FRAME_LENGTH) {
        throw new RangeError(`DATA payload of ${frame.data.length} bytes exceeds ${MAX_FRAME_LENGTH}`);
      }
      const bytes = new Uint8Array(8 + frame.data.length);
      const view = new DataView(bytes.buffer);
      view.setUint32(0, frame.streamId);
      view.setUint32(4, ((frame.flags ?? 0) << 24 | frame.data.length) >>> 0);
      bytes.set(frame.data, 8);
      return bytes;
    }
    case "SYN_STREAM": {
      checkStreamId(frame.streamId, "SYN_STREAM stream id");
      checkStreamId(frame.associatedStreamId ?? 0, "associated stream id", true);
      checkUint(frame.priority ?? 0, 3, "priority");
      checkUint(frame.slot ?? 0, 8, "slot");
      const { bytes, view } = controlFrame(FrameType.SYN_STREAM, frame.flags, 10 + frame.headerBlock.length);
      view.setUint32(8, frame.streamId);
      view.setUint32(12, frame.associatedStreamId ?? 0);
      bytes[16] = (frame.priority ?? 0) << 5;
      bytes[17] = frame.slot ?? 0;
      bytes.set(frame.headerBlock, 18);
      return bytes;
    }
    case "SYN_REPLY":
    case "HEADERS": {
      checkStreamId(frame.streamId, `${frame.type} stream id`);
      const type = frame.type === "SYN_REPLY" ? FrameType.SYN_REPLY : FrameType.HEADERS;
      const { bytes, view } = controlFrame(type, frame.flags, 4 + frame.headerBlock.length);
      view.setUint32(8, frame.streamId);
      bytes.set(frame.headerBlock, 12);
      return bytes;
    }
    case "RST_STREAM": {
      checkStreamId(frame.streamId, "RST_STREAM stream id");
      checkUint(frame.status, 32, "RST_STREAM status");
      const { bytes, view } = controlFrame(FrameType.RST_STREAM, frame.flags, 8);
      view.setUint32(8, frame.streamId);
      view.setUint32(12, frame.status);
      return bytes;
    }
    case "SETTINGS": {
      const { bytes, view } = controlFrame(FrameType.SETTINGS, frame.flags, 4 + 8 * frame.entries.length);
      view.setUint32(8, frame.entries.length);
      frame.entries.forEach((entry, i) => {
        checkUint(entry.flags ?? 0, 8, "setting flags");
        checkUint(entry.id, 24, "setting id");
        checkUint(entry.value, 32, "setting value");
        view.setUint32(12 + 8 * i, ((entry.flags ?? 0) << 24 | entry.id) >>> 0);
        view.setUint32(16 + 8 * i, entry.value);
      });
      return bytes;
    }
    case "PING": {
      checkUint(frame.id, 32, "PING id");
      const { bytes, view } = controlFrame(FrameType.PING, frame.flags, 4);
      view.setUint32(8, frame.id);
      return bytes;
    }
    case "GOAWAY": {
      checkStreamId(frame.lastGoodStreamId, "GOAWAY last good stream id", true);
      checkUint(frame.status, 32, "GOAWAY status");
      const { bytes, view } = controlFrame(FrameType.GOAWAY, frame.flags, 8);
      view.setUint32(8, frame.lastGoodStreamId);
      view.setUint32(12, frame.status);
      return bytes;
    }
    case "WINDOW_UPDATE": {
      checkStreamId(frame.streamId, "WINDOW_UPDATE stream id", true);
      checkUint(frame.deltaWindowSize, 31, "WINDOW_UPDATE delta");
      const { bytes, view } = controlFrame(FrameType.WINDOW_UPDATE, frame.flags, 8);
      view.setUint32(8, frame.streamId);
      view.setUint32(12, frame.deltaWindowSize);
      return bytes;
    }
    case "UNKNOWN": {
      checkUint(frame.frameType, 16, "control frame type");
      const { bytes } = controlFrame(frame.frameType, frame.flags, frame.payload.length);
      bytes.set(frame.payload, 8);
      return bytes;
    }
  }
}

/**
 * Serializes `data` as DATA frames of at most `maxPayload` bytes each; with `fin`, the last frame carries
 * FIN (an empty `data` with `fin` gives one empty FIN frame; an empty `data` without `fin` gives none).
 */
export function encodeDataFrames(
  streamId: number,
  data: Uint8Array,
  fin = false,
  maxPayload: number = DEFAULT_MAX_DATA_PAYLOAD,
): Uint8Array[] {
  if (!Number.isInteger(maxPayload) || maxPayload < 1 || maxPayload > MAX_FRAME_LENGTH) {
    throw new RangeError(`maxPayload ${maxPayload} must be within 1..${MAX_FRAME_LENGTH}`);
  }
  const frames: Uint8Array[] = [];
  for (let offset = 0; offset < data.length; offset += maxPayload) {
    const end = Math.min(offset + maxPayload, data.length);
    const last = end === data.length;
    frames.push(
      serializeFrame({
        type: "DATA",
        streamId,
        flags: last && fin ? FLAG_FIN : 0,
        data: data.subarray(offset, end),
      }),
    );
  }
  if (data.length === 0 && fin) {
    frames.push(serializeFrame({ type: "DATA", streamId, flags: FLAG_FIN, data: new Uint8Array(0) }));
  }
  return frames;
}

// ---------------------------------------------------------------------------------------------------------
// Parser

/** Limits of a {@link FrameParser}. */
export interface FrameParserOptions {
  /** Largest frame payload accepted, data or control (default and maximum {@link MAX_FRAME_LENGTH}). */
  maxFrameLength?: number;
  /** Largest compressed header block accepted (default {@link DEFAULT_MAX_HEADER_BLOCK_LENGTH}). */
  maxHeaderBlockLength?: number;
}

/** Per control type: the fixed part of the payload, and whether that is the whole payload. */
const CONTROL_PAYLOAD_SIZES: Record<number, [size: number, exact: boolean]> = {
  [FrameType.SYN_STREAM]: [10, false],
  [FrameType.SYN_REPLY]: [4, false],
  [FrameType.HEADERS]: [4, false],
  [FrameType.RST_STREAM]: [8, true],
  [FrameType.SETTINGS]: [4, false],
  [FrameType.PING]: [4, true],
  [FrameType.GOAWAY]: [8, true],
  [FrameType.WINDOW_UPDATE]: [8, true],
};

interface PendingHeader {
  control: boolean;
  /** Control: frame type; data: stream id. */
  typeOrStream: number;
  flags: number;
  length: number;
}

/**
 * Incremental frame parser: feed bytes in chunks of any size, get the complete frames. Header blocks are
 * left compressed ({@link decompressFrame} inflates them, in order). Errors are sticky: once `push` threw,
 * every later call throws the same error.
 */
export class FrameParser {
  readonly #maxFrameLength: number;
  readonly #maxHeaderBlockLength: number;
  #chunks: Uint8Array[] = [];
  #head = 0; // index of the first unconsumed chunk
  #offset = 0; // consumed bytes of #chunks[#head]
  #buffered = 0;
  #header?: PendingHeader;
  #error?: SpdyProtocolError;

  /** Creates a parser with the given limits. */
  constructor(options: FrameParserOptions = {}) {
    this.#maxFrameLength = Math.min(options.maxFrameLength ?? MAX_FRAME_LENGTH, MAX_FRAME_LENGTH);
    this.#maxHeaderBlockLength = options.maxHeaderBlockLength ?? DEFAULT_MAX_HEADER_BLOCK_LENGTH;
  }

  /** Bytes received but not yet part of a complete frame. */
  get bufferedBytes(): number {
    return this.#buffered + (this.#header ? 8 : 0);
  }

  /** The error that stopped the parser, if any (also thrown by the next {@link push}/{@link finish}). */
  get error(): SpdyProtocolError | undefined {
    return this.#error;
  }

  /**
   * Adds bytes and returns every frame they complete, in order. When the bytes hold good frames followed by
   * a bad one, the good frames are returned and the error is kept in {@link error} and thrown by the next
   * call, so that callers can process frames and the error in wire order.
   *
   * @throws {SpdyProtocolError} on malformed input (as soon as a frame header is known to be bad).
   */
  push(chunk: Uint8Array): WireFrame[] {
    if (this.#error) throw this.#error;
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    const frames: WireFrame[] = [];
    try {
      for (;;) {
        if (!this.#header) {
          if (this.#buffered < 8) break;
          this.#header = this.#parseHeader(this.#take(8));
        }
        if (this.#buffered < this.#header.length) break;
        const header = this.#header;
        this.#header = undefined;
        frames.push(this.#parsePayload(header, this.#take(header.length, true)));
      }
    } catch (error) {
      this.#error = error instanceof SpdyProtocolError
        ? error
        : new SpdyProtocolError("INVALID_FRAME", `unparseable frame: ${error}`, { cause: error });
      if (frames.length === 0) throw this.#error;
    }
    return frames;
  }

  /**
   * Declares the end of input.
   *
   * @throws {SpdyProtocolError} `TRUNCATED_FRAME` when a frame was cut off.
   */
  finish(): void {
    if (this.#error) throw this.#error;
    if (this.bufferedBytes > 0) {
      this.#error = new SpdyProtocolError(
        "TRUNCATED_FRAME",
        `input ended inside a frame (${this.bufferedBytes} bytes of an incomplete frame)`,
      );
      throw this.#error;
    }
  }

  /** Removes `n` buffered bytes; `copy` guarantees the result shares no memory with the input chunks. */
  #take(n: number, copy = false): Uint8Array {
    const first = this.#chunks[this.#head];
    let out: Uint8Array;
    if (first && first.length - this.#offset >= n) {
      const view = first.subarray(this.#offset, this.#offset + n);
      this.#offset += n;
      if (this.#offset === first.length) this.#advance();
      out = copy ? view.slice() : view;
    } else {
      out = new Uint8Array(n);
      let filled = 0;
      while (filled < n) {
        const chunk = this.#chunks[this.#head];
        const count = Math.min(n - filled, chunk.length - this.#offset);
        out.set(chunk.subarray(this.#offset, this.#offset + count), filled);
        filled += count;
        this.#offset += count;
        if (this.#offset === chunk.length) this.#advance();
      }
    }
    this.#buffered -= n;
    return out;
  }

  /** Drops the fully consumed first chunk (by index: shifting long arrays is quadratic). */
  #advance(): void {
    this.#offset = 0;
    this.#head++;
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }

  #parseHeader(bytes: Uint8Array): PendingHeader {
    const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
    const first = view.getUint32(0);
    const flags = bytes[4];
    const length = view.getUint32(4) & 0xffffff;
    const control = (first & 0x80000000) !== 0;
    if (!control) {
      const streamId = first & 0x7fffffff;
      if (streamId === 0) throw new SpdyProtocolError("INVALID_FRAME", "DATA frame for stream 0");
      if (length > this.#maxFrameLength) {
        throw new SpdyProtocolError(
          "FRAME_TOO_LARGE",
          `DATA frame of ${length} bytes exceeds the limit ${this.#maxFrameLength}`,
          { streamId },
        );
      }
      return { control, typeOrStream: streamId, flags, length };
    }
    const version = (first >>> 16) & 0x7fff;
    const type = first & 0xffff;
    if (version !== SPDY_VERSION) {
      throw new SpdyProtocolError(
        "UNSUPPORTED_VERSION",
        `control frame of SPDY version ${version}, expected 3`,
      );
    }
    if (length > this.#maxFrameLength) {
      throw new SpdyProtocolError(
        "FRAME_TOO_LARGE",
        `control frame (type ${type}) of ${length} bytes exceeds the limit ${this.#maxFrameLength}`,
      );
    }
    const rule = CONTROL_PAYLOAD_SIZES[type];
    if (rule) {
      const [size, exact] = rule;
      if (exact ? length !== size : length < size) {
        throw new SpdyProtocolError(
          "INVALID_FRAME",
          `control frame type ${type} has length ${length}, expected ${exact ? "" : "at least "}${size}`,
        );
      }
      const headerBlock = type === FrameType.SYN_STREAM || type === FrameType.SYN_REPLY ||
        type === FrameType.HEADERS;
      if (headerBlock && length - size > this.#maxHeaderBlockLength) {
        throw new SpdyProtocolError(
          "FRAME_TOO_LARGE",
          `header block of ${length - size} bytes exceeds the limit ${this.#maxHeaderBlockLength}`,
        );
      }
    }
    return { control, typeOrStream: type, flags, length };
  }

  #parsePayload(header: PendingHeader, payload: Uint8Array): WireFrame {
    const { flags } = header;
    if (!header.control) return { type: "DATA", streamId: header.typeOrStream, flags, data: payload };
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    const streamIdAt = (offset: number, what: string, allowZero = false) => {
      const id = view.getUint32(offset) & 0x7fffffff;
      if (id === 0 && !allowZero) throw new SpdyProtocolError("INVALID_FRAME", `${what} for stream 0`);
      return id;
    };
    switch (header.typeOrStream) {
      case FrameType.SYN_STREAM:
        return {
          type: "SYN_STREAM",
          flags,
          streamId: streamIdAt(0, "SYN_STREAM"),
          associatedStreamId: view.getUint32(4) & 0x7fffffff,
          priority: payload[8] >> 5,
          slot: payload[9],
          headerBlock: payload.subarray(10),
        };
      case FrameType.SYN_REPLY:
        return {
          type: "SYN_REPLY",
          flags,
          streamId: streamIdAt(0, "SYN_REPLY"),
          headerBlock: payload.subarray(4),
        };
      case FrameType.HEADERS:
        return {
          type: "HEADERS",
          flags,
          streamId: streamIdAt(0, "HEADERS"),
          headerBlock: payload.subarray(4),
        };
      case FrameType.RST_STREAM:
        return {
          type: "RST_STREAM",
          flags,
          streamId: streamIdAt(0, "RST_STREAM"),
          status: view.getUint32(4),
        };
      case FrameType.SETTINGS: {
        const count = view.getUint32(0);
        if (payload.length !== 4 + 8 * count) {
          throw new SpdyProtocolError(
            "INVALID_FRAME",
            `SETTINGS frame with ${count} entries has length ${payload.length}, expected ${4 + 8 * count}`,
          );
        }
        const entries: SettingsEntry[] = [];
        for (let i = 0; i < count; i++) {
          const flagsAndId = view.getUint32(4 + 8 * i);
          entries.push({
            flags: flagsAndId >>> 24,
            id: flagsAndId & 0xffffff,
            value: view.getUint32(8 + 8 * i),
          });
        }
        return { type: "SETTINGS", flags, entries };
      }
      case FrameType.PING:
        return { type: "PING", flags, id: view.getUint32(0) };
      case FrameType.GOAWAY:
        return {
          type: "GOAWAY",
          flags,
          lastGoodStreamId: streamIdAt(0, "GOAWAY", true),
          status: view.getUint32(4),
        };
      case FrameType.WINDOW_UPDATE:
        return {
          type: "WINDOW_UPDATE",
          flags,
          streamId: streamIdAt(0, "WINDOW_UPDATE", true),
          deltaWindowSize: view.getUint32(4) & 0x7fffffff,
        };
      default:
        return { type: "UNKNOWN", frameType: header.typeOrStream, flags, payload };
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Header compression

/** Adler-32 checksum (the zlib dictionary id). */
export function adler32(bytes: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < bytes.length;) {
    const end = Math.min(i + 3800, bytes.length);
    for (; i < end; i++) {
      a += bytes[i];
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** The two-byte zlib header with FDICT set plus the dictionary id, as a compressor at `level` writes it. */
function zlibDictionaryHeader(level: number, dictionary: Uint8Array): Uint8Array {
  const cmf = 0x78; // deflate, 32 KiB window
  const flevel = level < 0 ? 2 : level < 2 ? 0 : level < 6 ? 1 : level === 6 ? 2 : 3;
  let flg = (flevel << 6) | 0x20;
  flg += 31 - ((cmf * 256 + flg) % 31);
  const out = new Uint8Array(6);
  out[0] = cmf;
  out[1] = flg;
  new DataView(out.buffer).setUint32(2, adler32(dictionary));
  return out;
}

function toUint8(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return chunks.length === 1 ? chunks[0] : concatBytes(chunks);
}

/**
 * Writes one input to a node:zlib stream and sync-flushes it; resolves once everything it produced was
 * emitted to the stream's 'data' listeners, rejects on a zlib error (or when a listener destroyed it).
 */
function syncFlush(stream: DeflateRaw | Inflate, input: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (error?: unknown) => {
      if (settled) return;
      settled = true;
      stream.off("error", settle);
      if (error) reject(error);
      else resolve();
    };
    stream.on("error", settle);
    try {
      stream.write(input);
      stream.flush(zlibConstants.Z_SYNC_FLUSH, (error?: unknown) => {
        if (!error) {
          // Make sure nothing is left buffered on the readable side ('data' listeners receive it).
          while (!stream.destroyed && stream.readableLength > 0 && stream.read() !== null) { /* drain */ }
        }
        settle(error ?? (stream.destroyed ? new Error("zlib stream destroyed") : undefined));
      });
    } catch (error) {
      settle(error);
    }
  });
}

/** Options of a {@link HeaderCompressor}. */
export interface HeaderCompressorOptions {
  /** zlib level 0–9 (default 9, like spdystream's `BestCompression`). */
  level?: number;
}

/**
 * The outgoing header-block compressor of one connection: one endless zlib stream primed with the SPDY/3
 * dictionary, sync-flushed after every block. Calls are serialized in call order.
 */
export class HeaderCompressor {
  readonly #deflate: DeflateRaw;
  #prefix?: Uint8Array;
  #sink = { chunks: [] as Uint8Array[], size: 0 };
  #queue: Promise<unknown>;
  #error?: unknown;
  #closed = false;

  /** Creates the compressor and primes it with the dictionary. */
  constructor(options: HeaderCompressorOptions = {}) {
    const level = options.level ?? 9;
    this.#deflate = createDeflateRaw({ level });
    this.#deflate.on("data", (chunk: Buffer) => {
      this.#sink.chunks.push(toUint8(chunk));
      this.#sink.size += chunk.length;
    });
    this.#deflate.on("error", (error) => this.#error ??= error);
    this.#prefix = zlibDictionaryHeader(level, SPDY3_DICTIONARY);
    // Priming: the compressed dictionary is discarded; the dictionary stays in the window.
    this.#queue = syncFlush(this.#deflate, SPDY3_DICTIONARY).then(() => this.#reset());
    this.#queue.catch((error) => this.#error ??= error);
  }

  #reset(): void {
    this.#sink.chunks = [];
    this.#sink.size = 0;
  }

  /**
   * Compresses one header block (a headers object, or a block from {@link encodeHeaderBlock}). The first
   * result of a connection starts with the zlib header.
   */
  compress(headers: SpdyHeaders | Uint8Array): Promise<Uint8Array> {
    const block = headers instanceof Uint8Array ? headers : encodeHeaderBlock(headers);
    const result = this.#queue.then(async () => {
      if (this.#closed) throw new Error("header compressor is closed");
      if (this.#error) throw this.#error;
      this.#reset();
      await syncFlush(this.#deflate, block);
      const chunks = this.#sink.chunks;
      let size = this.#sink.size;
      this.#reset();
      if (this.#prefix) {
        chunks.unshift(this.#prefix);
        size += this.#prefix.length;
        this.#prefix = undefined;
      }
      return concat(chunks);
    });
    this.#queue = result.catch(() => {});
    return result;
  }

  /** Releases the zlib stream; later calls reject. */
  close(): void {
    this.#closed = true;
    this.#deflate.destroy();
  }
}

/** Options of a {@link HeaderDecompressor}. */
export interface HeaderDecompressorOptions extends HeaderBlockLimits {
  /** Largest decompressed header block (default {@link DEFAULT_MAX_HEADER_BLOCK_LENGTH}). */
  maxHeaderBlockLength?: number;
}

/**
 * The incoming header-block decompressor of one connection (one persistent inflate context with the
 * SPDY/3 dictionary). Calls are serialized in call order. After any error the context is unusable and
 * every later call rejects: the connection must be closed.
 */
export class HeaderDecompressor {
  readonly #inflate: Inflate;
  readonly #maxLength: number;
  readonly #limits: HeaderBlockLimits;
  #sink = { chunks: [] as Uint8Array[], size: 0 };
  #queue: Promise<unknown> = Promise.resolve();
  #error?: unknown;

  /** Creates the decompressor. */
  constructor(options: HeaderDecompressorOptions = {}) {
    this.#maxLength = options.maxHeaderBlockLength ?? DEFAULT_MAX_HEADER_BLOCK_LENGTH;
    this.#limits = { maxHeaderCount: options.maxHeaderCount };
    this.#inflate = createInflate({ dictionary: SPDY3_DICTIONARY });
    this.#inflate.on("data", (chunk: Buffer) => {
      this.#sink.chunks.push(toUint8(chunk));
      this.#sink.size += chunk.length;
      if (this.#sink.size > this.#maxLength && !this.#inflate.destroyed) {
        this.#inflate.destroy(
          new SpdyProtocolError(
            "FRAME_TOO_LARGE",
            `decompressed header block exceeds the limit ${this.#maxLength} bytes`,
          ),
        );
      }
    });
    this.#inflate.on("error", (error) => this.#error ??= error);
  }

  /** Inflates one compressed header block to the raw block. */
  inflate(compressed: Uint8Array): Promise<Uint8Array> {
    const result = this.#queue.then(async () => {
      const fail = (error: unknown) =>
        error instanceof SpdyProtocolError ? error : new SpdyProtocolError(
          "COMPRESSION_ERROR",
          `invalid compressed header block: ${error instanceof Error ? error.message : error}`,
          { cause: error },
        );
      if (this.#error) throw fail(this.#error);
      this.#sink.chunks = [];
      this.#sink.size = 0;
      try {
        await syncFlush(this.#inflate, compressed);
      } catch (error) {
        this.#error ??= error;
        throw fail(this.#error);
      }
      if (this.#error) throw fail(this.#error);
      const out = concat(this.#sink.chunks);
      this.#sink.chunks = [];
      this.#sink.size = 0;
      return out;
    });
    this.#queue = result.catch(() => {});
    return result;
  }

  /**
   * Inflates and parses one header block.
   *
   * @throws {SpdyProtocolError} `COMPRESSION_ERROR`, `FRAME_TOO_LARGE` or `INVALID_HEADER_BLOCK`.
   */
  async decompress(compressed: Uint8Array): Promise<SpdyHeaders> {
    const block = await this.inflate(compressed);
    try {
      return decodeHeaderBlock(block, this.#limits);
    } catch (error) {
      this.#error ??= error; // the stream position is now unknown
      throw error;
    }
  }

  /** Releases the zlib stream; later calls reject. */
  close(): void {
    this.#error ??= new Error("header decompressor is closed");
    this.#inflate.destroy();
  }
}

/** Compresses a header-carrying frame's headers (call in wire order). */
export async function compressFrame(
  frame: HeaderBlockFrame,
  compressor: HeaderCompressor,
): Promise<CompressedFrame> {
  const { headers, ...rest } = frame;
  return { ...rest, headerBlock: await compressor.compress(headers) } as CompressedFrame;
}

/** Decompresses a header-carrying frame's header block (call in wire order). */
export async function decompressFrame(
  frame: CompressedFrame,
  decompressor: HeaderDecompressor,
): Promise<HeaderBlockFrame> {
  const { headerBlock, ...rest } = frame;
  let headers: SpdyHeaders;
  try {
    headers = await decompressor.decompress(headerBlock);
  } catch (error) {
    if (error instanceof SpdyProtocolError && error.streamId === undefined) {
      throw new SpdyProtocolError(
        error.code,
        `${frame.type} for stream ${frame.streamId}: ${error.message}`,
        {
          streamId: frame.streamId,
          cause: error.cause,
        },
      );
    }
    throw error;
  }
  return { ...rest, headers } as HeaderBlockFrame;
}

/** Whether a wire frame carries a compressed header block. */
export function isCompressedFrame(frame: WireFrame): frame is CompressedFrame {
  return frame.type === "SYN_STREAM" || frame.type === "SYN_REPLY" || frame.type === "HEADERS";
}
