/**
 * A set of named local clusters started together: the envtest-like environment used by our tests,
 * the demo, and anyone writing controllers with the toolkit.
 *
 * ```ts
 * const env = await Environment.start({
 *   clusters: [{ name: "computing", controlPlane: true }, { name: "worker1", nodes: 3, metricsServer: true }],
 * });
 * try {
 *   console.log(env.cluster("worker1").kubeconfig);
 * } finally {
 *   await env.stop();
 * }
 * ```
 *
 * @module
 */

import {
  type ControlPlaneBinaries,
  ensureBinaries,
  ensureMetricsServer,
  formatDuration,
} from "./binaries.ts";
import { Cluster, type ClusterOptions, type ClusterState } from "./cluster.ts";
import { writeKubeconfig } from "./kubeconfig_file.ts";
import { isRecordAlive } from "./process.ts";

/** Options of {@linkcode Environment.start}. */
export interface EnvironmentOptions {
  clusters: ClusterOptions[];
  /** State directory; a fresh temporary directory (removed on stop) when omitted. */
  dir?: string;
  /** Binaries to use; resolved with {@linkcode ensureBinaries} when omitted. */
  binaries?: ControlPlaneBinaries;
  /** Keep processes running after this OS process exits (`envtest up`). */
  detached?: boolean;
  /** Progress sink (default: none). */
  log?: (line: string) => void;
  /** Start timeout per cluster (default 180 s). */
  timeoutMs?: number;
}

/** The persisted state of an environment (`<dir>/envtest.json`). */
export interface EnvironmentState {
  dir: string;
  kubeconfig: string;
  startedAt: string;
  clusters: ClusterState[];
}

const STATE_FILE = "envtest.json";

/** A running set of clusters. */
export class Environment {
  #stopped = false;

  private constructor(
    readonly dir: string,
    readonly clusters: Cluster[],
    readonly kubeconfig: string,
    readonly binaries: ControlPlaneBinaries,
    readonly ownsDir: boolean,
    readonly startedAt: string,
  ) {}

  /** Starts every cluster (in parallel); on any failure stops all of them and throws. */
  static async start(options: EnvironmentOptions): Promise<Environment> {
    const names = options.clusters.map((c) => c.name);
    const duplicate = names.find((n, i) => names.indexOf(n) !== i);
    if (duplicate) throw new Error(`cluster name "${duplicate}" is used twice`);
    if (names.length === 0) throw new Error("no clusters requested");
    const binaries = await resolveBinaries(options);
    const ownsDir = !options.dir;
    const dir = options.dir
      ? absolute(options.dir)
      : await Deno.makeTempDir({ prefix: "kubeocean-envtest-" });
    await Deno.mkdir(dir, { recursive: true });
    const previous = await readState(dir).catch(() => undefined);
    if (previous?.clusters.some((c) => c.processes.some(isRecordAlive))) {
      throw new Error(`${dir} already holds a running environment; run "envtest down --dir ${dir}" first`);
    }
    for (const stale of previous?.clusters ?? []) {
      await Deno.remove(stale.dir, { recursive: true }).catch(() => {});
    }
    const started = Date.now();
    const results = await Promise.allSettled(
      options.clusters.map((c, index) =>
        Cluster.start(c, {
          binaries,
          dir: `${dir}/${c.name}`,
          detached: options.detached,
          log: options.log,
          index,
          timeoutMs: options.timeoutMs,
        })
      ),
    );
    const clusters = results.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
    const failures = results.flatMap((r) => r.status === "rejected" ? [r.reason as Error] : []);
    if (failures.length > 0) {
      await Promise.all(clusters.map((c) => c.stop()));
      if (ownsDir) await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw new Error(`environment failed to start:\n${failures.map((f) => f.message).join("\n\n")}`);
    }
    const kubeconfig = `${dir}/kubeconfig`;
    await writeKubeconfig(kubeconfig, clusters.map((c) => c.kubeconfigEntry));
    const env = new Environment(dir, clusters, kubeconfig, binaries, ownsDir, new Date().toISOString());
    await env.saveState();
    options.log?.(
      `${clusters.length} cluster(s) ready in ${
        formatDuration(Date.now() - started)
      }; kubeconfig ${kubeconfig}`,
    );
    return env;
  }

