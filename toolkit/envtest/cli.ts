/**
 * `deno task envtest …`: local multi-cluster environments from the command line.
 *
 * ```
 * deno task envtest up --clusters computing,worker1,worker2 --nodes worker1=3,worker2=3 --dir DIR
 * deno task envtest status --dir DIR
 * deno task envtest down --dir DIR
 * deno task envtest build
 * ```
 *
 * `up` starts the clusters detached (they keep running after the command returns), writes
 * `DIR/<cluster>/kubeconfig` and a merged `DIR/kubeconfig`, and prints a JSON summary on standard
 * output. Clusters named `computing*` get kube-controller-manager and kube-scheduler; a cluster
 * given `--nodes` gets them too, plus kwok with that many fake nodes.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ensureBinaries } from "./binaries.ts";
import type { ClusterOptions } from "./cluster.ts";
import { Environment, readState } from "./environment.ts";
import { isRecordAlive, stopRecord } from "./process.ts";

const USAGE = `usage:
  envtest up --clusters NAME[,NAME…] [--nodes NAME=N[,NAME=N…]] [--control-plane NAME[,NAME…]] [--dir DIR]
  envtest status [--dir DIR]
  envtest down [--dir DIR]
  envtest build

  --dir defaults to .envtest in the current directory.
  Clusters named computing* and clusters given --nodes run kube-controller-manager and kube-scheduler;
  clusters given --nodes also run kwok with that many fake nodes.`;

const log = (line: string) => console.error(`[envtest] ${line}`);

/** Parses `worker1=3,worker2=3`. */
export function parseNodeCounts(value: string | undefined): Map<string, number> {
  const counts = new Map<string, number>();
  for (const part of (value ?? "").split(",").filter(Boolean)) {
    const [name, count] = part.split("=");
    const n = Number(count);
    if (!name || !Number.isInteger(n) || n < 0) throw new Error(`--nodes: "${part}" is not NAME=COUNT`);
    counts.set(name, n);
  }
  return counts;
}

/** Turns the command-line flags of `up` into cluster options. */
export function clustersFromFlags(
  clusters: string | undefined,
  nodes?: string,
  controlPlane?: string,
): ClusterOptions[] {
  const names = (clusters ?? "").split(",").map((n) => n.trim()).filter(Boolean);
  if (names.length === 0) throw new Error("--clusters is required, e.g. --clusters computing,worker1");
  const counts = parseNodeCounts(nodes);
  for (const name of counts.keys()) {
    if (!names.includes(name)) throw new Error(`--nodes names "${name}", which is not in --clusters`);
  }
  const planes = new Set((controlPlane ?? "").split(",").filter(Boolean));
  return names.map((name) => {
    const count = counts.get(name) ?? 0;
    return {
      name,
      nodes: count,
      kwok: counts.has(name),
      controlPlane: name.startsWith("computing") || count > 0 || counts.has(name) || planes.has(name),
    };
  });
}

async function up(flags: Record<string, string | boolean | undefined>): Promise<void> {
  const clusters = clustersFromFlags(
    flags.clusters as string | undefined,
    flags.nodes as string | undefined,
    flags["control-plane"] as string | undefined,
  );
  const env = await Environment.start({ clusters, dir: flags.dir as string, detached: true, log });
  console.log(JSON.stringify({ dir: env.dir, kubeconfig: env.kubeconfig, clusters: env.summary() }, null, 2));
  env.release();
}

async function status(dir: string): Promise<number> {
  const state = await readState(dir);
  const clusters = Object.fromEntries(state.clusters.map((c) => [c.name, {
    kubeconfig: c.kubeconfig,
    server: c.server,
    nodes: c.nodes,
    processes: Object.fromEntries(c.processes.map((p) => [p.name, { pid: p.pid, alive: isRecordAlive(p) }])),
  }]));
  const allAlive = state.clusters.every((c) => c.processes.every(isRecordAlive));
  console.log(
    JSON.stringify({ dir: state.dir, kubeconfig: state.kubeconfig, running: allAlive, clusters }, null, 2),
  );
  return allAlive ? 0 : 1;
}

async function down(dir: string): Promise<void> {
  const state = await readState(dir);
  // Stop by recorded PID only (checked against the binary), dependents before API servers before etcd.
  const order = ["kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"];
  for (const role of order) {
    await Promise.all(
      state.clusters.flatMap((c) => c.processes.filter((p) => p.name === role)).map((p) => stopRecord(p)),
    );
  }
  for (const cluster of state.clusters) await Deno.remove(cluster.dir, { recursive: true }).catch(() => {});
  await Deno.remove(`${state.dir}/envtest.json`).catch(() => {});
  await Deno.remove(state.kubeconfig).catch(() => {});
  await Deno.remove(state.dir).catch(() => {}); // only when empty
  log(`stopped ${state.clusters.map((c) => c.name).join(", ")}`);
}

async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      clusters: { type: "string" },
      nodes: { type: "string" },
      "control-plane": { type: "string" },
      dir: { type: "string", default: ".envtest" },
      help: { type: "boolean", short: "h" },
    },
  });
  const command = positionals[0];
  if (values.help || !command) {
    console.log(USAGE);
    return command || values.help ? 0 : 2;
  }
  switch (command) {
    case "up":
      await up(values);
      return 0;
    case "status":
      return await status(values.dir);
    case "down":
      await down(values.dir);
      return 0;
    case "build": {
      const binaries = await ensureBinaries({ log });
      log(`binaries: ${JSON.stringify(binaries, null, 2)}`);
      return 0;
    }
    default:
      console.error(`unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (err) {
    console.error(`envtest: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
