/**
 * SPDY/3.1 codec and sessions (toolkit/streaming/spdy.ts): frames byte for byte (including frames written
 * by moby/spdystream's Go framer), header compression across blocks, the incremental parser, malformed
 * input, and client/server sessions over loopback TCP: concurrent streams, 1 MiB each way on one stream
 * (no flow-control stall), half-close, RST, PING, GOAWAY, protocol errors. Without permission to use
 * loopback sockets (the `test:unit` task), the session tests run over an in-memory `duplexPair` instead.
 * When a Go toolchain is present (and running/writing is allowed), a small moby/spdystream v0.5.1 client
 * talks to a server session.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import http from "node:http";
import net from "node:net";
import { duplexPair } from "node:stream";
import type { Duplex } from "node:stream";
import { constants as zlibConstants, inflateSync } from "node:zlib";
import {
  adler32,
  decodeHeaderBlock,
  decompressFrame,
  encodeDataFrames,
  encodeHeaderBlock,
  FLAG_FIN,
  FrameParser,
  GoAwayStatus,
  HeaderCompressor,
  HeaderDecompressor,
  isCompressedFrame,
  RstStatus,
  serializeFrame,
  SPDY3_DICTIONARY,
  SpdyProtocolError,
  SpdySession,
  SpdySessionClosedError,
  SpdyStreamResetError,
} from "../../toolkit/streaming/spdy.ts";
import type { SpdyFrame, SpdySessionOptions, SpdyStream, WireFrame } from "../../toolkit/streaming/spdy.ts";
import { concatBytes } from "../../toolkit/util/mod.ts";
import { encodeFrames } from "../fixtures/spdy.ts";

const hex = (s: string) =>
  new Uint8Array((s.replace(/\s+/g, "").match(/../g) ?? []).map((b) => parseInt(b, 16)));
const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

/** Deterministic test payload. */
function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 7 + seed) & 0xff;
  return out;
}

/** Encodes frames with one compressor (wire order) into one byte string. */
const encodeAll = encodeFrames;

/** Parses and decompresses, feeding `bytes` in the given chunk sizes. */
async function decodeAll(bytes: Uint8Array, chunkSize?: (i: number) => number): Promise<SpdyFrame[]> {
  const parser = new FrameParser();
  const decompressor = new HeaderDecompressor();
  const wire: WireFrame[] = [];
  for (let offset = 0, i = 0; offset < bytes.length; i++) {
    const size = chunkSize ? chunkSize(i) : bytes.length;
    wire.push(...parser.push(bytes.subarray(offset, offset + size)));
    offset += size;
  }
  parser.finish();
  const frames: SpdyFrame[] = [];
  for (const frame of wire) {
    frames.push(isCompressedFrame(frame) ? await decompressFrame(frame, decompressor) : frame);
  }
  decompressor.close();
  return frames;
}

const ALL_FRAMES: SpdyFrame[] = [
  {
    type: "SYN_STREAM",
    flags: 0,
    streamId: 1,
    associatedStreamId: 0,
    priority: 0,
    slot: 0,
    headers: { streamtype: "error", "x-stream-protocol-version": ["v4.channel.k8s.io", "v3.channel.k8s.io"] },
  },
  {
    type: "SYN_STREAM",
    flags: FLAG_FIN,
    streamId: 3,
    associatedStreamId: 1,
    priority: 7,
    slot: 0,
    headers: { streamtype: "stdout" },
  },
  { type: "SYN_REPLY", flags: 0, streamId: 1, headers: {} },
  { type: "HEADERS", flags: FLAG_FIN, streamId: 3, headers: { streamtype: "stdout", port: "8080" } },
  { type: "DATA", streamId: 1, flags: 0, data: text("hello") },
  { type: "DATA", streamId: 1, flags: FLAG_FIN, data: new Uint8Array(0) },
  { type: "RST_STREAM", flags: 0, streamId: 3, status: RstStatus.CANCEL },
  {
    type: "SETTINGS",
    flags: 1,
    entries: [{ id: 7, flags: 1, value: 65536 }, { id: 4, flags: 0, value: 100 }],
  },
  { type: "PING", flags: 0, id: 1 },
  { type: "GOAWAY", flags: 0, lastGoodStreamId: 3, status: GoAwayStatus.PROTOCOL_ERROR },
  { type: "WINDOW_UPDATE", flags: 0, streamId: 1, deltaWindowSize: 65536 },
];

// ---------------------------------------------------------------------------------------------------------
// Codec

Deno.test("spdy codec: the SPDY/3 dictionary is the spec's 1423 bytes", () => {
  assert.equal(SPDY3_DICTIONARY.length, 1423);
  assert.equal(
    createHash("sha256").update(SPDY3_DICTIONARY).digest("hex"),
    "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02",
  );
  assert.equal(adler32(SPDY3_DICTIONARY), 0xe3c6a7c2); // the dictionary id in every SPDY/3 zlib header
  assert.equal(toHex(SPDY3_DICTIONARY.subarray(0, 12)), "000000076f7074696f6e7300");
  assert.ok(str(SPDY3_DICTIONARY).endsWith("charset=iso-8859-1,utf-,*,enq=0."));
});

Deno.test("spdy codec: fixed-size frames serialize byte for byte", () => {
  const cases: [WireFrame, string][] = [
    [{ type: "PING", id: 1 }, "80030006 00000004 00000001"],
    [{ type: "RST_STREAM", streamId: 5, status: RstStatus.CANCEL }, "80030003 00000008 00000005 00000005"],
    [{ type: "GOAWAY", lastGoodStreamId: 3, status: 1 }, "80030007 00000008 00000003 00000001"],
    [{ type: "WINDOW_UPDATE", streamId: 1, deltaWindowSize: 65536 }, "80030009 00000008 00000001 00010000"],
    [
      { type: "SETTINGS", flags: 1, entries: [{ id: 7, flags: 1, value: 65536 }] },
      "80030004 0100000c 00000001 01000007 00010000",
    ],
    [{ type: "DATA", streamId: 3, flags: FLAG_FIN, data: text("hello") }, "00000003 01000005 68656c6c6f"],
    [{ type: "DATA", streamId: 0x7fffffff, data: new Uint8Array(0) }, "7fffffff 00000000"],
    [
      {
        type: "SYN_STREAM",
        flags: 2,
        streamId: 9,
        associatedStreamId: 1,
        priority: 3,
        slot: 0,
        headerBlock: hex("aabb"),
      },
      "80030001 0200000c 00000009 00000001 6000 aabb",
    ],
    [{ type: "SYN_REPLY", flags: 1, streamId: 9, headerBlock: hex("cc") }, "80030002 01000005 00000009 cc"],
    [{ type: "HEADERS", streamId: 9, headerBlock: hex("") }, "80030008 00000004 00000009"],
  ];
  for (const [frame, expected] of cases) {
    const bytes = serializeFrame(frame);
    assert.equal(toHex(bytes), expected.replace(/\s+/g, ""), frame.type);
    const [parsed] = new FrameParser().push(bytes);
    assert.equal(parsed.type, frame.type);
    assert.equal(toHex(serializeFrame(parsed)), toHex(bytes), `${frame.type} re-serializes identically`);
  }
  assert.throws(() => serializeFrame({ type: "DATA", streamId: 0, data: new Uint8Array(0) }), RangeError);
  assert.throws(() => serializeFrame({ type: "PING", id: 2 ** 32 }), RangeError);
  assert.throws(() => serializeFrame({ type: "RST_STREAM", streamId: 2 ** 31, status: 1 }), RangeError);
});

