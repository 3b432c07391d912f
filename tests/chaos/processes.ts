/**
 * Kubeocean's own processes in the chaos world — managers and one binding's syncers, each
 * `controllers/main.ts` as its Deployment would run it — and the kubelet the world plays for them:
 * a process that exits on its own is restarted (same identity, like a container restart) after
 * {@linkcode RESTART_DELAY_MS}; a process the test kills is not. Every exit is recorded, with the
 * end of its log, so that a scenario can tell a crash from a kill.
 *
 * @module
 */

import { CoordinationK8sIoV1Api } from "../../apis/coordination.k8s.io/v1/mod.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { allocatePort } from "../../toolkit/envtest/ports.ts";
import { spawnEntrypoint, spawnSyncer } from "../fixtures/entrypoint.ts";

/** What a process runs as. */
export type Role = "manager" | "syncer";

/** Log level of every Kubeocean process: `$KUBEOCEAN_CHAOS_LOG_LEVEL`, else info. */
const LOG_LEVEL = Deno.env.get("KUBEOCEAN_CHAOS_LOG_LEVEL") || "info";

/** Pause before the world restarts a process that exited on its own (a kubelet waits 10 s; we are quicker). */
export const RESTART_DELAY_MS = 2_000;

/** One exit of a process. */
export interface ExitRecord {
  identity: string;
  role: Role;
  code: number;
  signal: Deno.Signal | null;
  /** `Date.now()` when the exit was seen. */
  at: number;
  /** The test killed it (rather than it ending on its own). */
  expected: boolean;
  /** The last lines of its log (crashes only). */
  logTail: string;
}

/** How the fleet starts its processes. */
export interface FleetConfig {
  /** Admin kubeconfig of the computing cluster (what the rendered Deployments' pods would get from their ServiceAccount). */
  kubeconfig: string;
  /** Computing cluster client (reads the leader-election Leases). */
  computing: KubeClient;
  /** The manager's namespace (`kubeocean-system`). */
  namespace: string;
  /** The binding the syncers serve. */
  binding: string;
  /** Directory for one log file per identity. */
  logDir: string;
  /** Progress sink. */
  log: (line: string) => void;
}

/** A running (or ended) Kubeocean process. */
export class ChaosProcess {
  readonly healthPort: number;
  readonly startedAt = Date.now();
  /** Set once the process has ended. */
  exit?: ExitRecord;
  readonly ended: Promise<ExitRecord>;
  #expected = false;
  readonly #child: Deno.ChildProcess;

  constructor(
    readonly role: Role,
    readonly identity: string,
    readonly logFile: string,
    spawn: (healthPort: number) => Deno.ChildProcess,
    healthPort?: number,
  ) {
    this.healthPort = healthPort ?? allocatePort();
    this.#child = spawn(this.healthPort);
    const logged = this.#pipeLog();
    this.ended = this.#child.status.then(async (status) => {
      await logged;
      const record: ExitRecord = {
        identity,
        role,
        code: status.code,
        signal: status.signal,
        at: Date.now(),
        expected: this.#expected,
        logTail: this.#expected ? "" : await readTail(logFile, 30),
      };
      this.exit = record;
      return record;
    });
  }

  /** The operating system's process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Whether the process has not exited (it may still be starting). */
  get running(): boolean {
    return this.exit === undefined;
  }

  /** Sends `signal` (default SIGKILL: a crash, no lease release) and waits for the exit. */
  async kill(signal: Deno.Signal = "SIGKILL"): Promise<ExitRecord> {
    this.#expected = true;
    try {
      this.#child.kill(signal);
    } catch {
      // already ended
    }
    return await this.ended;
  }

  /** Whether `/healthz` answers 200 within `timeoutMs`. */
  async healthy(timeoutMs = 3_000): Promise<boolean> {
    if (!this.running) return false;
    try {
      const response = await fetch(`http://127.0.0.1:${this.healthPort}/healthz`, {
        signal: AbortSignal.timeout(timeoutMs),
      });
      await response.body?.cancel();
      return response.status === 200;
    } catch {
      return false;
    }
  }

  /** Copies the process's stderr into its log file as it comes (so that the file is current while it runs). */
  async #pipeLog(): Promise<void> {
    const file = await Deno.open(this.logFile, { create: true, append: true, write: true });
    try {
      for await (const chunk of this.#child.stderr) {
        for (let written = 0; written < chunk.length;) written += await file.write(chunk.subarray(written));
      }
    } catch {
      // the stream ended with the process
    } finally {
      file.close();
    }
  }
}

/** Managers and syncers of the world, with leader lookup and the world's kubelet behaviour. */
export class Fleet {
  readonly #processes: ChaosProcess[] = [];
  readonly exits: ExitRecord[] = [];
  readonly #counters: Record<Role, number> = { manager: 0, syncer: 0 };
  #stopping = false;
  #pendingRestarts = 0;

  constructor(readonly config: FleetConfig) {}

  /** Crashed processes the world will restart shortly. */
  get pendingRestarts(): number {
    return this.#pendingRestarts;
  }

  /** The processes of `role` that have not exited, oldest first. */
  live(role?: Role): ChaosProcess[] {
    return this.#processes.filter((p) => p.running && (!role || p.role === role));
  }

