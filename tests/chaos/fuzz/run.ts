/**
 * The fuzz loop: cases in waves (so that at most one wave of fuzzed objects exists at a time),
 * each wave submitted, judged within a bound, then deleted — every object must go.
 *
 * @module
 */

import { sleep } from "../../../toolkit/util/mod.ts";
import { CaseGenerator } from "./cases.ts";
import { removeCreated, removeFuzzObjects } from "./cleanup.ts";
import { describeSubject, type FuzzTarget, judgeOnce, submit, type Submitted } from "./judge.ts";
import type { WorldFacts } from "./mutation.ts";
import { Prng } from "./prng.ts";

/** Options of {@linkcode runFuzz}. */
export interface FuzzOptions {
  count: number;
  seed: number;
  facts: WorldFacts;
  /** Cases per wave (default 20). */
  waveSize?: number;
  /** How long a wave's accepted objects have to reach their verdict (default 45 s). */
  verdictMs?: number;
  /** How long deleted objects have to go (default 60 s). */
  deleteMs?: number;
  signal: AbortSignal;
  log?: (line: string) => void;
  /** Receives one line per case: what was tried and what became of it. */
  record?: (line: string) => void;
}

/** What the fuzzer found. */
export interface FuzzReport {
  cases: number;
  /** Refusals by HTTP code. */
  refused: Map<number, number>;
  /** Cases whose objects were all accepted. */
  accepted: number;
  violations: string[];
}

/** Runs `count` cases from `seed`. */
export async function runFuzz(target: FuzzTarget, options: FuzzOptions): Promise<FuzzReport> {
  const cases = new CaseGenerator(new Prng(options.seed), options.facts);
  const report: FuzzReport = { cases: 0, refused: new Map(), accepted: 0, violations: [] };
  const waveSize = options.waveSize ?? 20;
  for (let start = 0; start < options.count; start += waveSize) {
    const wave = Array.from(
      { length: Math.min(waveSize, options.count - start) },
      (_, i) => cases.next(start + i),
    );
    const submitted: Submitted[] = [];
    for (const fuzz of wave) {
      options.signal.throwIfAborted();
      const s = await submit(target, fuzz);
      submitted.push(s);
      report.cases++;
      if (s.rejectedWith) report.refused.set(s.rejectedWith, (report.refused.get(s.rejectedWith) ?? 0) + 1);
      else if (!s.verdict) report.accepted++;
    }
    const deadline = Date.now() + (options.verdictMs ?? 45_000);
    while (true) {
      for (const s of submitted.filter((s) => !s.verdict)) {
        s.verdict = await judgeOnce(target, s).catch(() => undefined);
      }
      if (submitted.every((s) => s.verdict) || Date.now() > deadline) break;
      await sleep(1_000, options.signal);
    }
    for (const s of submitted) {
      const label = `#${s.fuzz.index} ${s.fuzz.kind} ${s.fuzz.mutation}`;
      const outcome = s.rejectedWith
        ? `refused (${s.rejectedWith})`
        : !s.verdict
        ? "no verdict"
        : s.verdict.ok
        ? "as expected"
        : `VIOLATION: ${s.verdict.violation}`;
      options.record?.(`${label} [expected ${s.fuzz.expect.verdict}] → ${outcome}`);
      if (!s.verdict) {
        report.violations.push(
          `${label}: no verdict in ${(options.verdictMs ?? 45_000) / 1000} s (${await describeSubject(
            target,
            s,
          )})`,
        );
      } else if (!s.verdict.ok) {
        report.violations.push(`${label}: ${s.verdict.violation}`);
      }
    }
    const created = submitted.flatMap((s) => [...s.created].reverse());
    const stayed = await removeCreated(target, created, {
      timeoutMs: options.deleteMs ?? 60_000,
      signal: options.signal,
    });
    report.violations.push(...stayed);
    // Counted; now out of the way, so that the next wave starts clean.
    if (stayed.length > 0) await removeFuzzObjects(target, { force: true });
    options.log?.(
      `fuzz: ${report.cases}/${options.count} cases, ${report.accepted} accepted, ${report.violations.length} violations`,
    );
  }
  return report;
}
