/**
 * Bottom-up, end to end: a worker with 10 kwok nodes, the real computing cluster (scheduler and
 * controller-manager, whose node-lifecycle controller marks nodes NotReady), a syncer that talks to
 * the worker with the ServiceAccount `bind` minted, and an injected clock for the time windows.
 */

import assert from "node:assert/strict";
import type { Node, Pod } from "../../apis/core/v1/mod.ts";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { CoordinationK8sIoV1Api } from "../../apis/coordination.k8s.io/v1/mod.ts";
import { StorageK8sIoV1Api } from "../../apis/storage.k8s.io/v1/mod.ts";
import { KubeoceanIoV1beta1Api, type ResourceLeasingPolicy } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { virtualNodeName } from "../../controllers/syncer/bottomup/vnode.ts";
import type { Syncer } from "../../controllers/syncer/syncer.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";
import { isNotFound } from "../../toolkit/client/errors.ts";
import { Controller, type ReconcileOutcome } from "../../toolkit/runtime/controller.ts";
import { applyPolicy, bindWorker, completeTwin, deletePolicy, startSyncer, TestClock } from "./fixture.ts";

const NODES = 10;
const SELECTED = 6;

envTest("syncer bottom-up: virtual nodes, capacity, time windows, removal, heartbeats, CSINodes", {
  clusters: [
    {
      name: "computing",
      controlPlane: true,
      // A short grace so that the node-lifecycle controller reacts within the test.
      controllerManagerArgs: ["--node-monitor-grace-period=12s", "--node-monitor-period=2s"],
    },
    { name: "worker", nodes: NODES, nodeTemplate: { capacity: { cpu: "8", memory: "32Gi", pods: "110" } } },
  ],
}, async (env, t) => {
  const computing = await connect(env.cluster("computing"));
  const worker = await connect(env.cluster("worker"));
  const vcore = new CoreV1Api(computing);
  const pcore = new CoreV1Api(worker);
  const leases = new CoordinationK8sIoV1Api(computing).leases("kube-node-lease");
  const clock = new TestClock();
  let syncer: Syncer | undefined;
  const bound = await bindWorker(computing, worker, { name: "worker", clusterID: "w1" });
  const physical = Array.from({ length: NODES }, (_, i) => `worker-node-${i + 1}`);
  const vname = (n: string) => virtualNodeName("w1", n);
  const vnodes = async () =>
    (await vcore.nodes().list({ labelSelector: "kubeocean.io/cluster-binding=worker" })).items;
  const vnode = (n: string) => vcore.nodes().get(vname(n));
  const ready = (n: Node) => n.status?.conditions?.find((c) => c.type === "Ready")?.status;
  const taint = (n: Node, key: string) => n.spec?.taints?.find((t) => t.key === key);
  const policies = new KubeoceanIoV1beta1Api(worker).resourceleasingpolicies();
  /** The running syncer's node controller (a restarted syncer has a new one). */
  const nodeController = (): Controller<Node> => {
    const found = syncer?.manager.runnables.find((r) => r.name === "vnodes/worker");
    if (!(found instanceof Controller)) throw new Error("the syncer has no node controller");
    return found;
  };
  /** The outcome of a reconcile of physical node `name` asked for now. */
  const reconciled = async (name: string): Promise<ReconcileOutcome> => {
    const controller = nodeController();
    const done = new AbortController();
    const next = (async () => {
      for await (const outcome of controller.outcomes(done.signal)) if (outcome.key === name) return outcome;
      throw new Error("node controller stopped");
    })();
    controller.enqueue({ name });
    try {
      return await next;
    } finally {
      done.abort();
    }
  };
  const missing = async (get: () => Promise<unknown>) => {
    try {
      await get();
      return false;
    } catch (err) {
      return isNotFound(err);
    }
  };
  /** Virtual node of `physicalName` cordoned for draining: unschedulable, tainted, with its start. */
  const cordoned = (physicalName: string) =>
    eventually(`${vname(physicalName)} cordoned`, async () => {
      const n = await vnode(physicalName);
      return n.spec?.unschedulable && taint(n, "kubeocean.io/vnode-deleting")?.effect === "NoSchedule" &&
          n.metadata?.annotations?.["kubeocean.io/draining-since"]
        ? n
        : undefined;
    });
  /** A pod bound straight to the virtual node of `physicalName` (tolerating its taints), Running. */
  const runningPodOn = async (name: string, physicalName: string): Promise<Pod> => {
    await vcore.pods("default").create({
      metadata: { name },
      spec: {
        nodeName: vname(physicalName),
        tolerations: [{ operator: "Exists" }],
        containers: [{ name: "c", image: "busybox" }],
      },
    } as Pod);
    return await eventually(`${name} Running through its twin`, async () => {
      const pod = await vcore.pods("default").get(name);
      return pod.status?.phase === "Running" ? pod : undefined;
    });
  };
  /** A policy leasing only `physicalName` (labelled `pool=<label>`), and its virtual node Ready. */
  const leaseOnly = async (
    physicalName: string,
    label: string,
    extra: Partial<NonNullable<ResourceLeasingPolicy["spec"]>> = {},
  ) => {
    await pcore.nodes().patch(physicalName, { metadata: { labels: { pool: label } } }, { type: "merge" });
    await applyPolicy(worker, `lease-${label}`, {
      cluster: "worker",
      nodeSelector: {
        nodeSelectorTerms: [{
          matchExpressions: [{ key: "pool", operator: "In" as const, values: [label] }],
        }],
      },
      ...extra,
    });
    await eventually(`${vname(physicalName)} Ready`, async () => ready(await vnode(physicalName)) === "True");
  };

  try {
    for (const name of physical.slice(0, SELECTED)) {
      await pcore.nodes().patch(name, { metadata: { labels: { pool: "spare" } } }, { type: "merge" });
    }
    const spare = {
      nodeSelectorTerms: [{
        matchExpressions: [{ key: "pool", operator: "In" as const, values: ["spare"] }],
      }],
    };
    await applyPolicy(worker, "a-half", {
      cluster: "worker",
      nodeSelector: spare,
      resourceLimits: [{ resource: "cpu", percent: 50 }],
    });
    clock.set("2026-11-25T10:00:00Z"); // a Wednesday
    syncer = startSyncer(computing, bound, { clock });

    await t.step(
      "10 nodes, the policy selects 6: exactly 6 Ready virtual nodes, right names, labels, taints, capacity",
      async () => {
        await eventually("6 Ready vnodes", async () => {
          const list = await vnodes();
          return list.length === SELECTED && list.every((n) => ready(n) === "True");
        }, { timeoutMs: 60_000 });
        const names = (await vnodes()).map((n) => n.metadata!.name!).sort();
        assert.deepEqual(names, physical.slice(0, SELECTED).map(vname).sort());
        const n = await vnode("worker-node-1");
        assert.equal(n.metadata!.name, "vnode-w1-worker-node-1");
        const labels = n.metadata!.labels!;
        assert.equal(labels["kubeocean.io/cluster-binding"], "worker");
        assert.equal(labels["kubeocean.io/physical-cluster-id"], "w1");
        assert.equal(labels["kubeocean.io/physical-node-name"], "worker-node-1");
        assert.equal(labels["kubeocean.io/managed-by"], "kubeocean");
        assert.equal(labels.type, "virtual-kubelet");
        assert.equal(taint(n, "kubeocean.io/vnode")?.effect, "NoSchedule");
        assert.equal(n.status!.allocatable!.cpu, "4");
        assert.equal(n.status!.allocatable!.memory, "32Gi");
        assert.equal(n.status!.allocatable!.pods, "110");
        assert.equal(n.status!.daemonEndpoints!.kubeletEndpoint!.Port, 10250);
        const lease = await leases.get(vname("worker-node-1"));
        assert.equal(lease.spec!.leaseDurationSeconds, 40);
        assert.equal(lease.metadata!.ownerReferences![0].kind, "Node");
        assert.equal(lease.metadata!.ownerReferences![0].uid, n.metadata!.uid);
      },
    );

    await t.step("labels and taints users add to a virtual node survive the syncer's updates", async () => {
      await vcore.nodes().patch(vname("worker-node-6"), {
        metadata: { labels: { "team.example/owner": "ops" } },
      }, { type: "merge" });
      await pcore.nodes().patch("worker-node-6", { metadata: { labels: { rack: "r7" } } }, { type: "merge" });
      const n = await eventually("physical label copied", async () => {
        const v = await vnode("worker-node-6");
        return v.metadata?.labels?.rack === "r7" ? v : undefined;
      });
      assert.equal(n.metadata!.labels!["team.example/owner"], "ops");
    });

    const cpuOf = async (n: string) => (await vnode(n)).status?.allocatable?.cpu;
    const memoryOf = async (n: string) => (await vnode(n)).status?.allocatable?.memory;

    await t.step("capacity: quantity only; both (the smaller wins)", async () => {
      await applyPolicy(worker, "a-half", {
        cluster: "worker",
        nodeSelector: spare,
        resourceLimits: [{ resource: "memory", quantity: "8Gi" }],
      });
      await eventually(
        "memory 8Gi, cpu all",
        async () => await memoryOf("worker-node-2") === "8Gi" && await cpuOf("worker-node-2") === "8",
      );
      await applyPolicy(worker, "a-half", {
        cluster: "worker",
        nodeSelector: spare,
        resourceLimits: [{ resource: "cpu", percent: 50, quantity: "3" }],
      });
      await eventually("cpu min(50% of 8, 3) = 3", async () => await cpuOf("worker-node-2") === "3");
      await applyPolicy(worker, "a-half", {
        cluster: "worker",
        nodeSelector: spare,
        resourceLimits: [{ resource: "cpu", percent: 25, quantity: "3" }],
      });
      await eventually("cpu min(25% of 8, 3) = 2", async () => await cpuOf("worker-node-2") === "2");
    });

    await t.step(
      "capacity: requests of non-Kubeocean pods (with init containers) are subtracted",
      async () => {
        await applyPolicy(worker, "a-half", {
          cluster: "worker",
          nodeSelector: spare,
          resourceLimits: [{ resource: "cpu", percent: 50 }],
        });
        await pcore.pods("default").create({
          metadata: { name: "local-workload" },
          spec: {
            nodeName: "worker-node-1",
            // Effective request: max(init 3, 1 + 1) = 3 CPUs (the reference would sum to 5).
            initContainers: [{ name: "init", image: "busybox", resources: { requests: { cpu: "3" } } }],
            containers: [
              { name: "a", image: "busybox", resources: { requests: { cpu: "1", memory: "1Gi" } } },
              { name: "b", image: "busybox", resources: { requests: { cpu: "1", memory: "1Gi" } } },
            ],
          },
        } as Pod);
        await eventually(
          "cpu 50% of (8 - 3) = 2500m, memory 30Gi",
          async () => await cpuOf("worker-node-1") === "2500m" && await memoryOf("worker-node-1") === "30Gi",
        );
        await pcore.pods("default").delete("local-workload", { gracePeriodSeconds: 0 });
        await eventually("capacity restored", async () => await cpuOf("worker-node-1") === "4");
      },
    );

    await t.step("two matching policies: the oldest wins; when it goes, the other applies", async () => {
      await new Promise((r) => setTimeout(r, 1_100)); // creationTimestamp has one-second resolution
      await applyPolicy(worker, "b-newer", {
        cluster: "worker",
        nodeSelector: spare,
        resourceLimits: [{ resource: "cpu", quantity: "1" }],
      });
      await new Promise((r) => setTimeout(r, 1_500));
      assert.equal(await cpuOf("worker-node-3"), "4");
      assert.equal((await vnode("worker-node-3")).metadata!.annotations!["kubeocean.io/policy"], "a-half");
      await deletePolicy(worker, "a-half");
      await eventually("b-newer applies", async () => await cpuOf("worker-node-3") === "1");
    });

    await t.step(
      "an invalid policy is Failed with a condition naming the field, and leases nothing",
      async () => {
        await applyPolicy(worker, "broken", {
          cluster: "worker",
          nodeSelector: {
            nodeSelectorTerms: [{
              matchExpressions: [{ key: "pool", operator: "In" as const, values: ["none"] }],
            }],
          },
          timeZone: "Mars/Olympus_Mons",
        });
        const policies = new KubeoceanIoV1beta1Api(worker).resourceleasingpolicies();
        const failed = await eventually("policy Failed", async () => {
          const p = await policies.get("broken");
          return p.status?.phase === "Failed" ? p : undefined;
        });
        const condition = failed.status!.conditions!.find((c) => c.status === "False");
        assert.match(condition!.message!, /spec\.timeZone/);
        await deletePolicy(worker, "broken");
      },
    );

    await t.step(
      "a quantity the schema accepts but is no Kubernetes quantity → Failed naming the field; the syncer goes on",
      async () => {
        const outcomes: ReconcileOutcome[] = [];
        const watching = new AbortController();
        const collecting = (async () => {
          for await (const o of nodeController().outcomes(watching.signal)) {
            if (o.key === "worker-node-9") outcomes.push(o);
          }
        })();
        const node9 = {
          nodeSelectorTerms: [{
            matchFields: [{ key: "metadata.name", operator: "In" as const, values: ["worker-node-9"] }],
          }],
        };
        // "1e1.5" matches the CRD's quantity pattern (a fractional exponent) but no quantity parser takes it.
        await applyPolicy(worker, "bad-quantity", {
          cluster: "worker",
          nodeSelector: node9,
          resourceLimits: [{ resource: "cpu", quantity: "1e1.5" }],
        });
        const failed = await eventually("policy Failed", async () => {
          const p = await policies.get("bad-quantity");
          return p.status?.phase === "Failed" ? p : undefined;
        });
        const valid = failed.status!.conditions!.find((c) => c.type === "Valid")!;
        assert.equal(valid.status, "False");
        assert.match(
          valid.message!,
          /^spec\.resourceLimits\[0\]\.quantity: "1e1\.5" is not a Kubernetes quantity/,
        );
        await reconciled("worker-node-9");
        assert.ok(await missing(() => vnode("worker-node-9")), "an invalid policy leases nothing");
        watching.abort();
        await collecting;
        const errors = outcomes.filter((o) => o.result === "error").map((o) => o.error?.message);
        assert.deepEqual(errors, [], "the node's reconciles do not throw");
        // The syncer goes on: the corrected policy leases the node.
        await applyPolicy(worker, "bad-quantity", {
          cluster: "worker",
          nodeSelector: node9,
          resourceLimits: [{ resource: "cpu", quantity: "1" }],
        });
        await eventually("node 9 leased with 1 CPU", async () => {
          try {
            return await cpuOf("worker-node-9") === "1";
          } catch {
            return false;
          }
        });
        await deletePolicy(worker, "bad-quantity");
        await eventually("node 9 no longer leased", () => missing(() => vnode("worker-node-9")));
      },
    );

    await t.step("no policy: no virtual node", async () => {
      await deletePolicy(worker, "b-newer");
      await eventually("all vnodes removed", async () => (await vnodes()).length === 0, {
        timeoutMs: 60_000,
      });
      const rest = await leases.list({});
      assert.equal(rest.items.filter((l) => l.metadata!.name!.startsWith("vnode-w1-")).length, 0);
    });

    await t.step(
      "time windows with an injected clock: inside, outside, forceReclaim after the grace",
      async () => {
        await applyPolicy(worker, "a-half", {
          cluster: "worker",
          nodeSelector: spare,
          resourceLimits: [{ resource: "cpu", percent: 50 }],
          timeWindows: [{ start: "09:00", end: "17:00" }],
          forceReclaim: true,
          gracefulReclaimPeriodSeconds: 30,
        });
        await eventually("6 vnodes again", async () => (await vnodes()).length === SELECTED, {
          timeoutMs: 60_000,
        });
        const policies = new KubeoceanIoV1beta1Api(worker).resourceleasingpolicies();
        const active = await eventually("policy Active", async () => {
          const p = await policies.get("a-half");
          return p.status?.phase === "Active" ? p : undefined;
        });
        assert.equal(active.status!.activeTimeWindow, true);
        assert.match(active.status!.conditions!.find((c) => c.type === "Active")!.message!, /09:00/);
        assert.equal(active.status!.nextTransitionTime, "2026-11-25T17:00:00Z");
        assert.equal(taint(await vnode("worker-node-1"), "kubeocean.io/out-of-time-windows"), undefined);

        clock.set("2026-11-25T17:00:05Z");
        syncer!.resync();
        await eventually(
          "NoSchedule outside the window",
          async () =>
            taint(await vnode("worker-node-1"), "kubeocean.io/out-of-time-windows")?.effect === "NoSchedule",
        );
        const inactive = await eventually("policy Inactive", async () => {
          const p = await policies.get("a-half");
          return p.status?.phase === "Inactive" ? p : undefined;
        });
        assert.equal(inactive.status!.nextTransitionTime, "2026-11-26T09:00:00Z");
        clock.set("2026-11-25T17:00:31Z");
        syncer!.resync();
        await eventually(
          "NoExecute after the 30 s grace",
          async () =>
            taint(await vnode("worker-node-1"), "kubeocean.io/out-of-time-windows")?.effect === "NoExecute",
        );
      },
    );

    await t.step("a window across midnight", async () => {
      await applyPolicy(worker, "a-half", {
        cluster: "worker",
        nodeSelector: spare,
        resourceLimits: [{ resource: "cpu", percent: 50 }],
        timeWindows: [{ start: "22:00", end: "06:00" }],
      });
      const outside = async () => taint(await vnode("worker-node-1"), "kubeocean.io/out-of-time-windows");
      for (
        const [instant, inside] of [
          ["2026-11-25T23:30:00Z", true],
          ["2026-11-26T05:59:00Z", true],
          ["2026-11-26T06:00:00Z", false],
          ["2026-11-26T21:59:00Z", false],
        ] as const
      ) {
        clock.set(instant);
        syncer!.resync();
        await eventually(
          `${instant} ${inside ? "inside" : "outside"}`,
          async () => !!(await outside()) !== inside,
        );
      }
    });

    await t.step("a Saturday-only window in Asia/Shanghai", async () => {
      await applyPolicy(worker, "a-half", {
        cluster: "worker",
        nodeSelector: spare,
        resourceLimits: [{ resource: "cpu", percent: 50 }],
        timeZone: "Asia/Shanghai",
        timeWindows: [{ start: "00:00", end: "23:59", days: ["saturday"] }],
      });
      const outside = async () => taint(await vnode("worker-node-1"), "kubeocean.io/out-of-time-windows");
      for (
        const [instant, inside] of [
          ["2026-11-27T15:59:00Z", false], // Friday 23:59 in Shanghai
          ["2026-11-27T16:00:00Z", true], // Saturday 00:00 in Shanghai, still Friday in UTC
          ["2026-11-28T15:58:00Z", true], // Saturday 23:58 in Shanghai
          ["2026-11-28T16:00:00Z", false], // Sunday in Shanghai, still Saturday in UTC
        ] as const
      ) {
        clock.set(instant);
        syncer!.resync();
        await eventually(
          `${instant} ${inside ? "inside" : "outside"}`,
          async () => !!(await outside()) !== inside,
        );
      }
      await applyPolicy(worker, "a-half", {
        cluster: "worker",
        nodeSelector: spare,
        resourceLimits: [{ resource: "cpu", percent: 50 }],
      });
      syncer!.resync();
      await eventually("no window, no taint", async () => !(await outside()));
    });

    await t.step("physical node deleted → its Kubeocean pods evicted, virtual node removed", async () => {
      // A pod bound straight to the virtual node (no scheduler involved), tolerating its taint.
      await vcore.pods("default").create({
        metadata: { name: "on-node-5" },
        spec: {
          nodeName: vname("worker-node-5"),
          tolerations: [{ operator: "Exists" }],
          containers: [{ name: "c", image: "busybox" }],
        },
      } as Pod);
      await eventually(
        "pod Running through its twin",
        async () => (await vcore.pods("default").get("on-node-5")).status?.phase === "Running",
      );
      await pcore.nodes().delete("worker-node-5");
      await eventually("pod evicted", async () => {
        try {
          await vcore.pods("default").get("on-node-5");
          return false;
        } catch (err) {
          return isNotFound(err);
        }
      }, { timeoutMs: 60_000 });
      await eventually("vnode gone", async () => {
        try {
          await vnode("worker-node-5");
          return false;
        } catch (err) {
          return isNotFound(err);
        }
      });
      await assert.rejects(leases.get(vname("worker-node-5")), (err) => isNotFound(err));
    });

    await t.step(
      "policy deleted, no forceReclaim → cordoned, its pods run to completion, then the virtual node goes",
      async () => {
        await leaseOnly("worker-node-7", "finish");
        const pod = await runningPodOn("on-node-7", "worker-node-7");
        await deletePolicy(worker, "lease-finish");
        await cordoned("worker-node-7");
        // A whole reconcile of the drained node later: nothing evicted, the node stays.
        await reconciled("worker-node-7");
        const still = await vcore.pods("default").get("on-node-7");
        assert.equal(still.status?.phase, "Running");
        assert.equal(still.metadata?.deletionTimestamp, undefined, "not evicted");
        assert.equal((await vnode("worker-node-7")).spec?.unschedulable, true);

        // Play the kubelet: the twin's container exits 0.
        const twinName = pod.metadata!.annotations!["kubeocean.io/physical-pod-name"];
        await completeTwin(worker, "kubeocean-worker", twinName);
        await eventually(
          "virtual pod Succeeded",
          async () => (await vcore.pods("default").get("on-node-7")).status?.phase === "Succeeded",
        );
        await eventually(
          "vnode 7 removed once its last pod ended",
          () => missing(() => vnode("worker-node-7")),
        );
        await eventually("its Lease too", () => missing(() => leases.get(vname("worker-node-7"))));
        await vcore.pods("default").delete("on-node-7", { gracePeriodSeconds: 0 }).catch(() => {});
      },
    );

    await t.step(
      "policy deleted with forceReclaim and a 10 s grace → evicted 10 s after draining began, not before",
      async () => {
        await leaseOnly("worker-node-8", "reclaim", { forceReclaim: true, gracefulReclaimPeriodSeconds: 10 });
        await runningPodOn("on-node-8", "worker-node-8");
        await deletePolicy(worker, "lease-reclaim");
        const drained = await cordoned("worker-node-8");
        const since = Date.parse(drained.metadata!.annotations!["kubeocean.io/draining-since"]);
        const deadline = since + 10_000;
        // Poll on the syncer's clock until the pod is evicted; note when it was last seen untouched.
        let lastUntouched = 0;
        let evictedSeen = 0;
        let evicted: Pod | undefined;
        await eventually("pod evicted", async () => {
          const before = clock.now().getTime();
          try {
            const pod = await vcore.pods("default").get("on-node-8");
            if (!pod.metadata?.deletionTimestamp) {
              lastUntouched = before;
              return false;
            }
            evicted = pod;
          } catch (err) {
            if (!isNotFound(err)) throw err;
          }
          evictedSeen = clock.now().getTime();
          return true;
        }, { timeoutMs: 60_000, intervalMs: 100 });
        assert.ok(lastUntouched >= since + 5_000, "still running well into the grace period");
        assert.ok(evictedSeen >= deadline, `evicted ${deadline - evictedSeen} ms before the deadline`);
        if (evicted) {
          // The API server's own record: deletionTimestamp = eviction + grace, in whole seconds.
          const offset = clock.now().getTime() - Date.now();
          const evictedAt = Date.parse(evicted.metadata!.deletionTimestamp!) -
            (evicted.metadata!.deletionGracePeriodSeconds ?? 0) * 1000 + offset;
          assert.ok(evictedAt + 1_000 >= deadline, `evicted ${deadline - evictedAt} ms before the deadline`);
        }
        assert.ok(evictedSeen <= deadline + 20_000, "woken at the deadline, not at the next resync");
        await eventually("pod gone", () => missing(() => vcore.pods("default").get("on-node-8")), {
          timeoutMs: 60_000,
        });
        await eventually("vnode 8 removed", () => missing(() => vnode("worker-node-8")));
      },
    );

    await t.step(
      "relabelled out of the selector → removed; relabelled back → a schedulable virtual node",
      async () => {
        await pcore.nodes().patch("worker-node-4", { metadata: { labels: { pool: null } } }, {
          type: "merge",
        });
        await eventually(
          "vnode-4 gone",
          async () => !(await vnodes()).some((n) => n.metadata!.name === vname("worker-node-4")),
        );
        await pcore.nodes().patch("worker-node-4", { metadata: { labels: { pool: "spare" } } }, {
          type: "merge",
        });
        const back = await eventually("vnode-4 back and Ready", async () => {
          const n = (await vnodes()).find((n) => n.metadata!.name === vname("worker-node-4"));
          return n && ready(n) === "True" ? n : undefined;
        });
        assert.ok(!back.spec?.unschedulable, "comes back schedulable");
        assert.equal(taint(back, "kubeocean.io/vnode-deleting"), undefined);
      },
    );

    await t.step("CSINode mirrored for its virtual node", async () => {
      const pstorage = new StorageK8sIoV1Api(worker).csinodes();
      const node3 = await pcore.nodes().get("worker-node-3");
      await pstorage.create({
        metadata: {
          name: "worker-node-3",
          ownerReferences: [{
            apiVersion: "v1",
            kind: "Node",
            name: "worker-node-3",
            uid: node3.metadata!.uid!,
          }],
        },
        spec: { drivers: [{ name: "csi.example.com", nodeID: "worker-node-3", allocatable: { count: 16 } }] },
      });
      const vstorage = new StorageK8sIoV1Api(computing).csinodes();
      const mirrored = await eventually("virtual CSINode", async () => {
        try {
          return await vstorage.get(vname("worker-node-3"));
        } catch {
          return undefined;
        }
      });
      assert.equal(mirrored.spec!.drivers![0].name, "csi.example.com");
      assert.equal(mirrored.spec!.drivers![0].allocatable!.count, 16);
      assert.equal(mirrored.metadata!.ownerReferences![0].name, vname("worker-node-3"));
    });

    await t.step(
      "syncer killed → virtual nodes NotReady after lease expiry; restarted → Ready, no duplicates",
      async () => {
        const before = (await vnodes()).map((n) => n.metadata!.uid).sort();
        await syncer!.stop();
        syncer = undefined;
        await eventually("vnodes NotReady", async () => (await vnodes()).every((n) => ready(n) !== "True"), {
          timeoutMs: 90_000,
          intervalMs: 1_000,
        });
        syncer = startSyncer(computing, bound, { clock });
        await eventually("vnodes Ready again", async () => {
          const list = await vnodes();
          return list.length === before.length && list.every((n) => ready(n) === "True");
        }, { timeoutMs: 90_000, intervalMs: 1_000 });
        assert.deepEqual(
          (await vnodes()).map((n) => n.metadata!.uid).sort(),
          before,
          "the same node objects",
        );
      },
    );

    await t.step("ClusterBinding deleted → nothing of it left in the computing cluster", async () => {
      const bindings = new KubeoceanIoV1beta1Api(computing).clusterbindings();
      await bindings.delete("worker");
      await eventually("binding gone", async () => {
        try {
          await bindings.get("worker");
          return false;
        } catch (err) {
          return isNotFound(err);
        }
      }, { timeoutMs: 60_000 });
      assert.equal((await vnodes()).length, 0);
      const leaseNames = (await leases.list({})).items.map((l) => l.metadata!.name!);
      assert.deepEqual(leaseNames.filter((n) => n.startsWith("vnode-w1-")), []);
      const csi = (await new StorageK8sIoV1Api(computing).csinodes().list({})).items;
      assert.deepEqual(csi.filter((c) => c.metadata!.name!.startsWith("vnode-w1-")), []);
    });
  } finally {
    await syncer?.stop();
    bound.close();
    computing.close();
    worker.close();
  }
});
