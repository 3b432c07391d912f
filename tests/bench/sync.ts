/**
 * `deno task bench sync [--pods 1000] [--nodes 10] [--repeat 3] [--isolate] [--rate R]
 * [--duration 30] [--direct-scheduling] [--service-account-tokens]`: the same workload through Kubeocean (until every pod is
 * Running in the computing cluster) and straight into the worker (until Running there), on the
 * same kwok set-up in the same run.
 *
 * Fairness: no syncer is alive while the baseline runs (the syncer process starts for each
 * Kubeocean run and stops after it); the two sides alternate which goes first between
 * repetitions; the report gives the median and the spread. `--isolate` pins the computing
 * cluster and the syncer to one CPU set and the worker to the other (`isolation.ts`). `--rate R`
 * creates single pods at R per second for `--duration` seconds (then deletes them at that rate)
 * instead of one Deployment, so that hop latencies measure the path of one pod, not a queue; its
 * ratio compares the times from the first create to every pod Running. Per run: both sides'
 * writes, the machine's CPU share, the syncer's RSS and CPU, per-hop p50/p99 (bound → twin
 * created, twin Running → virtual pod Running, virtual pod deleted → twin gone).
 * `--direct-scheduling` sets the binding's directScheduling (twins bypass the worker's scheduler).
 * Pods mount no ServiceAccount token unless `--service-account-tokens` (see {@linkcode Workload}).
 *
 * Last line: `sync: ratio X, create p99 Y ms, status p99 Z ms` (medians over the repetitions).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { CoreV1Api, type Node } from "../../apis/core/v1/mod.ts";
import { KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { connect, eventually } from "../../toolkit/envtest/testing.ts";
import { cpuSets, pin, pinCluster } from "./isolation.ts";
import { bindForBench, percentile, startEnvironment, SyncerProcess } from "./support.ts";
import { baselineRun, kubeoceanRun, type RunResult, type Workload } from "./sync_runs.ts";

const median = (xs: number[]) => percentile(xs, 50);
const fmt = (xs: number[]) =>
  `p50 ${percentile(xs, 50).toFixed(0)} ms, p99 ${percentile(xs, 99).toFixed(0)} ms (n=${xs.length})`;
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Whether a virtual node is Ready and carries no node-lifecycle taint (schedulable again). */
function usable(node: Node): boolean {
  return !!node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") &&
    !node.spec?.taints?.some((t) => t.key.startsWith("node.kubernetes.io/"));
}

