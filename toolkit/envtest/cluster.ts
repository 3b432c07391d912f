/**
 * One local Kubernetes cluster on loopback: its own etcd and kube-apiserver, optionally
 * kube-controller-manager and kube-scheduler, optionally kwok with fake nodes and kwok's
 * kubelet server (logs, exec, port-forward), and optionally metrics-server behind the aggregation
 * layer with kwok reporting resource usage (`kubectl top`).
 *
 * @module
 */

import { stringify } from "yaml";
import { AdminClient, probe } from "./admin_client.ts";
import type { ControlPlaneBinaries } from "./binaries.ts";
import { exists, isExecutable, runCommand } from "./command.ts";
import { type KubeconfigEntry, writeKubeconfig } from "./kubeconfig_file.ts";
import {
  type ClusterPki,
  createAggregationPki,
  createClusterPki,
  FRONT_PROXY_CLIENT_NAME,
  issueCertificate,
  type KeyPair,
} from "./pki.ts";
import { allocatePort, isPortFree, releasePort } from "./ports.ts";
import { isRecordAlive, ManagedProcess, type ProcessRecord, readLogTail, stopRecord } from "./process.ts";

/** What a cluster runs. */
export interface ClusterOptions {
  /** Cluster name: `[a-z0-9-]+`; also its kubeconfig context. */
  name: string;
  /** Run kube-controller-manager and kube-scheduler (implied by `nodes`). */
  controlPlane?: boolean;
  /** Number of kwok fake nodes; any number > 0 also runs controller-manager, scheduler and kwok. */
  nodes?: number;
  /** Run kwok even without initial nodes (nodes created later with {@linkcode Cluster.createNodes}). */
  kwok?: boolean;
  /** Capacity and labels of the fake nodes. */
  nodeTemplate?: NodeTemplate;
  /** Fixed ports instead of free ones (mostly for tests of port clashes). */
  ports?: Partial<ClusterPorts>;
  /** Extra kube-apiserver flags, e.g. `--watch-cache=false`. */
  apiserverArgs?: string[];
  /** Extra kube-controller-manager flags, e.g. `--node-monitor-grace-period=20s`. */
  controllerManagerArgs?: string[];
  /** What kwok's kubelet server answers for logs, exec and port-forward. */
  kubelet?: KubeletBehaviour;
  /**
   * Run metrics-server (built on first use, see `ensureMetricsServer`) behind the aggregation
   * layer (`v1beta1.metrics.k8s.io`), and make kwok report resource metrics for its nodes and
   * pods, so that `kubectl top` works. Pod usage comes from the annotations
   * {@linkcode USAGE_CPU_ANNOTATION} and {@linkcode USAGE_MEMORY_ANNOTATION} (default 1m CPU and
   * 1Mi memory per container). Only this adds kube-apiserver's aggregation flags.
   */
  metricsServer?: boolean;
}

/** Capacity and metadata of kwok's fake nodes. */
export interface NodeTemplate {
  /** Capacity, also used as allocatable (default cpu 16, memory 64Gi, pods 110, ephemeral-storage 100Gi). */
  capacity?: Record<string, string>;
  labels?: Record<string, string>;
  taints?: { key: string; value?: string; effect: string }[];
}

/** kwok kubelet behaviour (ClusterLogs / ClusterExec / ClusterAttach / ClusterPortForward). */
export interface KubeletBehaviour {
  /** Text served as every container's log (default: three fixed lines). */
  logText?: string;
  /** Port-forward target on loopback; default: each connection is echoed back (`cat`). */
  portForwardTarget?: { address: string; port: number };
}

/** The ports a cluster listens on (all on 127.0.0.1). */
export interface ClusterPorts {
  etcd: number;
  etcdPeer: number;
  apiserver: number;
  controllerManager: number;
  scheduler: number;
  kwok: number;
  /** metrics-server's secure port (0 when the cluster runs none). */
  metricsServer: number;
}

/** Everything persisted about a running cluster (also the JSON summary of `envtest up`). */
export interface ClusterState {
  name: string;
  dir: string;
  kubeconfig: string;
  server: string;
  ports: ClusterPorts;
  nodes: string[];
  controlPlane: boolean;
  kwok: boolean;
  /** Whether the cluster runs metrics-server (absent in state written before it existed). */
  metricsServer?: boolean;
  processes: ProcessRecord[];
  options: ClusterOptions;
}

/** How a cluster is started. */
export interface ClusterStartContext {
  binaries: ControlPlaneBinaries;
  /** State directory of this cluster; created, and removed again by `stop()`. */
  dir: string;
  /** Processes survive the exit of this OS process (`envtest up`). */
  detached?: boolean;
  log?: (line: string) => void;
  /** Index used to give each cluster its own pod CIDR. */
  index?: number;
  /** Overall start timeout (default 180 s). */
  timeoutMs?: number;
}

const DEFAULT_CAPACITY = { cpu: "16", memory: "64Gi", pods: "110", "ephemeral-storage": "100Gi" };
const DEFAULT_LOG_TEXT =
  "kubeocean envtest: container started\nkubeocean envtest: serving\nkubeocean envtest: ready\n";
const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

