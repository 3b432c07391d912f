/**
 * Fuzzing the SPDY/3.1 codec and server sessions (toolkit/streaming/spdy.ts) with a seeded PRNG: random
 * bytes and mutations of valid client byte streams (bit flips, overwritten/inserted/deleted/duplicated
 * bytes, corrupted frame headers, truncation), fed in random chunk sizes. The parser must either yield
 * frames or throw a SpdyProtocolError; a server session must never throw uncaught or hang, must only ever
 * write well-formed frames, and must end either cleanly or with GOAWAY(PROTOCOL_ERROR) and a closed socket.
 * Set SPDY_FUZZ_SEED to try another seed and SPDY_FUZZ_SCALE to run more cases.
 */

import assert from "node:assert/strict";
import { duplexPair } from "node:stream";
import {
  FLAG_FIN,
  FrameParser,
  GoAwayStatus,
  HeaderDecompressor,
  isCompressedFrame,
  RstStatus,
  serializeFrame,
  SpdyProtocolError,
  SpdySession,
} from "../../toolkit/streaming/spdy.ts";
import type { SpdyFrame, SpdyStream, WireFrame } from "../../toolkit/streaming/spdy.ts";
import { concatBytes } from "../../toolkit/util/mod.ts";
import { encodeFrames } from "../fixtures/spdy.ts";

const SEED = Number(Deno.env.get("SPDY_FUZZ_SEED") ?? 0x5eed);
const SCALE = Number(Deno.env.get("SPDY_FUZZ_SCALE") ?? 1);

/** mulberry32: small, fast, seeded. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const text = (s: string) => new TextEncoder().encode(s);

/** A valid client→server byte stream (one header compressor, wire order). */
const clientStream = (frames: SpdyFrame[]) => encodeFrames(frames);

const SEEDS: Uint8Array[] = await Promise.all([
  clientStream([
    { type: "SYN_STREAM", streamId: 1, headers: { streamtype: "error" } },
    {
      type: "SYN_STREAM",
      streamId: 3,
      flags: FLAG_FIN,
      headers: { streamtype: "stdout", port: ["80", "81"] },
    },
    { type: "DATA", streamId: 1, data: text("hello") },
    { type: "PING", id: 1 },
    { type: "SETTINGS", entries: [{ id: 7, value: 65536 }] },
    { type: "WINDOW_UPDATE", streamId: 1, deltaWindowSize: 1000 },
    { type: "HEADERS", streamId: 1, headers: { more: "x" } },
    { type: "DATA", streamId: 1, flags: FLAG_FIN, data: new Uint8Array(0) },
    { type: "RST_STREAM", streamId: 3, status: RstStatus.CANCEL },
    { type: "GOAWAY", lastGoodStreamId: 0, status: GoAwayStatus.OK },
  ]),
  clientStream([
    ...[1, 3, 5, 7].map((streamId): SpdyFrame => ({
      type: "SYN_STREAM",
      streamId,
      headers: { streamtype: "data", port: "8080", requestid: String(streamId) },
    })),
    ...[1, 3, 5, 7].map((streamId): SpdyFrame => ({
      type: "DATA",
      streamId,
      flags: FLAG_FIN,
      data: new Uint8Array(300).fill(streamId),
    })),
    { type: "PING", id: 3 },
    { type: "PING", id: 4 },
  ]),
  clientStream([
    {
      type: "SYN_STREAM",
      streamId: 1,
      headers: { streamtype: "stdin", "x-stream-protocol-version": "v4.channel.k8s.io" },
    },
    { type: "SYN_REPLY", streamId: 1, headers: {} },
    { type: "DATA", streamId: 1, data: new Uint8Array(2000).fill(7) },
    {
      type: "SYN_STREAM",
      streamId: 3,
      headers: { streamtype: "stdin", "x-stream-protocol-version": "v4.channel.k8s.io" },
    },
  ]),
]);

/** A random input: pure noise, frame-shaped noise, or a mutated valid stream. */
function fuzzInput(random: () => number): Uint8Array {
  const int = (n: number) => Math.floor(random() * n);
  const kind = int(10);
  if (kind === 0) {
    return Uint8Array.from({ length: int(64) }, () => int(256));
  }
  if (kind === 1) {
    // Frame-shaped noise: plausible control/data headers with random payloads.
    const parts: Uint8Array[] = [];
    for (let i = int(5); i >= 0; i--) {
      const length = int(40);
      const frame = new Uint8Array(8 + length);
      const view = new DataView(frame.buffer);
      if (random() < 0.7) {
        view.setUint16(0, 0x8000 | (random() < 0.9 ? 3 : int(5)));
        view.setUint16(2, int(12));
      } else {
        view.setUint32(0, int(8));
      }
      view.setUint32(4, (int(4) << 24 | (random() < 0.9 ? length : int(1 << 24))) >>> 0);
      for (let j = 8; j < frame.length; j++) frame[j] = int(256);
      parts.push(frame);
    }
    return concatBytes(parts);
  }
  const bytes = [...SEEDS[int(SEEDS.length)]];
  for (let m = 1 + int(4); m > 0; m--) {
    const at = int(bytes.length + 1);
    switch (int(7)) {
      case 0: // bit flip
        if (bytes.length) bytes[at % bytes.length] ^= 1 << int(8);
        break;
      case 1: // overwrite
        for (let j = int(4); j >= 0 && bytes.length; j--) bytes[(at + j) % bytes.length] = int(256);
        break;
      case 2: // insert
        bytes.splice(at, 0, ...Array.from({ length: 1 + int(8) }, () => int(256)));
        break;
      case 3: // delete
        bytes.splice(at, 1 + int(16));
        break;
      case 4: // duplicate a range
        bytes.splice(at, 0, ...bytes.slice(int(bytes.length), int(bytes.length) + int(64)));
        break;
      case 5: // truncate
        bytes.length = at;
        break;
      case 6: // an interesting value at a random position (lengths, versions, ids)
        if (bytes.length) bytes[at % bytes.length] = [0x00, 0x7f, 0x80, 0xff, 0x02, 0x03, 0x04][int(7)];
        break;
    }
  }
  return Uint8Array.from(bytes);
}

