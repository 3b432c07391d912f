/**
 * The SPDY/3 header compression dictionary (SPDY Protocol Draft 3, section 2.6.10.1). Both directions of
 * every SPDY/3 connection prime their zlib context with these 1423 bytes, so a header block written
 * without it cannot be read by a conforming peer whose compressor references it.
 *
 * The dictionary is 65 length-prefixed words (4-byte big-endian length, then the ASCII word) followed by a
 * run of unprefixed text; it is built here from that structure rather than spelled out byte by byte. The
 * unit tests pin its length, SHA-256 and zlib dictionary id (Adler-32).
 *
 * @module
 */

import { concatBytes } from "../util/mod.ts";

const WORDS = [
  "options",
  "head",
  "post",
  "put",
  "delete",
  "trace",
  "accept",
  "accept-charset",
  "accept-encoding",
  "accept-language",
  "accept-ranges",
  "age",
  "allow",
  "authorization",
  "cache-control",
  "connection",
  "content-base",
  "content-encoding",
  "content-language",
  "content-length",
  "content-location",
  "content-md5",
  "content-range",
  "content-type",
  "date",
  "etag",
  "expect",
  "expires",
  "from",
  "host",
  "if-match",
  "if-modified-since",
  "if-none-match",
  "if-range",
  "if-unmodified-since",
  "last-modified",
  "location",
  "max-forwards",
  "pragma",
  "proxy-authenticate",
  "proxy-authorization",
  "range",
  "referer",
  "retry-after",
  "server",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "user-agent",
  "vary",
  "via",
  "warning",
  "www-authenticate",
  "method",
  "get",
  "status",
  "200 OK",
  "version",
  "HTTP/1.1",
  "url",
  "public",
  "set-cookie",
  "keep-alive",
  "origin",
];

const TAIL = [
  "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
  "203 Non-Authoritative Information",
  "204 No Content",
  "301 Moved Permanently",
  "400 Bad Request",
  "401 Unauthorized",
  "403 Forbidden",
  "404 Not Found",
  "500 Internal Server Error",
  "501 Not Implemented",
  "503 Service Unavailable",
  "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
  "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
  "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
].join("");

function build(): Uint8Array {
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const word of WORDS) {
    const bytes = encoder.encode(word);
    const prefix = new Uint8Array(4);
    new DataView(prefix.buffer).setUint32(0, bytes.length);
    parts.push(prefix, bytes);
  }
  parts.push(encoder.encode(TAIL));
  return concatBytes(parts);
}

/** The 1423-byte SPDY/3 zlib preset dictionary. Treat as read-only. */
export const SPDY3_DICTIONARY: Uint8Array = build();
