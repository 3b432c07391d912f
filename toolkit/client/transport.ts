/**
 * The HTTP transport of the Kubernetes client: `fetch` with one `Deno.createHttpClient` per
 * configuration, credentials (bearer token or client certificate) from a {@linkcode CredentialSource},
 * a client-side QPS/burst limit, request timeouts, cancellation by `AbortSignal`, and retries with
 * backoff for 429, 5xx and connection failures where a retry is safe.
 *
 * Every generated API module and the runtime use only {@linkcode Transport.request} and
 * {@linkcode Transport.stream}; a test double needs just those two methods.
 *
 * @module
 */

import type { ClientConfig, Credentials } from "./config.ts";
import { ApiError, type Status } from "./errors.ts";
import { sleep } from "../util/mod.ts";
import { TokenBucket } from "./rate_limiter.ts";
import { LinkedAbort } from "./abort.ts";
import type { NodeHttpsClient } from "./node_fetch.ts";

/**
 * `node:https` is loaded only by configurations that need it: importing it added ~10 ms to the
 * start of every process that imports the client (measured with Deno 2.9).
 */
let nodeFetchModule: Promise<typeof import("./node_fetch.ts")> | undefined;
const loadNodeFetch = () => nodeFetchModule ??= import("./node_fetch.ts");

/** HTTP methods the API server uses. */
export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** Query parameter values; `undefined` entries are left out, arrays repeat the key. */
export type QueryValue = string | number | boolean | undefined | readonly string[];

/** One API request. */
export interface RequestOptions {
  method: HttpMethod;
  /** Absolute API path, e.g. `/api/v1/namespaces/default/pods`. */
  path: string;
  query?: Record<string, QueryValue>;
  /** Serialised as JSON unless it is a string or bytes. */
  body?: unknown;
  /** Content type of the body (default `application/json`; patches set their own). */
  contentType?: string;
  /** Accept header (default `application/json`). */
  accept?: string;
  signal?: AbortSignal;
  /** Timeout in ms: whole request for {@linkcode Transport.request}, until headers for streams. */
  timeoutMs?: number;
  /**
   * Whether the request may be repeated after a 5xx without `Retry-After` or after a connection
   * failure where it may have reached the server. Defaults to true for GET only.
   */
  idempotent?: boolean;
}

/** Observes completed requests (for metrics). `code` is 0 when no response arrived. */
export type RequestObserver = (
  event: { method: string; code: number; seconds: number; retry: boolean },
) => void;

/** Options of {@linkcode HttpTransport}. */
export interface TransportOptions {
  /** Requests per second (default 50; 0 disables the limit). */
  qps?: number;
  /** Burst size (default 100). */
  burst?: number;
  /** Default timeout per request in ms (default 30 s). */
  timeoutMs?: number;
  /** Maximum retries of one request (default 8). */
  maxRetries?: number;
  /** User-Agent header (default `kubeocean-toolkit`). */
  userAgent?: string;
  observer?: RequestObserver;
}

/** The transport contract every client layer is written against. */
export interface Transport {
  /** The configuration the transport talks to (server, default namespace). */
  readonly config: ClientConfig;
  /** Sends a request and parses the JSON response; throws {@linkcode ApiError} for error statuses. */
  request<T = unknown>(options: RequestOptions): Promise<T>;
  /** Sends a request and returns the streaming response (2xx only; errors throw {@linkcode ApiError}). */
  stream(options: RequestOptions): Promise<Response>;
  /** Releases connections. */
  close(): void;
}

/** Where and how to open a WebSocket (see {@linkcode HttpTransport.websocketTarget}). */
export interface WebSocketTarget {
  url: string;
  headers: Record<string, string>;
  /** CA bundle to verify the server with (undefined: the system's roots, or no verification). */
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
  rejectUnauthorized: boolean;
}

/** How requests are sent: Deno's fetch with an HttpClient, or node:https for special TLS settings. */
interface HttpBackend {
  certPem?: string;
  client?: Deno.HttpClient;
  node?: NodeHttpsClient;
}

const DEFAULTS = { qps: 50, burst: 100, timeoutMs: 30_000, maxRetries: 8 };

