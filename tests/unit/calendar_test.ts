/**
 * Calendar exceptions and closing notices of leasing policies: pure rules, no cluster.
 */

import assert from "node:assert/strict";
import { evaluateSchedule } from "../../controllers/syncer/bottomup/time_windows.ts";
import { exceptionSpans } from "../../controllers/syncer/bottomup/calendar_exceptions.ts";
import { closingAt, leaseEndingCondition } from "../../controllers/syncer/bottomup/closing_notice.ts";
import { policyProblem } from "../../controllers/syncer/bottomup/policy_selection.ts";
import type { ResourceLeasingPolicy } from "../../apis/kubeocean.io/v1beta1/mod.ts";

const officeHours = [{
  start: "09:00",
  end: "18:00",
  days: ["monday", "tuesday", "wednesday", "thursday", "friday"],
}];

Deno.test("calendar: a holiday on a weekday closes the day; the next transition is the next working morning", () => {
  const schedule = {
    timeZone: "Europe/Berlin",
    timeWindows: officeHours,
    exceptions: [{ date: "2025-12-25", lend: false, reason: "Christmas" }],
  };
  // Thursday 25 Dec 2025, 10:00 in Berlin (09:00Z).
  const state = evaluateSchedule(schedule, new Date("2025-12-25T09:00:00Z"));
  assert.equal(state.active, false);
  assert.equal(state.exception, "2025-12-25 (Christmas)");
  assert.equal(state.nextTransition?.toISOString(), "2025-12-26T08:00:00.000Z"); // Fri 09:00 CET
  assert.equal(state.lastTransition?.toISOString(), "2025-12-24T17:00:00.000Z"); // closed since 18:00 the day before
  // The working day before closes as usual, and its next transition skips the holiday.
  const eve = evaluateSchedule(schedule, new Date("2025-12-24T10:00:00Z"));
  assert.equal(eve.active, true);
  assert.equal(eve.nextTransition?.toISOString(), "2025-12-24T17:00:00.000Z");
  const evening = evaluateSchedule(schedule, new Date("2025-12-24T18:00:00Z"));
  assert.equal(evening.nextTransition?.toISOString(), "2025-12-26T08:00:00.000Z");
});

Deno.test("calendar: a whole-day lend on a weekend, and ranges with and without times", () => {
  const schedule = {
    timeZone: "UTC",
    timeWindows: officeHours,
    exceptions: [
      { date: "2026-12-05", lend: true, reason: "batch Saturday" },
      { from: "2026-12-08T12:00", to: "2026-12-08T14:00", lend: false, reason: "maintenance" },
      { from: "2026-12-21", to: "2027-01-03", lend: false, reason: "winter break" },
    ],
  };
  assert.equal(evaluateSchedule(schedule, new Date("2026-12-05T03:00:00Z")).active, true); // Saturday
  assert.equal(evaluateSchedule(schedule, new Date("2026-12-06T03:00:00Z")).active, false); // Sunday
  const friday = evaluateSchedule(schedule, new Date("2026-12-04T17:00:00Z"));
  assert.equal(friday.nextTransition?.toISOString(), "2026-12-04T18:00:00.000Z");
  const fridayNight = evaluateSchedule(schedule, new Date("2026-12-04T20:00:00Z"));
  assert.equal(fridayNight.nextTransition?.toISOString(), "2026-12-05T00:00:00.000Z");
  const maintenance = evaluateSchedule(schedule, new Date("2026-12-08T11:00:00Z"));
  assert.equal(maintenance.nextTransition?.toISOString(), "2026-12-08T12:00:00.000Z");
  assert.equal(evaluateSchedule(schedule, new Date("2026-12-08T13:59:00Z")).active, false);
  assert.equal(evaluateSchedule(schedule, new Date("2026-12-08T14:00:00Z")).active, true);
  // Inside a two-week break the next opening is the first working morning after it (beyond 8 days).
  const inBreak = evaluateSchedule(schedule, new Date("2026-12-22T10:00:00Z"));
  assert.equal(inBreak.active, false);
  assert.equal(inBreak.nextTransition?.toISOString(), "2027-01-04T09:00:00.000Z"); // Monday
  // A long exception far ahead is found too, with no windows at all.
  const onlyBreak = evaluateSchedule(
    { exceptions: [{ from: "2027-06-01", to: "2027-06-30", lend: false }] },
    new Date("2027-01-10T00:00:00Z"),
  );
  assert.equal(onlyBreak.active, true);
  assert.equal(onlyBreak.nextTransition?.toISOString(), "2027-06-01T00:00:00.000Z");
});