Deno.test("spdy codec: every frame type encodes and decodes", async () => {
  const bytes = await encodeAll(ALL_FRAMES);
  const decoded = await decodeAll(bytes);
  assert.deepEqual(decoded, ALL_FRAMES);
});

// Written by moby/spdystream v0.5.1's spdy.Framer (Go; zlib BestCompression with the dictionary):
// SYN_STREAM 1 {Streamtype: error}; SYN_STREAM 3 FIN prio 2 {Streamtype: stdout}; SYN_REPLY 3
// {X-Values: a, b}; DATA 3 FIN "hello"; PING 7; HEADERS 1 {Streamtype: error}; RST_STREAM 1 CANCEL;
// GOAWAY 3 OK.
const GO_FRAMES = hex(
  "80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000ffff" +
    "800300010100001900000003000000004000c22ac5565c92925f5a02000000ffff" +
    "80030002000000180000000382ca7154e89625e694424b53862400000000ffff" +
    "000000030100000568656c6c6f" +
    "8003000600000004000000078003000800" +
    "00000c00000001c2631a000000ffff" +
    "8003000300000008000000010000000580030007000000080000000300000000",
);

Deno.test("spdy codec: frames written by moby/spdystream decode, and re-serialize byte for byte", async () => {
  const frames = await decodeAll(GO_FRAMES);
  assert.deepEqual(frames, [
    {
      type: "SYN_STREAM",
      flags: 0,
      streamId: 1,
      associatedStreamId: 0,
      priority: 0,
      slot: 0,
      headers: { streamtype: "error" },
    },
    {
      type: "SYN_STREAM",
      flags: 1,
      streamId: 3,
      associatedStreamId: 0,
      priority: 2,
      slot: 0,
      headers: { streamtype: "stdout" },
    },
    { type: "SYN_REPLY", flags: 0, streamId: 3, headers: { "x-values": ["a", "b"] } },
    { type: "DATA", streamId: 3, flags: 1, data: text("hello") },
    { type: "PING", flags: 0, id: 7 },
    { type: "HEADERS", flags: 0, streamId: 1, headers: { streamtype: "error" } },
    { type: "RST_STREAM", flags: 0, streamId: 1, status: RstStatus.CANCEL },
    { type: "GOAWAY", flags: 0, lastGoodStreamId: 3, status: GoAwayStatus.OK },
  ]);
  const wire = new FrameParser().push(GO_FRAMES);
  assert.equal(toHex(concatBytes(wire.map(serializeFrame))), toHex(GO_FRAMES));
});

Deno.test("spdy codec: header compression state carries across blocks and uses the dictionary", async () => {
  const headers = {
    streamtype: "stdout",
    "content-type": "text/plain",
    "x-stream-protocol-version": "v4.channel.k8s.io",
  };
  const compressor = new HeaderCompressor();
  const first = await compressor.compress(headers);
  const second = await compressor.compress(headers);
  compressor.close();
  assert.equal(toHex(first.subarray(0, 6)), "78f9e3c6a7c2", "zlib header with FDICT and the dictionary id");
  assert.equal(toHex(first.subarray(-4)), "0000ffff", "sync flush");
  assert.equal(toHex(second.subarray(-4)), "0000ffff");
  assert.ok(
    second.length < first.length / 3,
    `second block (${second.length}) refers to the first (${first.length})`,
  );
  const raw = encodeHeaderBlock(headers);
  assert.ok(first.length < raw.length, "the dictionary and deflate shrink the first block");

  const decompressor = new HeaderDecompressor();
  assert.deepEqual(await decompressor.decompress(first), headers);
  assert.deepEqual(await decompressor.decompress(second), headers);
  decompressor.close();

  // The second block alone means nothing: it relies on the first block's context.
  const fresh = new HeaderDecompressor();
  await assert.rejects(
    fresh.decompress(second),
    (e: unknown) => e instanceof SpdyProtocolError && e.code === "COMPRESSION_ERROR",
  );
  fresh.close();

  // A one-shot zlib inflate with the dictionary reads the concatenated stream (what C zlib peers do).
  const all = inflateSync(concatBytes([first, second]), {
    dictionary: SPDY3_DICTIONARY,
    finishFlush: zlibConstants.Z_SYNC_FLUSH,
  });
  assert.equal(toHex(all), toHex(concatBytes([raw, raw])));
});

Deno.test("spdy codec: header blocks: lower-case names, NUL-separated values, merges, limits", () => {
  const block = encodeHeaderBlock({
    StreamType: "error",
    "X-Multi": ["a", "b"],
    "x-multi": "c",
    __proto__x: "",
  });
  const headers = decodeHeaderBlock(block);
  assert.deepEqual(headers, { streamtype: "error", "x-multi": ["a", "b", "c"], __proto__x: "" });
  const proto = decodeHeaderBlock(encodeHeaderBlock(Object.fromEntries([["__proto__", "v"]])));
  assert.equal(Object.getPrototypeOf(proto), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(proto, "__proto__")?.value, "v");
  assert.deepEqual(decodeHeaderBlock(hex("00000000")), {});
  const invalid = (bytes: Uint8Array, limits?: { maxHeaderCount?: number }) =>
    assert.throws(
      () => decodeHeaderBlock(bytes, limits),
      (e: unknown) => e instanceof SpdyProtocolError && e.code === "INVALID_HEADER_BLOCK",
    );
  invalid(hex("000000"));
  invalid(block.subarray(0, block.length - 1)); // truncated value
  invalid(concatBytes([block, hex("00")])); // trailing byte
  invalid(hex("00000001 00000000 00000000")); // empty name
  invalid(hex("ffffffff"));
  invalid(encodeHeaderBlock({ a: "1", b: "2" }), { maxHeaderCount: 1 });
  assert.throws(() => encodeHeaderBlock({ "": "x" }), TypeError);
});

