/**
 * The chaos world: Kubeocean in its production shape, minus a kubelet, on local clusters.
 *
 * - **computing** cluster (kube-apiserver, kube-controller-manager, kube-scheduler; no nodes of
 *   its own) with the CRDs, namespace `kubeocean-system`, the shipped ServiceAccounts, and a fast
 *   node lifecycle: `--node-monitor-period=2s --node-monitor-grace-period=20s`, so that a virtual
 *   node whose heartbeats stop (its syncer died) turns NotReady within about 20 s instead of 50 s.
 * - **worker** cluster with four kwok nodes: three labelled `chaos.kubeocean.io/pool=main` (lent by
 *   the policy `chaos-main`, where bursts run) and one `pool=spare` (no policy selects it; the
 *   fuzzer's policies may).
 * - **two managers** (`controllers/main.ts manager --syncer-mode=deployment --leader-elect`), one
 *   binding `worker` made with `bind()`, and **two syncers** for it, started as its rendered
 *   Deployment would run them (`syncer --cluster-binding worker --leader-elect …`) — the world
 *   plays the kubelet for that Deployment, restarting a process that exits on its own.
 *   Identities (`$POD_NAME`) are `manager-N` and `syncer-N`; the Leases `kubeocean-manager` and
 *   `kubeocean-syncer-worker` in `kubeocean-system` name the leaders.
 *
 * Scenarios use the measuring helpers ({@linkcode ChaosWorld.startBurst}, `converge`, `audit`,
 * `drain`) and the process helpers on {@linkcode ChaosWorld.fleet}.
 *
 * @module
 */

