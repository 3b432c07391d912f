/**
 * `deno task demo`: Kubeocean end to end on your machine.
 *
 * Brings up a computing cluster (with scheduler and controller-manager) and two kwok worker
 * clusters, installs the CRDs and a ResourceLeasingPolicy per worker, runs the manager with
 * embedded syncers in this process, binds both workers, deploys a sample Deployment (with a
 * ConfigMap and a Secret) onto the virtual nodes, and shows progress. When every pod runs it
 * prints how to explore with kubectl and keeps running until Ctrl-C, then cleans up everything.
 * `--exit-when-ready` runs one `kubectl logs` and one `kubectl exec` through the computing cluster and
 * exits 0 at that point instead (cleaning up), for scripts and CI. `--metrics` adds metrics-server to
 * every cluster and waits for `kubectl top pod` in the computing cluster to list the sample.
 *
 * @module
 */

import { onVirtualNodes } from "../common/placement.ts";
import { parseArgs } from "node:util";
import { AppsV1Api, type Deployment } from "../../apis/apps/v1/mod.ts";
import { type ConfigMap, CoreV1Api, type Pod, type Secret } from "../../apis/core/v1/mod.ts";
import { KubeoceanIoV1beta1Api, type ResourceLeasingPolicy } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { KubeClient } from "../../toolkit/client/client.ts";
import { sleep } from "../../toolkit/util/mod.ts";
import { Environment } from "../../toolkit/envtest/environment.ts";
import { EventRecorder } from "../../toolkit/runtime/events.ts";
import { Logger } from "../../toolkit/runtime/log.ts";
import { Manager } from "../../toolkit/runtime/manager.ts";
import { applyObject } from "../common/apply.ts";
import {
  LABEL_CLUSTER_BINDING,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
  SYSTEM_NAMESPACE,
} from "../common/names.ts";
import { bind, installCrd } from "../bind/bind.ts";
import { clusterBindingController } from "../manager/clusterbinding_controller.ts";
import { EmbeddedRunner } from "../manager/embedded_runner.ts";
import { addKubeletApi } from "../proxier/listener.ts";
import { allocatePort } from "../../toolkit/envtest/ports.ts";
import { ManagerMetrics } from "../manager/metrics.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "exit-when-ready": { type: "boolean", default: false },
    dir: { type: "string", default: ".demo" },
    nodes: { type: "string", default: "3" },
    replicas: { type: "string", default: "12" },
    timeout: { type: "string", default: "300" },
    metrics: { type: "boolean", default: false },
  },
});

const say = (line: string) => console.log(line);
const nodes = Number(values.nodes);
const replicas = Number(values.replicas);
const started = Date.now();

say("Kubeocean demo: starting a computing cluster and two worker clusters on loopback …");
const env = await Environment.start({
  dir: values.dir,
  log: (line) => console.error(`  [envtest] ${line}`),
  clusters: [
    { name: "computing", controlPlane: true, metricsServer: values.metrics },
    {
      name: "worker1",
      nodes,
      nodeTemplate: { capacity: { cpu: "8", memory: "32Gi", pods: "110" } },
      metricsServer: values.metrics,
    },
    {
      name: "worker2",
      nodes,
      nodeTemplate: { capacity: { cpu: "16", memory: "64Gi", pods: "110" } },
      metricsServer: values.metrics,
    },
  ],
});

const stop = new AbortController();
let cleaning: Promise<void> | undefined;
const clients: KubeClient[] = [];
let runner: EmbeddedRunner | undefined;
let controllerRun: Promise<void> | undefined;

async function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    say("\nCleaning up: stopping the manager and every cluster …");
    stop.abort();
    await controllerRun?.catch(() => {});
    await runner?.stop();
    for (const c of clients) c.close();
    await env.stop();
    say("Done: nothing is left running.");
  })();
  await cleaning;
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(sig, () => void cleanup().then(() => Deno.exit(sig === "SIGINT" ? 130 : 143)));
}

