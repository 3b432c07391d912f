import assert from "node:assert/strict";
import {
  METRICS_SERVER_SERVICE,
  RESOURCE_METRICS_PATH_ANNOTATION,
  USAGE_CPU_ANNOTATION,
  USAGE_MEMORY_ANNOTATION,
} from "../../toolkit/envtest/cluster.ts";
import type { Cluster } from "../../toolkit/envtest/cluster.ts";
import { ensureMetricsServer } from "../../toolkit/envtest/binaries.ts";
import { clustersFromFlags, normaliseMetricsServerFlag } from "../../toolkit/envtest/cli.ts";
import { Environment } from "../../toolkit/envtest/environment.ts";
import { envTest, eventually } from "../../toolkit/envtest/testing.ts";

/** One row of `kubectl top pod|node --no-headers`: name, CPU in millicores, memory in MiB. */
interface TopRow {
  name: string;
  milliCpu: number;
  mebibytes: number;
}

function parseCpu(value: string): number {
  if (value.endsWith("m")) return Number(value.slice(0, -1));
  if (value.endsWith("n")) return Number(value.slice(0, -1)) / 1e6;
  return Number(value) * 1000;
}

function parseMemory(value: string): number {
  const units: Record<string, number> = { Ki: 1 / 1024, Mi: 1, Gi: 1024 };
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi)?$/.exec(value);
  if (!match) return NaN;
  return match[2] ? Number(match[1]) * units[match[2]] : Number(match[1]) / (1024 * 1024);
}

/** `kubectl top <kind>` as rows, or undefined while metrics-server has no data yet. */
async function top(cluster: Cluster, kind: "pod" | "node"): Promise<TopRow[] | undefined> {
  const { code, stdout } = await cluster.kubectl(["top", kind, "--no-headers"], { check: false });
  if (code !== 0) return undefined;
  return stdout.trim().split("\n").filter(Boolean).map((line) => {
    // pods: NAME CPU MEMORY; nodes: NAME CPU CPU% MEMORY MEMORY%
    const cells = line.trim().split(/\s+/);
    const memory = kind === "pod" ? cells[2] : cells[3];
    return { name: cells[0], milliCpu: parseCpu(cells[1]), mebibytes: parseMemory(memory) };
  });
}

function commandLine(pid: number): string[] {
  return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter(Boolean);
}

function usagePod(name: string, node: string, cpu: string, memory: string): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: "default",
      annotations: { [USAGE_CPU_ANNOTATION]: cpu, [USAGE_MEMORY_ANNOTATION]: memory },
    },
    spec: {
      nodeName: node,
      containers: [{ name: "app", image: "registry.example/app:1" }],
      tolerations: [{ operator: "Exists" }],
    },
  };
}

const started = Date.now();

