/**
 * Host-port placeholders: which worker ports count and how they are ordered, the placeholder's
 * name and shape, the `pods` slot the virtual node advertises for it, the slim pod cache keeping
 * host ports, and the controller with the node controller against in-memory API servers — created
 * once, replaced when the set changes, removed when no port is left or the node drains away
 * (without the drain waiting for it), never counted in the usage figures.
 */

import assert from "node:assert/strict";
import type { ContainerPort, Pod } from "../../apis/core/v1/mod.ts";
import {
  FINALIZER_SYNCER,
  isHostPortPlaceholder,
  LABEL_CLUSTER_BINDING,
  LABEL_HOST_PORT_PLACEHOLDER,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
  PLACEHOLDER_NAMESPACE,
} from "../../controllers/common/names.ts";
import {
  holdsExactly,
  hostPortController,
  hostPortsInUse,
  placeholderName,
  placeholderPod,
  withPlaceholderSlot,
} from "../../controllers/syncer/bottomup/host_ports.ts";
import { nodeController } from "../../controllers/syncer/bottomup/node_controller.ts";
import { physicalPodTransform } from "../../controllers/syncer/pod_slimming.ts";
import { Quantity } from "../../toolkit/apimachinery/quantity.ts";
import { isNotFound } from "../../toolkit/client/errors.ts";
import { Controller } from "../../toolkit/runtime/controller.ts";
import { eventually } from "../../toolkit/envtest/testing.ts";
import { memorySyncerContext } from "../fixtures/memory_syncer.ts";

/** A worker pod on `node` with `ports` (containerPort, hostPort, protocol, hostIP). */
function workerPod(name: string, ports: ContainerPort[], extra: {
  node?: string;
  phase?: NonNullable<Pod["status"]>["phase"];
  labels?: Record<string, string>;
  init?: boolean;
} = {}): Pod {
  const container = { name: "c", image: "app", ports };
  return {
    metadata: { name, namespace: "default", labels: extra.labels },
    spec: {
      nodeName: extra.node ?? "node1",
      containers: extra.init ? [{ name: "main", image: "app" }] : [container],
      initContainers: extra.init ? [container] : undefined,
    },
    status: { phase: extra.phase ?? "Running" },
  };
}

Deno.test("host ports in use: defaults made explicit, sorted, once each; init containers count", () => {
  const ports = hostPortsInUse([
    workerPod("a", [{ containerPort: 80, hostPort: 8080 }, { containerPort: 81 }]),
    workerPod("b", [{ containerPort: 53, hostPort: 53, protocol: "UDP" }, { containerPort: 9, hostPort: 9 }]),
    workerPod("c", [{ containerPort: 1, hostPort: 443, hostIP: "10.0.0.5" }], { init: true }),
    workerPod("d", [{ containerPort: 80, hostPort: 8080, protocol: "TCP", hostIP: "0.0.0.0" }]),
  ]);
  assert.deepEqual(ports, [
    { hostIP: "0.0.0.0", protocol: "TCP", hostPort: 9 },
    { hostIP: "0.0.0.0", protocol: "TCP", hostPort: 8080 },
    { hostIP: "0.0.0.0", protocol: "UDP", hostPort: 53 },
    { hostIP: "10.0.0.5", protocol: "TCP", hostPort: 443 },
  ]);
});

Deno.test("host ports in use: twins, terminal and unscheduled pods do not count", () => {
  const twin = { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE };
  assert.deepEqual(
    hostPortsInUse([
      workerPod("twin", [{ containerPort: 80, hostPort: 80 }], { labels: twin }),
      workerPod("done", [{ containerPort: 81, hostPort: 81 }], { phase: "Succeeded" }),
      workerPod("failed", [{ containerPort: 82, hostPort: 82 }], { phase: "Failed" }),
      workerPod("unscheduled", [{ containerPort: 83, hostPort: 83 }], { node: "" }),
      workerPod("pending", [{ containerPort: 84, hostPort: 84 }], { phase: "Pending" }),
    ]),
    [{ hostIP: "0.0.0.0", protocol: "TCP", hostPort: 84 }],
  );
});