Deno.test("spdy codec: data frames split at the cap", async () => {
  const data = pattern(150_000, 3);
  const frames = encodeDataFrames(5, data, true);
  assert.deepEqual(frames.map((f) => f.length), [65536, 65536, 150_000 - 2 * 65528 + 8]);
  const parsed = await decodeAll(concatBytes(frames));
  assert.deepEqual(parsed.map((f) => f.type === "DATA" && [f.data.length, f.flags]), [
    [65528, 0],
    [65528, 0],
    [18944, 1],
  ]);
  assert.deepEqual(concatBytes(parsed.map((f) => (f as { data: Uint8Array }).data)), data);
  assert.deepEqual(encodeDataFrames(5, pattern(20, 0), false, 10).map((f) => f.length), [18, 18]);
  assert.deepEqual(encodeDataFrames(5, new Uint8Array(0), false), []);
  assert.equal(toHex(encodeDataFrames(5, new Uint8Array(0), true)[0]), "0000000501000000");
});

Deno.test("spdy codec: the parser fed one byte at a time (or in random chunks) yields the same frames", async () => {
  const frames: SpdyFrame[] = [...ALL_FRAMES, {
    type: "DATA",
    streamId: 7,
    flags: 0,
    data: pattern(70_000, 9),
  }];
  const bytes = await encodeAll(frames);
  const whole = await decodeAll(bytes);
  assert.deepEqual(whole, frames);
  assert.deepEqual(await decodeAll(bytes, () => 1), whole);
  let seed = 42;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 4096 + 1;
  assert.deepEqual(await decodeAll(bytes, random), whole);

  // A data payload never aliases the caller's buffer.
  const input = serializeFrame({ type: "DATA", streamId: 1, data: text("abc") });
  const [frame] = new FrameParser().push(input);
  input.fill(0);
  assert.equal(str((frame as { data: Uint8Array }).data), "abc");
});

Deno.test("spdy codec: malformed input raises clear, sticky errors", async () => {
  const rejects = (
    bytes: Uint8Array,
    code: string,
    pattern: RegExp,
    options?: ConstructorParameters<typeof FrameParser>[0],
  ) => {
    const parser = new FrameParser(options);
    assert.throws(
      () => parser.push(bytes),
      (e: unknown) => e instanceof SpdyProtocolError && e.code === code && pattern.test(e.message),
    );
    assert.throws(() => parser.push(new Uint8Array(0)), SpdyProtocolError, "errors are sticky");
  };
  rejects(hex("80020006 00000004 00000001"), "UNSUPPORTED_VERSION", /version 2/);
  // Oversized: detected from the 8-byte header alone.
  rejects(hex("00000001 00100000"), "FRAME_TOO_LARGE", /1048576 bytes exceeds the limit 65536/, {
    maxFrameLength: 65536,
  });
  rejects(hex("80030001 00100000"), "FRAME_TOO_LARGE", /exceeds the limit 65536/, { maxFrameLength: 65536 });
  rejects(hex("80030002 00001005"), "FRAME_TOO_LARGE", /header block of 4097 bytes/, {
    maxHeaderBlockLength: 4096,
  });
  rejects(hex("80030003 00000004 00000001"), "INVALID_FRAME", /type 3 has length 4, expected 8/);
  rejects(hex("80030006 00000008 00000001 00000001"), "INVALID_FRAME", /expected 4/);
  rejects(hex("80030001 00000009"), "INVALID_FRAME", /at least 10/);
  rejects(
    hex("80030004 0000000c 00000002 00000000 00000000"),
    "INVALID_FRAME",
    /SETTINGS frame with 2 entries/,
  );
  rejects(hex("00000000 00000000"), "INVALID_FRAME", /stream 0/);
  rejects(hex("80030003 00000008 00000000 00000001"), "INVALID_FRAME", /RST_STREAM for stream 0/);

  const truncated = new FrameParser();
  assert.deepEqual(truncated.push(hex("80030006 00000004 0000")), []);
  assert.equal(truncated.bufferedBytes, 10);
  assert.throws(
    () => truncated.finish(),
    (e: unknown) => e instanceof SpdyProtocolError && e.code === "TRUNCATED_FRAME",
  );

  // Unknown control types (e.g. CREDENTIAL, 10) are surfaced for the caller to ignore.
  assert.deepEqual(new FrameParser().push(hex("8003000a 00000002 abcd")), [
    { type: "UNKNOWN", frameType: 10, flags: 0, payload: hex("abcd") },
  ]);

  // Invalid zlib, truncated header blocks and decompression bombs.
  const decompress = async (
    blocks: Uint8Array[],
    code: string,
    options?: { maxHeaderBlockLength?: number },
  ) => {
    const d = new HeaderDecompressor(options);
    const results = blocks.map((b) => d.decompress(b));
    for (const r of results.slice(0, -1)) await r;
    await assert.rejects(results.at(-1)!, (e: unknown) => e instanceof SpdyProtocolError && e.code === code);
    await assert.rejects(d.decompress(blocks[0]), SpdyProtocolError, "the context is dead after an error");
    d.close();
  };
  await decompress([hex("0102030405060708")], "COMPRESSION_ERROR");
  await decompress([hex("78bb00000000 0102")], "COMPRESSION_ERROR"); // wrong dictionary id
  const compressor = new HeaderCompressor();
  const good = await compressor.compress({ a: "b".repeat(100) });
  const bomb = await compressor.compress({ a: "x".repeat(3 << 20) });
  compressor.close();
  await decompress([good.subarray(0, good.length - 12)], "INVALID_HEADER_BLOCK");
  await decompress([good, bomb], "FRAME_TOO_LARGE");
  assert.ok(bomb.length < 10_000, "a small block that inflates past the 1 MiB limit");
});

// ---------------------------------------------------------------------------------------------------------
// Sessions over loopback TCP

const granted = (descriptor: Deno.PermissionDescriptor) =>
  Deno.permissions.querySync(descriptor).state === "granted";
const LOOPBACK = granted({ name: "net", host: "127.0.0.1" });
if (!LOOPBACK) {
  console.warn("spdy tests: no loopback network permission, sessions run over in-memory duplexes");
}