  /** Attaches to an environment started earlier (e.g. by `envtest up`) from its state directory. */
  static async attach(dir: string, binaries?: ControlPlaneBinaries): Promise<Environment> {
    const state = await readState(absolute(dir));
    const bins = binaries ?? await ensureBinaries({ allowBuild: false });
    const clusters = await Promise.all(state.clusters.map((c) => Cluster.attach(c, bins)));
    return new Environment(state.dir, clusters, state.kubeconfig, bins, false, state.startedAt);
  }

  /** The cluster called `name`; throws when there is none. */
  cluster(name: string): Cluster {
    const found = this.clusters.find((c) => c.name === name);
    if (!found) {
      throw new Error(
        `no cluster "${name}" in this environment (have ${this.clusters.map((c) => c.name).join(", ")})`,
      );
    }
    return found;
  }

  /** The persisted form of this environment. */
  get state(): EnvironmentState {
    return {
      dir: this.dir,
      kubeconfig: this.kubeconfig,
      startedAt: this.startedAt,
      clusters: this.clusters.map((c) => c.state),
    };
  }

  /** Writes `<dir>/envtest.json`; call after changing the clusters (e.g. adding nodes). */
  async saveState(): Promise<void> {
    await Deno.writeTextFile(`${this.dir}/${STATE_FILE}`, JSON.stringify(this.state, null, 2) + "\n");
  }

  /** A summary per cluster: kubeconfig, API server URL, nodes and whether every process is alive. */
  summary(): Record<string, { kubeconfig: string; server: string; nodes: string[]; running: boolean }> {
    return Object.fromEntries(this.clusters.map((c) => [c.name, {
      kubeconfig: c.kubeconfig,
      server: c.server,
      nodes: [...c.state.nodes],
      running: c.processes.length > 0 && c.processes.every(isRecordAlive),
    }]));
  }

  /** Stops every process of every cluster and removes the state (the whole directory if it was temporary). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await Promise.all(this.clusters.map((c) => c.stop()));
    await Deno.remove(`${this.dir}/${STATE_FILE}`).catch(() => {});
    await Deno.remove(this.kubeconfig).catch(() => {});
    if (this.ownsDir) await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    else await Deno.remove(this.dir).catch(() => {}); // only if empty
  }

  /** Leaves every cluster running and releases this object's resources (used by `envtest up`). */
  release(): void {
    for (const cluster of this.clusters) cluster.release();
  }

  /** Lets `await using env = await Environment.start(...)` stop the environment. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * The given binaries, or {@linkcode ensureBinaries}'s; plus metrics-server (built on first use)
 * when a cluster asks for it and the binaries carry none.
 */
async function resolveBinaries(options: EnvironmentOptions): Promise<ControlPlaneBinaries> {
  const binaries = options.binaries ?? await ensureBinaries({ log: options.log });
  if (!options.clusters.some((c) => c.metricsServer) || binaries.metricsServer) return binaries;
  const metricsServer = await ensureMetricsServer({ log: options.log, versions: binaries.versions });
  return { ...binaries, metricsServer };
}

/** Reads `<dir>/envtest.json`. */
export async function readState(dir: string): Promise<EnvironmentState> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dir}/${STATE_FILE}`)) as EnvironmentState;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw new Error(`no environment in ${dir} (no ${STATE_FILE})`);
    throw err;
  }
}

function absolute(path: string): string {
  if (path.startsWith("/")) return path.replace(/\/+$/, "");
  return `${Deno.cwd()}/${path}`.replace(/\/+$/, "");
}
