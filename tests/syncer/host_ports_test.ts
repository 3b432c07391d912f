/**
 * Host-port reservation, end to end: a worker with 3 kwok nodes, the real computing cluster (its
 * kube-scheduler places the pods), and a syncer. A host port the worker's own pod holds on a node
 * keeps the computing scheduler from placing a pod asking for it on that node's virtual node,
 * until the worker pod goes; the placeholder follows the worker's pods, ignores twins, survives a
 * syncer restart without a duplicate, deletes extras, and goes with its virtual node.
 */

import assert from "node:assert/strict";
import type { ContainerPort, Pod } from "../../apis/core/v1/mod.ts";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { PLACEHOLDER_NAMESPACE } from "../../controllers/common/names.ts";
import { virtualNodeName } from "../../controllers/syncer/bottomup/vnode.ts";
import type { Syncer } from "../../controllers/syncer/syncer.ts";
import { isNotFound } from "../../toolkit/client/errors.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";
import { applyPolicy, bindWorker, describeSyncer, startSyncer } from "./fixture.ts";

envTest("syncer: host ports of the worker's own pods are reserved on their virtual nodes", {
  clusters: [
    { name: "computing", controlPlane: true },
    { name: "worker", nodes: 3, nodeTemplate: { capacity: { cpu: "8", memory: "32Gi", pods: "110" } } },
  ],
}, async (env, t) => {
  const computing = await connect(env.cluster("computing"));
  const worker = await connect(env.cluster("worker"));
  const vcore = new CoreV1Api(computing);
  const pcore = new CoreV1Api(worker);
  // Host ports are refused below the privileged level: the twins of the tenants' pods need them.
  const bound = await bindWorker(computing, worker, {
    name: "worker",
    clusterID: "w1",
    podSecurity: "privileged",
  });
  let syncer: Syncer | undefined;
  const vname = (n: number) => virtualNodeName("w1", `worker-node-${n}`);
  const placeholders = async (n?: number) =>
    (await vcore.pods(PLACEHOLDER_NAMESPACE).list({})).items.filter((p) =>
      n === undefined || p.spec?.nodeName === vname(n)
    );
  const portsOf = (p: Pod) =>
    p.spec!.containers.flatMap((c) => c.ports ?? []).map((x) => `${x.hostPort}/${x.protocol ?? "TCP"}`);
  /** The one placeholder on node `n` holding `ports` (`hostPort/protocol`). */
  const placeholderWith = (n: number, ports: string[]) =>
    eventually(`placeholder on ${vname(n)} holding ${ports}`, async () => {
      const list = await placeholders(n);
      return list.length === 1 && JSON.stringify(portsOf(list[0])) === JSON.stringify(ports)
        ? list[0]
        : undefined;
    }, { timeoutMs: 30_000 });
  const workerPod = (name: string, n: number, ports: ContainerPort[]) =>
    pcore.pods("default").create({
      metadata: { name },
      spec: { nodeName: `worker-node-${n}`, containers: [{ name: "c", image: "busybox", ports }] },
    });
  const deleteWorkerPod = (name: string) => pcore.pods("default").delete(name, { gracePeriodSeconds: 0 });
  /** A computing pod asking for host port 8080 on any virtual node (or the one `pinnedTo`). */
  const tenantPod = (name: string, pinnedTo?: string) =>
    vcore.pods("default").create({
      metadata: { name },
      spec: {
        nodeSelector: pinnedTo ? { "kubernetes.io/hostname": pinnedTo } : { type: "virtual-kubelet" },
        tolerations: [{ operator: "Exists" }],
        automountServiceAccountToken: false,
        containers: [{ name: "c", image: "busybox", ports: [{ containerPort: 80, hostPort: 8080 }] }],
      },
    });
  const nodeOf = async (name: string) => (await vcore.pods("default").get(name)).spec?.nodeName;
  const gone = async (get: () => Promise<unknown>) => {
    try {
      await get();
      return false;
    } catch (err) {
      return isNotFound(err);
    }
  };

  try {
    await applyPolicy(worker, "all", { cluster: "worker" });
    await pcore.pods("default").create({
      metadata: { name: "local-8080" },
      spec: {
        nodeName: "worker-node-1",
        containers: [{ name: "c", image: "busybox", ports: [{ containerPort: 80, hostPort: 8080 }] }],
      },
    });
    syncer = startSyncer(computing, bound);

    await t.step(
      "a worker pod holds 8080 on node 1: one placeholder, bound, Scheduled, never Running",
      async () => {
        await eventually("3 Ready vnodes", async () => {
          const nodes =
            (await vcore.nodes().list({ labelSelector: "kubeocean.io/cluster-binding=worker" })).items;
          return nodes.length === 3 &&
            nodes.every((n) => n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"));
        }, { timeoutMs: 60_000 }).catch((err) =>
          Promise.reject(new Error(`${err.message}: ${describeSyncer(syncer)}`))
        );
        const placeholder = await placeholderWith(1, ["8080/TCP"]);
        assert.equal(placeholder.metadata!.labels!["kubeocean.io/host-port-placeholder"], "true");
        assert.equal(placeholder.metadata!.labels!["kubeocean.io/cluster-binding"], "worker");
        assert.equal(placeholder.spec!.nodeName, vname(1));
        assert.equal(placeholder.status!.phase, "Pending");
        await eventually("PodScheduled=True", async () => {
          const [p] = await placeholders(1);
          return p?.status?.conditions?.some((c) => c.type === "PodScheduled" && c.status === "True");
        });
        assert.deepEqual(await placeholders(2), []);
        // The worker pod takes one of 110; the placeholder's slot is advertised on top.
        const node1 = await vcore.nodes().get(vname(1));
        assert.equal(node1.status!.allocatable!.pods, "110");
        assert.equal((await vcore.nodes().get(vname(2))).status!.allocatable!.pods, "110");
      },
    );

    await t.step(
      "the scheduler keeps pods asking for 8080 off node 1; one pinned there waits on ports",
      async () => {
        await tenantPod("any-a");
        await tenantPod("any-b");
        const placed = await eventually("both scheduled", async () => {
          const nodes = [await nodeOf("any-a"), await nodeOf("any-b")];
          return nodes.every(Boolean) ? nodes : undefined;
        }, { timeoutMs: 30_000 });
        assert.deepEqual(placed.sort(), [vname(2), vname(3)], "node 1's port is taken");
        await tenantPod("pinned", vname(1));
        const waiting = await eventually("pinned unschedulable", async () => {
          const pod = await vcore.pods("default").get("pinned");
          return pod.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False");
        }, { timeoutMs: 30_000 });
        assert.match(waiting.message!, /free ports/);
        assert.equal(await nodeOf("pinned"), undefined);
      },
    );

    await t.step("the twins' own host ports (8080 on nodes 2 and 3) reserve nothing", async () => {
      await eventually("twins running", async () => {
        const twins = (await pcore.pods(bound.binding.spec!.mountNamespace).list({})).items;
        return twins.filter((p) => p.status?.phase === "Running").length === 2;
      }, { timeoutMs: 30_000 });
      syncer!.resync();
      await new Promise((r) => setTimeout(r, 1_000));
      assert.deepEqual(await placeholders(2), []);
      assert.deepEqual(await placeholders(3), []);
    });

    await t.step(
      "the worker pod goes: its placeholder goes, and the pinned pod is scheduled on node 1",
      async () => {
        await deleteWorkerPod("local-8080");
        await eventually("placeholder removed", async () => (await placeholders(1)).length === 0);
        await eventually("pinned scheduled on node 1", async () => await nodeOf("pinned") === vname(1), {
          timeoutMs: 30_000,
        });
        for (const name of ["any-a", "any-b", "pinned"]) await vcore.pods("default").delete(name);
        await eventually(
          "tenant pods gone",
          async () => (await vcore.pods("default").list({})).items.length === 0,
          {
            timeoutMs: 30_000,
          },
        );
      },
    );

    let current: Pod | undefined;
    await t.step("ports added → replaced by one with the new set; all gone → removed", async () => {
      await workerPod("dns", 3, [{ containerPort: 53, hostPort: 53, protocol: "UDP" }]);
      const first = await placeholderWith(3, ["53/UDP"]);
      await workerPod("web", 3, [{ containerPort: 80, hostPort: 80 }, { containerPort: 443, hostPort: 443 }]);
      current = await placeholderWith(3, ["80/TCP", "443/TCP", "53/UDP"]);
      assert.notEqual(current.metadata!.uid, first.metadata!.uid, "ports are immutable: a new pod");
      await deleteWorkerPod("dns");
      await deleteWorkerPod("web");
      await eventually("removed", async () => (await placeholders(3)).length === 0);
      await workerPod("web", 3, [{ containerPort: 80, hostPort: 80 }]);
      current = await placeholderWith(3, ["80/TCP"]);
    });

    await t.step("syncer restarted: the same placeholder, no duplicate", async () => {
      await syncer!.stop();
      syncer = startSyncer(computing, bound);
      await eventually("syncer ready", () => syncer!.ready, { timeoutMs: 30_000 });
      syncer.resync();
      await new Promise((r) => setTimeout(r, 2_000));
      const list = await placeholders(3);
      assert.deepEqual(list.map((p) => p.metadata!.uid), [current!.metadata!.uid]);
    });

    await t.step("an extra placeholder on the node (not the set) is deleted; ours stays", async () => {
      await vcore.pods(PLACEHOLDER_NAMESPACE).create({
        metadata: {
          name: "extra",
          labels: {
            "kubeocean.io/host-port-placeholder": "true",
            "kubeocean.io/managed-by": "kubeocean",
            "kubeocean.io/cluster-binding": "worker",
          },
        },
        spec: {
          nodeName: vname(3),
          tolerations: [{ operator: "Exists" }],
          automountServiceAccountToken: false,
          containers: [{ name: "c", image: "pause", ports: [{ containerPort: 1, hostPort: 1 }] }],
        },
      });
      await eventually("extra deleted", () => gone(() => vcore.pods(PLACEHOLDER_NAMESPACE).get("extra")));
      assert.deepEqual((await placeholders(3)).map((p) => p.metadata!.uid), [current!.metadata!.uid]);
      // It never got a twin either.
      const twins = (await pcore.pods(bound.binding.spec!.mountNamespace).list({})).items;
      assert.deepEqual(twins.map((p) => p.metadata!.name), []);
    });

    await t.step(
      "the physical node is deleted: the virtual node goes without waiting for it, and it goes too",
      async () => {
        await pcore.nodes().delete("worker-node-3");
        await eventually("vnode 3 removed", () => gone(() => vcore.nodes().get(vname(3))), {
          timeoutMs: 60_000,
        });
        await eventually("its placeholder removed", async () => (await placeholders(3)).length === 0);
        assert.deepEqual(await placeholders(), []);
      },
    );
  } finally {
    await syncer?.stop();
    bound.close();
    computing.close();
    worker.close();
  }
});