interface Pair {
  client: SpdySession;
  server: SpdySession;
  clientSocket: Duplex;
  serverSocket: Duplex;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A connected socket pair: loopback TCP when allowed, else an in-memory duplex pair. */
async function connectedSockets(): Promise<{ client: Duplex; server: Duplex; release(): Promise<void> }> {
  if (!LOOPBACK) {
    const [client, server] = duplexPair();
    return { client, server, release: () => Promise.resolve() };
  }
  const listener = net.createServer();
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const { port } = listener.address() as net.AddressInfo;
  const accepted = new Promise<net.Socket>((resolve) => listener.once("connection", resolve));
  const client = net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    client.once("connect", resolve);
    client.once("error", reject);
  });
  const server = await accepted;
  return { client, server, release: () => new Promise<void>((resolve) => listener.close(() => resolve())) };
}

async function sessionPair(
  serverOptions: Partial<SpdySessionOptions> = {},
  clientOptions: Partial<SpdySessionOptions> = {},
): Promise<Pair> {
  const { client, server, release } = await connectedSockets();
  const pair: Pair = {
    client: new SpdySession(client, { ...clientOptions, role: "client" }),
    server: new SpdySession(server, { ...serverOptions, role: "server" }),
    clientSocket: client,
    serverSocket: server,
    async [Symbol.asyncDispose]() {
      pair.client.abort();
      pair.server.abort();
      await Promise.all([pair.client.closed, pair.server.closed]);
      await release();
    },
  };
  return pair;
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return concatBytes(chunks);
}

async function writeAll(
  stream: SpdyStream,
  data: Uint8Array,
  chunkSize = 100_000,
  close = true,
): Promise<void> {
  const writer = stream.writable.getWriter();
  for (let offset = 0; offset < data.length; offset += chunkSize) {
    await writer.write(data.subarray(offset, offset + chunkSize));
  }
  if (close) await writer.close();
  writer.releaseLock();
}

/** Serves every incoming stream with `handler`, collecting its failures. */
function serve(
  session: SpdySession,
  handler: (stream: SpdyStream) => Promise<void>,
): { errors: unknown[]; done: Promise<void> } {
  const errors: unknown[] = [];
  const tasks: Promise<void>[] = [];
  const done = (async () => {
    for await (const stream of session.streams()) {
      tasks.push(handler(stream).catch((e) => void errors.push(e)));
    }
    await Promise.all(tasks);
  })();
  return { errors, done };
}

/** Echo handler: reads to FIN, then answers "echo:" + data and FIN. */
async function echo(stream: SpdyStream): Promise<void> {
  const data = await readAll(stream.readable);
  await writeAll(stream, concatBytes([text("echo:"), data]));
}

Deno.test("spdy session: three concurrent streams, lower-case headers, immediate SYN_REPLY", async () => {
  await using pair = await sessionPair({ replyHeaders: { "X-Served-By": "kubeocean" } });
  const seen: SpdyStream[] = [];
  const server = serve(pair.server, (stream) => {
    seen.push(stream);
    return echo(stream);
  });
  const results = await Promise.all([0, 1, 2].map(async (i) => {
    const stream = await pair.client.openStream({ streamType: "stdout", "X-Index": String(i) });
    assert.deepEqual(stream.replyHeaders, { "x-served-by": "kubeocean" });
    await writeAll(stream, text(`hello ${i}`));
    const answer = str(await readAll(stream.readable));
    await stream.closed;
    return [stream.id, answer];
  }));
  assert.deepEqual(results.map(([, a]) => a), ["echo:hello 0", "echo:hello 1", "echo:hello 2"]);
  assert.deepEqual(results.map(([id]) => id).sort(), [1, 3, 5], "client stream ids are odd");
  assert.deepEqual(seen.map((s) => s.headers.streamtype), ["stdout", "stdout", "stdout"]);
  assert.deepEqual(seen.map((s) => s.headers["x-index"]).sort(), ["0", "1", "2"]);
  assert.ok(seen.every((s) => s.incoming && s.localFinished && s.remoteFinished));
  assert.equal(pair.client.activeStreams, 0);
  await pair.client.close();
  await server.done;
  assert.deepEqual(server.errors, []);
  assert.equal(pair.server.goAwayReceived?.status, GoAwayStatus.OK);
  assert.equal(pair.server.error, undefined);
});

Deno.test("spdy session: 1 MiB each way at once on one stream does not stall (no flow control)", async () => {
  await using pair = await sessionPair();
  const up = pattern(1 << 20, 1);
  const down = pattern(1 << 20, 2);
  let received: Uint8Array | undefined;
  const server = serve(pair.server, async (stream) => {
    const [data] = await Promise.all([readAll(stream.readable), writeAll(stream, down, 50_000)]);
    received = data;
  });
  const started = performance.now();
  const stream = await pair.client.openStream({ streamtype: "data" });
  const [answer] = await Promise.all([readAll(stream.readable), writeAll(stream, up, 70_000)]);
  await stream.closed;
  const elapsed = performance.now() - started;
  assert.equal(answer.length, down.length);
  assert.ok(answer.every((b, i) => b === down[i]));
  await pair.client.close();
  await server.done;
  assert.deepEqual(server.errors, []);
  assert.equal(received?.length, up.length);
  assert.ok(received!.every((b, i) => b === up[i]));
  assert.ok(elapsed < 5000, `took ${elapsed} ms`);
});

Deno.test("spdy session: FIN half-closes one direction; the server still writes after the client's FIN", async () => {
  await using pair = await sessionPair();
  const order: string[] = [];
  const server = serve(pair.server, async (stream) => {
    const request = str(await readAll(stream.readable));
    order.push(`server read ${request} to FIN`);
    assert.equal(stream.remoteFinished, true);
    assert.equal(stream.localFinished, false);
    const writer = stream.writable.getWriter();
    await writer.write(text("part1,"));
    await new Promise((r) => setTimeout(r, 20));
    await writer.write(text("part2"));
    order.push("server wrote after FIN");
    await writer.close();
  });
  const stream = await pair.client.openStream({ streamtype: "stdin" });
  await writeAll(stream, text("request"));
  order.push("client sent FIN");
  assert.equal(stream.localFinished, true);
  const reply = str(await readAll(stream.readable));
  order.push(`client read ${reply}`);
  await stream.closed;
  assert.deepEqual(order, [
    "client sent FIN",
    "server read request to FIN",
    "server wrote after FIN",
    "client read part1,part2",
  ]);
  // A stream opened with FIN: the server sees its readable closed at once.
  const finStream = await pair.client.openStream({ streamtype: "error" }, { fin: true });
  assert.equal(str(await readAll(finStream.readable)), "part1,part2");
  await assert.rejects(finStream.writable.getWriter().write(text("x")), /write after FIN/);
  await pair.client.close();
  await server.done;
});

