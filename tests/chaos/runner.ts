/**
 * Runs scenarios one after another in one world: each bounded by its `timeoutMs` (past it: a
 * failure "timed out after N s"), and after each the world is brought back to its steady state —
 * leftovers forced out count as the scenario's orphans — or, when that fails, started afresh.
 *
 * @module
 */

import { sleep } from "../../toolkit/util/mod.ts";
import { firstLine } from "./poll.ts";
import type { ChaosOutcome, ChaosScenario } from "./scenario.ts";
import { type ChaosSettings, ChaosWorld } from "./world.ts";

/** One row of the report. */
export interface ScenarioResult {
  name: string;
  passed: boolean;
  /** Why it failed (absent when it passed). */
  failure?: string;
  /** Remarks (takeover time, seed, restarts…). */
  notes: string[];
  lost: number;
  duplicates: number;
  orphans: number;
  /** Time to converge, when the scenario got that far. */
  convergedMs?: number;
  /** Wall time of the scenario, clean-up included. */
  durationMs: number;
}

/** A suite run: the world it owns, and a way to stop it from outside (Ctrl-C). */
export class Suite {
  #world?: ChaosWorld;

  constructor(readonly settings: ChaosSettings, readonly dir: string) {}

  /** Runs `scenarios`; `onResult` sees each row as it is decided. */
  async run(
    scenarios: readonly ChaosScenario[],
    onResult?: (r: ScenarioResult) => void,
  ): Promise<ScenarioResult[]> {
    const results: ScenarioResult[] = [];
    const log = this.settings.log;
    for (const scenario of scenarios) {
      let started = Date.now();
      let result: ScenarioResult;
      try {
        const world = await this.#ensureWorld();
        started = Date.now();
        world.beginScenario();
        log(`── ${scenario.name} (bound ${scenario.timeoutMs / 1000} s)`);
        result = await runOne(world, scenario);
        const forced = await this.#restore(world);
        if (forced > 0) {
          result.orphans += forced;
          result.failure = [result.failure, `${forced} leftovers had to be forced out`].filter(Boolean).join(
            "; ",
          );
        }
      } catch (err) {
        result = {
          name: scenario.name,
          passed: false,
          failure: `world: ${firstLine(err, 300)}`,
          notes: [],
          lost: 0,
          duplicates: 0,
          orphans: 0,
          durationMs: 0,
        };
      }
      result.durationMs = Date.now() - started;
      result.passed = !result.failure && result.lost + result.duplicates + result.orphans === 0;
      if (!result.passed && !result.failure) result.failure = "lost, duplicated or orphaned objects";
      log(
        `${scenario.name}: ${result.passed ? "pass" : `FAIL: ${result.failure}`} (${
          (result.durationMs / 1000).toFixed(1)
        } s)`,
      );
      results.push(result);
      onResult?.(result);
    }
    return results;
  }

  /** The world, started if there is none. */
  async #ensureWorld(): Promise<ChaosWorld> {
    this.#world ??= await ChaosWorld.start(this.settings, this.dir);
    return this.#world;
  }

  /** Brings the world back to its steady state; on failure stops it (the next scenario starts a new one). */
  async #restore(world: ChaosWorld): Promise<number> {
    try {
      return await world.prepare();
    } catch (err) {
      this.settings.log(`the world could not be restored (${firstLine(err)}); starting a new one`);
      await this.stop();
      return 0;
    }
  }

  /** Stops the world (processes and clusters); `removeDir` also deletes logs and state. */
  async stop(removeDir = false): Promise<void> {
    const world = this.#world;
    this.#world = undefined;
    await world?.stop(removeDir);
  }
}

/** Runs one scenario within its bound. */
async function runOne(world: ChaosWorld, scenario: ChaosScenario): Promise<ScenarioResult> {
  const stop = new AbortController();
  const running = scenario.run(world, stop.signal);
  running.catch(() => {}); // observed below, or abandoned after a time-out
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) =>
    timer = setTimeout(() => resolve("timeout"), scenario.timeoutMs)
  );
  let outcome: ChaosOutcome | undefined;
  let failure: string | undefined;
  try {
    const first = await Promise.race([running, timeout]);
    if (first === "timeout") {
      failure = `timed out after ${Math.round(scenario.timeoutMs / 1000)} s`;
      stop.abort(new Error(failure));
      await Promise.race([running.catch(() => {}), sleep(10_000)]);
    } else {
      outcome = first;
    }
  } catch (err) {
    failure = firstLine(err, 300);
  } finally {
    clearTimeout(timer);
  }
  if (!outcome) {
    // Count what the scenario left, as far as it can be read quickly.
    const counts = await Promise.race([world.audit(world.bursts), sleep(30_000).then(() => undefined)]).catch(
      () => undefined,
    );
    outcome = { lost: counts?.lost ?? 0, duplicates: counts?.duplicates ?? 0, orphans: 0, convergedMs: NaN };
  }
  return {
    name: scenario.name,
    passed: false,
    failure: [failure, outcome.failure].filter(Boolean).join("; ") || undefined,
    notes: [...world.notes],
    lost: outcome.lost,
    duplicates: outcome.duplicates,
    orphans: outcome.orphans,
    convergedMs: Number.isFinite(outcome.convergedMs) ? outcome.convergedMs : undefined,
    durationMs: 0,
  };
}
