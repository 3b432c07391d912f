/**
 * A `fetch`-shaped request function on `node:https`, for the TLS settings Deno's `fetch` cannot
 * express: `tls-server-name` (verify the certificate against another name than the URL's host)
 * and `insecure-skip-tls-verify`. Responses stream like fetch responses (watches work).
 *
 * @module
 */

import { Agent, request } from "node:https";
import { Readable } from "node:stream";

/** TLS settings of the `node:https` agent. */
export interface NodeTlsOptions {
  ca?: string;
  cert?: string;
  key?: string;
  /** Name to verify the server certificate against (SNI and hostname check). */
  servername?: string;
  rejectUnauthorized: boolean;
}

/** One `node:https` agent (connection pool) with fixed TLS settings. */
export class NodeHttpsClient {
  readonly #agent: Agent;

  constructor(readonly tls: NodeTlsOptions) {
    this.#agent = new Agent({
      keepAlive: true,
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      servername: tls.servername,
      rejectUnauthorized: tls.rejectUnauthorized,
    });
  }

  /** Sends a request; resolves with a streaming `Response` once the headers arrive. */
  fetch(
    url: URL,
    init: {
      method: string;
      headers: Record<string, string>;
      body?: string | Uint8Array;
      signal?: AbortSignal;
    },
  ): Promise<Response> {
    return new Promise((resolve, reject) => {
      if (init.signal?.aborted) return reject(init.signal.reason);
      const req = request(url, {
        method: init.method,
        headers: init.body === undefined
          ? init.headers
          : { ...init.headers, "content-length": String(byteLength(init.body)) },
        agent: this.#agent,
        servername: this.tls.servername,
      }, (res) => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          if (Array.isArray(value)) { for (const v of value) headers.append(name, v); }
          else if (value !== undefined) headers.set(name, String(value));
        }
        const status = res.statusCode ?? 0;
        const body = status === 204 || status === 304 || init.method === "HEAD"
          ? null
          : Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>;
        if (body === null) res.resume();
        init.signal?.addEventListener("abort", () => res.destroy(), { once: true });
        resolve(new Response(body, { status, statusText: res.statusMessage, headers }));
      });
      // Settle on the abort itself: a request destroyed while its TLS handshake hangs (a frozen
      // server) did not always emit 'error' under Deno's node:https, leaving the caller waiting.
      const onAbort = () => {
        reject(init.signal?.reason);
        req.destroy(init.signal?.reason instanceof Error ? init.signal.reason : new Error("aborted"));
      };
      init.signal?.addEventListener("abort", onAbort, { once: true });
      req.on("error", (err: Error) => {
        init.signal?.removeEventListener("abort", onAbort);
        reject(init.signal?.aborted ? init.signal.reason : new TypeError(err.message, { cause: err }));
      });
      if (init.body !== undefined) req.write(init.body);
      req.end();
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

function byteLength(body: string | Uint8Array): number {
  return typeof body === "string" ? new TextEncoder().encode(body).length : body.length;
}