envTest("envtest: metrics-server, kwok resource usage and kubectl top", {
  clusters: [
    { name: "worker", nodes: 2, metricsServer: true },
    { name: "plain" },
  ],
}, async (env, t) => {
  const worker = env.cluster("worker");
  const plain = env.cluster("plain");
  const ready = Date.now();
  console.log(`environment ready in ${((ready - started) / 1000).toFixed(1)} s`);

  await t.step("the aggregated metrics API is registered through an ExternalName Service", async () => {
    const apiService = await worker.admin.json<{
      spec: { service: { name: string; namespace: string; port: number }; insecureSkipTLSVerify?: boolean };
      status: { conditions?: { type: string; status: string }[] };
    }>("GET", "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io");
    assert.deepEqual(apiService.spec.service, {
      name: METRICS_SERVER_SERVICE.name,
      namespace: METRICS_SERVER_SERVICE.namespace,
      port: worker.state.ports.metricsServer,
    });
    assert.notEqual(apiService.spec.insecureSkipTLSVerify, true);
    assert.ok(apiService.status.conditions?.some((c) => c.type === "Available" && c.status === "True"));
    const service = await worker.admin.json<{ spec: { type: string; externalName: string } }>(
      "GET",
      `/api/v1/namespaces/${METRICS_SERVER_SERVICE.namespace}/services/${METRICS_SERVER_SERVICE.name}`,
    );
    assert.equal(service.spec.type, "ExternalName");
    assert.equal(service.spec.externalName, METRICS_SERVER_SERVICE.externalName);
    const discovery = await worker.kubectl(["get", "--raw", "/apis/metrics.k8s.io/v1beta1"]);
    assert.match(discovery.stdout, /"name":"pods"/);
    assert.match(discovery.stdout, /"name":"nodes"/);
  });

  await t.step("metrics-server runs on loopback and kube-apiserver has the aggregation flags", () => {
    const record = worker.processes.find((p) => p.name === "metrics-server");
    assert.ok(record, "metrics-server process recorded");
    const args = commandLine(record.pid);
    assert.ok(args.includes(`--secure-port=${worker.state.ports.metricsServer}`));
    assert.ok(args.includes("--bind-address=127.0.0.1"));
    assert.ok(args.includes(`--kubelet-certificate-authority=${worker.pki.ca.certFile}`));
    assert.ok(!args.some((a) => a.startsWith("--kubelet-insecure-tls")));
    const apiserver = worker.processes.find((p) => p.name === "kube-apiserver");
    assert.ok(apiserver);
    const apiserverArgs = commandLine(apiserver.pid);
    for (
      const flag of [
        "--requestheader-client-ca-file=",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--proxy-client-cert-file=",
        "--proxy-client-key-file=",
      ]
    ) {
      assert.ok(apiserverArgs.some((a) => a.startsWith(flag)), flag);
    }
  });

  await t.step("kwok nodes carry the resource-metrics-path annotation", async () => {
    for (const name of worker.state.nodes) {
      const node = await worker.admin.json<{ metadata: { annotations: Record<string, string> } }>(
        "GET",
        `/api/v1/nodes/${name}`,
      );
      assert.equal(
        node.metadata.annotations[RESOURCE_METRICS_PATH_ANNOTATION],
        `/metrics/nodes/${name}/metrics/resource`,
      );
    }
  });

  await t.step("kubectl top pod shows the annotated usage, kubectl top node lists the nodes", async () => {
    const [node1, node2] = worker.state.nodes;
    const created = Date.now();
    for (
      const pod of [usagePod("usage-1", node1, "250m", "100Mi"), usagePod("usage-2", node2, "250m", "100Mi")]
    ) {
      await worker.admin.json("POST", "/api/v1/namespaces/default/pods", pod);
    }
    const rows = await eventually("kubectl top pod to list both pods", async () => {
      const rows = await top(worker, "pod");
      return rows && ["usage-1", "usage-2"].every((n) => rows.some((r) => r.name === n)) ? rows : undefined;
    }, { timeoutMs: 90_000, intervalMs: 1_000 });
    console.log(
      `kubectl top pod answered ${((Date.now() - created) / 1000).toFixed(1)} s after the pods were created` +
        ` (${((Date.now() - ready) / 1000).toFixed(1)} s after the environment was ready)`,
    );
    for (const row of rows.filter((r) => r.name.startsWith("usage-"))) {
      assert.ok(row.milliCpu >= 225 && row.milliCpu <= 275, `${row.name} CPU ${row.milliCpu}m ≈ 250m`);
      assert.ok(Math.abs(row.mebibytes - 100) <= 1, `${row.name} memory ${row.mebibytes}Mi ≈ 100Mi`);
    }
    const nodes = await eventually("kubectl top node to list both nodes", async () => {
      const rows = await top(worker, "node");
      return rows && worker.state.nodes.every((n) => rows.some((r) => r.name === n)) ? rows : undefined;
    }, { timeoutMs: 60_000, intervalMs: 1_000 });
    for (const row of nodes) {
      // One pod of 250m/100Mi per node plus the node's own 1m/1Mi baseline.
      assert.ok(row.milliCpu >= 225 && row.milliCpu <= 280, `${row.name} CPU ${row.milliCpu}m`);
      assert.ok(row.mebibytes >= 100 && row.mebibytes <= 102, `${row.name} memory ${row.mebibytes}Mi`);
    }
  });

  await t.step("a higher CPU annotation shows up in kubectl top pod", async () => {
    await worker.kubectl(["annotate", "--overwrite", "pod", "usage-1", `${USAGE_CPU_ANNOTATION}=750m`]);
    const changed = Date.now();
    const row = await eventually("usage-1 at about 750m", async () => {
      const row = (await top(worker, "pod"))?.find((r) => r.name === "usage-1");
      return row && row.milliCpu >= 675 ? row : undefined;
    }, { timeoutMs: 60_000, intervalMs: 1_000 });
    console.log(
      `new CPU usage visible ${((Date.now() - changed) / 1000).toFixed(1)} s after the annotation changed`,
    );
    assert.ok(row.milliCpu <= 825, `usage-1 CPU ${row.milliCpu}m ≈ 750m`);
    const other = (await top(worker, "pod"))?.find((r) => r.name === "usage-2");
    assert.ok(other && other.milliCpu <= 275, "usage-2 is unchanged");
  });

  await t.step("a cluster without metricsServer runs none and has no aggregation flags", async () => {
    assert.equal(plain.state.metricsServer, false);
    assert.equal(plain.state.ports.metricsServer, 0);
    assert.equal(plain.pki.aggregation, undefined);
    assert.deepEqual(plain.processes.map((p) => p.name).sort(), ["etcd", "kube-apiserver"]);
    const apiserver = plain.processes.find((p) => p.name === "kube-apiserver");
    assert.ok(apiserver);
    const args = commandLine(apiserver.pid);
    assert.ok(
      !args.some((a) => a.startsWith("--requestheader-") || a.startsWith("--proxy-client-")),
      args.join(" "),
    );
    assert.equal((await plain.admin.request("GET", "/apis/metrics.k8s.io/v1beta1")).status, 404);
  });
});