Deno.test("placeholder: one name per port set, the exact ports, bound, tolerating, no requests", async () => {
  const ports = hostPortsInUse([workerPod("a", [{ containerPort: 80, hostPort: 8080 }])]);
  const name = await placeholderName("vnode-w1-node1", ports);
  assert.match(name, /^vnode-w1-node1-hostports-[0-9a-f]{10}$/);
  assert.equal(await placeholderName("vnode-w1-node1", [...ports]), name, "deterministic");
  assert.notEqual(
    await placeholderName("vnode-w1-node1", [...ports, { hostIP: "0.0.0.0", protocol: "TCP", hostPort: 9 }]),
    name,
  );
  const pod = placeholderPod(name, { metadata: { name: "vnode-w1-node1", uid: "u1" } }, "w1", ports);
  assert.ok(isHostPortPlaceholder(pod));
  assert.equal(pod.metadata!.labels![LABEL_CLUSTER_BINDING], "w1");
  assert.equal(pod.spec!.nodeName, "vnode-w1-node1");
  assert.deepEqual(pod.spec!.tolerations, [{ operator: "Exists" }]);
  assert.equal(pod.spec!.containers[0].resources, undefined);
  assert.deepEqual(pod.spec!.containers[0].ports, [
    { containerPort: 8080, hostPort: 8080, protocol: "TCP", hostIP: "0.0.0.0" },
  ]);
  assert.ok(holdsExactly(pod, ports));
  assert.ok(!holdsExactly(pod, []));
  // As the API server stores a pod without explicit defaults, it still holds the same ports.
  const stored = {
    ...pod,
    spec: { ...pod.spec!, containers: [{ name: "c", ports: [{ containerPort: 1, hostPort: 8080 }] }] },
  };
  assert.ok(holdsExactly(stored, ports));
});

Deno.test("placeholder: recognised only in its namespace and with Kubeocean's labels", () => {
  const labels = { [LABEL_HOST_PORT_PLACEHOLDER]: "true", [LABEL_MANAGED_BY]: MANAGED_BY_VALUE };
  assert.ok(isHostPortPlaceholder({ metadata: { namespace: PLACEHOLDER_NAMESPACE, labels } }));
  assert.ok(!isHostPortPlaceholder({ metadata: { namespace: "tenant", labels } }), "a tenant's look-alike");
  assert.ok(
    !isHostPortPlaceholder({
      metadata: { namespace: PLACEHOLDER_NAMESPACE, labels: { [LABEL_HOST_PORT_PLACEHOLDER]: "true" } },
    }),
  );
});

Deno.test("advertised pods: one more only while host ports are held", () => {
  const leased = { cpu: Quantity.parse("4"), pods: Quantity.parse("110") };
  assert.equal(withPlaceholderSlot(leased, []).pods.toString(), "110");
  const held = withPlaceholderSlot(leased, [workerPod("a", [{ containerPort: 80, hostPort: 8080 }])]);
  assert.equal(held.pods.toString(), "111");
  assert.equal(held.cpu.toString(), "4");
  assert.equal(leased.pods.toString(), "110", "the leased figures are left alone");
});

Deno.test("slim worker pods keep their host ports (and only those)", () => {
  const slim = physicalPodTransform(
    workerPod("a", [{ containerPort: 80, hostPort: 8080 }, { containerPort: 81 }], { init: true }),
  ) as Pod;
  assert.deepEqual(slim.spec!.initContainers![0].ports, [{ containerPort: 80, hostPort: 8080 }]);
  assert.equal(slim.spec!.containers[0].ports, undefined);
  assert.deepEqual(hostPortsInUse([slim]), [{ hostIP: "0.0.0.0", protocol: "TCP", hostPort: 8080 }]);
});

