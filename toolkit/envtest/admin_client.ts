/**
 * A minimal HTTPS client with the cluster admin's certificate, used by the test environment itself
 * for readiness checks and bootstrap objects. Controllers use the toolkit's full client instead.
 *
 * @module
 */

/** Raw admin access to one API server. */
export class AdminClient {
  readonly #http: Deno.HttpClient;

  constructor(readonly server: string, caPem: string, certPem: string, keyPem: string) {
    this.#http = Deno.createHttpClient({ caCerts: [caPem], cert: certPem, key: keyPem });
  }

  /** Sends a request; returns the status and the parsed JSON body (or text when not JSON). */
  async request(
    method: string,
    path: string,
    body?: unknown,
    timeoutMs = 10_000,
  ): Promise<{ status: number; body: unknown }> {
    const response = await fetch(`${this.server}${path}`, {
      method,
      client: this.#http,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON (e.g. /readyz): keep the text
    }
    return { status: response.status, body: parsed };
  }

  /** Like {@linkcode request} but throws on a non-2xx status. */
  async json<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const { status, body: result } = await this.request(method, path, body);
    if (status < 200 || status > 299) {
      const message = (result as { message?: string })?.message ?? JSON.stringify(result);
      throw new Error(`${method} ${path} → ${status}: ${message}`);
    }
    return result as T;
  }

  #closed = false;

  /** Closes the HTTP client; safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#http.close();
  }
}

/** HTTPS GET that reports whether `url` answered 200, verifying the server against `caPem`. */
export async function probe(url: string, caPem?: string, timeoutMs = 2_000): Promise<boolean> {
  const client = caPem ? Deno.createHttpClient({ caCerts: [caPem] }) : undefined;
  try {
    const response = await fetch(url, { client, signal: AbortSignal.timeout(timeoutMs) });
    await response.body?.cancel();
    return response.status === 200;
  } catch {
    return false;
  } finally {
    client?.close();
  }
}