Deno.test("spdy session: RST_STREAM propagates as an error, both ways", async () => {
  await using pair = await sessionPair();
  const serverSide: SpdyStream[] = [];
  const server = serve(pair.server, async (stream) => {
    serverSide.push(stream);
    if (stream.headers.action === "reset-me") {
      const reader = stream.readable.getReader();
      await reader.read(); // wait for the first data
      stream.reset(RstStatus.INTERNAL_ERROR);
      await assert.rejects(reader.read(), SpdyStreamResetError);
    } else {
      await assert.rejects(
        readAll(stream.readable),
        (e: unknown) => e instanceof SpdyStreamResetError && e.status === RstStatus.CANCEL && !e.local,
      );
    }
    await stream.closed;
  });
  const a = await pair.client.openStream({ action: "reset-me" });
  const writer = a.writable.getWriter();
  await writer.write(text("first"));
  await assert.rejects(
    readAll(a.readable),
    (e: unknown) =>
      e instanceof SpdyStreamResetError && e.status === RstStatus.INTERNAL_ERROR && e.streamId === a.id &&
      !e.local,
  );
  await a.closed;
  assert.equal(a.resetStatus, RstStatus.INTERNAL_ERROR);
  await assert.rejects(writer.write(text("late")), SpdyStreamResetError);

  const b = await pair.client.openStream({ action: "client-resets" });
  b.reset();
  await b.closed;
  await assert.rejects(readAll(b.readable), (e: unknown) => e instanceof SpdyStreamResetError && e.local);
  await pair.client.close();
  await server.done;
  assert.deepEqual(server.errors, []);
  assert.deepEqual(serverSide.map((s) => s.resetStatus), [RstStatus.INTERNAL_ERROR, RstStatus.CANCEL]);
});

Deno.test("spdy session: PING round trips from both sides; refused and unanswered streams; SETTINGS/WINDOW_UPDATE ignored", async () => {
  await using pair = await sessionPair({ autoReply: false });
  let unanswered: SpdyStream | undefined;
  const server = serve(pair.server, async (stream) => {
    if (stream.headers.refuse) return stream.refuse();
    if (stream.headers.ignore) {
      unanswered = stream;
      return await stream.closed;
    }
    await stream.reply({ ok: "yes" });
    await echo(stream);
  });
  const rtts = await Promise.all([pair.client.ping(), pair.server.ping(), pair.client.ping()]);
  assert.ok(rtts.every((rtt) => rtt >= 0 && rtt < 2000), String(rtts));
  await assert.rejects(
    pair.client.openStream({ refuse: "1" }),
    (e: unknown) => e instanceof SpdyStreamResetError && e.status === RstStatus.REFUSED_STREAM,
  );
  await assert.rejects(
    pair.client.openStream({ ignore: "1" }, { timeoutMs: 50 }),
    /no SYN_REPLY within 50 ms/,
  );
  await unanswered!.closed;
  assert.equal(unanswered!.resetStatus, RstStatus.CANCEL, "the opener gives up with RST_STREAM(CANCEL)");
  // Flow-control frames from the peer change nothing.
  pair.clientSocket.write(serializeFrame({ type: "SETTINGS", entries: [{ id: 7, value: 1 }] }));
  pair.clientSocket.write(serializeFrame({ type: "WINDOW_UPDATE", streamId: 0, deltaWindowSize: 1 }));
  const stream = await pair.client.openStream({ a: "b" });
  assert.deepEqual(stream.replyHeaders, { ok: "yes" });
  await writeAll(stream, pattern(300_000, 5));
  assert.equal((await readAll(stream.readable)).length, 300_005);
  await pair.client.close();
  await server.done;
  assert.deepEqual(server.errors, []);
});

Deno.test("spdy session: GOAWAY stops new streams, lets open ones finish, then the connection closes", async () => {
  await using pair = await sessionPair();
  let release!: () => void;
  const released = new Promise<void>((r) => release = r);
  const server = serve(pair.server, async (stream) => {
    await released;
    await echo(stream);
  });
  const open = await pair.client.openStream({ streamtype: "long" });
  await pair.server.goAway();
  await assert.rejects(pair.server.openStream({}), SpdySessionClosedError);
  // Wait for the client to see the GOAWAY, then new streams fail but the open one works.
  while (!pair.client.goAwayReceived) await new Promise((r) => setTimeout(r, 5));
  assert.equal(pair.client.goAwayReceived.lastGoodStreamId, open.id);
  await assert.rejects(pair.client.openStream({}), SpdySessionClosedError);
  release();
  await writeAll(open, text("still here"));
  assert.equal(str(await readAll(open.readable)), "echo:still here");
  // Last stream done after GOAWAY: the client closes the connection.
  await pair.client.closed;
  await pair.server.closed;
  await server.done;
  assert.equal(pair.client.error, undefined);
  assert.equal(pair.server.error, undefined);
});

