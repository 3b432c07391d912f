/**
 * `deno task envtest …`: local multi-cluster environments from the command line.
 *
 * ```
 * deno task envtest up --clusters computing,worker1,worker2 --nodes worker1=3,worker2=3 --dir DIR
 * deno task envtest up --clusters worker1 --nodes worker1=2 --metrics-server   # kubectl top works
 * deno task envtest status --dir DIR
 * deno task envtest down --dir DIR
 * deno task envtest build
 * ```
 *
 * `up` starts the clusters detached (they keep running after the command returns), writes
 * `DIR/<cluster>/kubeconfig` and a merged `DIR/kubeconfig`, and prints a JSON summary on standard
 * output. Clusters named `computing*` get kube-controller-manager and kube-scheduler; a cluster
 * given `--nodes` gets them too, plus kwok with that many fake nodes. `--metrics-server` (every
 * cluster) or `--metrics-server NAME[,NAME…]` adds metrics-server behind the aggregation layer.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ensureBinaries, ensureMetricsServer } from "./binaries.ts";
import type { ClusterOptions } from "./cluster.ts";
import { Environment, readState } from "./environment.ts";
import { isRecordAlive, stopRecord } from "./process.ts";

const USAGE = `usage:
  envtest up --clusters NAME[,NAME…] [--nodes NAME=N[,NAME=N…]] [--control-plane NAME[,NAME…]]
             [--metrics-server [NAME[,NAME…]]] [--dir DIR]
  envtest status [--dir DIR]
  envtest down [--dir DIR]
  envtest build [--metrics-server]

  --dir defaults to .envtest in the current directory.
  Clusters named computing* and clusters given --nodes run kube-controller-manager and kube-scheduler;
  clusters given --nodes also run kwok with that many fake nodes.
  --metrics-server alone: every cluster runs metrics-server (v1beta1.metrics.k8s.io, so kubectl top
  works); --metrics-server NAME[,NAME…] (or =NAME[,NAME…]): only those clusters. Their kwok nodes
  report pod usage from the annotations kwok.x-k8s.io/usage-cpu and kwok.x-k8s.io/usage-memory
  (default 1m and 1Mi per container). metrics-server is built on first use (envtest build
  --metrics-server builds it ahead).`;

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

/**
 * Turns the command-line flags of `up` into cluster options. `metricsServer` is `true` for every
 * cluster, or a comma-separated list of cluster names.
 */
export function clustersFromFlags(
  clusters: string | undefined,
  nodes?: string,
  controlPlane?: string,
  metricsServer?: string | boolean,
): ClusterOptions[] {
  const names = (clusters ?? "").split(",").map((n) => n.trim()).filter(Boolean);
  if (names.length === 0) throw new Error("--clusters is required, e.g. --clusters computing,worker1");
  const counts = parseNodeCounts(nodes);
  for (const name of counts.keys()) {
    if (!names.includes(name)) throw new Error(`--nodes names "${name}", which is not in --clusters`);
  }
  const planes = new Set((controlPlane ?? "").split(",").filter(Boolean));
  const metrics = new Set(
    metricsServer === true
      ? names
      : typeof metricsServer === "string"
      ? metricsServer.split(",").map((n) => n.trim()).filter(Boolean)
      : [],
  );
  for (const name of metrics) {
    if (!names.includes(name)) {
      throw new Error(`--metrics-server names "${name}", which is not in --clusters`);
    }
  }
  return names.map((name) => {
    const count = counts.get(name) ?? 0;
    return {
      name,
      nodes: count,
      kwok: counts.has(name),
      controlPlane: name.startsWith("computing") || count > 0 || counts.has(name) || planes.has(name),
      ...(metrics.has(name) ? { metricsServer: true } : {}),
    };
  });
}

/**
 * `--metrics-server` takes an optional value: alone (last, or followed by another flag) it means
 * every cluster, which is passed on as `--metrics-server=*`.
 */
export function normaliseMetricsServerFlag(args: string[]): string[] {
  return args.map((arg, i) => {
    if (arg !== "--metrics-server") return arg;
    const next = args[i + 1];
    return next === undefined || next.startsWith("-") ? "--metrics-server=*" : arg;
  });
}

function metricsServerFlag(value: string | boolean | undefined): string | boolean | undefined {
  return value === "*" ? true : value;
}

async function up(flags: Record<string, string | boolean | undefined>): Promise<void> {
  const clusters = clustersFromFlags(
    flags.clusters as string | undefined,
    flags.nodes as string | undefined,
    flags["control-plane"] as string | undefined,
    metricsServerFlag(flags["metrics-server"]),
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
  const order = [
    "metrics-server",
    "kwok",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
  ];
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
    args: normaliseMetricsServerFlag(args),
    allowPositionals: true,
    options: {
      clusters: { type: "string" },
      nodes: { type: "string" },
      "control-plane": { type: "string" },
      "metrics-server": { type: "string" },
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
      if (values["metrics-server"] !== undefined) {
        binaries.metricsServer = await ensureMetricsServer({ log });
      }
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
