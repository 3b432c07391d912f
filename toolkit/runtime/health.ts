/**
 * `/healthz` and `/readyz` endpoints (default `:8081`) backed by named checks, like
 * controller-runtime's health probes. `?verbose` lists every check.
 *
 * @module
 */

/** A check returns true (ok), false, or a string explaining the failure. */
export type HealthCheck = () => boolean | string | Promise<boolean | string>;

/** Named liveness and readiness checks. */
export class HealthChecks {
  readonly #liveness = new Map<string, HealthCheck>();
  readonly #readiness = new Map<string, HealthCheck>();

  /** Adds a liveness check (`/healthz`). */
  addHealthz(name: string, check: HealthCheck): this {
    this.#liveness.set(name, check);
    return this;
  }

  /** Adds a readiness check (`/readyz`). */
  addReadyz(name: string, check: HealthCheck): this {
    this.#readiness.set(name, check);
    return this;
  }

  /** Runs the checks of one endpoint. */
  async run(kind: "healthz" | "readyz"): Promise<{ ok: boolean; results: [string, true | string][] }> {
    const checks = kind === "healthz" ? this.#liveness : this.#readiness;
    const results: [string, true | string][] = [];
    for (const [name, check] of checks) {
      let outcome: boolean | string;
      try {
        outcome = await check();
      } catch (err) {
        outcome = (err as Error).message;
      }
      results.push([name, outcome === true ? true : outcome === false ? "failed" : outcome]);
    }
    return { ok: results.every(([, r]) => r === true), results };
  }

  /** Handles `/healthz` and `/readyz` requests. */
  async handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const kind = url.pathname === "/healthz" || url.pathname === "/livez"
      ? "healthz"
      : url.pathname === "/readyz"
      ? "readyz"
      : undefined;
    if (!kind) return new Response("not found\n", { status: 404 });
    const { ok, results } = await this.run(kind);
    const verbose = url.searchParams.has("verbose") || !ok;
    const body = verbose
      ? results.map(([name, r]) => r === true ? `[+]${name} ok` : `[-]${name} failed: ${r}`).join("\n") +
        `\n${kind} check ${ok ? "passed" : "failed"}\n`
      : "ok\n";
    return new Response(body, { status: ok ? 200 : 500, headers: { "content-type": "text/plain" } });
  }

  /** Serves the checks on `hostname:port` (default `:8081`). */
  serve(
    options: { hostname?: string; port?: number; signal?: AbortSignal } = {},
  ): Deno.HttpServer<Deno.NetAddr> {
    return Deno.serve({
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port ?? 8081,
      signal: options.signal,
      onListen: () => {},
    }, (request) => this.handle(request));
  }
}