Deno.test("spdy session: stream id rules, HEADERS, unknown streams and PING parity (raw peer)", async () => {
  const { client: raw, server: socket, release } = await connectedSockets();
  const session = new SpdySession(socket, { role: "server" });
  const received: Uint8Array[] = [];
  raw.on("data", (chunk: Uint8Array) => received.push(chunk));
  raw.once("end", () => raw.end());
  const compressor = new HeaderCompressor();
  const syn = async (streamId: number, headers = {}) =>
    serializeFrame({ type: "SYN_STREAM", streamId, headerBlock: await compressor.compress(headers) });
  raw.write(concatBytes([
    await syn(3, { n: "3" }),
    await syn(1), // not above the last id: refused
    await syn(4), // even id from a client: refused
    serializeFrame({ type: "DATA", streamId: 99, data: text("nobody") }), // unknown stream: ignored
    serializeFrame({ type: "HEADERS", streamId: 3, headerBlock: await compressor.compress({ more: "x" }) }),
    serializeFrame({ type: "PING", id: 5 }), // the client's parity: echoed
    serializeFrame({ type: "PING", id: 6 }), // ours, unknown: ignored
    serializeFrame({ type: "DATA", streamId: 3, flags: FLAG_FIN, data: text("data") }),
    serializeFrame({ type: "UNKNOWN", frameType: 10, payload: hex("0001") }), // CREDENTIAL: ignored
    await syn(5, { n: "5" }),
  ]));
  compressor.close();
  const incoming = session.streams();
  const three = (await incoming.next()).value as SpdyStream;
  assert.deepEqual(three.headers, { n: "3" });
  assert.equal(str(await readAll(three.readable)), "data");
  assert.deepEqual(three.receivedHeaders, [{ more: "x" }]);
  const five = (await incoming.next()).value as SpdyStream;
  assert.equal(five.id, 5);
  assert.equal(session.lastRemoteStreamId, 5);
  five.reset();
  await writeAll(three, text("bye"));
  await three.closed;
  assert.equal(session.activeStreams, 0);
  await session.close();
  assert.equal(session.error, undefined);
  const decompressor = new HeaderDecompressor();
  const frames: SpdyFrame[] = [];
  for (const f of new FrameParser().push(concatBytes(received))) {
    frames.push(isCompressedFrame(f) ? await decompressFrame(f, decompressor) : f);
  }
  decompressor.close();
  assert.deepEqual(frames, [
    { type: "SYN_REPLY", flags: 0, streamId: 3, headers: {} },
    { type: "RST_STREAM", flags: 0, streamId: 1, status: RstStatus.PROTOCOL_ERROR },
    { type: "RST_STREAM", flags: 0, streamId: 4, status: RstStatus.PROTOCOL_ERROR },
    { type: "PING", flags: 0, id: 5 },
    { type: "SYN_REPLY", flags: 0, streamId: 5, headers: {} },
    { type: "RST_STREAM", flags: 0, streamId: 5, status: RstStatus.CANCEL },
    { type: "DATA", streamId: 3, flags: 0, data: text("bye") },
    { type: "DATA", streamId: 3, flags: FLAG_FIN, data: new Uint8Array(0) },
    { type: "GOAWAY", flags: 0, lastGoodStreamId: 5, status: GoAwayStatus.OK },
  ]);
  raw.destroy();
  await release();
});

Deno.test("spdy session: a slow reader on one stream never blocks the others; writes wait for 'drain'", async () => {
  await using pair = await sessionPair();
  const server = serve(
    pair.server,
    (stream) =>
      stream.headers.kind === "flood" ? writeAll(stream, pattern(8 << 20, 3), 1 << 20) : echo(stream),
  );
  const flood = await pair.client.openStream({ kind: "flood" });
  await writeAll(flood, new Uint8Array(0));
  // Nobody reads `flood`; another stream still round-trips while it buffers.
  while (flood.bufferedAmount < 1 << 20) await new Promise((r) => setTimeout(r, 5));
  const other = await pair.client.openStream({ kind: "echo" });
  await writeAll(other, text("x"));
  assert.equal(str(await readAll(other.readable)), "echo:x");
  const data = await readAll(flood.readable);
  assert.equal(data.length, 8 << 20);
  await pair.client.close();
  await server.done;

  // Socket back-pressure: with the peer not reading, a large write stays pending until it reads again.
  await using paused = await sessionPair();
  const streamPromise = paused.server.streams().next();
  const writerSide = await paused.client.openStream({});
  const serverStream = (await streamPromise).value as SpdyStream;
  paused.serverSocket.pause();
  let done = false;
  const write = writeAll(writerSide, pattern(32 << 20, 1), 1 << 20).then(() => done = true);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(done, false, "the write waits for the socket to drain");
  paused.serverSocket.resume();
  const [received] = await Promise.all([readAll(serverStream.readable), write]);
  assert.equal(received.length, 32 << 20);
});

Deno.test("spdy session: malformed input gets GOAWAY(PROTOCOL_ERROR) and closes only that connection", async () => {
  await using healthy = await sessionPair();
  const healthyServer = serve(healthy.server, echo);
  const { client: raw, server: socket, release } = await connectedSockets();
  const session = new SpdySession(socket, { role: "server" });
  const victims = serve(session, (s) => readAll(s.readable).then(() => {}));
  const received: Uint8Array[] = [];
  raw.on("data", (chunk: Uint8Array) => received.push(chunk));
  const rawEnded = new Promise((r) => raw.once("end", r));
  raw.once("end", () => raw.end()); // like a TCP socket without allowHalfOpen
  // A valid stream, then a frame of version 2.
  const compressor = new HeaderCompressor();
  raw.write(
    serializeFrame({ type: "SYN_STREAM", streamId: 1, headerBlock: await compressor.compress({ a: "b" }) }),
  );
  compressor.close();
  raw.write(hex("80020006 00000004 00000001"));
  await session.closed;
  await rawEnded;
  await victims.done;
  assert.ok(session.error instanceof SpdyProtocolError);
  assert.equal((session.error as SpdyProtocolError).code, "UNSUPPORTED_VERSION");
  assert.ok(victims.errors.every((e) => e instanceof SpdySessionClosedError), String(victims.errors));
  const frames = new FrameParser().push(concatBytes(received)).map((f) => f.type === "GOAWAY" ? f : f.type);
  assert.deepEqual(frames, ["SYN_REPLY", {
    type: "GOAWAY",
    flags: 0,
    lastGoodStreamId: 1,
    status: GoAwayStatus.PROTOCOL_ERROR,
  }]);
  raw.destroy();
  await release();

  const ok = await healthy.client.openStream({});
  await writeAll(ok, text("fine"));
  assert.equal(str(await readAll(ok.readable)), "echo:fine");
  await healthy.client.close();
  await healthyServer.done;
});

Deno.test("spdy session: bytes read before the session (upgrade head) are parsed first; EOF mid-frame is an error", async () => {
  const { client: raw, server: socket, release } = await connectedSockets();
  const compressor = new HeaderCompressor();
  const syn = serializeFrame({
    type: "SYN_STREAM",
    flags: FLAG_FIN,
    streamId: 1,
    headerBlock: await compressor.compress({ streamtype: "error" }),
  });
  compressor.close();
  const session = new SpdySession(socket, { role: "server", head: syn.subarray(0, 10) });
  raw.resume(); // discard what the session writes
  raw.write(syn.subarray(10));
  const stream = (await session.streams().next()).value as SpdyStream;
  assert.deepEqual(stream.headers, { streamtype: "error" });
  assert.equal(stream.remoteFinished, true);
  raw.end(hex("80030006 0000")); // cut off
  await session.closed;
  assert.equal((session.error as SpdyProtocolError).code, "TRUNCATED_FRAME");
  raw.destroy();
  await release();
});

