/**
 * Top-down, end to end: the real kube-scheduler of the computing cluster places pods on virtual
 * nodes of two kwok workers; each binding's syncer (least-privilege worker ServiceAccount) creates
 * the twins with their ConfigMaps, Secrets and service-account tokens and reflects status back.
 */

import { onVirtualNodes } from "../../controllers/common/placement.ts";
import assert from "node:assert/strict";
import type { Pod } from "../../apis/core/v1/mod.ts";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { AppsV1Api } from "../../apis/apps/v1/mod.ts";
import { BatchV1Api } from "../../apis/batch/v1/mod.ts";
import { virtualNodeName } from "../../controllers/syncer/bottomup/vnode.ts";
import type { Syncer } from "../../controllers/syncer/syncer.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { isNotFound } from "../../toolkit/client/errors.ts";
import { connect, envTest, eventually, withSlowLists } from "../../toolkit/envtest/testing.ts";
import { spawnSyncer } from "../fixtures/entrypoint.ts";
import { applyPolicy, bindWorker, type BoundWorker, describeSyncer, startSyncer } from "./fixture.ts";

const NS = "kubeocean-worker";
const MANAGED = "kubeocean.io/managed-by=kubeocean";

/** A pod template that lands on virtual nodes only, spread over the two workers. */
function template(app: string, extra: Partial<Pod["spec"]> = {}) {
  return {
    metadata: { labels: { app } },
    spec: {
      ...onVirtualNodes(),
      topologySpreadConstraints: [{
        maxSkew: 1,
        topologyKey: "kubeocean.io/physical-cluster-id",
        whenUnsatisfiable: "DoNotSchedule" as const,
        labelSelector: { matchLabels: { app } },
      }],
      containers: [{ name: "app", image: "registry.example/app:1", resources: { requests: { cpu: "10m" } } }],
      ...extra,
    },
  };
}

