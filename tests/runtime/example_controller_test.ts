import assert from "node:assert/strict";
import type { KubeObject, ResourceDescriptor } from "../../toolkit/client/resource.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";
import { allocatePort } from "../../toolkit/envtest/ports.ts";

const CONFIGMAPS: ResourceDescriptor = {
  group: "",
  version: "v1",
  kind: "ConfigMap",
  plural: "configmaps",
  namespaced: true,
};

envTest("the README's example controller runs against a real cluster and stops on SIGTERM", {
  clusters: [{ name: "example" }],
}, async (env) => {
  const cluster = env.cluster("example");
  const client = await connect(cluster);
  const script = new URL("../../toolkit/examples/configmap_checksum.ts", import.meta.url).pathname;
  const [metricsPort, healthPort] = [allocatePort(), allocatePort()];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-read", "--allow-env", "--allow-run", script],
    env: {
      KUBECONFIG: cluster.kubeconfig,
      METRICS_PORT: String(metricsPort),
      HEALTH_PORT: String(healthPort),
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  try {
    const cms = client.resource<KubeObject & { data?: Record<string, string> }>(CONFIGMAPS, "default");
    await cms.create({
      metadata: { name: "tracked", labels: { "example.kubeocean.io/checksum": "true" } },
      data: { a: "1" },
    });
    await cms.create({ metadata: { name: "ignored" }, data: { a: "1" } });
    const first = await eventually(
      "checksum annotation",
      async () => (await cms.get("tracked")).metadata?.annotations?.["example.kubeocean.io/sha256"],
      { timeoutMs: 30_000 },
    );
    assert.match(first, /^[0-9a-f]{64}$/);
    await cms.patch("tracked", { data: { a: "2" } }, { type: "merge" });
    await eventually(
      "checksum follows the data",
      async () => (await cms.get("tracked")).metadata?.annotations?.["example.kubeocean.io/sha256"] !== first,
    );
    assert.equal((await cms.get("ignored")).metadata?.annotations, undefined);
    // The Manager serves the reconcile metrics and a ready probe.
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    assert.match(
      metrics,
      /controller_runtime_reconcile_total\{controller="configmap-checksum",result="success"\} [1-9]/,
    );
    const ready = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
    assert.equal(ready.status, 200, await ready.text());
  } finally {
    child.kill("SIGTERM");
    const result = await output;
    client.close();
    assert.equal(result.code, 0, new TextDecoder().decode(result.stderr));
    assert.match(new TextDecoder().decode(result.stderr), /"msg":"checksum updated"/);
  }
});
