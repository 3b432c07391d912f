/**
 * The common shape of a fault scenario: a burst of pods, a fault injected while it is under way,
 * convergence measured from the fault, the scenario's own checks, then the pods deleted again and
 * both clusters audited.
 *
 * @module
 */

import type { Pod } from "../../apis/core/v1/mod.ts";
import { ANNOTATION_VIRTUAL_POD_UID } from "../../controllers/common/names.ts";
import type { AuditResult } from "./audit.ts";
import { type Burst, type BurstOptions, burstProblem } from "./burst.ts";
import { listTwins } from "./measure.ts";
import { poll, seconds } from "./poll.ts";
import { type ChaosOutcome, Failures } from "./scenario.ts";
import type { ChaosWorld } from "./world.ts";

/** Options of {@linkcode faultDuringBurst}. */
export interface FaultBurstOptions {
  /** Burst name prefix. */
  name: string;
  pods: number;
  burst?: BurstOptions;
  /**
   * The fault, injected once a third of the pods exist and at least 10 of their twins do (so it
   * lands mid-burst). May return a function that ends a lasting fault, called after convergence.
   */
  fault(): Promise<(() => Promise<void>) | void>;
  /** Checks after convergence; returned texts are failures. */
  check?(): Promise<(string | undefined)[]>;
  /** Bound of the convergence wait (default 180 s). */
  convergeMs?: number;
}

/** Runs the burst, the fault, the checks and the final audit; see the module documentation. */
export async function faultDuringBurst(
  world: ChaosWorld,
  signal: AbortSignal,
  options: FaultBurstOptions,
): Promise<ChaosOutcome> {
  const failures = new Failures();
  const burst = world.startBurst(options.name, options.pods, signal, options.burst);
  await poll("the burst under way", async () => {
    if (burst.created < Math.ceil(options.pods / 3)) return false;
    const uids = new Set(burst.expected.values());
    const twins = (await listTwins(world)).filter((t) => uids.has(twinUid(t)));
    return twins.length >= 10;
  }, { timeoutMs: 120_000, intervalMs: 100, signal });
  const faultAt = Date.now();
  world.settings.log(`${options.name}: fault at ${burst.created}/${options.pods} pods created`);
  const endFault = await options.fault();
  failures.add(await burstProblem(burst));
  const convergence = await world.converge(burst, signal, options.convergeMs);
  await endFault?.();
  const convergedMs = convergence.at - faultAt;
  if (!convergence.settled) {
    failures.add(`not converged ${seconds(convergedMs)} s after the fault: ${convergence.summary}`);
  }
  for (const problem of await options.check?.() ?? []) failures.add(problem);
  const crashes = world.crashes();
  if (crashes.length > 0) {
    world.note(
      `restarted after exiting on their own: ${
        crashes.map((c) => `${c.identity} (code ${c.code})`).join(", ")
      }`,
    );
  }
  return await auditAndDrain(world, burst, signal, failures, convergedMs);
}

/**
 * The end of every burst scenario: audit both clusters, delete the burst and audit again; the
 * outcome counts the pods lost and duplicated while it ran and what was left orphaned after.
 */
export async function auditAndDrain(
  world: ChaosWorld,
  burst: Burst,
  signal: AbortSignal,
  failures: Failures,
  convergedMs: number,
): Promise<ChaosOutcome> {
  const during = await world.audit([burst]);
  const after = await world.drain(burst, signal);
  failures.add(auditProblems(during, after));
  if (!after.settled) failures.add("deleting the burst did not finish within 120 s");
  return {
    lost: during.lost,
    duplicates: during.duplicates,
    orphans: after.orphans,
    convergedMs,
    failure: failures.text,
  };
}

/** The examples of an audit before and after the drain, as one failure text (or undefined). */
export function auditProblems(during: AuditResult, after: AuditResult): string | undefined {
  const examples = [...during.examples.filter((e) => !e.startsWith("orphans")), ...after.examples];
  return examples.length > 0 ? examples.join("; ") : undefined;
}

/** The virtual pod UID a twin carries. */
function twinUid(twin: Pod): string {
  return twin.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_UID] ?? "";
}
