/**
 * The HTTP side of streaming upgrades: which protocol a request asks for, the SPDY/3.1
 * handshake (`101 Switching Protocols` with the negotiated `X-Stream-Protocol-Version`, or 403 with
 * the versions served — what a kubelet answers), and collecting the streams a SPDY client opens.
 *
 * @module
 */

import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { SpdyHeaders, SpdySession, SpdyStream } from "../../toolkit/streaming/spdy.ts";
import { KubeletApiError } from "./auth.ts";

/** Whether the request asks to upgrade to SPDY/3.1. */
export function isSpdyUpgrade(request: IncomingMessage): boolean {
  return headerTokens(request.headers.upgrade).some((token) => token.toLowerCase() === "spdy/3.1");
}

/** Whether the request asks to upgrade to WebSocket. */
export function isWebSocketUpgrade(request: IncomingMessage): boolean {
  return headerTokens(request.headers.upgrade).some((token) => token.toLowerCase() === "websocket");
}

/** The stream protocols a SPDY client offers, in its order of preference. */
export function offeredStreamProtocols(request: IncomingMessage): string[] {
  return headerTokens(request.headers["x-stream-protocol-version"]);
}

/**
 * Negotiates the stream protocol (the client's first one that is `served`; a client that offers
 * none gets `""`, the oldest protocol, as a kubelet does) and writes the 101 answer on `socket`.
 * Throws a 403 {@linkcode KubeletApiError} naming the served versions when nothing matches.
 */
export function acceptSpdy(request: IncomingMessage, socket: Duplex, served: readonly string[]): string {
  const offered = offeredStreamProtocols(request);
  const chosen = offered.length === 0 ? "" : offered.find((p) => served.includes(p));
  if (chosen === undefined) {
    throw new KubeletApiError(
      403,
      `none of the stream protocols offered (${offered.join(", ")}) is served; served: ${served.join(", ")}`,
      { "x-accepted-stream-protocol-versions": served.join(", ") },
    );
  }
  socket.write(
    "HTTP/1.1 101 Switching Protocols\r\n" +
      "Connection: Upgrade\r\n" +
      "Upgrade: SPDY/3.1\r\n" +
      (chosen ? `X-Stream-Protocol-Version: ${chosen}\r\n` : "") +
      "\r\n",
  );
  return chosen;
}

/** Comma-separated header values, repeated or joined, as a list of tokens. */
function headerTokens(value: string | string[] | undefined): string[] {
  const values = value === undefined ? [] : Array.isArray(value) ? value : [value];
  return values.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "");
}

/** How long a kubelet waits for a client to open the streams it asked for. */
export const STREAM_CREATION_TIMEOUT_MS = 30_000;

/**
 * Collects the SPDY streams the client opens, by their `streamtype` header, until every one of
 * `expected` exists (a stream of another or a repeated type is reset). Throws when they do not all
 * arrive within `timeoutMs` or the session ends first.
 */
export async function waitForStreams(
  session: SpdySession,
  expected: readonly string[],
  timeoutMs = STREAM_CREATION_TIMEOUT_MS,
): Promise<Record<string, SpdyStream>> {
  const found: Record<string, SpdyStream> = {};
  const incoming = session.streams();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const missing = expected.filter((type) => !found[type]);
      reject(
        new Error(`timed out after ${timeoutMs} ms waiting for the client's streams: ${missing.join(", ")}`),
      );
    }, timeoutMs);
  });
  try {
    while (expected.some((type) => !found[type])) {
      const next = await Promise.race([incoming.next(), timeout]);
      if (next.done) throw new Error("the client closed the connection before opening its streams");
      const stream = next.value;
      const type = headerValue(stream.headers, "streamtype");
      if (!type || !expected.includes(type) || found[type]) {
        stream.reset();
        continue;
      }
      found[type] = stream;
    }
    return found;
  } finally {
    clearTimeout(timer);
  }
}

/** One value of a SPDY header (the first, when several were sent). */
export function headerValue(headers: SpdyHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}
