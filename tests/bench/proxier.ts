/**
 * `deno task bench proxier [--execs 200] [--log-mib 64] [--log-runs 3]`: the kubelet API of virtual
 * nodes against the same operation straight at the worker, same run, same kubectl:
 *
 * - exec round trip: `kubectl exec P -- echo hi` through the computing cluster (computing API server
 *   → proxier → worker API server → kwok) against `kubectl exec` of the twin in the worker
 *   (worker API server → kwok), alternating, p50 and p99 of each;
 * - log throughput: `kubectl logs P` of a `--log-mib` MiB log through the computing cluster against
 *   `kubectl logs` of the twin in the worker, the best of `--log-runs` runs each.
 *
 * Both sides use the admin kubeconfig of their cluster and the same kubectl binary; the kubelet API
 * is served by the manager process (embedded syncers), as in the e2e test.
 *
 * Last line: `proxier: exec p50 ratio X, logs throughput ratio Y`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { toCriLog } from "../../toolkit/envtest/cluster.ts";
import { CLUSTERS, startScenario } from "../proxier/scenario.ts";
import { cleanUpOnInterrupt, percentile, startEnvironment } from "./support.ts";

/** Runs kubectl; resolves with the elapsed ms and the bytes it printed. */
async function timed(kubectl: string, args: string[]): Promise<{ ms: number; bytes: number }> {
  const started = performance.now();
  const output = await new Deno.Command(kubectl, { args, stdout: "piped", stderr: "piped" }).output();
  const ms = performance.now() - started;
  if (output.code !== 0) {
    throw new Error(`kubectl ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`);
  }
  return { ms, bytes: output.stdout.byteLength };
}

/** Runs the proxier benchmark. */
export async function benchProxier(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      execs: { type: "string", default: "200" },
      "log-mib": { type: "string", default: "64" },
      "log-runs": { type: "string", default: "3" },
    },
  });
  const execs = Number(values.execs);
  const logMiB = Number(values["log-mib"]);
  const logRuns = Number(values["log-runs"]);
  console.log(`proxier bench: ${execs} execs, a ${logMiB} MiB log (${logRuns} runs) — starting clusters …`);
  const env = await startEnvironment({ clusters: CLUSTERS });
  const scenario = await startScenario(env);
  cleanUpOnInterrupt(() => scenario.stop());
  try {
    const computing = env.cluster("computing");
    const worker = env.cluster("worker1");
    const kubectl = computing.binaries.kubectl;
    const pod = scenario.pods.worker1;
    const annotations = pod.metadata!.annotations!;
    const twin = {
      namespace: annotations["kubeocean.io/physical-pod-namespace"],
      name: annotations["kubeocean.io/physical-pod-name"],
    };
    const through = ["--kubeconfig", computing.kubeconfig, "-n", pod.metadata!.namespace!];
    const direct = ["--kubeconfig", worker.kubeconfig, "-n", twin.namespace];

    // Exec round trips, alternating so that both sides see the same machine.
    const command = ["--", "echo", "hi"];
    for (let i = 0; i < 5; i++) { // warm-up: caches, connections, the authorizer's decision cache
      await timed(kubectl, [...through, "exec", pod.metadata!.name!, ...command]);
      await timed(kubectl, [...direct, "exec", twin.name, ...command]);
    }
    const viaKubeocean: number[] = [];
    const straight: number[] = [];
    for (let i = 0; i < execs; i++) {
      viaKubeocean.push((await timed(kubectl, [...through, "exec", pod.metadata!.name!, ...command])).ms);
      straight.push((await timed(kubectl, [...direct, "exec", twin.name, ...command])).ms);
      if ((i + 1) % 50 === 0) console.log(`  exec ${i + 1}/${execs}`);
    }
    const p = (values: number[], q: number) => percentile(values, q).toFixed(1);
    console.log(
      `exec round trip (kubectl exec -- echo hi), ms: through Kubeocean p50 ${p(viaKubeocean, 50)} p99 ${
        p(viaKubeocean, 99)
      }; straight at the worker p50 ${p(straight, 50)} p99 ${p(straight, 99)}`,
    );
    const execRatio = percentile(viaKubeocean, 50) / percentile(straight, 50);

    // Log throughput: kwok serves this file as every container's log in worker1.
    const line = "x".repeat(990);
    const lines = Math.ceil((logMiB * 1024 * 1024) / (line.length + 1));
    const text = toCriLog(Array.from({ length: lines }, () => line).join("\n"));
    await Deno.writeTextFile(worker.containerLogFile, text);
    const expected = lines * (line.length + 1);
    const best = async (args: string[]) => {
      let fastest = Infinity;
      for (let run = 0; run < logRuns; run++) {
        const { ms, bytes } = await timed(kubectl, args);
        if (bytes !== expected) {
          throw new Error(`kubectl ${args.join(" ")} printed ${bytes} bytes, not ${expected}`);
        }
        fastest = Math.min(fastest, ms);
      }
      return (expected / (1024 * 1024)) / (fastest / 1000);
    };
    const logsThrough = await best([...through, "logs", pod.metadata!.name!]);
    const logsStraight = await best([...direct, "logs", twin.name]);
    console.log(
      `log throughput (kubectl logs, ${(expected / 1024 / 1024).toFixed(1)} MiB), MiB/s: through Kubeocean ${
        logsThrough.toFixed(1)
      }; straight at the worker ${logsStraight.toFixed(1)}`,
    );
    console.log(
      `proxier: exec p50 ratio ${execRatio.toFixed(2)}, logs throughput ratio ${
        (logsThrough / logsStraight).toFixed(2)
      }`,
    );
  } finally {
    await scenario.stop();
    await env.stop();
  }
}