/** Splits bytes into random chunk sizes (1 byte up to everything). */
function chunks(bytes: Uint8Array, random: () => number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let offset = 0; offset < bytes.length;) {
    const size = random() < 0.3 ? 1 : 1 + Math.floor(random() * bytes.length);
    out.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return out;
}

Deno.test("spdy fuzz: the parser yields frames or a SpdyProtocolError, never anything else", async () => {
  const random = prng(SEED);
  const started = performance.now();
  let frames = 0;
  let errors = 0;
  for (let i = 0; i < 3000 * SCALE; i++) {
    const input = fuzzInput(random);
    const parser = new FrameParser({ maxFrameLength: 1 << 16, maxHeaderBlockLength: 1 << 12 });
    const decompressor = new HeaderDecompressor({ maxHeaderBlockLength: 1 << 12 });
    const parsed: WireFrame[] = [];
    try {
      for (const chunk of chunks(input, random)) parsed.push(...parser.push(chunk));
      parser.finish();
    } catch (error) {
      assert.ok(error instanceof SpdyProtocolError, `case ${i}: ${error}`);
      errors++;
    }
    for (const frame of parsed) {
      frames++;
      // Every parsed frame re-serializes to bytes that parse to the same frame.
      const again = new FrameParser().push(serializeFrame(frame));
      assert.deepEqual(again, [frame], `case ${i}`);
      if (isCompressedFrame(frame)) {
        await decompressor.decompress(frame.headerBlock).catch((error) => {
          assert.ok(error instanceof SpdyProtocolError, `case ${i}: ${error}`);
        });
      }
    }
    decompressor.close();
  }
  const elapsed = performance.now() - started;
  console.log(
    `${3000 * SCALE} inputs in ${elapsed.toFixed(0)} ms: ${frames} frames, ${errors} protocol errors`,
  );
  assert.ok(frames > 3000 && errors > 500, `${frames} frames, ${errors} errors`);
  assert.ok(elapsed < 5000 * SCALE, `${elapsed} ms`);
});

Deno.test("spdy fuzz: a server session never throws, never hangs, and ends cleanly or with GOAWAY", async () => {
  const random = prng(SEED + 1);
  const started = performance.now();
  const outcomes = { clean: 0, goAway: 0, goAwayAfterClose: 0, streams: 0 };
  for (let i = 0; i < 600 * SCALE; i++) {
    const input = fuzzInput(random);
    const [peer, socket] = duplexPair();
    const written: Uint8Array[] = [];
    peer.on("data", (chunk: Uint8Array) => written.push(chunk));
    const session = new SpdySession(socket, {
      role: "server",
      maxFrameLength: 1 << 16,
      closeTimeoutMs: 1000,
    });
    // Exercise the stream paths too: echo a little, reset some, ignore others.
    const served = (async () => {
      let n = 0;
      for await (const stream of session.streams()) {
        outcomes.streams++;
        const mode = n++ % 3;
        void (async (s: SpdyStream) => {
          if (mode === 0) s.reset();
          if (mode === 1) {
            const w = s.writable.getWriter();
            await w.write(text("out"));
            await w.close();
          }
          for await (const _ of s.readable) { /* drain */ }
        })(stream).catch(() => {});
      }
    })();
    for (const chunk of chunks(input, random)) peer.write(chunk);
    peer.end();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hung = await Promise.race([
      session.closed.then(() => false),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), 3000)),
    ]);
    clearTimeout(timer);
    assert.equal(hung, false, `case ${i} hung; input ${[...input]}`);
    await served;
    peer.destroy();

    // Whatever the session wrote is well-formed, header blocks included.
    const output = new FrameParser().push(concatBytes(written));
    const decompressor = new HeaderDecompressor();
    for (const frame of output) {
      if (isCompressedFrame(frame)) await decompressor.decompress(frame.headerBlock);
    }
    decompressor.close();
    if (session.error === undefined) {
      assert.ok(!output.some((f) => f.type === "GOAWAY" && f.status !== GoAwayStatus.OK), `case ${i}`);
      outcomes.clean++;
    } else {
      assert.ok(session.error instanceof SpdyProtocolError, `case ${i}: ${session.error}`);
      // The last frame is GOAWAY: PROTOCOL_ERROR, or OK when a graceful close had already ended the socket.
      const last = output.at(-1);
      assert.equal(last?.type, "GOAWAY", `case ${i}`);
      if ((last as { status: number }).status === GoAwayStatus.PROTOCOL_ERROR) outcomes.goAway++;
      else outcomes.goAwayAfterClose++;
    }
  }
  const elapsed = performance.now() - started;
  console.log(`${600 * SCALE} sessions in ${elapsed.toFixed(0)} ms: ${JSON.stringify(outcomes)}`);
  assert.ok(outcomes.clean > 50 && outcomes.goAway > 50 && outcomes.streams > 100, JSON.stringify(outcomes));
  assert.ok(elapsed < 5000 * SCALE, `${elapsed} ms`);
});
