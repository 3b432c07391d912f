/**
 * The lending schedule of a ResourceLeasingPolicy — time windows and calendar exceptions —
 * evaluated in the policy's IANA time zone.
 *
 * A window `start`–`end` ("HH:MM") is active from `start` (inclusive) to `end` (exclusive) on the
 * days it lists (every day when empty). When `end` is before `start` the window crosses midnight
 * and belongs to the day it starts on: Friday 22:00–06:00 covers Friday night and Saturday
 * morning. A policy without windows is always active; with windows it is active while any is.
 * A calendar exception (`calendar_exceptions.ts`) overrides the windows while it lasts.
 *
 * @module
 */

import { type CalendarException, type ExceptionSpan, exceptionSpans, spanAt } from "./calendar_exceptions.ts";

/** One time window. */
export interface TimeWindow {
  start: string;
  end: string;
  days?: string[];
}

const DAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

/** Local calendar fields of an instant in a time zone. */
interface Local {
  year: number;
  month: number;
  day: number;
  weekday: number; // 0 = Sunday
  minutes: number; // minutes since local midnight
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Throws a clear error for an unknown time zone. */
export function validateTimeZone(timeZone: string): void {
  if (formatters.has(timeZone)) return; // known good (a formatter exists only for valid zones)
  try {
    formatter(timeZone);
  } catch {
    throw new Error(`unknown time zone "${timeZone}" (use an IANA name such as UTC or Asia/Shanghai)`);
  }
}

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      weekday: "long",
      hour: "numeric",
      minute: "numeric",
    });
    formatters.set(timeZone, f);
  }
  return f;
}

function localOf(instant: Date, timeZone: string): Local {
  const parts = Object.fromEntries(formatter(timeZone).formatToParts(instant).map((p) => [p.type, p.value]));
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    weekday: DAYS.indexOf(parts.weekday.toLowerCase()),
    minutes: Number(parts.hour) * 60 + Number(parts.minute),
  };
}

function parseHHMM(text: string): number {
  const match = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(text);
  if (!match) throw new Error(`time "${text}" is not HH:MM`);
  return Number(match[1]) * 60 + Number(match[2]);
}

/** The zone's offset from UTC at `instant`, in ms (whole minutes). */
function offsetAt(instant: number, timeZone: string): number {
  const local = localOf(new Date(instant), timeZone);
  const wall = Date.UTC(
    local.year,
    local.month - 1,
    local.day,
    Math.floor(local.minutes / 60),
    local.minutes % 60,
  );
  return wall - Math.floor(instant / 60_000) * 60_000;
}

/**
 * Every instant whose local time in `timeZone` is `minutes` past midnight on the local date
 * `y-m-d`: usually one, two when clocks go back (the hour repeats), none when they go forward
 * (the time does not exist that day).
 */
function instantsOf(y: number, m: number, d: number, minutes: number, timeZone: string): Date[] {
  const wall = Date.UTC(y, m - 1, d, Math.floor(minutes / 60), minutes % 60);
  const offsets = new Set([offsetAt(wall - DAY_MS, timeZone), offsetAt(wall + DAY_MS, timeZone)]);
  return [...offsets].map((offset) => wall - offset).filter((t) => {
    const local = localOf(new Date(t), timeZone);
    return local.month === m && local.day === d && local.minutes === minutes;
  }).map((t) => new Date(t));
}

/** The instants within `[from, to)` at which the zone's offset changes (DST), to the minute. */
function offsetChanges(from: number, to: number, timeZone: string): Date[] {
  const changes: Date[] = [];
  for (let day = from; day < to; day += DAY_MS) {
    let [low, high] = [day, Math.min(day + DAY_MS, to)];
    if (offsetAt(low, timeZone) === offsetAt(high, timeZone)) continue;
    const before = offsetAt(low, timeZone);
    while (high - low > 60_000) {
      const middle = low + Math.floor((high - low) / 120_000) * 60_000;
      if (offsetAt(middle, timeZone) === before) low = middle;
      else high = middle;
    }
    changes.push(new Date(high));
  }
  return changes;
}

const DAY_MS = 24 * 3600_000;

function dayListed(days: string[] | undefined, weekday: number): boolean {
  return !days?.length || days.some((d) => d.toLowerCase() === DAYS[weekday]);
}

/** Whether `window` is active at `instant`. */
export function windowActive(window: TimeWindow, instant: Date, timeZone: string): boolean {
  return windowActiveLocal(window, localOf(instant, timeZone));
}

function windowActiveLocal(window: TimeWindow, local: Local): boolean {
  const start = parseHHMM(window.start);
  const end = parseHHMM(window.end);
  if (start < end) {
    return dayListed(window.days, local.weekday) && local.minutes >= start && local.minutes < end;
  }
  // Crossing midnight: the evening part on a listed day, or the morning part after one.
  return (dayListed(window.days, local.weekday) && local.minutes >= start) ||
    (dayListed(window.days, (local.weekday + 6) % 7) && local.minutes < end);
}

/** The parts of a policy's spec that say when it lends. */
export interface LeaseSchedule {
  /** IANA time zone of windows and exceptions (default UTC). */
  timeZone?: string;
  timeWindows?: TimeWindow[];
  exceptions?: CalendarException[];
}

/** The result of evaluating a schedule at an instant. */
export interface WindowState {
  active: boolean;
  /** The active window as `start-end`, when one is (and no exception applies). */
  activeWindow?: string;
  /** The calendar exception that decides `active` now, by its label (e.g. `2026-12-25 (Christmas)`). */
  exception?: string;
  /** When `active` next changes (absent when it never does). */
  nextTransition?: Date;
  /** When `active` last changed (absent when it never did within the last 8 days, or without a schedule). */
  lastTransition?: Date;
}

