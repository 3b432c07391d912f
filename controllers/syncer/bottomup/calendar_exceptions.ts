/**
 * Calendar exceptions of a ResourceLeasingPolicy: local dates or ranges (in the policy's time
 * zone) during which the time windows do not apply and the exception says whether capacity is
 * lent (`lend: true`, e.g. a whole-day window on a holiday weekend) or not (`lend: false`, a
 * public holiday, a maintenance range).
 *
 * Spans are compared as local wall-clock keys `YYYY-MM-DDTHH:MM`:
 * - `date: D` covers the whole local day D;
 * - `from`/`to` cover `[from, to)`; a `from` without a time starts at 00:00 of that day, a `to`
 *   without a time ends at the end of that day (the day is included).
 *
 * @module
 */

/** One exception as written in the policy. */
export interface CalendarException {
  date?: string;
  from?: string;
  to?: string;
  lend: boolean;
  reason?: string;
}

/** An exception's span as local wall-clock keys, `[start, end)`. */
export interface ExceptionSpan {
  start: string;
  end: string;
  lend: boolean;
  /** What to call it in messages: `2026-12-25 (Christmas)`. */
  label: string;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T([01]\d|2[0-3]):([0-5]\d)$/;

/** Whether `y-m-d` is a day of the proleptic Gregorian calendar. */
function realDate(y: number, m: number, d: number): boolean {
  const t = new Date(Date.UTC(y, m - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}

/** The local date after `date` (`YYYY-MM-DD`). */
export function nextDate(date: string): string {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + 1)).toISOString().slice(0, 10);
}

/** Parses a local date or date-time; throws naming what is wrong. */
function parseLocal(text: string): { date: string; time?: string } {
  const match = DATE.exec(text) ?? DATE_TIME.exec(text);
  if (!match) {
    throw new Error(
      `"${text}" is not a local date YYYY-MM-DD or date-time YYYY-MM-DDTHH:MM (no offset: the policy's timeZone applies)`,
    );
  }
  const [y, m, d] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (!realDate(y, m, d)) throw new Error(`"${text}" is not a date of the calendar`);
  return { date: text.slice(0, 10), time: match[4] ? text.slice(11) : undefined };
}

/** The span of one exception; throws naming the field (relative to the exception). */
export function exceptionSpan(exception: CalendarException): ExceptionSpan {
  const field = (name: string, fn: () => string) => {
    try {
      return fn();
    } catch (err) {
      throw new Error(`${name}: ${(err as Error).message}`);
    }
  };
  const reason = exception.reason ? ` (${exception.reason})` : "";
  if (exception.date !== undefined) {
    if (exception.from !== undefined || exception.to !== undefined) {
      throw new Error("date: set either date, or from and to");
    }
    const date = field("date", () => {
      const local = parseLocal(exception.date!);
      if (local.time) {
        throw new Error(`"${exception.date}" has a time; a date is a whole day (use from/to for hours)`);
      }
      return local.date;
    });
    return {
      start: `${date}T00:00`,
      end: `${nextDate(date)}T00:00`,
      lend: exception.lend,
      label: `${date}${reason}`,
    };
  }
  if (exception.from === undefined || exception.to === undefined) {
    throw new Error(
      `${exception.from === undefined ? "from" : "to"}: an exception needs a date, or both from and to`,
    );
  }
  const start = field("from", () => {
    const local = parseLocal(exception.from!);
    return `${local.date}T${local.time ?? "00:00"}`;
  });
  const end = field("to", () => {
    const local = parseLocal(exception.to!);
    return local.time ? `${local.date}T${local.time}` : `${nextDate(local.date)}T00:00`;
  });
  if (end <= start) throw new Error(`to: "${exception.to}" is not after from "${exception.from}"`);
  return { start, end, lend: exception.lend, label: `${exception.from}–${exception.to}${reason}` };
}

/**
 * The spans of `exceptions`, or the first problem naming its field (`spec.exceptions[i].…`):
 * an invalid date, or two overlapping exceptions that disagree on `lend`.
 */
export function exceptionSpans(
  exceptions: readonly CalendarException[] | undefined,
): { spans: ExceptionSpan[]; problem?: string } {
  const spans: ExceptionSpan[] = [];
  for (const [i, exception] of (exceptions ?? []).entries()) {
    let span: ExceptionSpan;
    try {
      span = exceptionSpan(exception);
    } catch (err) {
      return { spans: [], problem: `spec.exceptions[${i}].${(err as Error).message}` };
    }
    const clash = spans.findIndex((s) => s.lend !== span.lend && s.start < span.end && span.start < s.end);
    if (clash >= 0) {
      return {
        spans: [],
        problem: `spec.exceptions[${i}]: ${span.label} overlaps spec.exceptions[${clash}] (${
          spans[clash].label
        }) and says the opposite (lend: ${span.lend})`,
      };
    }
    spans.push(span);
  }
  return { spans };
}

/** The span covering the local wall-clock `key`, if any (overlapping spans agree on `lend`). */
export function spanAt(spans: readonly ExceptionSpan[], key: string): ExceptionSpan | undefined {
  return spans.find((s) => s.start <= key && key < s.end);
}