Deno.test({
  name: "spdy session: on a node:http 'Upgrade: SPDY/3.1' socket, frames sent with the request are read",
  ignore: !LOOPBACK,
  async fn() {
    const heads: number[] = [];
    const sessions: SpdySession[] = [];
    const served: Promise<void>[] = [];
    const server = http.createServer((_req, res) => res.writeHead(404).end());
    server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Uint8Array) => {
      assert.equal(req.method, "POST");
      assert.equal(req.headers.upgrade, "SPDY/3.1");
      assert.equal(req.headers["x-stream-protocol-version"], "v4.channel.k8s.io, v3.channel.k8s.io");
      socket.write(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n" +
          "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
      );
      heads.push(head.length);
      const session = new SpdySession(socket, { role: "server", head });
      sessions.push(session);
      served.push(serve(session, echo).done);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    const raw = net.connect(port, "127.0.0.1");
    const received: Uint8Array[] = [];
    raw.on("data", (chunk: Uint8Array) => received.push(chunk));
    const ended = new Promise((resolve) => raw.once("end", resolve));
    await new Promise((resolve) => raw.once("connect", resolve));
    const compressor = new HeaderCompressor();
    const frames = concatBytes([
      serializeFrame({
        type: "SYN_STREAM",
        streamId: 1,
        headerBlock: await compressor.compress({ streamType: "stdout" }),
      }),
      serializeFrame({ type: "DATA", streamId: 1, flags: FLAG_FIN, data: text("hi") }),
      serializeFrame({ type: "PING", id: 1 }),
    ]);
    compressor.close();
    // The request and the first frames in one write, like a client that does not wait for the 101.
    raw.write(concatBytes([
      text(
        "POST /exec/ns/pod/c?command=sh&output=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n" +
          "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n" +
          "X-Stream-Protocol-Version: v3.channel.k8s.io\r\n\r\n",
      ),
      frames,
    ]));
    // Wait for SYN_REPLY, the PING echo, DATA and DATA FIN, then hang up.
    const parse = () => {
      const all = concatBytes(received);
      const end = str(all).indexOf("\r\n\r\n");
      if (end < 0) return undefined;
      return { response: str(all.subarray(0, end)), frames: new FrameParser().push(all.subarray(end + 4)) };
    };
    let result = parse();
    while (!result || result.frames.length < 4) {
      await new Promise((r) => setTimeout(r, 5));
      result = parse();
    }
    raw.end();
    await ended;
    await Promise.all(sessions.map((s) => s.closed));
    await Promise.all(served);
    raw.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    assert.match(result.response, /^HTTP\/1\.1 101 /);
    const decompressor = new HeaderDecompressor();
    const decoded: SpdyFrame[] = [];
    for (const frame of result.frames) {
      decoded.push(isCompressedFrame(frame) ? await decompressFrame(frame, decompressor) : frame);
    }
    decompressor.close();
    assert.deepEqual(decoded, [
      { type: "SYN_REPLY", flags: 0, streamId: 1, headers: {} },
      { type: "PING", flags: 0, id: 1 },
      { type: "DATA", streamId: 1, flags: 0, data: text("echo:hi") },
      { type: "DATA", streamId: 1, flags: FLAG_FIN, data: new Uint8Array(0) },
    ]);
    assert.equal(sessions.length, 1);
    assert.equal(sessions[0].error, undefined);
    console.log(`the upgrade head carried ${heads[0]} bytes of SPDY frames`);
  },
});

// ---------------------------------------------------------------------------------------------------------
// Interop with moby/spdystream (optional: needs a Go toolchain and the module proxy or cache)

const GO_PROGRAM = `package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/moby/spdystream"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\\n", args...)
	os.Exit(1)
}

func pattern(n int, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed)
	}
	return b
}

func open(conn *spdystream.Connection, kind string, extra string) *spdystream.Stream {
	h := http.Header{}
	h.Set("streamType", kind)
	h.Set("X-Extra", extra)
	s, err := conn.CreateStream(h, nil, false)
	if err != nil {
		fail("create %s: %v", kind, err)
	}
	if err := s.WaitTimeout(10 * time.Second); err != nil {
		fail("reply %s: %v", kind, err)
	}
	return s
}

// serve: a spdystream server mirroring every stream, for a client session to talk to.
func serve() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen: %v", err)
	}
	fmt.Println(l.Addr().String())
	tcp, err := l.Accept()
	if err != nil {
		fail("accept: %v", err)
	}
	conn, err := spdystream.NewConnection(tcp, true)
	if err != nil {
		fail("connection: %v", err)
	}
	conn.Serve(spdystream.MirrorStreamHandler)
	fmt.Println("served")
}

func main() {
	if os.Args[1] == "serve" {
		serve()
		return
	}
	tcp, err := net.Dial("tcp", os.Args[1])
	if err != nil {
		fail("dial: %v", err)
	}
	conn, err := spdystream.NewConnection(tcp, false)
	if err != nil {
		fail("connection: %v", err)
	}
	go conn.Serve(spdystream.MirrorStreamHandler)

	if _, err := conn.Ping(); err != nil {
		fail("ping: %v", err)
	}
	fmt.Println("ping ok")

	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s := open(conn, "echo", fmt.Sprint(i))
			msg := fmt.Sprintf("hello %d", i)
			if _, err := s.Write([]byte(msg)); err != nil {
				fail("write: %v", err)
			}
			s.Close()
			got, _ := io.ReadAll(s)
			if string(got) != "echo:"+msg {
				fail("echo %d: got %q", i, got)
			}
		}(i)
	}
	wg.Wait()
	fmt.Println("echo ok")

	s := open(conn, "bulk", "")
	up := pattern(1<<20, 1)
	go func() {
		for off := 0; off < len(up); off += 32768 {
			if _, err := s.Write(up[off : off+32768]); err != nil {
				fail("bulk write: %v", err)
			}
		}
		s.Close()
	}()
	down, _ := io.ReadAll(s)
	if !bytes.Equal(down, pattern(1<<20, 2)) {
		fail("bulk: got %d bytes", len(down))
	}
	fmt.Println("bulk ok")

	r := open(conn, "reset", "")
	r.Write([]byte("x"))
	if _, err := io.ReadAll(r); err != nil {
		fail("reset read: %v", err)
	}
	fmt.Println("reset ok")

	d := open(conn, "done", "")
	d.Close()
	select {
	case <-conn.CloseChan():
	case <-time.After(15 * time.Second):
		fail("no GOAWAY")
	}
	fmt.Println("goaway ok")
}
`;

