/**
 * Shared pieces of the syncer benchmarks: the binding set-up and a syncer running as its own
 * process (`controllers/main.ts syncer`), as in production, so that its RSS is its own.
 *
 * @module
 */

import { bind } from "../../controllers/bind/bind.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { Environment, type EnvironmentOptions } from "../../toolkit/envtest/environment.ts";
import { allocatePort } from "../../toolkit/envtest/ports.ts";
import type { KubeObject } from "../../toolkit/client/resource.ts";
import type { ResourceClient } from "../../toolkit/client/resource_client.ts";
import { backoffWatcher, type WatcherOptions } from "../../toolkit/runtime/watcher.ts";
import { spawnSyncer } from "../fixtures/entrypoint.ts";

const cleanups: (() => Promise<void>)[] = [];
let listening = false;

/**
 * Runs `cleanup` when the benchmark is interrupted (Ctrl-C, SIGTERM): the latest registered runs
 * first, then the process exits. Without this an interrupted run would leave its clusters running.
 */
export function cleanUpOnInterrupt(cleanup: () => Promise<void>): void {
  if (!listening) {
    listening = true;
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, async () => {
        console.error(`\n${signal}: stopping everything this benchmark started …`);
        for (const run of cleanups.splice(0).reverse()) await run().catch(() => {});
        Deno.exit(signal === "SIGINT" ? 130 : 143);
      });
    }
  }
  cleanups.push(cleanup);
}

/** Starts an environment that is stopped even when the benchmark is interrupted. */
export async function startEnvironment(options: EnvironmentOptions): Promise<Environment> {
  const env = await Environment.start(options);
  cleanUpOnInterrupt(() => env.stop());
  return env;
}

/**
 * Calls `on` with every change of `client`'s objects after the initial list, and the time it
 * arrived, until `signal` aborts. The toolkit's watcher resumes watches the API server ends (it
 * does under load), so no change is missed. Resolves once the initial list is in.
 */
export async function observeChanges<T extends KubeObject>(
  client: ResourceClient<T>,
  options: WatcherOptions & { signal: AbortSignal },
  on: (type: "Apply" | "Delete", object: T, at: number) => void,
): Promise<void> {
  const listed = Promise.withResolvers<void>();
  (async () => {
    for await (const event of backoffWatcher(client, options)) {
      if (event.type === "InitDone") listed.resolve();
      if (event.type === "Apply" || event.type === "Delete") on(event.type, event.object, performance.now());
    }
  })().catch((err) => {
    if (!options.signal.aborted) console.error(`  watch failed: ${err}`);
  });
  await listed.promise;
}

/** Binds `worker` as `name` without waiting for a manager (the benchmark runs the syncer itself). */
export async function bindForBench(
  computing: KubeClient,
  worker: KubeClient,
  name: string,
  spec: Record<string, unknown> = {},
): Promise<void> {
  await bind({
    spec,
    computing,
    worker,
    name,
    clusterID: "b1",
    mountNamespace: "kubeocean-worker",
    waitMs: 0,
    log: () => {},
  });
}

/** A syncer process for binding `name`. */
export class SyncerProcess {
  readonly #child: Deno.ChildProcess;

  /** Port of its health endpoints (`/readyz` turns 200 once every cache has synced). */
  readonly healthPort: number = allocatePort();

  constructor(kubeconfig: string, name: string, extraArgs: string[] = []) {
    this.#child = spawnSyncer(kubeconfig, name, { healthPort: this.healthPort, args: extraArgs });
    cleanUpOnInterrupt(() => this.stop());
  }

  /** The process id (to pin it to CPUs). */
  get pid(): number {
    return this.#child.pid;
  }

  /** Resolves once the syncer's caches have synced (its `/readyz` answers 200). */
  async ready(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const ok = await fetch(`http://127.0.0.1:${this.healthPort}/readyz`).then(
        async (r) => (await r.body?.cancel(), r.ok),
        () => false,
      );
      if (ok) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`syncer not ready within ${timeoutMs} ms`);
  }

  /** Resident set size in MiB, from /proc. */
  async rssMiB(): Promise<number> {
    return (await processMemory(this.#child.pid)).rss;
  }

  /** CPU time (user + system) used so far, in seconds, from /proc (clock ticks of 1/100 s). */
  cpuSeconds(): Promise<number> {
    return processCpuSeconds(this.#child.pid);
  }

  async stop(): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // already gone
    }
    await this.#child.status;
  }
}

/** A process's resident set size now and its peak (the kernel's high-water mark), in MiB. */
export async function processMemory(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = (field: string) => Number(status.match(new RegExp(`^${field}:\\s+(\\d+)`, "m"))?.[1] ?? "0");
  return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
}

/** A process's CPU time (user + system) so far, in seconds (clock ticks of 1/100 s). */
export async function processCpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Busy and total CPU time of the whole machine so far (clock ticks, from /proc/stat). */
export async function machineCpu(): Promise<{ busy: number; total: number }> {
  const line = (await Deno.readTextFile("/proc/stat")).split("\n")[0];
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  const idle = ticks[3] + (ticks[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

/** Share (0–1) of the machine's CPU used between two {@linkcode machineCpu} readings. */
export function busyShare(
  from: { busy: number; total: number },
  to: { busy: number; total: number },
): number {
  return (to.busy - from.busy) / Math.max(1, to.total - from.total);
}

/** Percentile (0–100) of `values` in ms, nearest rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Write requests an API server has answered, by `VERB resource[/subresource]` (failed ones by code too). */
export type WriteCounts = Map<string, number>;

const WRITE_VERBS = new Set(["POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"]);

/** Reads the API server's `apiserver_request_total` (any code) and sums the writes per verb and resource. */
export async function apiWrites(client: KubeClient): Promise<WriteCounts> {
  const text = await client.transport.request<string>({
    method: "GET",
    path: "/metrics",
    accept: "text/plain",
  });
  const counts: WriteCounts = new Map();
  for (const line of String(text).split("\n")) {
    if (!line.startsWith("apiserver_request_total{")) continue;
    const labels = Object.fromEntries(
      [...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (!WRITE_VERBS.has(labels.verb)) continue;
    const request = `${labels.verb} ${labels.resource}${labels.subresource ? "/" + labels.subresource : ""}`;
    // Writes that failed are listed apart, with their code: a controller's wasted requests show.
    const key = labels.code.startsWith("2") ? request : `${request} → ${labels.code}`;
    counts.set(key, (counts.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1)));
  }
  return counts;
}

/** The writes between two readings, largest first, and their total. */
export function writesBetween(before: WriteCounts, after: WriteCounts): { total: number; top: string } {
  const diff = [...after].map(([key, n]) => [key, n - (before.get(key) ?? 0)] as const).filter(([, n]) =>
    n > 0
  )
    .sort((a, b) => b[1] - a[1]);
  const total = diff.reduce((sum, [, n]) => sum + n, 0);
  return { total, top: diff.slice(0, 6).map(([key, n]) => `${key} ${n}`).join(", ") };
}
