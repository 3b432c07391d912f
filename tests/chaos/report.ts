/**
 * The suite's report: one table row per scenario, then the summary line — always the last line,
 * exactly `chaos: N scenarios, P passed, lost L, duplicates D, orphans O` (sums).
 *
 * @module
 */

import type { ScenarioResult } from "./runner.ts";

/** Longest result text in the table (the full text is logged while the suite runs). */
const RESULT_WIDTH = 90;

/** The summary line. */
export function summaryLine(results: readonly ScenarioResult[]): string {
  const sum = (key: "lost" | "duplicates" | "orphans") => results.reduce((n, r) => n + r[key], 0);
  const passed = results.filter((r) => r.passed).length;
  return `chaos: ${results.length} scenarios, ${passed} passed, lost ${sum("lost")}, duplicates ${
    sum("duplicates")
  }, orphans ${sum("orphans")}`;
}

/** Whether the suite succeeded: every scenario passed, nothing lost, duplicated or orphaned. */
export function succeeded(results: readonly ScenarioResult[]): boolean {
  return results.every((r) => r.passed && r.lost === 0 && r.duplicates === 0 && r.orphans === 0);
}

/** The table, then the summary line. */
export function formatReport(results: readonly ScenarioResult[]): string {
  const rows = results.map((r) => {
    const detail = r.passed ? r.notes.join("; ") : [r.failure, ...r.notes].filter(Boolean).join("; ");
    const result = `${r.passed ? "pass" : "FAIL"}${detail ? `: ${detail}` : ""}`;
    return [
      r.name,
      result.length > RESULT_WIDTH ? `${result.slice(0, RESULT_WIDTH - 1)}…` : result,
      String(r.lost),
      String(r.duplicates),
      String(r.orphans),
      r.convergedMs === undefined ? "-" : (r.convergedMs / 1000).toFixed(1),
      (r.durationMs / 1000).toFixed(1),
    ];
  });
  const header = ["scenario", "result", "lost", "duplicates", "orphans", "converged s", "took s"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i >= 2 ? c.padStart(widths[i]) : c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(header), ...rows.map(line), summaryLine(results)].join("\n");
}
