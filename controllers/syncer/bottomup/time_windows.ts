/**
 * Time windows of a ResourceLeasingPolicy, evaluated in the policy's IANA time zone.
 *
 * A window `start`–`end` ("HH:MM") is active from `start` (inclusive) to `end` (exclusive) on the
 * days it lists (every day when empty). When `end` is before `start` the window crosses midnight
 * and belongs to the day it starts on: Friday 22:00–06:00 covers Friday night and Saturday
 * morning. A policy without windows is always active; with windows it is active while any is.
 *
 * @module
 */

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
  const start = parseHHMM(window.start);
  const end = parseHHMM(window.end);
  const local = localOf(instant, timeZone);
  if (start < end) {
    return dayListed(window.days, local.weekday) && local.minutes >= start && local.minutes < end;
  }
  // Crossing midnight: the evening part on a listed day, or the morning part after one.
  return (dayListed(window.days, local.weekday) && local.minutes >= start) ||
    (dayListed(window.days, (local.weekday + 6) % 7) && local.minutes < end);
}

/** The result of evaluating a policy's windows at an instant. */
export interface WindowState {
  active: boolean;
  /** The active window as `start-end`, when one is. */
  activeWindow?: string;
  /** When `active` next changes (absent when it never does). */
  nextTransition?: Date;
  /** When `active` last changed (absent when it never did within the last 8 days, or without windows). */
  lastTransition?: Date;
}

/** Evaluates `windows` in `timeZone` at `now`. */
export function evaluateWindows(
  windows: readonly TimeWindow[] | undefined,
  timeZone: string,
  now: Date,
): WindowState {
  if (!windows?.length) return { active: true };
  validateTimeZone(timeZone);
  const activeAt = (t: Date) => windows.some((w) => windowActive(w, t, timeZone));
  const active = activeAt(now);
  const activeWindow = windows.find((w) => windowActive(w, now, timeZone));
  // Candidate transitions: every instant a window starts or ends on the local days around now
  // (twice when clocks go back), and the instants the clocks change: a window starting inside a
  // skipped hour opens when the skipped hour ends.
  const today = localOf(now, timeZone);
  const candidates = offsetChanges(now.getTime() - 9 * DAY_MS, now.getTime() + 9 * DAY_MS, timeZone);
  for (let offset = -8; offset <= 8; offset++) {
    const date = new Date(Date.UTC(today.year, today.month - 1, today.day + offset));
    const [y, m, d] = [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()];
    for (const w of windows) {
      candidates.push(
        ...instantsOf(y, m, d, parseHHMM(w.start), timeZone),
        ...instantsOf(y, m, d, parseHHMM(w.end), timeZone),
      );
    }
  }
  candidates.sort((a, b) => a.getTime() - b.getTime());
  const next = candidates.find((t) => t.getTime() > now.getTime() && activeAt(t) !== active);
  const last = [...candidates].reverse().find((t) =>
    t.getTime() <= now.getTime() && activeAt(t) === active &&
    activeAt(new Date(t.getTime() - 60_000)) !== active
  );
  return {
    active,
    activeWindow: activeWindow ? `${activeWindow.start}-${activeWindow.end}` : undefined,
    nextTransition: next,
    lastTransition: last,
  };
}
