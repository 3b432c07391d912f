/**
 * A worker outage, as a kubelet cut off from its node would show it: the worker's API server is
 * frozen (SIGSTOP: it accepts connections and answers nothing) for 120 s. The syncer stops
 * renewing its virtual nodes' leases once the worker has been silent for the lease duration, the
 * computing cluster's node lifecycle marks them NotReady and stops scheduling there, the binding
 * says the worker is unreachable, and Kubeocean deletes or fails nothing. After the thaw
 * everything is Running and Ready again within 60 s, one twin per virtual pod.
 */

import assert from "node:assert/strict";
import { CoreV1Api, type Node } from "../../apis/core/v1/mod.ts";
import { KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";
import {
  allRunning,
  createVirtualPods,
  runningAndReady,
  startEmbeddedWorld,
  twinsByVirtualUid,
} from "./fixture.ts";

/** The virtual nodes' lease duration (the syncer's default) and the computing cluster's grace period. */
const LEASE_SECONDS = 40;
const GRACE_SECONDS = 20;
const FREEZE_MS = 120_000;

const ready = (node: Node) => node.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";

envTest("worker API server frozen 120 s: vnodes NotReady, nothing lost, all back within 60 s", {
  clusters: [
    {
      name: "computing",
      controlPlane: true,
      controllerManagerArgs: [`--node-monitor-grace-period=${GRACE_SECONDS}s`, "--node-monitor-period=2s"],
    },
    { name: "worker", nodes: 2 },
  ],
}, async (env, t) => {
  const computing = await connect(env.cluster("computing"));
  const worker = await connect(env.cluster("worker"));
  const core = new CoreV1Api(computing);
  const bindings = new KubeoceanIoV1beta1Api(computing).clusterbindings();
  const world = await startEmbeddedWorld(computing, worker, { name: "worker", clusterID: "w1" });
  const vnodes = async () =>
    (await core.nodes().list({ labelSelector: "kubeocean.io/cluster-binding=worker" })).items;
  let thawed = true;
  try {
    await core.namespaces().create({ metadata: { name: "tenant" } });
    let before: string[] = [];
    await t.step("10 virtual pods Running on 2 Ready virtual nodes, one twin each", async () => {
      await eventually("2 Ready vnodes", async () => (await vnodes()).filter(ready).length === 2, {
        timeoutMs: 90_000,
      });
      await createVirtualPods(computing, "tenant", "app", 10);
      before = (await allRunning(computing, "tenant", "app", 10)).map((p) => p.metadata!.uid!).sort();
      const twins = await twinsByVirtualUid(worker, "worker");
      assert.deepEqual([...twins.keys()].sort(), before);
    });

    await t.step(
      "frozen 120 s: NotReady within lease + grace, no pod placed there, none deleted or Failed, the binding says why",
      async () => {
        env.cluster("worker").freezeApiserver();
        thawed = false;
        const frozenAt = Date.now();
        const notReady = await eventually("vnodes NotReady", async () => {
          const nodes = await vnodes();
          return nodes.length === 2 && nodes.every((n) => !ready(n)) ? Date.now() - frozenAt : undefined;
        }, { timeoutMs: FREEZE_MS - 10_000, intervalMs: 1_000 });
        const bound = (LEASE_SECONDS + GRACE_SECONDS) * 1000 + 10_000;
        assert.ok(notReady <= bound, `NotReady after ${notReady} ms (bound ${bound} ms)`);
        // Not before the worker was silent for the lease duration: short blips change nothing.
        assert.ok(notReady >= LEASE_SECONDS * 1000, `NotReady already after ${notReady} ms`);
        await createVirtualPods(computing, "tenant", "late", 3);
        const condition = await eventually("the binding says the worker is unreachable", async () => {
          const b = await bindings.get("worker");
          return b.status?.conditions?.find((c) => c.type === "Connected" && c.status === "False");
        }, { timeoutMs: 30_000 });
        // Said by the syncer (WorkerUnreachable) or by the manager's own periodic check (ServerUnreachable).
        assert.match(condition.reason ?? "", /^(WorkerUnreachable|ServerUnreachable)$/, condition.message);
        // Watch the pods until the freeze ends: none deleted or Failed, no new one placed on a vnode.
        while (Date.now() - frozenAt < FREEZE_MS) {
          const pods = (await core.pods("tenant").list()).items;
          const apps = pods.filter((p) => p.metadata?.labels?.app === "app");
          assert.deepEqual(apps.map((p) => p.metadata!.uid!).sort(), before, "a virtual pod disappeared");
          for (const pod of pods) {
            assert.ok(!pod.metadata?.deletionTimestamp, `${pod.metadata?.name} deleted`);
            assert.notEqual(pod.status?.phase, "Failed", `${pod.metadata?.name} Failed`);
            if (pod.metadata?.labels?.app === "late") {
              assert.equal(
                pod.spec?.nodeName,
                undefined,
                `${pod.metadata.name} placed on ${pod.spec?.nodeName}`,
              );
            }
          }
          await new Promise((r) => setTimeout(r, 2_000));
        }
      },
    );

    await t.step("thawed: Running and Ready again within 60 s, twins 1:1, nothing recreated", async () => {
      env.cluster("worker").thawApiserver();
      thawed = true;
      const thawedAt = Date.now();
      const pods = await allRunning(computing, "tenant", "app", 10, 60_000);
      assert.ok(Date.now() - thawedAt <= 60_000);
      assert.deepEqual(pods.map((p) => p.metadata!.uid!).sort(), before, "the same virtual pods");
      await eventually("vnodes Ready", async () => (await vnodes()).filter(ready).length === 2, {
        timeoutMs: 60_000,
      });
      const late = await allRunning(computing, "tenant", "late", 3, 60_000);
      const twins = await twinsByVirtualUid(worker, "worker");
      const expected = [...before, ...late.map((p) => p.metadata!.uid!)].sort();
      assert.deepEqual([...twins.keys()].sort(), expected);
      assert.ok([...twins.values()].every((n) => n === 1), `twins per pod: ${[...twins.values()]}`);
      assert.ok(pods.every(runningAndReady));
      const binding = await eventually("the binding Ready", async () => {
        const b = await bindings.get("worker");
        return b.status?.phase === "Ready" ? b : undefined;
      }, { timeoutMs: 60_000 });
      assert.equal(binding.status?.conditions?.find((c) => c.type === "Connected")?.status, "True");
    });
  } finally {
    if (!thawed) env.cluster("worker").thawApiserver();
    await world.stop();
    computing.close();
    worker.close();
  }
});