/** `YYYY-MM-DDTHH:MM` of a local time (the key calendar exceptions compare). */
function keyOf(local: Local): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${local.year}-${pad(local.month)}-${pad(local.day)}T${pad(Math.floor(local.minutes / 60))}:${
    pad(local.minutes % 60)
  }`;
}

/** The local date `days` after `y-m-d`, as `[y, m, d]`. */
function addDays(date: readonly [number, number, number], days: number): [number, number, number] {
  const t = new Date(Date.UTC(date[0], date[1] - 1, date[2] + days));
  return [t.getUTCFullYear(), t.getUTCMonth() + 1, t.getUTCDate()];
}

/** The time zone's name for messages, with a local time: `Fri 2026-12-25 09:00 (Europe/Berlin)`. */
export function localTimeText(instant: Date, timeZone: string): string {
  const local = localOf(instant, timeZone);
  const day = DAYS[local.weekday].slice(0, 1).toUpperCase() + DAYS[local.weekday].slice(1, 3);
  return `${day} ${keyOf(local).replace("T", " ")} (${timeZone})`;
}

/**
 * The last evaluation per schedule object and minute. Every boundary falls on a whole minute, so
 * the state within a minute is the same; the nodes of one policy (one cached spec object) share it.
 */
const evaluated = new WeakMap<LeaseSchedule, { minute: number; state: WindowState }>();

/**
 * Evaluates `schedule` at `now`. Throws on an unknown time zone or an invalid exception (the
 * policy's validation, `policyProblem`, names the field first).
 */
export function evaluateSchedule(schedule: LeaseSchedule, now: Date): WindowState {
  const minute = Math.floor(now.getTime() / 60_000);
  const memo = evaluated.get(schedule);
  if (memo?.minute === minute) return memo.state;
  const state = evaluateAt(schedule, now);
  evaluated.set(schedule, { minute, state });
  return state;
}

function evaluateAt(schedule: LeaseSchedule, now: Date): WindowState {
  const windows = schedule.timeWindows ?? [];
  const timeZone = schedule.timeZone ?? "UTC";
  const { spans, problem } = exceptionSpans(schedule.exceptions);
  if (problem) throw new Error(problem);
  if (!windows.length && !spans.length) return { active: true };
  validateTimeZone(timeZone);
  const stateAt = (t: Date): { active: boolean; span?: ExceptionSpan; window?: TimeWindow } => {
    const local = localOf(t, timeZone);
    const span = spanAt(spans, keyOf(local));
    if (span) return { active: span.lend, span };
    if (!windows.length) return { active: true };
    const window = windows.find((w) => windowActiveLocal(w, local));
    return { active: !!window, window };
  };
  const activeAt = (t: Date) => stateAt(t).active;
  const current = stateAt(now);
  const active = current.active;

  // The state changes only where a window starts or ends, an exception starts or ends, or the
  // clocks change (a window starting inside a skipped hour opens when the skipped hour ends).
  const candidatesOn = (date: readonly [number, number, number]): Date[] => {
    const [y, m, d] = date;
    const key = keyOf({ year: y, month: m, day: d, weekday: 0, minutes: 0 }).slice(0, 10);
    const minutes = windows.flatMap((w) => [parseHHMM(w.start), parseHHMM(w.end)]);
    for (const span of spans) {
      for (const boundary of [span.start, span.end]) {
        if (boundary.startsWith(key)) minutes.push(parseHHMM(boundary.slice(11)));
      }
    }
    const wall = Date.UTC(y, m - 1, d);
    const found = [...new Set(minutes)].flatMap((min) => instantsOf(y, m, d, min, timeZone));
    for (const change of offsetChanges(wall - DAY_MS, wall + 2 * DAY_MS, timeZone)) {
      const local = localOf(change, timeZone);
      if (local.year === y && local.month === m && local.day === d) found.push(change);
    }
    return found.sort((a, b) => a.getTime() - b.getTime());
  };
  const today = localOf(now, timeZone);
  const todayDate: [number, number, number] = [today.year, today.month, today.day];

  // Next: the coming days (windows repeat weekly: no change within 9 days means none from the
  // windows alone), then the days around each later exception boundary.
  const days = new Map<string, [number, number, number]>();
  const addRange = (from: readonly [number, number, number], first: number, last: number) => {
    for (let i = first; i <= last; i++) {
      const date = addDays(from, i);
      days.set(date.map((n) => String(n).padStart(2, "0")).join("-"), date);
    }
  };
  addRange(todayDate, -1, 8);
  const todayKey = keyOf(today).slice(0, 10);
  for (const span of spans) {
    for (const boundary of [span.start, span.end]) {
      if (boundary.slice(0, 10) < todayKey) continue;
      const [y, m, d] = boundary.slice(0, 10).split("-").map(Number);
      addRange([y, m, d], -1, 8);
    }
  }
  let next: Date | undefined;
  for (const key of [...days.keys()].sort()) {
    next = candidatesOn(days.get(key)!).find((t) => t.getTime() > now.getTime() && activeAt(t) !== active);
    if (next) break;
  }

  // Last: the instant within the last 8 days where the current state began.
  let last: Date | undefined;
  for (let offset = 0; offset >= -8 && !last; offset--) {
    last = candidatesOn(addDays(todayDate, offset)).reverse().find((t) =>
      t.getTime() <= now.getTime() && activeAt(t) === active &&
      activeAt(new Date(t.getTime() - 60_000)) !== active
    );
  }
  return {
    active,
    activeWindow: current.window ? `${current.window.start}-${current.window.end}` : undefined,
    exception: current.span?.label,
    nextTransition: next,
    lastTransition: last,
  };
}