try {
  const computing = await KubeClient.load({
    kubeconfig: env.cluster("computing").kubeconfig,
    qps: 200,
    burst: 400,
  });
  const workers = await Promise.all(
    ["worker1", "worker2"].map((name) =>
      KubeClient.load({ kubeconfig: env.cluster(name).kubeconfig, qps: 200, burst: 400 })
    ),
  );
  clients.push(computing, ...workers);

  say("Installing the ClusterBinding CRD and starting the manager (embedded syncers) …");
  await installCrd(computing, "kubeocean.io_clusterbindings.yaml");
  const log = new Logger({ level: Deno.env.get("KUBEOCEAN_DEMO_VERBOSE") ? "info" : "error" });
  const metrics = new ManagerMetrics();
  // The kubelet API of the virtual nodes, served by the manager for its embedded syncers, with a
  // serving certificate the computing cluster's CA signed for 127.0.0.1 (its API server checks it).
  const kubeletPort = allocatePort();
  runner = new EmbeddedRunner({
    virtual: computing,
    log,
    registry: metrics.runtime.registry,
    runtimeMetrics: metrics.runtime,
    proxier: { address: "127.0.0.1", port: kubeletPort },
  });
  const recorder = new EventRecorder(computing.transport, { controller: "kubeocean.io/manager", log });
  const manager = new Manager({ name: "manager", logger: log, metrics: metrics.runtime });
  const { pki } = env.cluster("computing");
  await addKubeletApi(manager, {
    listenAddress: "127.0.0.1",
    listenPort: kubeletPort,
    advertiseAddress: "127.0.0.1",
    tlsCertFile: pki.kubelet.certFile,
    tlsPrivateKeyFile: pki.kubelet.keyFile,
    clientCaFile: pki.ca.certFile,
    csrNodeName: "kubeocean-demo",
    computing,
    bindings: runner,
    log,
  });
  clusterBindingController(manager, {
    client: computing,
    runner,
    recorder,
    metrics,
    namespace: SYSTEM_NAMESPACE,
  });
  controllerRun = manager.run(stop.signal);

  say("Binding worker1 and worker2 (namespace, RBAC, token, kubeconfig Secret, ClusterBinding) …");
  const policies = [
    { name: "half-of-worker1", cluster: "worker1", limits: [{ resource: "cpu", percent: 50 }] },
    { name: "worker2-up-to-32gi", cluster: "worker2", limits: [{ resource: "memory", quantity: "32Gi" }] },
  ];
  await Promise.all(workers.map(async (worker, i) => {
    const name = `worker${i + 1}`;
    await bind({
      computing,
      worker,
      name,
      clusterID: `w${i + 1}`,
      mountNamespace: "kubeocean-worker",
      waitMs: 60_000,
      log: (line) => console.error(`  [bind ${name}] ${line}`),
    });
    const policy = policies[i];
    const leasing: ResourceLeasingPolicy = {
      apiVersion: "kubeocean.io/v1beta1",
      kind: "ResourceLeasingPolicy",
      metadata: { name: policy.name },
      spec: { cluster: policy.cluster, resourceLimits: policy.limits },
    };
    await applyObject(worker, leasing);
  }));

  say(`Deploying the sample: Deployment "hello" (${replicas} replicas) with a ConfigMap and a Secret …`);
  const config: ConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "hello-config", namespace: "default" },
    data: { "greeting.txt": "Hello from the computing cluster!\n" },
  };
  const secret: Secret = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "hello-secret", namespace: "default" },
    stringData: { token: "not-a-real-secret" },
  };
  const deployment: Deployment = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "hello", namespace: "default" },
    spec: {
      replicas,
      selector: { matchLabels: { app: "hello" } },
      template: {
        metadata: { labels: { app: "hello" } },
        spec: {
          ...onVirtualNodes(),
          topologySpreadConstraints: [{
            maxSkew: 1,
            topologyKey: "kubeocean.io/physical-cluster-id",
            whenUnsatisfiable: "ScheduleAnyway",
            labelSelector: { matchLabels: { app: "hello" } },
          }],
          containers: [{
            name: "hello",
            image: "registry.example/hello:1",
            resources: { requests: { cpu: "250m", memory: "128Mi" } },
            env: [{ name: "TOKEN", valueFrom: { secretKeyRef: { name: "hello-secret", key: "token" } } }],
            volumeMounts: [{ name: "config", mountPath: "/etc/hello" }],
          }],
          volumes: [{ name: "config", configMap: { name: "hello-config" } }],
        },
      },
    },
  };
  for (const object of [config, secret, deployment]) await applyObject(computing, object);

  // Live progress until every pod runs.
  const core = new CoreV1Api(computing);
  const bindings = new KubeoceanIoV1beta1Api(computing).clusterbindings();
  const deadline = Date.now() + Number(values.timeout) * 1000;
  let last = "";
  while (true) {
    const [bindingList, nodeList, podList] = await Promise.all([
      bindings.list(),
      core.nodes().list({ labelSelector: `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE}` }),
      core.pods("default").list({ labelSelector: "app=hello" }),
    ]);
    const twins = await Promise.all(
      workers.map((w) =>
        new CoreV1Api(w).pods("kubeocean-worker").list({
          labelSelector: `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE}`,
        })
      ),
    );
    const parts = ["worker1", "worker2"].map((name, i) => {
      const phase = bindingList.items.find((b) => b.metadata?.name === name)?.status?.phase ?? "—";
      const vnodes = nodeList.items.filter((n) => n.metadata?.labels?.[LABEL_CLUSTER_BINDING] === name);
      const ready = vnodes.filter((n) =>
        n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
      ).length;
      const running = twins[i].items.filter((p) => p.status?.phase === "Running").length;
      return `${name}: ${phase}, vnodes ${ready}/${nodes} Ready, pods running ${running}`;
    });
    const runningVirtual = podList.items.filter((p: Pod) => p.status?.phase === "Running").length;
    const line = `  ${parts.join(" | ")} | computing: ${runningVirtual}/${replicas} Running`;
    if (line !== last) {
      say(line);
      last = line;
    }
    if (runningVirtual === replicas) break;
    if (Date.now() > deadline) throw new Error(`not all pods were Running within ${values.timeout} s`);
    await sleep(1_000);
  }
  const ready = await new AppsV1Api(computing).deployments("default").get("hello");
  say(
    `\nAll ${ready.status?.readyReplicas} pods of Deployment "hello" are Running, spread over both workers (${
      ((Date.now() - started) / 1000).toFixed(0)
    } s).`,
  );
  const k = `${env.binaries.kubectl} --kubeconfig ${env.kubeconfig}`;
  const sample = (await core.pods("default").list({ labelSelector: "app=hello" })).items
    .find((p: Pod) => p.status?.phase === "Running")!.metadata!.name!;
  const logsArgs = ["--context", "computing", "logs", sample];
  const execArgs = [
    "--context",
    "computing",
    "exec",
    sample,
    "--",
    "sh",
    "-c",
    "echo hello from $KUBEOCEAN_ENVTEST",
  ];
  say(`
Explore (the merged kubeconfig has contexts computing, worker1 and worker2):
  ${k} --context computing get clusterbindings
  ${k} --context computing get nodes -L kubeocean.io/physical-cluster-id
  ${k} --context computing get pods -o wide
  ${k} ${logsArgs.join(" ")}
  ${k} ${execArgs.slice(0, -1).join(" ")} '${execArgs.at(-1)}'
  ${k} --context computing port-forward ${sample} :8080   (every connection is echoed back)${
    values.metrics ? `\n  ${k} --context computing top pod\n  ${k} --context computing top node` : ""
  }
  ${k} --context worker1 get resourceleasingpolicies
  ${k} --context worker1 -n kubeocean-worker get pods,configmaps,secrets
  ${k} --context computing scale deployment hello --replicas=4
`);
  if (values["exit-when-ready"]) {
    // The kubelet API through the computing cluster, as a user runs it: both must answer.
    for (const [what, args] of [["kubectl logs", logsArgs], ["kubectl exec", execArgs]] as const) {
      const result = await new Deno.Command(env.binaries.kubectl, {
        args: ["--kubeconfig", env.kubeconfig, ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const out = new TextDecoder().decode(result.stdout).trim();
      if (result.code !== 0 || !out) {
        throw new Error(`${what} did not answer: ${new TextDecoder().decode(result.stderr).trim()}`);
      }
      say(`${what} ${sample}: ${out.split("\n").at(-1)}`);
    }
    if (values.metrics) {
      // metrics-server needs two scrapes in the worker and two of the virtual node for a CPU rate.
      const waitingSince = Date.now();
      let top = "";
      while ((top.match(/^hello-/gm) ?? []).length < replicas) {
        if (Date.now() > waitingSince + 120_000) {
          throw new Error("kubectl top pod did not list every sample pod within 120 s");
        }
        await sleep(2_000);
        const result = await new Deno.Command(env.binaries.kubectl, {
          args: ["--kubeconfig", env.kubeconfig, "--context", "computing", "top", "pod"],
          stdout: "piped",
          stderr: "null",
        }).output();
        top = result.code === 0 ? new TextDecoder().decode(result.stdout) : "";
      }
      const waited = ((Date.now() - waitingSince) / 1000).toFixed(0);
      say(
        `kubectl top pod (computing cluster, measured in the workers, ${waited} s later):\n${top.trimEnd()}`,
      );
    }
    await cleanup();
    Deno.exit(0);
  }
  say("Press Ctrl-C to stop and clean up.");
  await new Promise(() => {}); // until a signal
} catch (err) {
  console.error(`demo failed: ${(err as Error).message}`);
  await cleanup();
  Deno.exit(1);
}
