/**
 * `Deno.test` helpers: one environment serves a whole test, whose steps share it.
 *
 * ```ts
 * import { envTest } from "kubeocean/toolkit/envtest/testing.ts";
 *
 * envTest("my controller", { clusters: [{ name: "c1", nodes: 2 }] }, async (env, t) => {
 *   await t.step("reconciles", async () => { ... env.cluster("c1").kubeconfig ... });
 * });
 * ```
 *
 * @module
 */

import { KubeClient } from "../client/client.ts";
import type { RequestOptions, Transport, TransportOptions } from "../client/transport.ts";
import type { Cluster } from "./cluster.ts";
import { Environment, type EnvironmentOptions } from "./environment.ts";

/** Options of {@linkcode envTest}. */
export interface EnvTestOptions extends EnvironmentOptions {
  /** Passed through to `Deno.test`. */
  ignore?: boolean;
}

/**
 * Registers a `Deno.test` that starts an environment, runs `fn` with it (use `t.step` for the
 * individual cases) and always stops the environment afterwards, even when a step fails.
 */
export function envTest(
  name: string,
  options: EnvTestOptions,
  fn: (env: Environment, t: Deno.TestContext) => Promise<void>,
): void {
  Deno.test({
    name,
    ignore: options.ignore,
    // Child processes and HTTP clients live across steps; the environment's stop() ends them.
    sanitizeOps: false,
    sanitizeResources: false,
    async fn(t) {
      const env = await Environment.start({
        log: Deno.env.get("KUBEOCEAN_TEST_VERBOSE")
          ? (line) => console.error(`[envtest] ${line}`)
          : undefined,
        ...options,
      });
      try {
        await fn(env, t);
      } finally {
        await env.stop();
      }
    },
  });
}

/** Polls `check` every `intervalMs` until it returns a truthy value, or throws after `timeoutMs` with `what`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false | null> | T | undefined | false | null,
  { timeoutMs = 30_000, intervalMs = 200 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (true) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A toolkit client for `cluster` with its admin credentials (close it when done). */
export async function connect(cluster: Cluster, options: TransportOptions = {}): Promise<KubeClient> {
  return await KubeClient.load({ kubeconfig: cluster.kubeconfig, ...options });
}

/**
 * `client` as seen through a busy API server: every list of `plural` (any group, namespace or
 * selector; not watches, not single objects) is answered `delayMs` late. For testing that a
 * controller does not act on a cache that has not listed yet. Closing it leaves `client` open.
 */
export function withSlowLists(client: KubeClient, plural: string, delayMs: number): KubeClient {
  const inner = client.transport;
  const slow: Transport = {
    config: inner.config,
    async request<T>(options: RequestOptions): Promise<T> {
      if (options.method === "GET" && options.path.endsWith(`/${plural}`) && !options.query?.watch) {
        await new Promise((r) => setTimeout(r, delayMs));
      }
      return await inner.request<T>(options);
    },
    stream: (options) => inner.stream(options),
    close: () => {},
  };
  return new KubeClient(slow);
}
