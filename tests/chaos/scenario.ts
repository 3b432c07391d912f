/**
 * What a chaos scenario is. Add one by writing `scenarios/<name>.ts` exporting a
 * {@linkcode ChaosScenario} and listing it in `scenarios/mod.ts`; `deno task chaos` runs it in
 * the shared {@linkcode ChaosWorld} (see `world.ts` for its shape and helpers), bounded by its
 * `timeoutMs`, and prints its row.
 *
 * @module
 */

import type { ChaosWorld } from "./world.ts";

export type { ChaosWorld };

/** What a scenario measured. */
export interface ChaosOutcome {
  /** Pods it created that are missing, Failed or deleted although nobody asked (see `audit.ts`). */
  lost: number;
  /** Virtual pods with more than one twin. */
  duplicates: number;
  /** Twins or copies without their virtual object, or virtual objects stuck Terminating on a Kubeocean finalizer. */
  orphans: number;
  /** From the fault to convergence (ms). */
  convergedMs: number;
  /** Why it failed (short; examples welcome); absent when it passed. */
  failure?: string;
}

/** One scenario. */
export interface ChaosScenario {
  /** Row name and `--only` name, e.g. `syncer-leader-sigkill`. */
  name: string;
  /** Part of `deno task chaos --quick` (which must fit in 6 minutes with the world's start-up). */
  quick: boolean;
  /** Bound of `run`: past it the scenario fails with "timed out after N s" and the world is reset. */
  timeoutMs: number;
  /** Runs against `world`; stops early when `signal` aborts (the time is up). */
  run(world: ChaosWorld, signal: AbortSignal): Promise<ChaosOutcome>;
}

/** Collects failure reasons of one scenario. */
export class Failures {
  readonly #reasons: string[] = [];

  /** Adds a reason (ignored when empty). */
  add(reason: string | undefined): void {
    if (reason) this.#reasons.push(reason);
  }

  /** The reasons joined, or undefined when there are none. */
  get text(): string | undefined {
    return this.#reasons.length > 0 ? this.#reasons.join("; ") : undefined;
  }
}