  /** Starts a new process of `role` with a fresh identity (`manager-3`, `syncer-4`…). */
  spawn(role: Role): ChaosProcess {
    this.#counters[role]++;
    return this.#start(role, `${role}-${this.#counters[role]}`);
  }

  #start(role: Role, identity: string, healthPort?: number): ChaosProcess {
    const { kubeconfig, namespace, binding, logDir } = this.config;
    const env = { POD_NAME: identity, POD_NAMESPACE: namespace };
    const logFile = `${logDir}/${identity}.log`;
    const spawn = role === "manager"
      ? (port: number) =>
        spawnEntrypoint(
          [
            "manager",
            "--syncer-mode=deployment",
            "--leader-elect",
            "--namespace",
            namespace,
            "--kubeconfig",
            kubeconfig,
            "--image",
            "kubeocean:chaos",
            "--metrics-bind-address",
            "0",
            "--health-probe-bind-address",
            `127.0.0.1:${port}`,
            "--log-level",
            LOG_LEVEL,
          ],
          "piped",
          env,
        )
      : (port: number) =>
        spawnSyncer(kubeconfig, binding, {
          healthPort: port,
          stderr: "piped",
          env,
          // What the rendered syncer Deployment adds (no proxier pod runs here, so virtual nodes
          // advertise the default proxier address).
          args: [
            "--leader-elect",
            "--namespace",
            namespace,
            "--proxier-pods-namespace",
            namespace,
            "--proxier-port",
            "10250",
            "--log-level",
            LOG_LEVEL,
          ],
        });
    const process = new ChaosProcess(role, identity, logFile, spawn, healthPort);
    this.#processes.push(process);
    process.ended.then((exit) => this.#onExit(process, exit));
    return process;
  }

  #onExit(process: ChaosProcess, exit: ExitRecord): void {
    this.exits.push(exit);
    if (exit.expected || this.#stopping) return;
    this.config.log(
      `${exit.identity} exited on its own (code ${exit.code}${
        exit.signal ? `, ${exit.signal}` : ""
      }); restarting it in ${RESTART_DELAY_MS / 1000} s`,
    );
    this.#pendingRestarts++;
    setTimeout(() => {
      this.#pendingRestarts--;
      if (!this.#stopping) this.#start(process.role, process.identity, process.healthPort);
    }, RESTART_DELAY_MS);
  }

  /** Exits the test did not cause since `since` (`Date.now()` value). */
  crashesSince(since: number): ExitRecord[] {
    return this.exits.filter((e) => !e.expected && e.at >= since);
  }

  /** The Lease that elects the leader of `role`. */
  leaseName(role: Role): string {
    return role === "manager" ? "kubeocean-manager" : `kubeocean-syncer-${this.config.binding}`;
  }

  /** The identity the leader-election Lease of `role` names (undefined when none). */
  async leaderIdentity(role: Role): Promise<string | undefined> {
    const lease = await new CoordinationK8sIoV1Api(this.config.computing).leases(this.config.namespace)
      .get(this.leaseName(role));
    return lease.spec?.holderIdentity || undefined;
  }

  /** The live process that holds `role`'s Lease, if any. */
  async leader(role: Role): Promise<ChaosProcess | undefined> {
    const identity = await this.leaderIdentity(role);
    return this.live(role).find((p) => p.identity === identity);
  }

  /** Whether `process` has not exited and its `/healthz` answers 200. */
  async isAlive(process: ChaosProcess): Promise<boolean> {
    return process.running && await process.healthy();
  }

  /** The identities of live processes whose `/healthz` does not answer 200 (empty when all are fine). */
  async notAlive(): Promise<string[]> {
    const live = this.live();
    const alive = await Promise.all(live.map((p) => this.isAlive(p)));
    return live.filter((_, i) => !alive[i]).map((p) => p.identity);
  }

  /**
   * Kills `process` with `signal` (default SIGKILL) and starts it again with the same identity and
   * health port, as a container restart would; returns the new process.
   */
  async restart(process: ChaosProcess, signal: Deno.Signal = "SIGKILL"): Promise<ChaosProcess> {
    await process.kill(signal);
    return this.#start(process.role, process.identity, process.healthPort);
  }

  /** How many lines of every process's log (restarts included) match `pattern` so far. */
  async countInLogs(pattern: RegExp): Promise<number> {
    let count = 0;
    for await (const entry of Deno.readDir(this.config.logDir)) {
      if (!entry.isFile) continue;
      const text = await Deno.readTextFile(`${this.config.logDir}/${entry.name}`).catch(() => "");
      for (const line of text.split("\n")) if (pattern.test(line)) count++;
    }
    return count;
  }

  /** Stops every process (SIGTERM, then SIGKILL after 10 s); nothing is restarted afterwards. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(
      this.live().map(async (p) => {
        const timer = setTimeout(() => p.kill("SIGKILL"), 10_000);
        await p.kill("SIGTERM");
        clearTimeout(timer);
      }),
    );
  }
}

/** The last `lines` lines of a text file ("" when it cannot be read). */
export async function readTail(path: string, lines: number): Promise<string> {
  try {
    const text = await Deno.readTextFile(path);
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}
