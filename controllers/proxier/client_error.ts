/**
 * The answer to a request the HTTP parser refused (headers over the size limit, a malformed
 * request line): one status line, then a graceful close.
 *
 * Node's default handler writes the status and destroys the socket at once. Over TLS that write
 * may still be queued when the socket goes, and a socket closed with unread input answers the
 * client with a reset that can discard what was sent: the client sees the connection drop with no
 * status at all. Ending the socket flushes the answer first, and reading (and discarding) what the
 * client still sends keeps the close a FIN, not a reset.
 *
 * @module
 */

import type { Duplex } from "node:stream";

/** How long a refused connection may keep sending before it is cut. */
const LINGER_MS = 5_000;

const answered = new WeakSet<Duplex>();

/** The status line for a parser error code (`HPE_HEADER_OVERFLOW` → 431, anything else → 400). */
export function clientErrorStatus(code: string | undefined): string {
  return code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : "400 Bad Request";
}

/** Answers a refused request on `socket` once, then closes it gracefully. */
export function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (answered.has(socket)) return;
  answered.add(socket);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(`HTTP/1.1 ${clientErrorStatus(error.code)}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  socket.resume();
  const linger = setTimeout(() => socket.destroy(), LINGER_MS);
  socket.once("close", () => clearTimeout(linger));
}