envTest("syncer top-down: pods and dependencies flow to two workers, status flows back", {
  clusters: [
    { name: "computing", controlPlane: true },
    { name: "worker1", nodes: 3, nodeTemplate: { capacity: { cpu: "32", memory: "64Gi", pods: "250" } } },
    { name: "worker2", nodes: 3, nodeTemplate: { capacity: { cpu: "32", memory: "64Gi", pods: "250" } } },
  ],
}, async (env, t) => {
  const computing = await connect(env.cluster("computing"), { qps: 200, burst: 400 });
  const workers = [await connect(env.cluster("worker1")), await connect(env.cluster("worker2"))];
  const vcore = new CoreV1Api(computing);
  const apps = new AppsV1Api(computing);
  const bound: BoundWorker[] = [];
  const syncers: (Syncer | undefined)[] = [];
  const startAll = () => {
    for (const [i, b] of bound.entries()) syncers[i] = startSyncer(computing, b);
  };
  const stopAll = async () => {
    await Promise.all(syncers.map((s) => s?.stop()));
    syncers.fill(undefined);
  };
  const twinsOf = async (worker: KubeClient) =>
    (await new CoreV1Api(worker).pods(NS).list({ labelSelector: MANAGED })).items;
  const allTwins = async () => (await Promise.all(workers.map(twinsOf))).flat();
  const virtualPods = async (app: string) =>
    (await vcore.pods("default").list({ labelSelector: `app=${app}` })).items;
  const running = (pods: Pod[]) =>
    pods.filter((p) => p.status?.phase === "Running" && !p.metadata?.deletionTimestamp);

  /** Every live virtual pod of `app` has exactly one twin, carrying its UID, in the worker of its node. */
  async function assertOneTwinEach(app: string): Promise<void> {
    const pods = (await virtualPods(app)).filter((p) => p.status?.phase === "Running");
    const twins = await allTwins();
    const byUid = new Map<string, Pod[]>();
    for (const twin of twins) {
      const uid = twin.metadata!.annotations!["kubeocean.io/virtual-pod-uid"];
      byUid.set(uid, [...(byUid.get(uid) ?? []), twin]);
    }
    for (const pod of pods) {
      const mine = byUid.get(pod.metadata!.uid!) ?? [];
      assert.equal(mine.length, 1, `pod ${pod.metadata!.name} has ${mine.length} twins`);
      const twin = mine[0];
      assert.equal(twin.metadata!.annotations!["kubeocean.io/virtual-pod-name"], pod.metadata!.name);
      assert.equal(twin.metadata!.annotations!["kubeocean.io/virtual-pod-namespace"], "default");
      assert.equal(pod.metadata!.annotations!["kubeocean.io/physical-pod-name"], twin.metadata!.name);
      assert.equal(pod.metadata!.annotations!["kubeocean.io/physical-pod-uid"], twin.metadata!.uid);
      assert.equal(pod.status!.podIP, twin.status!.podIP);
      const clusterID = pod.spec!.nodeName!.split("-")[1];
      assert.equal(twin.metadata!.labels!["kubeocean.io/cluster-binding"], `worker${clusterID.slice(1)}`);
    }
  }

  try {
    for (const [i, worker] of workers.entries()) {
      const b = await bindWorker(computing, worker, {
        name: `worker${i + 1}`,
        clusterID: `w${i + 1}`,
        spec: {
          kubernetesEndpoint: {
            host: "127.0.0.1",
            port: Number(new URL(env.cluster("computing").server).port),
          },
        },
      });
      bound.push(b);
      await applyPolicy(worker, "all", { cluster: `worker${i + 1}` });
    }
    startAll();
    await eventually("6 Ready vnodes", async () => {
      const nodes = await vcore.nodes().list({ labelSelector: MANAGED });
      return nodes.items.length === 6 &&
        nodes.items.every((n) =>
          n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
        );
    }, { timeoutMs: 60_000 });
    await vcore.configmaps("default").create({ metadata: { name: "app-config" }, data: { mode: "one" } });
    await vcore.secrets("default").create({
      metadata: { name: "app-secret" },
      stringData: { token: "s3cret" },
    });
    await vcore.serviceaccounts("default").create({ metadata: { name: "app-sa" } });

    await t.step(
      "100 replicas with a ConfigMap volume, a Secret env var and a ServiceAccount: 100 Running, one twin each, on both workers",
      async () => {
        const spec = template("web", { serviceAccountName: "app-sa" });
        spec.spec.containers[0] = {
          ...spec.spec.containers[0],
          env: [{ name: "TOKEN", valueFrom: { secretKeyRef: { name: "app-secret", key: "token" } } }],
          volumeMounts: [{ name: "config", mountPath: "/etc/app" }],
        } as never;
        await apps.deployments("default").create({
          metadata: { name: "web" },
          spec: {
            replicas: 100,
            selector: { matchLabels: { app: "web" } },
            template: {
              ...spec,
              spec: { ...spec.spec, volumes: [{ name: "config", configMap: { name: "app-config" } }] },
            },
          },
        } as never);
        await eventually(
          "100 Running virtual pods",
          async () => running(await virtualPods("web")).length === 100,
          {
            timeoutMs: 180_000,
            intervalMs: 1_000,
          },
        );
        await assertOneTwinEach("web");
        const perWorker = await Promise.all(workers.map(twinsOf));
        assert.ok(
          perWorker.every((twins) => twins.length >= 40),
          `spread: ${perWorker.map((p) => p.length)}`,
        );
        // The twin carries the mirrored ConfigMap, Secret and a projected token for app-sa.
        const twin = perWorker[0][0];
        const volumes = JSON.stringify(twin.spec!.volumes);
        const cms = (await new CoreV1Api(workers[0]).configmaps(NS).list({ labelSelector: MANAGED })).items;
        const copy = cms.find((c) => c.metadata!.annotations!["kubeocean.io/virtual-name"] === "app-config");
        assert.ok(copy, "ConfigMap mirrored");
        assert.equal(copy.data!.mode, "one");
        assert.ok(volumes.includes(copy.metadata!.name!), "the twin mounts the copy");
        const env = JSON.stringify(twin.spec!.containers[0].env);
        assert.ok(!env.includes('"app-secret"'), "the Secret reference is mapped");
        assert.ok(twin.spec!.automountServiceAccountToken === false, "no worker token is mounted");
        assert.ok(env.includes("KUBERNETES_SERVICE_HOST"), "points at the computing cluster");
      },
    );

    await t.step("the ConfigMap edited in the computing cluster → the copies updated", async () => {
      await vcore.configmaps("default").patch("app-config", { data: { mode: "two" } }, { type: "merge" });
      await eventually("copies updated in both workers", async () => {
        const lists = await Promise.all(
          workers.map((w) => new CoreV1Api(w).configmaps(NS).list({ labelSelector: MANAGED })),
        );
        return lists.every((l) =>
          l.items.some((c) =>
            c.metadata!.annotations!["kubeocean.io/virtual-name"] === "app-config" && c.data?.mode === "two"
          )
        );
      });
    });

    await t.step(
      "an Event about a twin in the worker shows on its virtual pod (kubectl describe)",
      async () => {
        const twin = (await twinsOf(workers[0]))[0];
        const virtualName = twin.metadata!.annotations!["kubeocean.io/virtual-pod-name"];
        const now = new Date().toISOString();
        // What a kubelet would report, e.g. a failing image pull.
        await new CoreV1Api(workers[0]).events(NS).create({
          metadata: { generateName: "twin-event-" },
          involvedObject: {
            apiVersion: "v1",
            kind: "Pod",
            namespace: NS,
            name: twin.metadata!.name!,
            uid: twin.metadata!.uid!,
            fieldPath: "spec.containers{app}",
          },
          reason: "BackOff",
          message: "Back-off pulling image registry.example/app:1",
          type: "Warning",
          source: { component: "kubelet" },
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        });
        const seen = await eventually("the Event on the virtual pod", async () => {
          const events = await vcore.events("default").list({
            fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${virtualName}`,
          });
          return events.items.find((e) => e.reason === "BackOff");
        });
        assert.equal(seen.type, "Warning");
        assert.equal(seen.involvedObject.uid, twin.metadata!.annotations!["kubeocean.io/virtual-pod-uid"]);
        assert.match(seen.message ?? "", /Back-off pulling image/);
        assert.match(seen.message ?? "", /w1/);
      },
    );

    await t.step(
      "a twin deleted in the worker → the virtual pod fails with a reason and its ReplicaSet replaces it",
      async () => {
        const twin = (await twinsOf(workers[1]))[0];
        const virtualName = twin.metadata!.annotations!["kubeocean.io/virtual-pod-name"];
        await new CoreV1Api(workers[1]).pods(NS).delete(twin.metadata!.name!, { gracePeriodSeconds: 0 });
        const failed = await eventually("virtual pod Failed", async () => {
          const p = await vcore.pods("default").get(virtualName).catch(() => undefined);
          return p?.status?.phase === "Failed" ? p : undefined;
        });
        assert.equal(failed.status!.reason, "WorkerPodDeleted");
        assert.match(failed.status!.message!, /worker2|w2/);
        await eventually("100 Running again", async () => running(await virtualPods("web")).length === 100, {
          timeoutMs: 60_000,
        });
        await assertOneTwinEach("web");
      },
    );

    await t.step("scaled to 0 → every twin and the now-unused copies gone", async () => {
      await apps.deployments("default").patch("web", { spec: { replicas: 0 } }, { type: "merge" });
      await eventually(
        "no virtual pods left running",
        async () => running(await virtualPods("web")).length === 0,
        {
          timeoutMs: 120_000,
          intervalMs: 1_000,
        },
      );
      // The failed pod of the previous step is not deleted by its ReplicaSet; delete it as a user would.
      for (const p of await virtualPods("web")) {
        await vcore.pods("default").delete(p.metadata!.name!).catch((err) =>
          isNotFound(err) ? undefined : Promise.reject(err)
        );
      }
      await eventually("no twins", async () => (await allTwins()).length === 0, { timeoutMs: 60_000 });
      await eventually("no ConfigMap or Secret copies", async () => {
        for (const w of workers) {
          const core = new CoreV1Api(w);
          const cms = (await core.configmaps(NS).list({ labelSelector: MANAGED })).items;
          const secrets = (await core.secrets(NS).list({ labelSelector: MANAGED })).items
            .filter((s) => s.metadata!.annotations?.["kubeocean.io/virtual-name"]);
          if (cms.length > 0 || secrets.length > 0) return false;
        }
        return true;
      }, { timeoutMs: 90_000 });
    });

    await t.step("a finished Job's pod stays Succeeded when its twin disappears", async () => {
      const jobs = new BatchV1Api(computing).jobs("default");
      const spec = template("job");
      await jobs.create({
        metadata: { name: "once" },
        spec: { template: { ...spec, spec: { ...spec.spec, restartPolicy: "Never" } }, backoffLimit: 0 },
      } as never);
      const pod = await eventually("job pod Running", async () => running(await virtualPods("job"))[0]);
      const twinName = pod.metadata!.annotations!["kubeocean.io/physical-pod-name"];
      const worker = workers[pod.spec!.nodeName!.startsWith("vnode-w1-") ? 0 : 1];
      const wcore = new CoreV1Api(worker);
      // Play the kubelet: the container exits 0 (kwok completes only pods a Job owns directly).
      const twin = await wcore.pods(NS).get(twinName);
      const finished = new Date().toISOString().replace(/\.\d+Z$/, "Z");
      await wcore.pods(NS).patchStatus(twinName, {
        status: {
          phase: "Succeeded",
          conditions: twin.status!.conditions!.map((c) =>
            c.type === "Ready" || c.type === "ContainersReady"
              ? { ...c, status: "False", reason: "PodCompleted" }
              : c
          ),
          containerStatuses: twin.status!.containerStatuses!.map((s) => ({
            ...s,
            ready: false,
            started: false,
            state: {
              terminated: { exitCode: 0, reason: "Completed", startedAt: finished, finishedAt: finished },
            },
          })),
        },
      }, { type: "merge" });
      await eventually(
        "virtual pod Succeeded",
        async () => (await vcore.pods("default").get(pod.metadata!.name!)).status?.phase === "Succeeded",
      );
      await wcore.pods(NS).delete(twinName, { gracePeriodSeconds: 0 });
      await eventually(
        "twin gone",
        async () => !(await twinsOf(worker)).some((p) => p.metadata!.name === twinName),
      );
      for (const s of syncers) await s!.topDown!.audit();
      await new Promise((r) => setTimeout(r, 2_000));
      assert.equal((await vcore.pods("default").get(pod.metadata!.name!)).status?.phase, "Succeeded");
      await eventually(
        "Job complete",
        async () => (await jobs.get("once")).status?.succeeded === 1,
      );
    });

    await t.step(
      "delete and at once re-create a pod of the same name → exactly one twin, of the new UID",
      async () => {
        const body = (): Pod => ({
          metadata: { name: "same-name", labels: { app: "same" } },
          spec: {
            nodeName: virtualNodeName("w1", "worker1-node-1"),
            tolerations: [{ operator: "Exists" }],
            containers: [{ name: "c", image: "registry.example/app:1" }],
          },
        });
        const first = await vcore.pods("default").create(body());
        await eventually(
          "first Running",
          async () => (await vcore.pods("default").get("same-name")).status?.phase === "Running",
        );
        await vcore.pods("default").delete("same-name", { gracePeriodSeconds: 0 });
        let second: Pod | undefined;
        await eventually("re-created", async () => {
          try {
            second = await vcore.pods("default").create(body());
            return true;
          } catch {
            return false; // the old one is still finishing (our finalizer)
          }
        }, { intervalMs: 20 });
        assert.notEqual(second!.metadata!.uid, first.metadata!.uid);
        await eventually("second Running", async () => {
          const p = await vcore.pods("default").get("same-name");
          return p.metadata!.uid === second!.metadata!.uid && p.status?.phase === "Running";
        });
        const twins = (await twinsOf(workers[0])).filter((p) =>
          p.metadata!.annotations!["kubeocean.io/virtual-pod-name"] === "same-name"
        );
        assert.equal(twins.length, 1);
        assert.equal(twins[0].metadata!.annotations!["kubeocean.io/virtual-pod-uid"], second!.metadata!.uid);
        await vcore.pods("default").delete("same-name");
      },
    );

    await t.step(
      "a bound claim and its volume mirrored (Retain, pre-bound); an unbound claim keeps its pod Pending with a reason; unused copies removed",
      async () => {
        const wcore = new CoreV1Api(workers[0]);
        await vcore.persistentvolumes().create({
          metadata: { name: "data-pv" },
          spec: {
            capacity: { storage: "1Gi" },
            accessModes: ["ReadWriteOnce"],
            persistentVolumeReclaimPolicy: "Delete",
            storageClassName: "manual",
            hostPath: { path: "/tmp/kubeocean-test-data" },
          },
        });
        await vcore.persistentvolumeclaims("default").create({
          metadata: { name: "data" },
          spec: {
            accessModes: ["ReadWriteOnce"],
            resources: { requests: { storage: "1Gi" } },
            storageClassName: "manual",
            volumeName: "data-pv",
          },
        });
        await eventually(
          "the claim Bound in the computing cluster",
          async () => (await vcore.persistentvolumeclaims("default").get("data")).status?.phase === "Bound",
        );
        const withClaim = (name: string, claimName: string): Pod => ({
          metadata: { name },
          spec: {
            nodeName: virtualNodeName("w1", "worker1-node-1"),
            tolerations: [{ operator: "Exists" }],
            containers: [{
              name: "c",
              image: "registry.example/app:1",
              volumeMounts: [{ name: "data", mountPath: "/data" }],
            }],
            volumes: [{ name: "data", persistentVolumeClaim: { claimName } }],
          },
        });
        const pod = await vcore.pods("default").create(withClaim("with-claim", "data"));
        await eventually(
          "Running",
          async () => (await vcore.pods("default").get("with-claim")).status?.phase === "Running",
        );
        const [twin] = (await twinsOf(workers[0])).filter((p) =>
          p.metadata!.annotations!["kubeocean.io/virtual-pod-uid"] === pod.metadata!.uid
        );
        const copyName = twin.spec!.volumes!.find((v) => v.name === "data")!.persistentVolumeClaim!.claimName;
        assert.notEqual(copyName, "data");
        const copy = await eventually("the claim copy Bound in the worker", async () => {
          const c = await wcore.persistentvolumeclaims(NS).get(copyName);
          return c.status?.phase === "Bound" ? c : undefined;
        });
        assert.equal(copy.metadata!.annotations!["kubeocean.io/virtual-name"], "data");
        const volume = await wcore.persistentvolumes().get(copy.spec!.volumeName!);
        assert.equal(
          volume.spec!.persistentVolumeReclaimPolicy,
          "Retain",
          "deleting the copy never touches storage",
        );
        assert.equal(volume.spec!.claimRef!.namespace, NS);
        assert.equal(volume.spec!.claimRef!.name, copyName);
        assert.equal(volume.spec!.hostPath!.path, "/tmp/kubeocean-test-data");
        assert.equal(volume.metadata!.labels!["kubeocean.io/cluster-binding"], "worker1");

        // A claim nothing binds: the pod waits, and says why.
        await vcore.persistentvolumeclaims("default").create({
          metadata: { name: "pending-claim" },
          spec: {
            accessModes: ["ReadWriteOnce"],
            resources: { requests: { storage: "1Gi" } },
            storageClassName: "nothing-provisions-this",
          },
        });
        const waiting = await vcore.pods("default").create(withClaim("waits-for-claim", "pending-claim"));
        const event = await eventually("WaitingForVolume Event", async () => {
          const events = await vcore.events("default").list({
            fieldSelector: "involvedObject.kind=Pod,involvedObject.name=waits-for-claim",
          });
          return events.items.find((e) => e.reason === "WaitingForVolume");
        });
        assert.equal(event.type, "Warning");
        assert.match(event.message ?? "", /pending-claim/);
        assert.equal((await vcore.pods("default").get("waits-for-claim")).status?.phase, "Pending");
        assert.equal(
          (await allTwins()).filter((p) =>
            p.metadata!.annotations!["kubeocean.io/virtual-pod-uid"] === waiting.metadata!.uid
          ).length,
          0,
          "no twin without its volume",
        );

        // No pod uses the claim any more: both copies go; the original claim and volume stay.
        await vcore.pods("default").delete("with-claim", { gracePeriodSeconds: 0 });
        await vcore.pods("default").delete("waits-for-claim", { gracePeriodSeconds: 0 });
        const gone = (get: () => Promise<unknown>) => get().then(() => false, (err) => isNotFound(err));
        await eventually(
          "claim and volume copies gone",
          async () =>
            await gone(() => wcore.persistentvolumeclaims(NS).get(copyName)) &&
            await gone(() => wcore.persistentvolumes().get(copy.spec!.volumeName!)),
          { timeoutMs: 90_000 },
        );
        assert.equal((await vcore.persistentvolumeclaims("default").get("data")).status?.phase, "Bound");
      },
    );

    await t.step(
      "orphan twins removed (at once, and by the drift audit); a non-Kubeocean pod untouched",
      async () => {
        const wcore = new CoreV1Api(workers[0]);
        const labels = { "kubeocean.io/managed-by": "kubeocean", "kubeocean.io/cluster-binding": "worker1" };
        const spec = {
          nodeName: "worker1-node-2",
          containers: [{ name: "c", image: "registry.example/app:1" }],
        };
        // Its virtual pod default/gone does not exist: the pod controller removes it at once.
        const orphan = await wcore.pods(NS).create({
          metadata: {
            name: "default-gone-0123456789ab",
            labels,
            annotations: {
              "kubeocean.io/virtual-pod-namespace": "default",
              "kubeocean.io/virtual-pod-name": "gone",
              "kubeocean.io/virtual-pod-uid": crypto.randomUUID(),
            },
          },
          spec,
        });
        // Only the UID says whose it is (nothing maps it to a virtual pod): only the audit finds it.
        const uidOnly = await wcore.pods(NS).create({
          metadata: {
            name: "default-lost-0123456789ab",
            labels,
            annotations: { "kubeocean.io/virtual-pod-uid": crypto.randomUUID() },
          },
          spec,
        });
        await wcore.pods(NS).create({ metadata: { name: "not-ours" }, spec });
        const gone = (name: string) => async () => {
          try {
            const p = await wcore.pods(NS).get(name);
            return !!p.metadata?.deletionTimestamp;
          } catch (err) {
            return isNotFound(err);
          }
        };
        await eventually("the orphan of a missing virtual pod gone", gone(orphan.metadata!.name!));
        await eventually(
          "the syncer's cache sees the others",
          () =>
            syncers[0]!.ctx.physicalPodInformer.store.get(`${NS}/not-ours`) &&
            syncers[0]!.ctx.physicalPodInformer.store.get(`${NS}/${uidOnly.metadata!.name}`),
        );
        assert.ok(await gone(uidOnly.metadata!.name!)() === false, "the controller left it to the audit");
        const removed = await syncers[0]!.topDown!.audit();
        assert.ok(removed >= 1);
        await eventually("the audit removed it", gone(uidOnly.metadata!.name!));
        const kept = await wcore.pods(NS).get("not-ours");
        assert.equal(kept.metadata!.deletionTimestamp, undefined);
      },
    );

    await t.step(
      "syncers stopped during a burst of 300 pods and restarted → no duplicates, no orphans, all Running",
      async () => {
        await apps.deployments("default").create({
          metadata: { name: "burst" },
          spec: { replicas: 300, selector: { matchLabels: { app: "burst" } }, template: template("burst") },
        } as never);
        await eventually("burst under way", async () => (await allTwins()).length >= 30, { intervalMs: 100 });
        await stopAll();
        await new Promise((r) => setTimeout(r, 2_000));
        startAll();
        await eventually("300 Running", async () => running(await virtualPods("burst")).length === 300, {
          timeoutMs: 240_000,
          intervalMs: 1_000,
        }).catch((err) => {
          // Say what the restarted syncers wait for (seen once: no twin created after the restart).
          const states = syncers.map((s, i) => `syncer ${i + 1}: ${describeSyncer(s)}`).join("\n");
          throw new Error(`${err.message}\n${states}`);
        });
        await assertOneTwinEach("burst");
        const twins = (await allTwins()).filter((p) => p.metadata!.labels!.app === "burst");
        assert.equal(twins.length, 300, "no orphan twins");
        const burstPods = await virtualPods("burst");
        assert.equal(burstPods.length, 300, "no failed or extra virtual pods");
      },
    );

    await t.step(
      "restarted while its binding lists slowly → pods bound meanwhile still get their twins",
      async () => {
        await stopAll();
        await apps.deployments("default").create({
          metadata: { name: "late" },
          spec: { replicas: 20, selector: { matchLabels: { app: "late" } }, template: template("late") },
        } as never);
        await eventually(
          "20 pods bound while no syncer runs",
          async () => (await virtualPods("late")).filter((p) => p.spec?.nodeName).length === 20,
          { timeoutMs: 30_000 },
        );
        // The pods' caches list at once, the binding 3 s later: a reconcile in between must not
        // take the binding for gone (the pods would then wait for the 5-minute resync).
        for (const [i, b] of bound.entries()) {
          syncers[i] = startSyncer(withSlowLists(computing, "clusterbindings", 3_000), b);
        }
        await eventually("20 Running", async () => running(await virtualPods("late")).length === 20, {
          timeoutMs: 60_000,
          intervalMs: 500,
        });
        await assertOneTwinEach("late");
      },
    );

    await t.step(
      "syncer processes SIGKILLed during a burst of 300 pods and restarted → no duplicates, no orphans, all Running",
      async () => {
        await stopAll();
        const kubeconfig = env.cluster("computing").kubeconfig;
        // Worker writes held to 50/s, so that the burst lasts seconds and the kill lands inside it.
        const slow = ["--physical-client-qps", "50", "--physical-client-burst", "10"];
        let processes = bound.map((b) => spawnSyncer(kubeconfig, b.binding.metadata!.name!, { args: slow }));
        const twinsOfCrash = async () =>
          (await allTwins()).filter((p) => p.metadata!.labels!.app === "crash");
        try {
          await apps.deployments("default").create({
            metadata: { name: "crash" },
            spec: { replicas: 300, selector: { matchLabels: { app: "crash" } }, template: template("crash") },
          } as never);
          await eventually("crash burst under way", async () => (await twinsOfCrash()).length >= 30, {
            timeoutMs: 60_000,
            intervalMs: 100,
          });
          // A crash: no drain, no lease release, writes cut off wherever they were.
          for (const p of processes) p.kill("SIGKILL");
          await Promise.all(processes.map((p) => p.status));
          const atCrash = (await twinsOfCrash()).length;
          assert.ok(atCrash < 300, `killed mid-burst (${atCrash} of 300 twins existed)`);
          processes = bound.map((b) => spawnSyncer(kubeconfig, b.binding.metadata!.name!));
          await eventually("300 Running", async () => running(await virtualPods("crash")).length === 300, {
            timeoutMs: 180_000,
            intervalMs: 1_000,
          });
          await assertOneTwinEach("crash");
          assert.equal((await twinsOfCrash()).length, 300, "no orphan twins");
          assert.equal((await virtualPods("crash")).length, 300, "no failed or extra virtual pods");
        } finally {
          for (const p of processes) {
            try {
              p.kill("SIGTERM");
            } catch {
              // already ended
            }
            await p.status;
          }
        }
      },
    );
  } finally {
    await stopAll();
    for (const b of bound) b.close();
    computing.close();
    for (const w of workers) w.close();
  }
});