/** Runs the benchmark. */
export async function benchSync(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      pods: { type: "string", default: "1000" },
      nodes: { type: "string", default: "10" },
      repeat: { type: "string", default: "3" },
      isolate: { type: "boolean", default: false },
      rate: { type: "string" },
      duration: { type: "string", default: "30" },
      "direct-scheduling": { type: "boolean", default: false },
      "service-account-tokens": { type: "boolean", default: false },
    },
  });
  const rate = values.rate === undefined ? undefined : Number(values.rate);
  if (rate !== undefined && !(rate > 0)) throw new Error(`--rate: "${values.rate}" is not a positive number`);
  const repeat = Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat: "${values.repeat}" is not a count`);
  const workload: Workload = {
    ...(rate
      ? { replicas: Math.round(rate * Number(values.duration)), rate }
      : { replicas: Number(values.pods) }),
    serviceAccountTokens: values["service-account-tokens"],
  };
  const nodeCount = Number(values.nodes);
  const sets = values.isolate ? cpuSets() : undefined;
  console.log(
    `bench sync: ${workload.replicas} pods ${
      rate ? `at ${rate}/s` : "in one Deployment"
    } on ${nodeCount} kwok nodes, ` +
      `${repeat} repetition(s), sides alternating; baseline: the same pods straight into the worker, no syncer alive` +
      (sets ? `; isolated: computing + syncer on CPUs ${sets.computing}, worker on CPUs ${sets.worker}` : ""),
  );
  const env = await startEnvironment({
    clusters: [
      { name: "computing", controlPlane: true },
      {
        name: "worker",
        nodes: nodeCount,
        nodeTemplate: {
          capacity: {
            cpu: "64",
            memory: "256Gi",
            pods: String(Math.ceil(workload.replicas / nodeCount) + 20),
          },
        },
      },
    ],
  });
  if (sets) {
    const c = await pinCluster(env.cluster("computing"), sets.computing);
    const w = await pinCluster(env.cluster("worker"), sets.worker);
    console.log(`  pinned ${c} computing and ${w} worker processes`);
  }
  const computing = await connect(env.cluster("computing"));
  const worker = await connect(env.cluster("worker"));
  let syncer: SyncerProcess | undefined;
  /** Starts the syncer (pinned with the computing side) and waits until every virtual node is usable. */
  const startSyncer = async () => {
    syncer = new SyncerProcess(
      env.cluster("computing").kubeconfig,
      "bench",
      (Deno.env.get("BENCH_SYNCER_ARGS") ?? "").split(" ").filter(Boolean),
    );
    if (sets) await pin(syncer.pid, sets.computing);
    await syncer.ready(120_000);
    await eventually("virtual nodes Ready and untainted", async () => {
      const list = await new CoreV1Api(computing).nodes().list({
        labelSelector: "kubeocean.io/cluster-binding=bench",
      });
      return list.items.length === nodeCount && list.items.every(usable);
    }, { timeoutMs: 180_000 });
    return syncer;
  };
  try {
    await bindForBench(computing, worker, "bench", { directScheduling: values["direct-scheduling"] });
    await new KubeoceanIoV1beta1Api(worker).resourceleasingpolicies().create({
      metadata: { name: "all" },
      spec: { cluster: "bench" },
    });
    const ratios: number[] = [];
    const creates: number[] = [];
    const statuses: number[] = [];
    for (let rep = 1; rep <= repeat; rep++) {
      const sides = rep % 2 === 1 ? ["baseline", "kubeocean"] as const : ["kubeocean", "baseline"] as const;
      const results: Partial<Record<"baseline" | "kubeocean", RunResult>> = {};
      for (const side of sides) {
        if (side === "baseline") {
          const r = results.baseline = await baselineRun(worker, `direct-${rep}`, workload);
          console.log(
            `  #${rep} baseline:  Running in ${seconds(r.ms)}, CPU ${(r.busy * 100).toFixed(0)} % busy, ` +
              `${r.writes} writes (${r.writesTop})${rate ? `; create → Running ${fmt(r.endToEnd)}` : ""}`,
          );
        } else {
          const running = await startSyncer();
          const cpu0 = await running.cpuSeconds();
          const r = results.kubeocean = await kubeoceanRun(
            computing,
            worker,
            `synced-${rep}`,
            "kubeocean-worker",
            workload,
          );
          const rss = await running.rssMiB();
          const cpu = await running.cpuSeconds() - cpu0;
          await running.stop();
          syncer = undefined;
          console.log(
            `  #${rep} kubeocean: Running in ${seconds(r.ms)}, CPU ${(r.busy * 100).toFixed(0)} % busy, ` +
              `${r.writes} writes (${r.writesTop})${rate ? `; create → Running ${fmt(r.endToEnd)}` : ""}`,
          );
          console.log(
            `    hops: bound → twin created ${fmt(r.hops!.create)}; twin Running → Running ${
              fmt(r.hops!.status)
            }; deleted → twin gone ${fmt(r.hops!.deleted)} (all gone in ${seconds(r.removalMs)})`,
          );
          console.log(`    syncer RSS ${rss.toFixed(0)} MiB, CPU ${cpu.toFixed(1)} s`);
          creates.push(percentile(r.hops!.create, 99));
          statuses.push(percentile(r.hops!.status, 99));
        }
      }
      const ratio = results.kubeocean!.ms / results.baseline!.ms;
      ratios.push(ratio);
      console.log(
        `  #${rep} ratio ${ratio.toFixed(2)}; writes ${
          (results.kubeocean!.writes / results.baseline!.writes).toFixed(2)
        }× the baseline's`,
      );
    }
    console.log(
      `  ratios ${ratios.map((r) => r.toFixed(2)).join(", ")}: median ${median(ratios).toFixed(2)}, spread ${
        (Math.max(...ratios) - Math.min(...ratios)).toFixed(2)
      }; create p99s ${creates.map((x) => x.toFixed(0)).join(", ")} ms; status p99s ${
        statuses.map((x) => x.toFixed(0)).join(", ")
      } ms`,
    );
    console.log(
      `sync: ratio ${median(ratios).toFixed(2)}, create p99 ${median(creates).toFixed(0)} ms, status p99 ${
        median(statuses).toFixed(0)
      } ms`,
    );
  } finally {
    await syncer?.stop();
    computing.close();
    worker.close();
    await env.stop();
  }
}
