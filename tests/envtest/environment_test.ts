import assert from "node:assert/strict";
import { probe } from "../../toolkit/envtest/admin_client.ts";
import { envTest, eventually } from "../../toolkit/envtest/testing.ts";

const CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.kubeocean.io
spec:
  group: example.kubeocean.io
  names: { kind: Widget, plural: widgets, singular: widget, listKind: WidgetList }
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: { type: integer, minimum: 1 }
                colour: { type: string, enum: [red, blue] }
`;

interface PodList {
  items: { metadata: { name: string }; spec: { nodeName?: string }; status: { phase?: string } }[];
}

envTest("envtest: three clusters, CRDs, kwok nodes, workloads, logs and exec", {
  clusters: [
    { name: "computing", controlPlane: true },
    { name: "worker1", nodes: 3 },
    { name: "worker2", nodes: 2 },
  ],
}, async (env, t) => {
  await t.step("each cluster serves /readyz with its own CA", async () => {
    for (const cluster of env.clusters) {
      assert.equal(await probe(`${cluster.server}/readyz`, cluster.pki.ca.certPem), true, cluster.name);
    }
    const [a, b] = env.clusters;
    assert.equal(
      await probe(`${a.server}/readyz`, b.pki.ca.certPem),
      false,
      "CAs must differ between clusters",
    );
  });

  await t.step("an object created in one cluster is absent from the others", async () => {
    await env.cluster("computing").admin.json("POST", "/api/v1/namespaces", {
      metadata: { name: "only-in-computing" },
    });
    assert.equal(
      (await env.cluster("computing").admin.request("GET", "/api/v1/namespaces/only-in-computing")).status,
      200,
    );
    for (const other of ["worker1", "worker2"]) {
      assert.equal(
        (await env.cluster(other).admin.request("GET", "/api/v1/namespaces/only-in-computing")).status,
        404,
      );
    }
  });

  await t.step("a CRD applied with kubectl is served and a custom resource round-trips", async () => {
    const worker = env.cluster("worker1");
    await worker.kubectl(["apply", "-f", "-"], { stdin: CRD });
    await worker.kubectl([
      "wait",
      "--for=condition=Established",
      "crd/widgets.example.kubeocean.io",
      "--timeout=30s",
    ]);
    const created = await eventually("widget create", async () => {
      const res = await worker.admin.request(
        "POST",
        "/apis/example.kubeocean.io/v1/namespaces/default/widgets",
        {
          apiVersion: "example.kubeocean.io/v1",
          kind: "Widget",
          metadata: { name: "w1" },
          spec: { size: 3, colour: "blue" },
        },
      );
      return res.status === 201 ? res.body as { spec: unknown } : undefined;
    });
    assert.deepEqual(created.spec, { size: 3, colour: "blue" });
    const read = await worker.admin.json<{ spec: unknown }>(
      "GET",
      "/apis/example.kubeocean.io/v1/namespaces/default/widgets/w1",
    );
    assert.deepEqual(read.spec, { size: 3, colour: "blue" });
    const invalid = await worker.admin.request(
      "POST",
      "/apis/example.kubeocean.io/v1/namespaces/default/widgets",
      {
        apiVersion: "example.kubeocean.io/v1",
        kind: "Widget",
        metadata: { name: "w2" },
        spec: { size: 0, colour: "green" },
      },
    );
    assert.equal(invalid.status, 422);
    assert.match(JSON.stringify(invalid.body), /spec\.size/);
    assert.match(JSON.stringify(invalid.body), /spec\.colour/);
    // The CRD is not served by the other clusters.
    const elsewhere = await env.cluster("worker2").admin.request(
      "GET",
      "/apis/example.kubeocean.io/v1/widgets",
    );
    assert.equal(elsewhere.status, 404);
  });

  await t.step("kwok nodes are Ready and a Deployment of 5 replicas gets 5 Running pods", async () => {
    const worker = env.cluster("worker1");
    const nodes = await worker.admin.json<{ items: { metadata: { name: string } }[] }>(
      "GET",
      "/api/v1/nodes",
    );
    assert.deepEqual(nodes.items.map((n) => n.metadata.name).sort(), [
      "worker1-node-1",
      "worker1-node-2",
      "worker1-node-3",
    ]);
    await worker.kubectl(["create", "deployment", "web", "--image=registry.example/web:1", "--replicas=5"]);
    const pods = await eventually("5 Running pods", async () => {
      const list = await worker.admin.json<PodList>(
        "GET",
        "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb",
      );
      const running = list.items.filter((p) => p.status.phase === "Running");
      return running.length === 5 ? running : undefined;
    }, { timeoutMs: 60_000 });
    assert.ok(pods.every((p) => p.spec.nodeName?.startsWith("worker1-node-")));
  });

  await t.step("kubectl logs and exec reach a kwok pod through the real API server", async () => {
    const worker = env.cluster("worker1");
    const list = await worker.admin.json<PodList>(
      "GET",
      "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb",
    );
    const pod = list.items[0].metadata.name;
    const logs = await worker.kubectl(["logs", pod]);
    assert.match(logs.stdout, /kubeocean envtest: container started/);
    const exec = await worker.kubectl(["exec", pod, "--", "sh", "-c", "echo exec-ok $KUBEOCEAN_ENVTEST"]);
    assert.equal(exec.stdout.trim(), "exec-ok worker1");
  });

  await t.step("nodes can be added later and turn Ready", async () => {
    const worker = env.cluster("worker2");
    const added = await worker.createNodes(2);
    assert.deepEqual(added, ["worker2-node-3", "worker2-node-4"]);
  });
});
