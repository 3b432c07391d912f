/**
 * `fuzzed-inputs`: randomly mutated ClusterBindings, ResourceLeasingPolicies and kubeconfig
 * Secrets (300; 60 with `--quick`), from a seeded generator (the seed is printed; `--seed`
 * replays it), in waves of 20. Each must be refused by the API server, or once accepted reach
 * Failed naming the offending field or object (bindings: a condition False; policies: Valid=False),
 * or — when the mutation happens to be valid — be reconciled without Failed, within 45 s; then be
 * deleted and gone within 60 s (never left Terminating). Meanwhile a burst of pods (100; 40 with
 * `--quick`) runs untouched, the live binding must stay healthy, no process may exit on its own,
 * and every process must answer `/healthz` at the end. The row's lost/duplicates/orphans are the
 * untouched burst's.
 *
 * @module
 */

import { CoreV1Api } from "../../../apis/core/v1/mod.ts";
import { KUBECONFIG_KEY } from "../../../controllers/common/names.ts";
import { auditAndDrain } from "../fault_burst.ts";
import { runFuzz } from "../fuzz/run.ts";
import type { WorldFacts } from "../fuzz/mutation.ts";
import { burstProblem } from "../burst.ts";
import { seconds } from "../poll.ts";
import { sleep } from "../../../toolkit/util/mod.ts";
import { type ChaosScenario, Failures } from "../scenario.ts";
import type { ChaosWorld } from "../world.ts";

/** Violations shown in the row (all of them go to the log). */
const SHOWN = 3;

/** See the module documentation. */
export const fuzzedInputs: ChaosScenario = {
  name: "fuzzed-inputs",
  quick: true,
  timeoutMs: 900_000,
  async run(world, signal) {
    const failures = new Failures();
    const { quick, seed, log } = world.settings;
    const count = quick ? 60 : 300;
    world.note(`seed ${seed}`);
    log(`fuzzed-inputs: ${count} cases from seed ${seed} (replay with --seed ${seed})`);
    const burst = world.startBurst("fuzz", quick ? 40 : 100, signal);
    const record = `${world.dir}/fuzz-cases.log`;
    const watching = new AbortController();
    const disturbed = watchLiveBinding(world, AbortSignal.any([signal, watching.signal]));
    let report;
    try {
      report = await runFuzz(world, {
        count,
        seed,
        facts: await facts(world),
        signal,
        log,
        record: (line) => Deno.writeTextFileSync(record, `${line}\n`, { append: true }),
      });
    } finally {
      watching.abort();
    }
    report.violations.push(...(await disturbed).map((p) => `live binding ${world.binding} disturbed: ${p}`));
    const refused = [...report.refused].map(([code, n]) => `${n}×${code}`).join(" ") || "none";
    world.note(`${report.cases} cases: refused ${refused}, accepted ${report.accepted}`);
    log(`fuzzed-inputs: every case and its outcome: ${record}`);
    if (report.violations.length > 0) {
      for (const v of report.violations) log(`fuzzed-inputs violation: ${v}`);
      failures.add(
        `${report.violations.length} violations, e.g. ${report.violations.slice(0, SHOWN).join(" | ")}`,
      );
    }
    for (const crash of world.crashes()) {
      failures.add(`${crash.identity} exited with code ${crash.code}: ${crash.logTail.split("\n").at(-1)}`);
    }
    const live = world.fleet.live();
    const dead = await world.fleet.notAlive();
    if (live.length < 4 || dead.length > 0) {
      failures.add(`not alive at the end: ${dead.join(", ") || `only ${live.length} processes run`}`);
    }
    failures.add(await burstProblem(burst));
    const convergence = await world.converge(burst, signal);
    const convergedMs = convergence.at - burst.startedAt;
    if (!convergence.settled) {
      failures.add(`burst not converged after ${seconds(convergedMs)} s: ${convergence.summary}`);
    }
    return await auditAndDrain(world, burst, signal, failures, convergedMs);
  },
};

/**
 * Samples the live binding every second until `signal` aborts; resolves with each distinct problem
 * seen (see {@linkcode ChaosWorld.bindingProblem}).
 */
async function watchLiveBinding(world: ChaosWorld, signal: AbortSignal): Promise<string[]> {
  const seen = new Set<string>();
  while (!signal.aborted) {
    const problem = await world.bindingProblem().catch(() => undefined);
    if (problem) seen.add(problem);
    await sleep(1_000, signal).catch(() => {});
  }
  return [...seen];
}

/** What the mutations refer to: the live binding, its Secret and its kubeconfig. */
async function facts(world: ChaosWorld): Promise<WorldFacts> {
  const binding = await world.bindingObject();
  const ref = binding.spec!.secretRef;
  const secret = await new CoreV1Api(world.computing).secrets(ref.namespace).get(ref.name);
  const data = secret.data?.[KUBECONFIG_KEY] ?? "";
  return {
    binding: world.binding,
    clusterID: world.clusterID,
    mountNamespace: world.mountNamespace,
    namespace: world.namespace,
    secretName: ref.name,
    kubeconfigText: new TextDecoder().decode(Uint8Array.from(atob(data), (c) => c.charCodeAt(0))),
  };
}
