/**
 * Processes started by the test environment: output goes to a log file, the PID is recorded, and
 * stopping sends SIGTERM, then SIGKILL after a grace period, and waits until the process is gone.
 * A process can be stopped from another OS process too (`envtest down`), by PID, after checking
 * that the PID still runs the binary we started, so that a reused PID is never killed.
 *
 * @module
 */

import { tail } from "./command.ts";

/** What is persisted about a started process. */
export interface ProcessRecord {
  /** Role within the cluster, e.g. `etcd` or `kube-apiserver`. */
  name: string;
  pid: number;
  binary: string;
  logFile: string;
}

/** Options of {@linkcode ManagedProcess.start}. */
export interface StartProcessOptions {
  name: string;
  binary: string;
  args: string[];
  logFile: string;
  env?: Record<string, string>;
  cwd?: string;
  /** Detached processes survive the exit of the process that started them (`envtest up`). */
  detached?: boolean;
}

/** A child process whose output goes to a log file. */
export class ManagedProcess {
  readonly #child: Deno.ChildProcess;
  #status: Deno.CommandStatus | undefined;
  readonly status: Promise<Deno.CommandStatus>;

  private constructor(readonly record: ProcessRecord, child: Deno.ChildProcess, detached: boolean) {
    this.#child = child;
    this.status = child.status.then((s) => this.#status = s);
    if (detached) child.unref();
  }

  /** Starts `binary args…` with standard output and error appended to `logFile`. */
  static start(options: StartProcessOptions): ManagedProcess {
    let child: Deno.ChildProcess;
    try {
      // `exec` keeps the PID: the shell only sets up the redirection.
      child = new Deno.Command("/bin/sh", {
        args: [
          "-c",
          'log="$1"; shift; exec "$@" >>"$log" 2>&1',
          "sh",
          options.logFile,
          options.binary,
          ...options.args,
        ],
        env: options.env,
        cwd: options.cwd,
        stdin: "null",
        stdout: "null",
        stderr: "null",
        detached: options.detached ?? false,
      }).spawn();
    } catch (err) {
      throw new Error(`cannot start ${options.name} (${options.binary}): ${(err as Error).message}`);
    }
    return new ManagedProcess(
      { name: options.name, pid: child.pid, binary: options.binary, logFile: options.logFile },
      child,
      options.detached ?? false,
    );
  }

  get pid(): number {
    return this.record.pid;
  }

  /** The exit status once the process has ended, else `undefined`. */
  get exitStatus(): Deno.CommandStatus | undefined {
    return this.#status;
  }

  /** Stops the process: SIGTERM, then SIGKILL after `graceMs`. Resolves once it has exited. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.#status) return;
    signal(this.pid, "SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        signal(this.pid, "SIGKILL");
        resolve();
      }, graceMs);
    });
    await Promise.race([this.status, killed]);
    await this.status;
    clearTimeout(timer);
  }

  /** The last `lines` lines of the process's log. */
  async logTail(lines = 25): Promise<string> {
    return await readLogTail(this.record.logFile, lines);
  }
}

function signal(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** The last `lines` lines of a log file, or a note that it is missing. */
export async function readLogTail(logFile: string, lines = 25): Promise<string> {
  try {
    return tail(await Deno.readTextFile(logFile), lines);
  } catch {
    return `(no log at ${logFile})`;
  }
}

/**
 * Whether `record.pid` is alive and still runs `record.binary` (a zombie counts as gone).
 * Reads `/proc`, so it works for processes started by another OS process.
 */
export function isRecordAlive(record: ProcessRecord): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${record.pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state === "Z" || state === "X") return false;
    const argv0 = Deno.readTextFileSync(`/proc/${record.pid}/cmdline`).split("\0")[0];
    return argv0 === record.binary;
  } catch {
    return false;
  }
}

/** Stops a process known only by its record (SIGTERM, then SIGKILL after `graceMs`), then waits until it is gone. */
export async function stopRecord(record: ProcessRecord, graceMs = 5_000): Promise<void> {
  if (!isRecordAlive(record)) return;
  signal(record.pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (isRecordAlive(record) && Date.now() < deadline) await delay(50);
  if (!isRecordAlive(record)) return;
  signal(record.pid, "SIGKILL");
  const hardDeadline = Date.now() + 10_000;
  while (isRecordAlive(record)) {
    if (Date.now() > hardDeadline) throw new Error(`${record.name} (pid ${record.pid}) survived SIGKILL`);
    await delay(50);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