import { CoreV1Api, type Node } from "../../apis/core/v1/mod.ts";
import { type ClusterBinding, KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { bind, installCrd } from "../../controllers/bind/bind.ts";
import { applyObject } from "../../controllers/common/apply.ts";
import { LABEL_CLUSTER_BINDING, SYSTEM_NAMESPACE } from "../../controllers/common/names.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import type { Cluster } from "../../toolkit/envtest/cluster.ts";
import { Environment } from "../../toolkit/envtest/environment.ts";
import { connect } from "../../toolkit/envtest/testing.ts";
import { applyPolicy } from "../syncer/fixture.ts";
import type { AuditResult } from "./audit.ts";
import {
  Burst,
  BURST_CONFIGMAP,
  BURST_LABEL,
  BURST_SECRET,
  type BurstOptions,
  CHAOS_NAMESPACE,
  POOL_LABEL,
} from "./burst.ts";
import { auditNow, converge, type Convergence, drain, type MeasureTarget } from "./measure.ts";
import { poll } from "./poll.ts";
import { type ExitRecord, Fleet } from "./processes.ts";
import { forceCleanup } from "./reset.ts";

/** How the suite runs. */
export interface ChaosSettings {
  /** `--quick`: scenarios may use smaller counts. */
  quick: boolean;
  /** Seed of the suite's random choices (printed, and given again with `--seed`). */
  seed: number;
  /** Progress lines (stderr). */
  log: (line: string) => void;
}

/** The computing cluster's kube-controller-manager flags (see the module documentation). */
export const FAST_NODE_LIFECYCLE = ["--node-monitor-period=2s", "--node-monitor-grace-period=20s"];

/** The world's binding, its clusterID and mount namespace. */
export const BINDING = "worker";
export const CLUSTER_ID = "w1";
export const MOUNT_NAMESPACE = "kubeocean-worker";
/** Virtual nodes the world lends (the `main` pool). */
export const MAIN_NODES = 3;

/** See the module documentation. */
export class ChaosWorld implements MeasureTarget {
  readonly binding = BINDING;
  readonly clusterID = CLUSTER_ID;
  readonly mountNamespace = MOUNT_NAMESPACE;
  /** The manager's namespace in the computing cluster. */
  readonly namespace = SYSTEM_NAMESPACE;
  /** Whether the binding reached phase Ready when the world started (see {@linkcode bindingProblem}). */
  bindingReadyAtStart = false;
  #notes: string[] = [];
  #bursts: Burst[] = [];
  #scenarioStart = Date.now();

  private constructor(
    /** Where logs and cluster state live. */
    readonly dir: string,
    readonly env: Environment,
    /** Admin clients of both clusters. */
    readonly computing: KubeClient,
    readonly worker: KubeClient,
    /** The managers and syncers. */
    readonly fleet: Fleet,
    readonly settings: ChaosSettings,
  ) {}

  /** The computing cluster (restartApiserver, compactEtcd, logTail…). */
  get computingCluster(): Cluster {
    return this.env.cluster("computing");
  }

  /** The worker cluster. */
  get workerCluster(): Cluster {
    return this.env.cluster("worker");
  }

  /** Starts everything (10–70 s on two cores, as busy as they are); stops what it started when a step fails. */
  static async start(settings: ChaosSettings, dir: string): Promise<ChaosWorld> {
    const log = settings.log;
    const started = Date.now();
    const capacity = { cpu: "32", memory: "128Gi", pods: "250" };
    const env = await Environment.start({
      dir: `${dir}/clusters`,
      clusters: [
        { name: "computing", controlPlane: true, controllerManagerArgs: FAST_NODE_LIFECYCLE },
        { name: "worker", controlPlane: true, kwok: true, nodeTemplate: { capacity } },
      ],
    });
    log(`clusters up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    let fleet: Fleet | undefined;
    const clients: KubeClient[] = [];
    try {
      const client = async (name: string) => {
        const c = await connect(env.cluster(name), {
          qps: 200,
          burst: 400,
          timeoutMs: 15_000,
          maxRetries: 2,
        });
        clients.push(c);
        return c;
      };
      const computing = await client("computing");
      const worker = await client("worker");
      const workerCluster = env.cluster("worker");
      await workerCluster.createNodes(MAIN_NODES, { template: { labels: { [POOL_LABEL]: "main" } } });
      await workerCluster.createNodes(1, { template: { labels: { [POOL_LABEL]: "spare" } } });
      await installCrd(computing, "kubeocean.io_clusterbindings.yaml");
      await bootstrapComputing(computing);
      await Deno.mkdir(`${dir}/logs`, { recursive: true });
      fleet = new Fleet({
        kubeconfig: env.cluster("computing").kubeconfig,
        computing,
        namespace: SYSTEM_NAMESPACE,
        binding: BINDING,
        logDir: `${dir}/logs`,
        log,
      });
      fleet.spawn("manager");
      fleet.spawn("manager");
      await bind({
        computing,
        worker,
        name: BINDING,
        clusterID: CLUSTER_ID,
        mountNamespace: MOUNT_NAMESPACE,
        waitMs: 0,
        log: () => {},
      });
      await applyPolicy(worker, "chaos-main", {
        cluster: BINDING,
        nodeSelector: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: POOL_LABEL, operator: "In", values: ["main"] }] }],
        },
      });
      fleet.spawn("syncer");
      fleet.spawn("syncer");
      const world = new ChaosWorld(dir, env, computing, worker, fleet, settings);
      log(`bound in ${((Date.now() - started) / 1000).toFixed(1)} s; waiting for leaders and virtual nodes`);
      await world.#waitSteady(120_000);
      world.bindingReadyAtStart = await world.#waitBindingReady(60_000);
      log(`world ready in ${((Date.now() - started) / 1000).toFixed(1)} s (${dir})`);
      return world;
    } catch (err) {
      await fleet?.stop();
      for (const c of clients) c.close();
      await env.stop();
      throw err;
    }
  }

  /** Waits until both roles have a live leader and the `main` virtual nodes are Ready. */
  async #waitSteady(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    for (const role of ["manager", "syncer"] as const) {
      await poll(`a live ${role} leader`, () => this.fleet.leader(role), {
        timeoutMs,
        signal,
        intervalMs: 500,
      });
    }
    await poll(`${MAIN_NODES} Ready virtual nodes`, async () => {
      const nodes = await this.virtualNodes();
      return nodes.filter(isReady).length >= MAIN_NODES;
    }, { timeoutMs, signal, intervalMs: 500 });
  }

  /** Waits for phase Ready; logs the conditions and returns false when it does not come. */
  async #waitBindingReady(timeoutMs: number): Promise<boolean> {
    try {
      await poll("binding Ready", async () => (await this.bindingObject()).status?.phase === "Ready", {
        timeoutMs,
        intervalMs: 500,
      });
      return true;
    } catch {
      const binding = await this.bindingObject().catch(() => undefined);
      this.settings.log(
        `note: ClusterBinding ${BINDING} is not Ready (${
          describeBinding(binding)
        }); scenarios check that it is ` +
          `not Failed and that Validated, Connected and Authorized hold instead, and rely on virtual nodes and pods`,
      );
      return false;
    }
  }

  /** This binding's virtual nodes. */
  async virtualNodes(): Promise<Node[]> {
    return (await new CoreV1Api(this.computing).nodes().list({
      labelSelector: `${LABEL_CLUSTER_BINDING}=${BINDING}`,
    }))
      .items;
  }

  /** The world's ClusterBinding as it is now. */
  async bindingObject(): Promise<ClusterBinding> {
    return await new KubeoceanIoV1beta1Api(this.computing).clusterbindings().get(BINDING);
  }

  /**
   * What is wrong with the binding now, or undefined: it must be Ready — or, when it was not Ready
   * even at the start (see the start log), not Failed with Validated, Connected and Authorized True.
   */
  async bindingProblem(): Promise<string | undefined> {
    const binding = await this.bindingObject();
    const phase = binding.status?.phase;
    if (this.bindingReadyAtStart) return phase === "Ready" ? undefined : describeBinding(binding);
    const wrong = ["Validated", "Connected", "Authorized"].filter((type) =>
      binding.status?.conditions?.find((c) => c.type === type)?.status !== "True"
    );
    return phase === "Failed" || wrong.length > 0 ? describeBinding(binding) : undefined;
  }

  /** Starts a burst of `count` pods named `<name>-<n>` (see {@linkcode Burst}); the world drains it after the scenario. */
  startBurst(name: string, count: number, signal: AbortSignal, options: BurstOptions = {}): Burst {
    const burst = new Burst(this.computing, `${name}-${Date.now().toString(36)}`, count, signal, options);
    this.#bursts.push(burst);
    return burst;
  }

  /** Waits until every pod of `burst` is Running with one twin, or lost for good (at most `timeoutMs`). */
  async converge(burst: Burst, signal: AbortSignal, timeoutMs = 180_000): Promise<Convergence> {
    return await converge(this, burst, { timeoutMs, signal });
  }

  /** Lost pods of `bursts`, duplicates and orphans right now. */
  async audit(bursts: readonly Burst[] = []): Promise<AuditResult> {
    const expected = new Map(bursts.flatMap((b) => [...b.expected]));
    return await auditNow(this, expected);
  }

  /** Deletes `burst`'s pods, waits until they and their twins are gone, and audits what is left. */
  async drain(
    burst: Burst,
    signal?: AbortSignal,
    timeoutMs = 120_000,
  ): Promise<AuditResult & { settled: boolean }> {
    return await drain(this, burst.selector, { timeoutMs, signal });
  }

  /** Adds a remark to the current scenario's row (e.g. a takeover time, the fuzzer's seed). */
  note(text: string): void {
    this.#notes.push(text);
  }

  /** Starts a scenario's bookkeeping (notes, bursts, crashes). */
  beginScenario(): void {
    this.#notes = [];
    this.#bursts = [];
    this.#scenarioStart = Date.now();
  }

  /** The notes of the current scenario. */
  get notes(): readonly string[] {
    return this.#notes;
  }

  /** The bursts the current scenario started. */
  get bursts(): readonly Burst[] {
    return this.#bursts;
  }

  /** Processes that exited on their own since the scenario began (the world restarted them). */
  crashes(): ExitRecord[] {
    return this.fleet.crashesSince(this.#scenarioStart);
  }

  /**
   * Brings the world back to its steady state before a scenario: both API servers up, two live
   * managers and two live syncers with a leader each, Ready virtual nodes, the binding healthy
   * (see {@linkcode bindingProblem}), and nothing left of
   * earlier bursts (drained as a user would; what does not go within two minutes is forced out,
   * and counted). Returns how many objects had to be forced.
   */
  async prepare(signal?: AbortSignal): Promise<number> {
    for (const cluster of [this.computingCluster, this.workerCluster]) {
      if (!cluster.processes.some((p) => p.name === "kube-apiserver")) await cluster.startApiserver();
    }
    await poll("pending process restarts", () => this.fleet.pendingRestarts === 0, {
      timeoutMs: 30_000,
      signal,
    });
    for (const role of ["manager", "syncer"] as const) {
      for (let n = this.fleet.live(role).length; n < 2; n++) this.fleet.spawn(role);
    }
    await this.#waitSteady(120_000, signal);
    await poll("the binding healthy", async () => !await this.bindingProblem(), {
      timeoutMs: 120_000,
      signal,
    });
    const left = await drain(this, BURST_LABEL, { timeoutMs: 120_000, signal });
    return left.settled && left.orphans === 0 ? 0 : await forceCleanup(this);
  }

  /** Stops every process and both clusters; keeps `dir` (logs) unless `removeDir`. */
  async stop(removeDir = false): Promise<void> {
    await this.fleet.stop();
    this.computing.close();
    this.worker.close();
    await this.env.stop();
    if (removeDir) await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** Namespaces, ServiceAccounts and the objects burst pods read. */
async function bootstrapComputing(computing: KubeClient): Promise<void> {
  const objects = [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: SYSTEM_NAMESPACE } },
    // What deploy/manager/rbac.yaml ships: the ServiceAccounts rendered Deployments run as.
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: "kubeocean-syncer", namespace: SYSTEM_NAMESPACE },
    },
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: "kubeocean-proxier", namespace: SYSTEM_NAMESPACE },
    },
    { apiVersion: "v1", kind: "Namespace", metadata: { name: CHAOS_NAMESPACE } },
  ];
  for (const object of objects) await applyObject(computing, object);
  const core = new CoreV1Api(computing);
  await core.configmaps(CHAOS_NAMESPACE).create({
    metadata: { name: BURST_CONFIGMAP },
    data: { mode: "chaos" },
  });
  await core.secrets(CHAOS_NAMESPACE).create({
    metadata: { name: BURST_SECRET },
    stringData: { token: "s3cret" },
  });
}

function isReady(node: Node): boolean {
  return node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

/** `phase=Pending; SyncerReady=False (NoHeartbeat: …)`: the phase and every condition that is not True. */
export function describeBinding(binding: ClusterBinding | undefined): string {
  if (!binding) return "binding not readable";
  const problems = (binding.status?.conditions ?? []).filter((c) => c.status !== "True").map((c) =>
    `${c.type}=${c.status} (${c.reason}: ${c.message})`
  );
  return [`phase=${binding.status?.phase ?? "none"}`, ...problems].join("; ");
}
