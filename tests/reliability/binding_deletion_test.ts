/**
 * Deletion always completes: a binding deleted after its worker's control plane was stopped for
 * good cordons its virtual nodes at once, is gone within `spec.cleanupTimeoutSeconds` (plus the
 * time to release the computing side), leaves no Terminating virtual pod, ConfigMap or Secret
 * behind, and says in an Event what may be left in the worker; the tenant namespace can then be
 * deleted.
 */

import assert from "node:assert/strict";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { isNotFound } from "../../toolkit/client/errors.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";
import { allRunning, createVirtualPods, startEmbeddedWorld } from "./fixture.ts";

const CLEANUP_TIMEOUT_SECONDS = 20;
/** Releasing the computing side after the timeout: a few writes and the next requeue. */
const RELEASE_SLACK_MS = 30_000;

envTest("binding deleted with its worker gone for good: cordoned, released within the bound, nothing stuck", {
  clusters: [{ name: "computing", controlPlane: true }, { name: "worker", nodes: 2 }],
}, async (env, t) => {
  const computing = await connect(env.cluster("computing"));
  const worker = await connect(env.cluster("worker"));
  const core = new CoreV1Api(computing);
  const bindings = new KubeoceanIoV1beta1Api(computing).clusterbindings();
  const world = await startEmbeddedWorld(computing, worker, {
    name: "worker",
    clusterID: "w1",
    spec: { cleanupTimeoutSeconds: CLEANUP_TIMEOUT_SECONDS },
  });
  const vnodes = async () =>
    (await core.nodes().list({ labelSelector: "kubeocean.io/cluster-binding=worker" })).items;
  try {
    await t.step("pods with a ConfigMap and a Secret run in the worker", async () => {
      await core.namespaces().create({ metadata: { name: "tenant" } });
      await core.configmaps("tenant").create({ metadata: { name: "settings" }, data: { mode: "fast" } });
      await core.secrets("tenant").create({
        metadata: { name: "password" },
        stringData: { value: "s3cret" },
      });
      await eventually("2 vnodes", async () => (await vnodes()).length === 2, { timeoutMs: 90_000 });
      await createVirtualPods(computing, "tenant", "app", 4, {
        volumes: [
          { name: "settings", configMap: { name: "settings" } },
          { name: "password", secret: { secretName: "password" } },
        ],
      });
      await allRunning(computing, "tenant", "app", 4);
      const held = await core.configmaps("tenant").get("settings");
      assert.ok(
        held.metadata?.finalizers?.some((f) => f.startsWith("kubeocean.io/")),
        "the ConfigMap is mirrored",
      );
    });

    await t.step(
      "worker control plane stopped for good, binding deleted → cordoned, gone within the bound, an Event lists leftovers",
      async () => {
        await env.cluster("worker").stopApiserver();
        const deletedAt = Date.now();
        await bindings.delete("worker");
        await eventually(
          "vnodes cordoned",
          async () => (await vnodes()).every((n) => n.spec?.unschedulable),
          {
            timeoutMs: 15_000,
            intervalMs: 500,
          },
        );
        await eventually("binding gone", async () => {
          try {
            await bindings.get("worker");
            return false;
          } catch (err) {
            return isNotFound(err);
          }
        }, { timeoutMs: CLEANUP_TIMEOUT_SECONDS * 1000 + RELEASE_SLACK_MS, intervalMs: 500 });
        const took = Date.now() - deletedAt;
        assert.ok(took >= CLEANUP_TIMEOUT_SECONDS * 1000, `released after ${took} ms, before the timeout`);
        assert.deepEqual((await vnodes()).map((n) => n.metadata?.name), []);
        const events = await core.events("default").list({
          fieldSelector:
            "involvedObject.kind=ClusterBinding,involvedObject.name=worker,reason=ReleasedWithoutWorker",
        });
        assert.equal(events.items.length, 1, "one ReleasedWithoutWorker Event");
        assert.match(events.items[0].message ?? "", /4 pod\(s\)/);
        assert.match(events.items[0].message ?? "", /ConfigMap tenant\/settings/);
        assert.match(events.items[0].message ?? "", /Secret tenant\/password/);
      },
    );

    await t.step("no Kubeocean finalizer left; the tenant namespace deletes", async () => {
      const stuck = (items: { metadata?: { name?: string; finalizers?: string[] } }[]) =>
        items.filter((o) => o.metadata?.finalizers?.some((f) => f.startsWith("kubeocean.io/")))
          .map((o) => o.metadata?.name);
      assert.deepEqual(stuck((await core.pods("tenant").list()).items), []);
      assert.deepEqual(stuck((await core.configmaps("tenant").list()).items), []);
      assert.deepEqual(stuck((await core.secrets("tenant").list()).items), []);
      await core.namespaces().delete("tenant");
      await eventually("namespace tenant gone", async () => {
        try {
          await core.namespaces().get("tenant");
          return false;
        } catch (err) {
          return isNotFound(err);
        }
      }, { timeoutMs: 120_000, intervalMs: 1_000 });
    });
  } finally {
    await world.stop();
    computing.close();
    worker.close();
  }
});