/** `fetch`-based transport for one {@linkcode ClientConfig}. */
export class HttpTransport implements Transport {
  readonly #limiter: TokenBucket;
  readonly #options: Required<Omit<TransportOptions, "observer">> & { observer?: RequestObserver };
  #http?: HttpBackend;
  #closed = false;

  constructor(readonly config: ClientConfig, options: TransportOptions = {}) {
    this.#options = {
      qps: options.qps ?? DEFAULTS.qps,
      burst: options.burst ?? DEFAULTS.burst,
      timeoutMs: options.timeoutMs ?? DEFAULTS.timeoutMs,
      maxRetries: options.maxRetries ?? DEFAULTS.maxRetries,
      userAgent: options.userAgent ?? "kubeocean-toolkit",
      observer: options.observer,
    };
    this.#limiter = new TokenBucket(this.#options.qps, this.#options.burst);
  }

  async request<T = unknown>(options: RequestOptions): Promise<T> {
    const { text } = await this.#send(options, false);
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      return text as T;
    }
  }

  async stream(options: RequestOptions): Promise<Response> {
    return (await this.#send(options, true)).response;
  }

  /**
   * Where and how to open a WebSocket for a streaming subresource (exec, attach, port-forward):
   * the `wss://` URL, the auth header and the TLS settings of this configuration (pinned CA,
   * server name, client certificate, or no verification when the kubeconfig says so).
   */
  async websocketTarget(path: string, query: URLSearchParams): Promise<WebSocketTarget> {
    await this.#limiter.take();
    const credentials = await this.config.credentials.get();
    const { tls } = this.config;
    const url = new URL(this.config.server + path);
    url.search = query.toString();
    url.protocol = url.protocol === "http:" ? "ws:" : "wss:";
    const headers: Record<string, string> = { "user-agent": this.#options.userAgent };
    if (credentials.token) headers.authorization = `Bearer ${credentials.token}`;
    return {
      url: url.toString(),
      headers,
      ca: tls.insecureSkipTlsVerify ? undefined : tls.caPem,
      cert: credentials.certPem,
      key: credentials.keyPem,
      servername: tls.serverName,
      rejectUnauthorized: !tls.insecureSkipTlsVerify,
    };
  }

  close(): void {
    this.#closed = true;
    this.#closeBackend();
  }

  /** Sends with rate limiting, auth refresh on 401 and retries; returns a 2xx response. */
  async #send(options: RequestOptions, streaming: boolean): Promise<{ response: Response; text?: string }> {
    const describe = `${options.method} ${options.path}`;
    const idempotent = options.idempotent ?? options.method === "GET";
    let refreshedAuth = false;
    for (let attempt = 0;; attempt++) {
      if (this.#closed) throw new Error(`${describe}: client is closed`);
      await this.#limiter.take(options.signal);
      const started = performance.now();
      let response: Response;
      let text: string | undefined;
      try {
        ({ response, text } = await this.#fetch(options, streaming));
      } catch (err) {
        options.signal?.throwIfAborted();
        const notSent = isConnectFailure(err);
        const timedOut = err instanceof DOMException && err.name === "TimeoutError";
        this.#observe(options.method, 0, started, attempt > 0);
        if ((notSent || idempotent) && !timedOut && attempt < this.#options.maxRetries) {
          await sleep(backoffMs(attempt), options.signal);
          continue;
        }
        throw new Error(`${describe} to ${this.config.server} failed: ${describeError(err)}`, {
          cause: err,
        });
      }
      this.#observe(options.method, response.status, started, attempt > 0);
      if (response.ok) return { response, text };

      const status = parseStatus(text ?? "", response);
      if (response.status === 401 && !refreshedAuth) {
        refreshedAuth = true;
        this.config.credentials.invalidate();
        continue;
      }
      const retryAfter = parseRetryAfter(response.headers.get("retry-after"), status);
      const retryable = response.status === 429 ||
        (response.status >= 500 && (retryAfter !== undefined || idempotent));
      if (retryable && attempt < this.#options.maxRetries) {
        await sleep(
          retryAfter !== undefined ? Math.min(retryAfter * 1000, 30_000) : backoffMs(attempt),
          options.signal,
        );
        continue;
      }
      throw new ApiError(response.status, status, describe);
    }
  }

  async #fetch(options: RequestOptions, streaming: boolean): Promise<{ response: Response; text?: string }> {
    const credentials = await this.config.credentials.get();
    const backend = await this.#backend(credentials);
    const url = new URL(this.config.server + options.path);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value === undefined) continue;
      if (Array.isArray(value)) { for (const v of value) url.searchParams.append(key, v); }
      else url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = {
      accept: options.accept ?? "application/json",
      "user-agent": this.#options.userAgent,
    };
    if (credentials.token) headers.authorization = `Bearer ${credentials.token}`;
    let body: string | Uint8Array | undefined;
    if (options.body !== undefined) {
      headers["content-type"] = options.contentType ?? "application/json";
      body = typeof options.body === "string" || options.body instanceof Uint8Array
        ? options.body
        : JSON.stringify(options.body);
    }
    const timeoutMs = options.timeoutMs ?? this.#options.timeoutMs;
    const link = new LinkedAbort(options.signal);
    const timer = setTimeout(
      () => link.abort(new DOMException(`no response within ${timeoutMs} ms`, "TimeoutError")),
      timeoutMs,
    );
    const signal = link.signal;
    try {
      const init = { method: options.method, headers, body, signal };
      const response = backend.node
        ? await backend.node.fetch(url, init)
        : await fetch(url, { ...init, body: body as BodyInit | undefined, client: backend.client });
      if (!streaming || !response.ok) {
        // Read the body under the same timeout.
        const text = await response.text();
        link.dispose();
        return { response, text };
      }
      // Streams stay linked to the caller's signal until their body ends or is cancelled.
      return { response: linkBody(response, link) };
    } catch (err) {
      link.dispose();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The HTTP backend for the current client certificate (re-created when an exec plugin rotates
   * it): Deno's `fetch` with a `Deno.HttpClient`, or `node:https` when the configuration needs
   * `tls-server-name`, `insecure-skip-tls-verify` or a CA that replaces the system's roots
   * (`pinCa`), which `fetch` cannot do.
   */
  async #backend(credentials: Credentials): Promise<HttpBackend> {
    if (this.#http && this.#http.certPem === credentials.certPem) return this.#http;
    const { tls, proxyUrl } = this.config;
    const hostname = new URL(this.config.server).hostname.replace(/^\[|\]$/g, "");
    const needsNode = tls.insecureSkipTlsVerify || (tls.serverName && tls.serverName !== hostname) ||
      (tls.pinCa && !!tls.caPem);
    const NodeClient = needsNode ? (await loadNodeFetch()).NodeHttpsClient : undefined;
    // Another request may have built the backend while the module loaded.
    if (this.#http && this.#http.certPem === credentials.certPem) return this.#http;
    const backend: HttpBackend = NodeClient
      ? {
        certPem: credentials.certPem,
        node: new NodeClient({
          ca: tls.insecureSkipTlsVerify ? undefined : tls.caPem,
          cert: credentials.certPem,
          key: credentials.keyPem,
          servername: tls.serverName,
          rejectUnauthorized: !tls.insecureSkipTlsVerify,
        }),
      }
      : {
        certPem: credentials.certPem,
        client: Deno.createHttpClient({
          caCerts: tls.caPem ? [tls.caPem] : [],
          proxy: proxyUrl ? { url: proxyUrl } : undefined,
          ...(credentials.certPem && credentials.keyPem
            ? { cert: credentials.certPem, key: credentials.keyPem }
            : {}),
        } as Deno.CreateHttpClientOptions),
      };
    this.#closeBackend();
    this.#http = backend;
    return backend;
  }

  #closeBackend(): void {
    this.#http?.client?.close();
    this.#http?.node?.close();
    this.#http = undefined;
  }

  #observe(method: string, code: number, started: number, retry: boolean): void {
    this.#options.observer?.({ method, code, seconds: (performance.now() - started) / 1000, retry });
  }
}

/** Exponential backoff for attempt `n`: 200 ms × 2ⁿ, capped at 10 s, with ±50 % jitter. */
export function backoffMs(attempt: number): number {
  const base = Math.min(10_000, 200 * 2 ** attempt);
  return base * (0.5 + Math.random());
}

/** Seconds to wait from a `Retry-After` header (seconds or HTTP date) or the Status details. */
export function parseRetryAfter(header: string | null, status?: Status): number | undefined {
  if (header) {
    const seconds = Number(header);
    if (Number.isFinite(seconds)) return Math.max(0, seconds);
    const date = Date.parse(header);
    if (!Number.isNaN(date)) return Math.max(0, (date - Date.now()) / 1000);
  }
  return status?.details?.retryAfterSeconds;
}

/** Size of the buffers streamed bodies are read into. */
export const STREAM_CHUNK_BYTES = 64 * 1024;

/**
 * Wraps a streaming response so that aborting `link` ends the body at once (even when nobody is
 * reading), and the link is released once the body ends, fails or is cancelled. When the body is
 * a byte stream (fetch's are) the wrapper is one too, so that a reader can bring its own buffer:
 * a long watch then reuses one buffer instead of leaving a new one per chunk to the collector.
 */
function linkBody(response: Response, link: LinkedAbort): Response {
  if (!response.body) {
    link.dispose();
    return response;
  }
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = response.body.getReader({ mode: "byob" });
  } catch {
    // not a byte stream (e.g. the node:https backend): chunks are passed on as they come
  }
  const reader: ReadableStreamBYOBReader | ReadableStreamDefaultReader<Uint8Array> = byob ??
    response.body.getReader();
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    link.dispose();
  };
  const onAbort = (controller: { error(reason: unknown): void }) => {
    link.signal.addEventListener("abort", () => {
      if (finished) return;
      finish();
      try {
        controller.error(link.signal.reason);
      } catch {
        // already closed
      }
      reader.cancel(link.signal.reason).catch(() => {});
    }, { once: true });
  };
  const failed = (controller: { error(reason: unknown): void }, err: unknown) => {
    if (finished) return;
    finish();
    controller.error(err);
  };
  let scratch = new ArrayBuffer(STREAM_CHUNK_BYTES);
  const body = byob
    ? new ReadableStream({
      type: "bytes",
      start: onAbort,
      async pull(controller) {
        try {
          const request = controller.byobRequest;
          const target = request?.view
            ? new Uint8Array(request.view.buffer, request.view.byteOffset, request.view.byteLength)
            : new Uint8Array(scratch);
          const chunk = await byob.read(target);
          if (!request && chunk.value) scratch = chunk.value.buffer as ArrayBuffer;
          if (finished) return;
          if (chunk.done) {
            finish();
            controller.close();
            if (request) {
              // The reader's buffer went to the inner read: hand it back, empty.
              if (chunk.value) request.respondWithNewView(chunk.value);
              else request.respond(0);
            }
          } else if (request) {
            request.respondWithNewView(chunk.value);
          } else {
            controller.enqueue(chunk.value.slice()); // exactly the bytes read; the scratch buffer is reused
          }
        } catch (err) {
          failed(controller, err);
        }
      },
      cancel(reason) {
        finish();
        return reader.cancel(reason);
      },
    })
    : new ReadableStream<Uint8Array>({
      start: onAbort,
      async pull(controller) {
        try {
          const chunk = await (reader as ReadableStreamDefaultReader<Uint8Array>).read();
          if (finished) return;
          if (chunk.done) {
            finish();
            controller.close();
          } else {
            controller.enqueue(chunk.value);
          }
        } catch (err) {
          failed(controller, err);
        }
      },
      cancel(reason) {
        finish();
        return reader.cancel(reason);
      },
    });
  return new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}

function parseStatus(text: string, response: Response): Status {
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === "object" && parsed.kind === "Status") return parsed as Status;
  } catch {
    // not JSON
  }
  return { message: text.trim() || response.statusText, code: response.status };
}

/** An error's message with the messages of its causes (fetch hides the TLS reason in `cause`). */
function describeError(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current && depth < 4; depth++) {
    const message = (current as Error).message ?? String(current);
    if (!parts.some((p) => p.includes(message))) parts.push(message);
    current = (current as Error).cause;
  }
  return parts.join(": ");
}

/** Whether a fetch error happened before the request could reach the server. */
function isConnectFailure(err: unknown): boolean {
  const message = describeError(err);
  return /connection refused|error trying to connect|tcp connect error|dns error|failed to lookup/i
    .test(message);
}