Deno.test("calendar: invalid dates and contradictory overlaps are named by field", () => {
  const problem = (exceptions: unknown[]) =>
    policyProblem({ spec: { cluster: "c", exceptions } } as unknown as ResourceLeasingPolicy);
  assert.match(
    problem([{ date: "2026-02-30", lend: false }])!,
    /^spec\.exceptions\[0\]\.date: "2026-02-30" is not a date/,
  );
  assert.match(
    problem([{ from: "2026-12-10", to: "2026-12-09", lend: false }])!,
    /^spec\.exceptions\[0\]\.to: /,
  );
  assert.match(problem([{ date: "2026-12-25T10:00", lend: false }])!, /^spec\.exceptions\[0\]\.date: /);
  assert.match(problem([{ from: "2026-12-25", lend: false }])!, /^spec\.exceptions\[0\]\.to: /);
  assert.match(
    problem([
      { from: "2026-12-20", to: "2026-12-31", lend: false, reason: "break" },
      { date: "2026-12-24", lend: true },
    ])!,
    /^spec\.exceptions\[1\]: 2026-12-24 overlaps spec\.exceptions\[0\] \(2026-12-20–2026-12-31 \(break\)\)/,
  );
  // Overlaps that agree are fine.
  assert.equal(
    exceptionSpans([{ date: "2026-12-24", lend: false }, {
      from: "2026-12-20",
      to: "2026-12-31",
      lend: false,
    }]).problem,
    undefined,
  );
  assert.equal(problem([{ date: "2028-02-29", lend: true }]), undefined);
});

Deno.test("closing notice: from closingNoticeSeconds before the end, with the eviction time under forceReclaim", () => {
  const spec = {
    cluster: "c",
    timeWindows: [{ start: "09:00", end: "17:00" }],
    forceReclaim: true,
    gracefulReclaimPeriodSeconds: 300,
  };
  const at = (iso: string) => {
    const now = new Date(iso);
    return closingAt(evaluateSchedule(spec, now), spec, now);
  };
  assert.equal(at("2026-11-25T16:49:59Z"), undefined);
  const closing = at("2026-11-25T16:50:00Z")!;
  assert.equal(closing.closesAt.toISOString(), "2026-11-25T17:00:00.000Z");
  assert.equal(closing.evictsAt?.toISOString(), "2026-11-25T17:05:00.000Z");
  assert.match(
    closing.message,
    /stops being lent at 2026-11-25T17:00:00Z .*pods will be evicted at 2026-11-25T17:05:00Z/,
  );
  assert.equal(at("2026-11-25T17:00:00Z"), undefined); // closed: the taint speaks now
  const off = { ...spec, closingNoticeSeconds: 0 };
  assert.equal(
    closingAt(evaluateSchedule(off, new Date("2026-11-25T16:59:00Z")), off, new Date("2026-11-25T16:59:00Z")),
    undefined,
  );
  // The condition keeps its transition time while its status holds.
  const now = new Date("2026-11-25T16:55:00Z");
  const state = evaluateSchedule(spec, now);
  const first = leaseEndingCondition(state, closingAt(state, spec, now), "UTC", undefined, now);
  assert.equal(first.status, "True");
  const later = new Date("2026-11-25T16:56:00Z");
  const again = leaseEndingCondition(state, closingAt(state, spec, later), "UTC", first, later);
  assert.equal(again.lastTransitionTime, first.lastTransitionTime);
});
