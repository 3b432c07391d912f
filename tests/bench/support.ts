/**
 * Shared pieces of the syncer benchmarks: the binding set-up and a syncer running as its own
 * process (`controllers/main.ts syncer`), as in production, so that its RSS is its own.
 *
 * @module
 */

import { bind } from "../../controllers/bind/bind.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";

/** Binds `worker` as `name` without waiting for a manager (the benchmark runs the syncer itself). */
export async function bindForBench(computing: KubeClient, worker: KubeClient, name: string): Promise<void> {
  await bind({
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

  constructor(kubeconfig: string, name: string, extraArgs: string[] = []) {
    const main = new URL("../../controllers/main.ts", import.meta.url).pathname;
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        main,
        "syncer",
        "--cluster-binding",
        name,
        "--kubeconfig",
        kubeconfig,
        "--metrics-bind-address",
        "0",
        "--health-probe-bind-address",
        "0",
        "--log-level",
        "error",
        ...extraArgs,
      ],
      stdout: "null",
      stderr: "inherit",
    }).spawn();
  }

  /** Resident set size in MiB, from /proc. */
  async rssMiB(): Promise<number> {
    const status = await Deno.readTextFile(`/proc/${this.#child.pid}/status`);
    const kb = Number(status.match(/^VmRSS:\s+(\d+)/m)?.[1] ?? "0");
    return kb / 1024;
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

/** Percentile (0–100) of `values` in ms, nearest rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