async function goInteropBinary(): Promise<string | { skip: string }> {
  const run = async (args: string[], cwd?: string) => {
    try {
      const out = await new Deno.Command("go", {
        args,
        cwd,
        env: { GOFLAGS: "-mod=mod", GOWORK: "off", GOTOOLCHAIN: "local", CGO_ENABLED: "0" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { ok: out.success, text: str(out.stdout) + str(out.stderr) };
    } catch (error) {
      return { ok: false, text: String(error) };
    }
  };
  if (
    !LOOPBACK || !granted({ name: "run", command: "go" }) || !granted({ name: "write" }) ||
    !granted({ name: "env" })
  ) {
    return { skip: "needs --allow-net (loopback), --allow-run, --allow-write and --allow-env" };
  }
  const version = await run(["version"]);
  if (!version.ok) return { skip: `no Go toolchain (${version.text.trim()})` };
  const key = createHash("sha256").update(GO_PROGRAM + version.text).digest("hex").slice(0, 16);
  const dir = `${Deno.env.get("TMPDIR") ?? "/tmp"}/kubeocean-spdy-interop-${key}`;
  const binary = `${dir}/spdyclient`;
  try {
    await Deno.stat(binary);
    return binary; // built by an earlier run
  } catch { /* build it */ }
  await Deno.mkdir(dir, { recursive: true });
  const work = await Deno.makeTempDir({ dir, prefix: "build-" });
  try {
    await Deno.writeTextFile(
      `${work}/go.mod`,
      "module spdyclient\n\ngo 1.21\n\nrequire github.com/moby/spdystream v0.5.1\n",
    );
    await Deno.writeTextFile(`${work}/main.go`, GO_PROGRAM);
    const build = await run(["build", "-o", `${work}/spdyclient`, "."], work);
    if (!build.ok) {
      return { skip: `building the moby/spdystream client failed: ${build.text.trim().slice(0, 500)}` };
    }
    await Deno.rename(`${work}/spdyclient`, binary); // atomic: a concurrent run never sees half a binary
    return binary;
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

const goBinary = await goInteropBinary();
if (typeof goBinary !== "string") console.warn(`spdy interop test skipped: ${goBinary.skip}`);

Deno.test({
  name: "spdy interop: a moby/spdystream v0.5.1 client (Go) against a server session",
  ignore: typeof goBinary !== "string",
  async fn() {
    const listener = net.createServer();
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
    const { port } = listener.address() as net.AddressInfo;
    const sessionReady = new Promise<SpdySession>((resolve) =>
      listener.once(
        "connection",
        (socket: net.Socket) => resolve(new SpdySession(socket, { role: "server" })),
      )
    );
    const child = new Deno.Command(goBinary as string, {
      args: [`127.0.0.1:${port}`],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill(), 30_000);
    const session = await sessionReady;
    const headersSeen: unknown[] = [];
    let bulkReceived = 0;
    let bulkOk = false;
    let mirrored = "";
    let serverPing = -1;
    const server = serve(session, async (stream) => {
      headersSeen.push(stream.headers);
      switch (stream.headers.streamtype) {
        case "echo":
          return echo(stream);
        case "bulk": {
          const [data] = await Promise.all([
            readAll(stream.readable),
            writeAll(stream, pattern(1 << 20, 2), 65536),
          ]);
          bulkReceived = data.length;
          bulkOk = data.every((b, i) => b === ((i * 7 + 1) & 0xff));
          return;
        }
        case "reset": {
          await stream.readable.getReader().read();
          stream.reset(RstStatus.INTERNAL_ERROR);
          return;
        }
        case "done": {
          serverPing = await session.ping(5000);
          // A stream the server opens: spdystream's MirrorStreamHandler echoes it.
          const mirror = await session.openStream({ streamType: "mirror" });
          await writeAll(mirror, text("from the server"));
          mirrored = str(await readAll(mirror.readable));
          await readAll(stream.readable);
          await writeAll(stream, new Uint8Array(0));
          await session.close();
          return;
        }
      }
    });
    const output = await child.output();
    clearTimeout(timer);
    await session.closed;
    await server.done;
    listener.close();
    const stdout = str(output.stdout);
    const stderr = str(output.stderr);
    assert.equal(output.code, 0, `Go client failed:\n${stdout}\n${stderr}`);
    assert.equal(stdout, "ping ok\necho ok\nbulk ok\nreset ok\ngoaway ok\n");
    assert.deepEqual(server.errors, []);
    assert.equal(bulkReceived, 1 << 20);
    assert.ok(bulkOk, "the Go client's 1 MiB arrived intact");
    assert.equal(mirrored, "from the server");
    assert.ok(serverPing >= 0);
    assert.ok(
      headersSeen.some((h) => (h as Record<string, string>)["x-extra"] === "2"),
      JSON.stringify(headersSeen),
    );
    assert.equal(session.error, undefined);
  },
});

Deno.test({
  name: "spdy interop: a client session against a moby/spdystream v0.5.1 server (Go, mirroring streams)",
  ignore: typeof goBinary !== "string",
  async fn() {
    const child = new Deno.Command(goBinary as string, { args: ["serve"], stdout: "piped", stderr: "piped" })
      .spawn();
    const timer = setTimeout(() => child.kill(), 30_000);
    const stderr = new Response(child.stderr).text();
    const reader = child.stdout.getReader();
    let stdout = "";
    while (!stdout.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      stdout += str(value);
    }
    const rest = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        stdout += str(value);
      }
    })();
    const [host, port] = stdout.trim().split(":");
    const socket = net.connect(Number(port), host);
    await new Promise((resolve) => socket.once("connect", resolve));
    const session = new SpdySession(socket, { role: "client" });
    assert.ok((await session.ping(5000)) >= 0);
    const results = await Promise.all([0, 1, 2].map(async (i) => {
      const stream = await session.openStream({ streamType: "data", "X-Index": String(i) });
      const data = pattern(i === 0 ? 1 << 20 : 1000 * (i + 1), i);
      const [echoed] = await Promise.all([readAll(stream.readable), writeAll(stream, data, 40_000)]);
      await stream.closed;
      return [stream.id, echoed.length === data.length && echoed.every((b, j) => b === data[j])];
    }));
    assert.deepEqual(results, [[1, true], [3, true], [5, true]]);
    await session.close();
    const status = await child.status;
    clearTimeout(timer);
    await rest;
    assert.equal(status.code, 0, `Go server failed: ${stdout} ${await stderr}`);
    assert.match(stdout, /served\n$/);
    assert.equal(await stderr, "");
    assert.equal(session.error, undefined);
  },
});