Deno.test({
  name: "envtest: when the aggregator cannot use metrics-server, start fails with its log and the reason",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kubeocean-envtest-broken-" });
    const started = Date.now();
    try {
      const outcome = await Environment.start({
        dir,
        // The wrong request-header CA: metrics-server then refuses kube-apiserver's front-proxy client.
        clusters: [{
          name: "broken",
          metricsServer: true,
          apiserverArgs: [`--requestheader-client-ca-file=${dir}/broken/pki/ca.crt`],
        }],
        timeoutMs: 20_000,
      }).catch((err: Error) => err);
      if (outcome instanceof Environment) {
        await outcome.stop();
        assert.fail("the environment started although the aggregator cannot authenticate to metrics-server");
      }
      assert.match(
        outcome.message,
        /timed out waiting for the aggregated API \/apis\/metrics\.k8s\.io\/v1beta1/,
      );
      assert.match(outcome.message, /last lines of .*metrics-server\.log/);
      assert.match(outcome.message, /APIService v1beta1\.metrics\.k8s\.io ---\n.*bad status from .*: 401/);
      assert.ok(Date.now() - started < 40_000, "bounded wait");
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("envtest CLI: --metrics-server alone means every cluster, with names only those", () => {
  const parse = (args: string[]) => normaliseMetricsServerFlag(args);
  assert.deepEqual(parse(["up", "--clusters", "a,b", "--metrics-server"]).at(-1), "--metrics-server=*");
  assert.deepEqual(parse(["up", "--metrics-server", "--clusters", "a,b"])[1], "--metrics-server=*");
  assert.deepEqual(parse(["up", "--metrics-server", "b", "--clusters", "a,b"]).slice(1, 3), [
    "--metrics-server",
    "b",
  ]);
  const all = clustersFromFlags("computing,worker", "worker=2", undefined, true);
  assert.deepEqual(all.map((c) => [c.name, c.metricsServer]), [["computing", true], ["worker", true]]);
  const some = clustersFromFlags("computing,worker", "worker=2", undefined, "worker");
  assert.deepEqual(some.map((c) => [c.name, c.metricsServer ?? false]), [["computing", false], [
    "worker",
    true,
  ]]);
  assert.equal(clustersFromFlags("worker", "worker=1")[0].metricsServer, undefined);
  assert.throws(
    () => clustersFromFlags("worker", undefined, undefined, "other"),
    /--metrics-server names "other"/,
  );
});

Deno.test({
  name: "envtest: without metrics-server and without Go the error says what to install",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const empty = await Deno.makeTempDir();
    const path = Deno.env.get("PATH") ?? "";
    try {
      Deno.env.set("PATH", "/nonexistent");
      await assert.rejects(
        ensureMetricsServer({ assetsDir: empty, cacheRoot: empty, log: () => {} }),
        /metrics-server v0\.8\.0 is not available and Go is not installed[\s\S]*KUBEBUILDER_ASSETS/,
      );
      await assert.rejects(
        ensureMetricsServer({ assetsDir: empty, cacheRoot: empty, allowBuild: false }),
        /metrics-server v0\.8\.0 is missing/,
      );
    } finally {
      Deno.env.set("PATH", path);
      await Deno.remove(empty, { recursive: true });
    }
  },
});