/** Pod annotation read by kwok as each container's CPU usage (a quantity, e.g. `250m`; default `1m`). */
export const USAGE_CPU_ANNOTATION = "kwok.x-k8s.io/usage-cpu";
/** Pod annotation read by kwok as each container's memory working set (e.g. `100Mi`; default `1Mi`). */
export const USAGE_MEMORY_ANNOTATION = "kwok.x-k8s.io/usage-memory";
/** Node annotation telling metrics-server (≥ 0.7) which path to scrape instead of `/metrics/resource`. */
export const RESOURCE_METRICS_PATH_ANNOTATION = "metrics.k8s.io/resource-metrics-path";
/**
 * The Service the `v1beta1.metrics.k8s.io` APIService points at: an ExternalName Service whose
 * name is 127.0.0.1, so that the aggregator dials metrics-server on loopback (Endpoints may not
 * hold loopback addresses). The aggregator verifies the serving certificate against the name
 * `metrics-server.kube-system.svc`.
 */
export const METRICS_SERVER_SERVICE = {
  name: "metrics-server",
  namespace: "kube-system",
  externalName: "127.0.0.1",
} as const;
/** metrics-server's `--metric-resolution`: 10 s is the smallest it accepts. */
export const METRICS_SERVER_RESOLUTION = "10s";

/** A running local cluster. Create with {@linkcode Cluster.start}. */
export class Cluster {
  readonly #processes = new Map<string, ManagedProcess | ProcessRecord>();
  readonly #admin: AdminClient;
  #stopped = false;

  private constructor(
    readonly state: ClusterState,
    readonly pki: ClusterPki,
    readonly binaries: ControlPlaneBinaries,
    readonly detached: boolean,
  ) {
    this.#admin = new AdminClient(state.server, pki.ca.certPem, pki.admin.certPem, pki.admin.keyPem);
  }

  get name(): string {
    return this.state.name;
  }
  /** Path of this cluster's admin kubeconfig. */
  get kubeconfig(): string {
    return this.state.kubeconfig;
  }
  /** API server URL, e.g. `https://127.0.0.1:38123`. */
  get server(): string {
    return this.state.server;
  }
  /** Admin HTTP access for bootstrap work. */
  get admin(): AdminClient {
    return this.#admin;
  }
  /** The admin kubeconfig entry (for merged kubeconfigs). */
  get kubeconfigEntry(): KubeconfigEntry {
    return {
      name: this.name,
      server: this.server,
      caPem: this.pki.ca.certPem,
      certPem: this.pki.admin.certPem,
      keyPem: this.pki.admin.keyPem,
    };
  }

  /** Starts a cluster; on failure stops whatever it started and throws an error naming the cause. */
  static async start(options: ClusterOptions, ctx: ClusterStartContext): Promise<Cluster> {
    if (!NAME_PATTERN.test(options.name)) {
      throw new Error(
        `invalid cluster name "${options.name}": use lowercase letters, digits and '-' (at most 32)`,
      );
    }
    const log = ctx.log ?? (() => {});
    const withNodes = (options.nodes ?? 0) > 0;
    const controlPlane = options.controlPlane ?? withNodes;
    const kwok = options.kwok ?? withNodes;
    const metricsServer = options.metricsServer ?? false;
    await checkBinaries(ctx.binaries, controlPlane, kwok, metricsServer);
    const ports = allocatePorts(options, controlPlane, kwok, metricsServer);
    const dir = ctx.dir;
    await Deno.mkdir(`${dir}/logs`, { recursive: true });
    await Deno.mkdir(`${dir}/kubelet`, { recursive: true });
    const pki = await createClusterPki(`${dir}/pki`, options.name);
    if (metricsServer) pki.aggregation = await createAggregationPki(pki, METRICS_SERVER_SERVICE);
    const server = `https://127.0.0.1:${ports.apiserver}`;
    const state: ClusterState = {
      name: options.name,
      dir,
      kubeconfig: `${dir}/kubeconfig`,
      server,
      ports,
      nodes: [],
      controlPlane,
      kwok,
      metricsServer,
      processes: [],
      options,
    };
    const cluster = new Cluster(state, pki, ctx.binaries, ctx.detached ?? false);
    await writeKubeconfig(state.kubeconfig, [cluster.kubeconfigEntry]);
    const deadline = Date.now() + (ctx.timeoutMs ?? 180_000);
    try {
      log(`${options.name}: starting etcd on :${ports.etcd}`);
      await cluster.#startEtcd(deadline);
      log(`${options.name}: starting kube-apiserver on :${ports.apiserver}`);
      await cluster.#startApiserver(deadline);
      if (controlPlane) {
        log(`${options.name}: starting kube-controller-manager and kube-scheduler`);
        cluster.#startControllerManager();
        await cluster.#startScheduler();
        await Promise.all([
          cluster.#waitHealthy("kube-controller-manager", ports.controllerManager, deadline),
          cluster.#waitHealthy("kube-scheduler", ports.scheduler, deadline),
        ]);
        await cluster.#waitForDefaultServiceAccount(deadline);
      }
      if (kwok) {
        log(`${options.name}: starting kwok on :${ports.kwok}`);
        await cluster.#startKwok(ctx.index ?? 0);
        if (withNodes) {
          await cluster.createNodes(options.nodes ?? 0, { deadline });
        }
      }
      if (metricsServer) {
        log(`${options.name}: starting metrics-server on :${ports.metricsServer}`);
        await cluster.#startMetricsServer(deadline);
      }
      log(`${options.name}: ready at ${server}`);
      return cluster;
    } catch (err) {
      await cluster.stop({ keepState: true }).catch(() => {});
      throw err;
    }
  }

