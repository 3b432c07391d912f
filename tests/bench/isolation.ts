/**
 * `--isolate`: clusters on their own cores, a stand-in for separate machines. Every process of
 * the computing cluster and the syncer run on one CPU set, every process of the worker on the
 * other (Linux CPU affinity with `taskset -a -p`, all threads; threads started later inherit it).
 * Limits: the two sets share caches, memory bandwidth and the kernel, loopback replaces a network
 * (no latency), and the benchmark's own process is not pinned.
 *
 * @module
 */

import type { Cluster } from "../../toolkit/envtest/cluster.ts";

/** The two CPU sets: the lower half of the cores for the computing side, the upper for the worker. */
export function cpuSets(): { computing: string; worker: string } {
  const cores = navigator.hardwareConcurrency;
  if (cores < 2) throw new Error("--isolate needs at least 2 cores");
  const half = Math.floor(cores / 2);
  const range = (from: number, to: number) => from === to ? String(from) : `${from}-${to}`;
  return { computing: range(0, half - 1), worker: range(half, cores - 1) };
}

/** Pins process `pid` (every thread) to `cpus` (e.g. `0` or `2-3`). */
export async function pin(pid: number, cpus: string): Promise<void> {
  const out = await new Deno.Command("taskset", {
    args: ["-a", "-p", "-c", cpus, String(pid)],
    stdout: "null",
    stderr: "piped",
  })
    .output();
  if (!out.success) throw new Error(`taskset ${cpus} ${pid}: ${new TextDecoder().decode(out.stderr).trim()}`);
}

/** Pins every process of `cluster` to `cpus`; returns how many. */
export async function pinCluster(cluster: Cluster, cpus: string): Promise<number> {
  for (const process of cluster.processes) await pin(process.pid, cpus);
  return cluster.processes.length;
}
