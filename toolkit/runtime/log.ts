/**
 * Structured logging: JSON lines or human-readable text on standard error, with levels and
 * per-controller / per-object context fields.
 *
 * ```ts
 * const log = new Logger({ level: "info", format: "json" }).with({ controller: "configmaps" });
 * log.with({ object: "default/app" }).info("reconciled", { changed: true });
 * ```
 *
 * @module
 */

/** Log levels, most verbose first. */
export type LogLevel = "debug" | "info" | "warn" | "error";
/** Output formats. */
export type LogFormat = "json" | "text";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Options of a {@linkcode Logger}. */
export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Where lines go (default: standard error). */
  sink?: (line: string) => void;
  now?: () => Date;
}

/** A structured logger; {@linkcode Logger.with} derives a logger with more context fields. */
export class Logger {
  readonly level: LogLevel;
  readonly format: LogFormat;
  readonly #sink: (line: string) => void;
  readonly #now: () => Date;

  constructor(options: LoggerOptions = {}, readonly fields: Record<string, unknown> = {}) {
    this.level = options.level ?? "info";
    this.format = options.format ?? "text";
    this.#sink = options.sink ?? ((line) => console.error(line));
    this.#now = options.now ?? (() => new Date());
  }

  /** A logger that adds `fields` to every line. */
  with(fields: Record<string, unknown>): Logger {
    return new Logger({ level: this.level, format: this.format, sink: this.#sink, now: this.#now }, {
      ...this.fields,
      ...fields,
    });
  }

  /** Whether `level` is enabled. */
  enabled(level: LogLevel): boolean {
    return RANK[level] >= RANK[this.level];
  }

  debug(message: string, fields?: Record<string, unknown>): void {
    this.log("debug", message, fields);
  }
  info(message: string, fields?: Record<string, unknown>): void {
    this.log("info", message, fields);
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.log("warn", message, fields);
  }
  error(message: string, fields?: Record<string, unknown>): void {
    this.log("error", message, fields);
  }

  /** Writes one line at `level`. `Error` values in fields are logged with their message. */
  log(level: LogLevel, message: string, fields: Record<string, unknown> = {}): void {
    if (!this.enabled(level)) return;
    const all: Record<string, unknown> = { ...this.fields, ...fields };
    for (const [key, value] of Object.entries(all)) {
      if (value instanceof Error) all[key] = value.message;
    }
    const ts = this.#now().toISOString();
    if (this.format === "json") {
      this.#sink(JSON.stringify({ ts, level, msg: message, ...all }));
      return;
    }
    const rendered = Object.entries(all).map(([k, v]) =>
      `${k}=${typeof v === "string" && !/\s/.test(v) ? v : JSON.stringify(v)}`
    )
      .join(" ");
    this.#sink(`${ts} ${level.toUpperCase().padEnd(5)} ${message}${rendered ? ` ${rendered}` : ""}`);
  }
}

/** A logger that discards everything (for tests and libraries). */
export const silentLogger: Logger = new Logger({ level: "error", sink: () => {} });