  /** Re-attaches to a cluster started by another process (from its persisted state). */
  static async attach(state: ClusterState, binaries: ControlPlaneBinaries): Promise<Cluster> {
    const pki = await readPki(`${state.dir}/pki`);
    const cluster = new Cluster(state, pki, binaries, true);
    for (const record of state.processes) cluster.#processes.set(record.name, record);
    return cluster;
  }

  /** The records of the processes this cluster runs now. */
  get processes(): ProcessRecord[] {
    return [...this.#processes.values()].map((p) => p instanceof ManagedProcess ? p.record : p);
  }

  /** Whether every process of this cluster is alive. */
  isRunning(): boolean {
    return this.processes.length > 0 && this.processes.every(isRecordAlive);
  }

  #logFile(name: string): string {
    return `${this.state.dir}/logs/${name}.log`;
  }

  #spawn(name: string, binary: string, args: string[], env?: Record<string, string>): ManagedProcess {
    const process = ManagedProcess.start({
      name,
      binary,
      args,
      logFile: this.#logFile(name),
      env,
      detached: this.detached,
    });
    this.#processes.set(name, process);
    this.#syncProcessState();
    return process;
  }

  #syncProcessState(): void {
    this.state.processes = this.processes;
  }

  async #startEtcd(deadline: number): Promise<void> {
    const { etcd, etcdPeer } = this.state.ports;
    const dataDir = `${this.state.dir}/etcd`;
    const proc = this.#spawn("etcd", this.binaries.etcd, [
      "--name=default",
      `--data-dir=${dataDir}`,
      `--listen-client-urls=http://127.0.0.1:${etcd}`,
      `--advertise-client-urls=http://127.0.0.1:${etcd}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      "--unsafe-no-fsync",
      "--quota-backend-bytes=4294967296",
      "--log-level=warn",
    ]);
    await this.#waitFor("etcd", proc, deadline, () => probe(`http://127.0.0.1:${etcd}/readyz`));
  }

  #apiserverArgs(): string[] {
    const { ports, dir } = this.state;
    const pki = this.pki;
    return [
      `--etcd-servers=http://127.0.0.1:${ports.etcd}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${ports.apiserver}`,
      `--cert-dir=${dir}/pki`,
      `--tls-cert-file=${pki.apiserver.certFile}`,
      `--tls-private-key-file=${pki.apiserver.keyFile}`,
      `--client-ca-file=${pki.ca.certFile}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${pki.serviceAccount.publicKeyFile}`,
      `--service-account-signing-key-file=${pki.serviceAccount.keyFile}`,
      "--service-cluster-ip-range=10.0.0.0/24",
      "--authorization-mode=RBAC",
      "--allow-privileged=true",
      "--endpoint-reconciler-type=none",
      "--kubelet-preferred-address-types=InternalIP,Hostname",
      `--kubelet-client-certificate=${pki.admin.certFile}`,
      `--kubelet-client-key=${pki.admin.keyFile}`,
      // Verify kubelets' serving certificates (kwok's and any kubelet API proxy's): without it the
      // API server would skip verification and a test would prove nothing about them.
      `--kubelet-certificate-authority=${pki.ca.certFile}`,
      "--profiling=false",
      ...(this.state.controlPlane ? [] : ["--disable-admission-plugins=ServiceAccount"]),
      ...this.#aggregationArgs(),
      ...(this.state.options.apiserverArgs ?? []),
    ];
  }

  /** The aggregation-layer flags, only for clusters that run metrics-server. */
  #aggregationArgs(): string[] {
    const aggregation = this.pki.aggregation;
    if (!this.state.metricsServer || !aggregation) return [];
    return [
      `--requestheader-client-ca-file=${aggregation.frontProxyCa.certFile}`,
      `--requestheader-allowed-names=${FRONT_PROXY_CLIENT_NAME}`,
      "--requestheader-extra-headers-prefix=X-Remote-Extra-",
      "--requestheader-group-headers=X-Remote-Group",
      "--requestheader-username-headers=X-Remote-User",
      `--proxy-client-cert-file=${aggregation.frontProxyClient.certFile}`,
      `--proxy-client-key-file=${aggregation.frontProxyClient.keyFile}`,
      // Resolve APIService Services as Services (ExternalName → its name), not through Endpoints.
      "--enable-aggregator-routing=false",
    ];
  }

  async #startApiserver(deadline: number): Promise<void> {
    const proc = this.#spawn("kube-apiserver", this.binaries.kubeApiserver, this.#apiserverArgs());
    await this.#waitFor(
      "kube-apiserver",
      proc,
      deadline,
      () => probe(`${this.server}/readyz`, this.pki.ca.certPem),
    );
  }

  #startControllerManager(): void {
    const { ports, kubeconfig } = this.state;
    const pki = this.pki;
    this.#spawn("kube-controller-manager", this.binaries.kubeControllerManager, [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      `--secure-port=${ports.controllerManager}`,
      `--tls-cert-file=${pki.apiserver.certFile}`,
      `--tls-private-key-file=${pki.apiserver.keyFile}`,
      "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
      `--service-account-private-key-file=${pki.serviceAccount.keyFile}`,
      `--root-ca-file=${pki.ca.certFile}`,
      `--cluster-signing-cert-file=${pki.ca.certFile}`,
      `--cluster-signing-key-file=${pki.ca.keyFile}`,
      "--use-service-account-credentials=false",
      "--kube-api-qps=200",
      "--kube-api-burst=400",
      "--concurrent-deployment-syncs=10",
      "--concurrent-replicaset-syncs=10",
      "--concurrent-job-syncs=10",
      ...(this.state.options.controllerManagerArgs ?? []),
    ]);
  }

  async #startScheduler(): Promise<void> {
    const { ports, kubeconfig, dir } = this.state;
    const config = `${dir}/kube-scheduler.yaml`;
    await Deno.writeTextFile(
      config,
      stringify({
        apiVersion: "kubescheduler.config.k8s.io/v1",
        kind: "KubeSchedulerConfiguration",
        clientConnection: { kubeconfig, qps: 200, burst: 400 },
        leaderElection: { leaderElect: false },
      }),
    );
    this.#spawn("kube-scheduler", this.binaries.kubeScheduler, [
      `--config=${config}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${ports.scheduler}`,
      `--tls-cert-file=${this.pki.apiserver.certFile}`,
      `--tls-private-key-file=${this.pki.apiserver.keyFile}`,
      "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
    ]);
  }

  async #startKwok(index: number): Promise<void> {
    const { ports, dir, kubeconfig } = this.state;
    const behaviour = this.state.options.kubelet ?? {};
    const logsFile = this.containerLogFile;
    await Deno.writeTextFile(logsFile, toCriLog(behaviour.logText ?? DEFAULT_LOG_TEXT));
    const stages = await Promise.all(
      [...Deno.readDirSync(this.binaries.kwokStages)].filter((e) => e.name.endsWith(".yaml")).map((e) =>
        e.name
      )
        .sort().map((name) => Deno.readTextFile(`${this.binaries.kwokStages}/${name}`)),
    );
    const forward = behaviour.portForwardTarget
      ? { target: behaviour.portForwardTarget }
      : { command: ["cat"] };
    const kubeletConfig = [
      {
        apiVersion: "kwok.x-k8s.io/v1alpha1",
        kind: "ClusterLogs",
        metadata: { name: "envtest" },
        spec: { logs: [{ logsFile, follow: true }] },
      },
      {
        apiVersion: "kwok.x-k8s.io/v1alpha1",
        kind: "ClusterExec",
        metadata: { name: "envtest" },
        spec: {
          execs: [{
            local: { workDir: `${dir}/kubelet`, envs: [{ name: "KUBEOCEAN_ENVTEST", value: this.name }] },
          }],
        },
      },
      {
        // kubectl attach: the container's log, followed (stdin is not read).
        apiVersion: "kwok.x-k8s.io/v1alpha1",
        kind: "ClusterAttach",
        metadata: { name: "envtest" },
        spec: { attaches: [{ logsFile }] },
      },
      {
        apiVersion: "kwok.x-k8s.io/v1alpha1",
        kind: "ClusterPortForward",
        metadata: { name: "envtest" },
        spec: { forwards: [forward] },
      },
      ...(this.state.metricsServer ? kwokMetricsDocuments() : []),
    ].map((doc) => stringify(doc));
    const config = `${dir}/kwok.yaml`;
    await Deno.writeTextFile(
      config,
      [...stages, ...kubeletConfig].map((d) => d.trim()).join("\n---\n") + "\n",
    );
    this.#spawn("kwok", this.binaries.kwok, [
      `--kubeconfig=${kubeconfig}`,
      `--config=${config}`,
      "--manage-all-nodes=false",
      "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
      `--cidr=10.${100 + (index % 100)}.0.0/16`,
      "--node-ip=127.0.0.1",
      "--node-name=localhost",
      `--node-port=${ports.kwok}`,
      `--server-address=127.0.0.1:${ports.kwok}`,
      `--tls-cert-file=${this.pki.kubelet.certFile}`,
      `--tls-private-key-file=${this.pki.kubelet.keyFile}`,
      "--node-lease-duration-seconds=40",
    ], { HOME: dir, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" });
  }

  /**
   * Creates `count` kwok nodes named `<cluster>-node-<n>` (numbered after the existing ones) and
   * waits until they are Ready.
   */
  async createNodes(
    count: number,
    options: { template?: NodeTemplate; deadline?: number; names?: string[] } = {},
  ): Promise<string[]> {
    if (!this.state.kwok) {
      throw new Error(`cluster ${this.name} runs no kwok; start it with nodes or kwok: true`);
    }
    const template = { ...this.state.options.nodeTemplate, ...options.template };
    const names = options.names ??
      Array.from({ length: count }, (_, i) => `${this.name}-node-${this.state.nodes.length + i + 1}`);
    const capacity = { ...DEFAULT_CAPACITY, ...template.capacity };
    await Promise.all(names.map((name) =>
      this.#admin.json("POST", "/api/v1/nodes", {
        apiVersion: "v1",
        kind: "Node",
        metadata: {
          name,
          annotations: {
            "kwok.x-k8s.io/node": "fake",
            "node.alpha.kubernetes.io/ttl": "0",
            ...(this.state.metricsServer
              ? { [RESOURCE_METRICS_PATH_ANNOTATION]: `/metrics/nodes/${name}/metrics/resource` }
              : {}),
          },
          labels: {
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/os": "linux",
            "kubernetes.io/hostname": name,
            type: "kwok",
            ...template.labels,
          },
        },
        spec: { taints: template.taints },
        status: {
          capacity,
          allocatable: capacity,
          nodeInfo: {
            architecture: "amd64",
            operatingSystem: "linux",
            kubeletVersion: this.binaries.versions.kubernetes,
          },
        },
      })
    ));
    this.state.nodes.push(...names);
    const deadline = options.deadline ?? Date.now() + 60_000;
    const kwok = this.#processes.get("kwok");
    await this.#waitFor(
      "kwok nodes",
      kwok instanceof ManagedProcess ? kwok : undefined,
      deadline,
      async () => {
        const list = await this.#admin.json<{ items: NodeLike[] }>("GET", "/api/v1/nodes");
        const ready = new Set(list.items.filter(isNodeReady).map((n) => n.metadata.name));
        return names.every((n) => ready.has(n));
      },
    );
    return names;
  }

  /**
   * Starts metrics-server on 127.0.0.1, registers `v1beta1.metrics.k8s.io` (an ExternalName
   * Service on loopback, the cluster CA as caBundle) and waits until the aggregated API answers.
   */
  async #startMetricsServer(deadline: number): Promise<void> {
    const { ports, kubeconfig } = this.state;
    const aggregation = this.pki.aggregation;
    const binary = this.binaries.metricsServer;
    if (!aggregation || !binary) throw new Error(`cluster ${this.name}: metrics-server is not prepared`);
    const proc = this.#spawn("metrics-server", binary, [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${ports.metricsServer}`,
      `--tls-cert-file=${aggregation.metricsServer.certFile}`,
      `--tls-private-key-file=${aggregation.metricsServer.keyFile}`,
      `--cert-dir=${this.state.dir}/pki`,
      "--kubelet-preferred-address-types=InternalIP",
      "--kubelet-use-node-status-port",
      // kwok serves the kubelet API with the cluster's `kubelet` pair, signed by the cluster CA.
      `--kubelet-certificate-authority=${this.pki.ca.certFile}`,
      `--metric-resolution=${METRICS_SERVER_RESOLUTION}`,
      // At most 90 % of the resolution (metrics-server validates it); the default 10s is too long.
      "--kubelet-request-timeout=5s",
    ]);
    await this.#waitFor(
      "metrics-server",
      proc,
      deadline,
      () => probe(`https://127.0.0.1:${ports.metricsServer}/livez`, this.pki.ca.certPem),
    );
    const { name, namespace, externalName } = METRICS_SERVER_SERVICE;
    const objects: [string, unknown][] = [
      [`/api/v1/namespaces/${namespace}/services`, {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name, namespace, labels: { "app.kubernetes.io/name": "metrics-server" } },
        spec: {
          type: "ExternalName",
          externalName,
          ports: [{ name: "https", port: ports.metricsServer, protocol: "TCP" }],
        },
      }],
      ["/apis/apiregistration.k8s.io/v1/apiservices", {
        apiVersion: "apiregistration.k8s.io/v1",
        kind: "APIService",
        metadata: { name: "v1beta1.metrics.k8s.io", labels: { "app.kubernetes.io/name": "metrics-server" } },
        spec: {
          group: "metrics.k8s.io",
          version: "v1beta1",
          // The aggregator dials `https://<externalName>:<this port>` for ExternalName Services.
          service: { name, namespace, port: ports.metricsServer },
          caBundle: btoa(this.pki.ca.certPem),
          insecureSkipTLSVerify: false,
          groupPriorityMinimum: 100,
          versionPriority: 100,
        },
      }],
    ];
    for (const [path, body] of objects) {
      // kube-system appears shortly after the API server is ready; retry until it accepts.
      await this.#waitFor(`${path} created`, proc, deadline, async () => {
        const { status, body: answer } = await this.#admin.request("POST", path, body);
        if (status === 201 || status === 409) return true;
        if (status === 404) return false;
        throw new Error(`POST ${path} → ${status}: ${JSON.stringify(answer)}`);
      });
    }
    try {
      await this.#waitFor(
        "the aggregated API /apis/metrics.k8s.io/v1beta1 (metrics-server)",
        proc,
        deadline,
        async () => (await this.#admin.request("GET", "/apis/metrics.k8s.io/v1beta1")).status === 200,
      );
    } catch (err) {
      // Say why the aggregator does not route to metrics-server, next to metrics-server's log.
      const { body } = await this.#admin.request(
        "GET",
        "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io",
      ).catch(() => ({ body: undefined }));
      const available = (body as { status?: { conditions?: { type: string; message?: string }[] } })
        ?.status?.conditions?.find((c) => c.type === "Available");
      if (!available?.message) throw err;
      throw new Error(
        `${(err as Error).message}\n--- APIService v1beta1.metrics.k8s.io ---\n${available.message}`,
      );
    }
  }

  async #waitHealthy(name: string, port: number, deadline: number): Promise<void> {
    const proc = this.#processes.get(name);
    await this.#waitFor(
      name,
      proc instanceof ManagedProcess ? proc : undefined,
      deadline,
      () => probe(`https://127.0.0.1:${port}/healthz`, this.pki.ca.certPem),
    );
  }

  async #waitForDefaultServiceAccount(deadline: number): Promise<void> {
    const kcm = this.#processes.get("kube-controller-manager");
    await this.#waitFor(
      "default ServiceAccount",
      kcm instanceof ManagedProcess ? kcm : undefined,
      deadline,
      async () =>
        (await this.#admin.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")).status ===
          200,
    );
  }

  /** Polls `check` until it is true; fails at once, with the log tail, if `proc` exits meanwhile. */
  async #waitFor(
    what: string,
    proc: ManagedProcess | undefined,
    deadline: number,
    check: () => Promise<boolean>,
  ): Promise<void> {
    while (true) {
      if (proc?.exitStatus) {
        throw new Error(
          `${proc.record.name} of cluster ${this.name} exited with code ${proc.exitStatus.code} while starting` +
            `${
              explainExit(await proc.logTail(200))
            }\n--- last lines of ${proc.record.logFile} ---\n${await proc.logTail()}`,
        );
      }
      try {
        if (await check()) return;
      } catch {
        // not yet
      }
      if (Date.now() > deadline) {
        const logs = proc ? `\n--- last lines of ${proc.record.logFile} ---\n${await proc.logTail()}` : "";
        throw new Error(`timed out waiting for ${what} of cluster ${this.name}${logs}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Runs kubectl against this cluster with its admin kubeconfig. */
  async kubectl(
    args: string[],
    options: { stdin?: string; check?: boolean; env?: Record<string, string> } = {},
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return await runCommand(this.binaries.kubectl, ["--kubeconfig", this.kubeconfig, ...args], {
      stdin: options.stdin,
      check: options.check,
      env: options.env,
    });
  }

  /**
   * The file kwok serves as every container's log (CRI format) and attach output; append lines
   * made with {@linkcode toCriLog} to make a followed log show them.
   */
  get containerLogFile(): string {
    return `${this.state.dir}/kubelet/container.log`;
  }

  /**
   * Issues a client certificate for `user` in `groups`, signed by this cluster's CA, and writes a
   * kubeconfig for it. Returns the key pair and the kubeconfig path.
   */
  async addUser(user: string, groups: string[] = []): Promise<{ keyPair: KeyPair; kubeconfig: string }> {
    const safe = user.replace(/[^a-zA-Z0-9-]/g, "_");
    const keyPair = await issueCertificate(this.pki.ca, {
      name: `user-${safe}`,
      commonName: user,
      organizations: groups,
      usage: "client",
    });
    const kubeconfig = `${this.state.dir}/kubeconfig-${safe}`;
    await writeKubeconfig(kubeconfig, [{
      name: this.name,
      server: this.server,
      caPem: this.pki.ca.certPem,
      certPem: keyPair.certPem,
      keyPem: keyPair.keyPem,
      user: user,
    }]);
    return { keyPair, kubeconfig };
  }

  /** Stops kube-apiserver (keeping etcd and the rest), e.g. to test clients across an outage. */
  async stopApiserver(): Promise<void> {
    await this.#stopProcess("kube-apiserver");
  }

  /** Starts kube-apiserver again on the same port and waits until it is ready. */
  async startApiserver(timeoutMs = 120_000): Promise<void> {
    if (!isPortFree(this.state.ports.apiserver)) {
      throw new Error(
        `port ${this.state.ports.apiserver} of kube-apiserver (cluster ${this.name}) is in use`,
      );
    }
    await this.#startApiserver(Date.now() + timeoutMs);
  }

  /** Restarts kube-apiserver on the same port. */
  async restartApiserver(): Promise<void> {
    await this.stopApiserver();
    await this.startApiserver();
  }

  /**
   * Freezes kube-apiserver (SIGSTOP): it keeps its port and the kernel still accepts connections,
   * but nothing answers — a hung control plane, which clients only notice through deadlines.
   */
  freezeApiserver(): void {
    this.#signal("kube-apiserver", "SIGSTOP");
  }

  /** Resumes a frozen kube-apiserver (SIGCONT); it answers again where it stopped. */
  thawApiserver(): void {
    this.#signal("kube-apiserver", "SIGCONT");
  }

  #signal(name: string, signal: Deno.Signal): void {
    const proc = this.#processes.get(name);
    if (!proc) throw new Error(`${name} of cluster ${this.name} is not running`);
    Deno.kill(proc.pid, signal);
  }

  /** Compacts etcd's history up to its current revision; watches from older versions then get 410 Gone. */
  async compactEtcd(): Promise<number> {
    const base = `http://127.0.0.1:${this.state.ports.etcd}/v3`;
    const range = await fetch(`${base}/kv/range`, {
      method: "POST",
      body: JSON.stringify({ key: btoa("/"), limit: 1 }),
    }).then((r) => r.json()) as { header: { revision: string } };
    const revision = Number(range.header.revision);
    const response = await fetch(`${base}/kv/compaction`, {
      method: "POST",
      body: JSON.stringify({ revision: String(revision), physical: true }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`etcd compaction to revision ${revision} failed: ${text}`);
    return revision;
  }

  async #stopProcess(name: string): Promise<void> {
    const proc = this.#processes.get(name);
    if (!proc) return;
    // A frozen process handles SIGTERM only once it runs again.
    try {
      Deno.kill(proc.pid, "SIGCONT");
    } catch {
      // already gone
    }
    if (proc instanceof ManagedProcess) await proc.stop();
    else await stopRecord(proc);
    this.#processes.delete(name);
    this.#syncProcessState();
  }

  /**
   * Stops every process this cluster started (in reverse start order) and removes its state
   * directory unless `keepState` is set.
   */
  async stop(options: { keepState?: boolean } = {}): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.release();
    const names = [...this.#processes.keys()].reverse();
    // Dependents first (kwok, scheduler, controller-manager), then the API server, then etcd.
    const dependents = names.filter((n) => n !== "kube-apiserver" && n !== "etcd");
    await Promise.all(dependents.map((n) => this.#stopProcess(n)));
    await this.#stopProcess("kube-apiserver");
    await this.#stopProcess("etcd");
    for (const port of Object.values(this.state.ports)) if (port) releasePort(port);
    if (!options.keepState) await Deno.remove(this.state.dir, { recursive: true }).catch(() => {});
  }

  /** Releases this object's own resources (HTTP client) and leaves the processes running. */
  release(): void {
    this.#admin.close();
  }

  /** The last lines of a component's log (`etcd`, `kube-apiserver`, `kwok`…). */
  async logTail(component: string, lines = 40): Promise<string> {
    return await readLogTail(this.#logFile(component), lines);
  }
}

/** Formats text lines as a CRI container log (`<RFC3339Nano> stdout F <line>`), the format kwok serves. */
export function toCriLog(text: string, at = new Date()): string {
  const stamp = at.toISOString().replace("Z", "000000Z");
  return text.split("\n").filter((line) => line.length > 0).map((line) => `${stamp} stdout F ${line}\n`).join(
    "",
  );
}

interface NodeLike {
  metadata: { name: string };
  status?: { conditions?: { type: string; status: string }[] };
}

function isNodeReady(node: NodeLike): boolean {
  return node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

async function checkBinaries(
  binaries: ControlPlaneBinaries,
  controlPlane: boolean,
  kwok: boolean,
  metricsServer: boolean,
): Promise<void> {
  const needed: [string, string][] = [["etcd", binaries.etcd], ["kube-apiserver", binaries.kubeApiserver]];
  if (controlPlane) {
    needed.push(["kube-controller-manager", binaries.kubeControllerManager], [
      "kube-scheduler",
      binaries.kubeScheduler,
    ]);
  }
  if (kwok) needed.push(["kwok", binaries.kwok]);
  if (metricsServer) {
    if (!binaries.metricsServer) {
      throw new Error(
        "metricsServer is on but the binaries carry no metrics-server; resolve them with " +
          "ensureBinaries({ metricsServer: true }) or ensureMetricsServer()",
      );
    }
    needed.push(["metrics-server", binaries.metricsServer]);
  }
  for (const [name, path] of needed) {
    if (!await isExecutable(path)) throw new Error(`${name} binary not found or not executable at ${path}`);
  }
}

function allocatePorts(
  options: ClusterOptions,
  controlPlane: boolean,
  kwok: boolean,
  metricsServer: boolean,
): ClusterPorts {
  const fixed = options.ports ?? {};
  for (const [role, port] of Object.entries(fixed)) {
    if (port && !isPortFree(port)) {
      throw new Error(`port ${port} for ${role} of cluster ${options.name} is already in use on 127.0.0.1`);
    }
  }
  return {
    etcd: fixed.etcd ?? allocatePort(),
    etcdPeer: fixed.etcdPeer ?? allocatePort(),
    apiserver: fixed.apiserver ?? allocatePort(),
    controllerManager: fixed.controllerManager ?? (controlPlane ? allocatePort() : 0),
    scheduler: fixed.scheduler ?? (controlPlane ? allocatePort() : 0),
    kwok: fixed.kwok ?? (kwok ? allocatePort() : 0),
    metricsServer: fixed.metricsServer ?? (metricsServer ? allocatePort() : 0),
  };
}

/** A short explanation of well-known start failures found in a component's log. */
function explainExit(log: string): string {
  if (/address already in use/i.test(log)) {
    const port = /127\.0\.0\.1:(\d+).*address already in use/i.exec(log)?.[1];
    return `: port ${port ?? "(see log)"} is already in use`;
  }
  if (/no such file or directory/i.test(log)) return ": a file it needs is missing (see log)";
  if (/permission denied/i.test(log)) return ": permission denied (see log)";
  return "";
}

async function readPki(dir: string): Promise<ClusterPki> {
  const pair = async (name: string): Promise<KeyPair> => ({
    certFile: `${dir}/${name}.crt`,
    keyFile: `${dir}/${name}.key`,
    certPem: await Deno.readTextFile(`${dir}/${name}.crt`),
    keyPem: await Deno.readTextFile(`${dir}/${name}.key`),
  });
  const aggregation = await exists(`${dir}/front-proxy-ca.crt`)
    ? {
      frontProxyCa: await pair("front-proxy-ca"),
      frontProxyClient: await pair("front-proxy-client"),
      metricsServer: await pair("metrics-server"),
    }
    : undefined;
  return {
    dir,
    ca: await pair("ca"),
    apiserver: await pair("apiserver"),
    admin: await pair("admin"),
    kubelet: await pair("kubelet"),
    serviceAccount: { keyFile: `${dir}/sa.key`, publicKeyFile: `${dir}/sa.pub` },
    aggregation,
  };
}

/**
 * kwok documents for `kubectl top`: a `Metric` serving the kubelet's resource metrics per node at
 * `/metrics/nodes/{nodeName}/metrics/resource` and a `ClusterResourceUsage` taking each
 * container's usage from pod annotations. After kwok's `kustomize/metrics/resource/metrics-resource.yaml`
 * and `kustomize/metrics/usage/usage-from-annotation.yaml` (v0.8.0), with two changes, both
 * because metrics-server drops a node or container whose CPU counter or memory is 0: each node adds
 * a baseline of 1m CPU and 1Mi memory of its own (a node without pods would otherwise be missing
 * from `kubectl top node`), and each container's CPU counter starts at 1 ns instead of 0 (a new
 * pod shows one resolution sooner).
 */
export function kwokMetricsDocuments(): Record<string, unknown>[] {
  const containerLabels = [
    { name: "container", value: "container.name" },
    { name: "namespace", value: "pod.metadata.namespace" },
    { name: "pod", value: "pod.metadata.name" },
  ];
  const podLabels = containerLabels.slice(1);
  const usage = (annotation: string, fallback: string) =>
    `"${annotation}" in pod.metadata.annotations ? Quantity(pod.metadata.annotations["${annotation}"]) : Quantity("${fallback}")`;
  return [
    {
      apiVersion: "kwok.x-k8s.io/v1alpha1",
      kind: "Metric",
      metadata: { name: "metrics-resource" },
      spec: {
        path: "/metrics/nodes/{nodeName}/metrics/resource",
        metrics: [
          {
            name: "scrape_error",
            dimension: "node",
            kind: "gauge",
            value: "0",
            help: "1 if there was an error while getting metrics from the node, 0 otherwise",
          },
          {
            name: "container_start_time_seconds",
            dimension: "container",
            kind: "gauge",
            help: "Start time of the container since unix epoch in seconds",
            labels: containerLabels,
            value: "pod.SinceSecond()",
          },
          {
            name: "container_cpu_usage_seconds_total",
            dimension: "container",
            kind: "counter",
            help: "Cumulative cpu time consumed by the container in core-seconds",
            labels: containerLabels,
            // + 1 ns: kwok's counter starts at 0, and metrics-server drops a container whose counter
            // is 0, which would cost one more resolution before a new pod shows in `kubectl top`.
            value: 'pod.CumulativeUsage("cpu", container.name) + 0.000000001',
          },
          {
            name: "container_memory_working_set_bytes",
            dimension: "container",
            kind: "gauge",
            help: "Current working set of the container in bytes",
            labels: containerLabels,
            value: 'pod.Usage("memory", container.name)',
          },
          {
            name: "pod_cpu_usage_seconds_total",
            dimension: "pod",
            kind: "counter",
            help: "Cumulative cpu time consumed by the pod in core-seconds",
            labels: podLabels,
            value: 'pod.CumulativeUsage("cpu")',
          },
          {
            name: "pod_memory_working_set_bytes",
            dimension: "pod",
            kind: "gauge",
            help: "Current working set of the pod in bytes",
            labels: podLabels,
            value: 'pod.Usage("memory")',
          },
          {
            name: "node_cpu_usage_seconds_total",
            dimension: "node",
            kind: "counter",
            help: "Cumulative cpu time consumed by the node in core-seconds",
            value: 'node.CumulativeUsage("cpu") + node.SinceSecond() * 0.001',
          },
          {
            name: "node_memory_working_set_bytes",
            dimension: "node",
            kind: "gauge",
            help: "Current working set of the node in bytes",
            value: 'node.Usage("memory") + 1048576.0',
          },
        ],
      },
    },
    {
      apiVersion: "kwok.x-k8s.io/v1alpha1",
      kind: "ClusterResourceUsage",
      metadata: { name: "usage-from-annotation" },
      spec: {
        usages: [{
          usage: {
            cpu: { expression: usage(USAGE_CPU_ANNOTATION, "1m") },
            memory: { expression: usage(USAGE_MEMORY_ANNOTATION, "1Mi") },
          },
        }],
      },
    },
  ];
}