Deno.test("host-port controller: created once, replaced on change, removed when none is left or the node drains", async () => {
  const { ctx, virtual, manager, registry } = memorySyncerContext({ address: "10.0.0.9", port: 10250 });
  nodeController(ctx, async () => {});
  hostPortController(ctx);
  await ctx.bindings.create({
    metadata: { name: "w1", finalizers: [FINALIZER_SYNCER] },
    spec: {
      clusterID: "w1",
      mountNamespace: "mount",
      secretRef: { name: "s", namespace: "kubeocean-system" },
    },
  });
  await ctx.physical.core.nodes().create({
    metadata: { name: "node1" },
    status: { allocatable: { cpu: "4", memory: "8Gi", pods: "110" } },
  });
  await ctx.policies.create({ metadata: { name: "p" }, spec: { cluster: "w1" } });
  const stop = new AbortController();
  const running = manager.run(stop.signal);
  const wpods = ctx.physical.core.pods("default");
  const placeholders = async () => (await ctx.virtual.core.pods(PLACEHOLDER_NAMESPACE).list({})).items;
  const pods = async () => (await ctx.virtual.core.nodes().get("vnode-w1-node1")).status?.allocatable?.pods;
  try {
    await eventually("vnode", async () => await pods() === "110");
    assert.deepEqual(await placeholders(), [], "no host port, no placeholder");

    await wpods.create(workerPod("web", [{ containerPort: 80, hostPort: 8080 }]));
    await wpods.create(workerPod("twin", [{ containerPort: 80, hostPort: 9090 }], {
      labels: { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE },
    }));
    const first = await eventually(
      "placeholder",
      async () => (await placeholders()).find((p) => p.status?.conditions),
    );
    assert.deepEqual(
      first.spec!.containers[0].ports!.map((p) => p.hostPort),
      [8080],
      "the twin's port not counted",
    );
    assert.deepEqual(first.status!.conditions!.map((c) => [c.type, c.status]), [["PodScheduled", "True"]]);
    assert.equal(first.status!.phase, "Pending", "never Running");
    // The worker pod takes one of the node's 110: 109 leased, 110 advertised (the placeholder's slot).
    await eventually("one more pod advertised", async () => await pods() === "110");

    // Nothing changed: a resync writes nothing.
    for (const r of manager.runnables) if (r instanceof Controller) r.resync();
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual((await placeholders()).map((p) => p.metadata!.uid), [first.metadata!.uid]);
    // The figures of that resync: the leased count, and the placeholder in no one's usage.
    const text = await registry.metrics();
    assert.match(text, /kubeocean_syncer_vnode_available_resource\{[^}]*resource="pods"[^}]*\} 109/);
    assert.match(text, /kubeocean_syncer_vnode_virtual_usage\{[^}]*resource="pods"[^}]*\} 0/, "not counted");

    await wpods.create(workerPod("dns", [{ containerPort: 53, hostPort: 53, protocol: "UDP" }]));
    const second = await eventually("replaced", async () => {
      const list = await placeholders();
      return list.length === 1 && list[0].metadata!.uid !== first.metadata!.uid ? list[0] : undefined;
    });
    assert.deepEqual(second.spec!.containers[0].ports!.map((p) => `${p.hostPort}/${p.protocol}`), [
      "8080/TCP",
      "53/UDP",
    ]);

    await wpods.delete("web", { gracePeriodSeconds: 0 });
    await wpods.delete("dns", { gracePeriodSeconds: 0 });
    await eventually("removed", async () => (await placeholders()).length === 0);
    await eventually("no slot once no worker pod is left", async () => await pods() === "110");

    // The node drains away: its placeholder does not hold it back, and goes with it.
    await wpods.create(workerPod("web2", [{ containerPort: 80, hostPort: 8080 }]));
    await eventually("placeholder again", async () => (await placeholders()).length === 1);
    await ctx.policies.delete("p");
    await eventually("vnode removed", async () => {
      try {
        await ctx.virtual.core.nodes().get("vnode-w1-node1");
        return false;
      } catch (err) {
        return isNotFound(err);
      }
    });
    await eventually("placeholder removed with it", async () => (await placeholders()).length === 0);
  } finally {
    stop.abort();
    await running;
    virtual.close();
  }
});
