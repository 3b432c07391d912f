/**
 * The virtual pod lifecycle against an in-memory API server and a fake provider: creation and
 * marking, status flowing back, deletion and completion, fencing by UID, terminal phases, the
 * audit and the binding cleanup. Runs in seconds; the end-to-end tests prove the same against
 * real clusters with the worker provider.
 */

import assert from "node:assert/strict";
import { CoreV1Api, type Pod, type PodStatus } from "../../apis/core/v1/mod.ts";
import { KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import {
  ANNOTATION_PHYSICAL_NODE,
  ANNOTATION_PHYSICAL_POD_NAME,
  ANNOTATION_PHYSICAL_POD_UID,
  LABEL_CLUSTER_BINDING,
} from "../../controllers/common/names.ts";
import { SyncerMetrics } from "../../controllers/syncer/metrics.ts";
import { PodAudit } from "../../controllers/syncer/topdown/pod_audit.ts";
import { PodLifecycleController } from "../../controllers/syncer/topdown/pod_lifecycle.ts";
import type { ReconcileOutcome } from "../../toolkit/runtime/controller.ts";
import { eventually } from "../../toolkit/envtest/testing.ts";
import { FakeProvider } from "../fixtures/fake_provider.ts";
import { memorySyncerContext } from "../fixtures/memory_syncer.ts";

const VNODE = "vnode-w1-node1";
const HOST_IP = "10.0.0.9";
const FINALIZER = "kubeocean.io/twin-w1";

/** A running lifecycle controller with its clusters and provider. */
async function lifecycle() {
  const { ctx, computing, virtual, manager, registry } = memorySyncerContext({
    address: HOST_IP,
    port: 10250,
  });
  const provider = new FakeProvider();
  const pods = new PodLifecycleController(ctx, provider);
  const audit = new PodAudit(ctx, provider);
  const core = new CoreV1Api(virtual);
  await new KubeoceanIoV1beta1Api(virtual).clusterbindings().create({
    metadata: { name: "w1" },
    spec: {
      clusterID: "w1",
      mountNamespace: "mount",
      secretRef: { name: "w1-kubeconfig", namespace: "kubeocean-system" },
    },
  });
  await core.nodes().create({
    metadata: {
      name: VNODE,
      labels: { [LABEL_CLUSTER_BINDING]: "w1" },
      annotations: { [ANNOTATION_PHYSICAL_NODE]: "node1" },
    },
  });
  const stop = new AbortController();
  const running = manager.run(stop.signal);
  await eventually("caches listed", () => manager.synced);
  const pod = (name: string) => core.pods("default").get(name);
  const events = async (reason: string) =>
    (await computing.list("events.events.k8s.io", "default")).filter((e) =>
      (e as { reason?: string }).reason === reason
    );
  /** Resolves after the next reconcile of `key` that starts after this call. */
  const reconciled = (key: string): Promise<ReconcileOutcome> => {
    const done = new AbortController();
    const outcomes = pods.controller.outcomes(done.signal);
    const outcome = (async () => {
      for await (const outcome of outcomes) {
        if (outcome.key === key) {
          done.abort();
          return outcome;
        }
      }
      throw new Error(`controller stopped before ${key} was reconciled`);
    })();
    outcome.catch(() => {}); // a test that failed meanwhile reports its own error
    return outcome;
  };
  const podWrites = (name: string, subresource?: string) =>
    computing.writes.filter((r) =>
      r.resource?.plural === "pods" && r.name === name && r.subresource === subresource &&
      r.method === "PATCH"
    ).length;
  return {
    computing,
    core,
    ctx,
    provider,
    pods,
    audit,
    registry,
    pod,
    events,
    reconciled,
    podWrites,
    async create(name: string, extra: Partial<Pod> = {}): Promise<Pod> {
      return await core.pods("default").create({
        metadata: { name, ...extra.metadata },
        spec: { nodeName: VNODE, containers: [{ name: "app", image: "app:1" }], ...extra.spec },
      });
    },
    async [Symbol.asyncDispose]() {
      stop.abort();
      await running;
      virtual.close();
    },
  };
}

const running: PodStatus = {
  phase: "Running",
  podIP: "192.168.1.7",
  conditions: [{ type: "Ready", status: "True" }],
};

Deno.test("lifecycle: a pod on our virtual node gets one twin, is marked in one write, and its status flows back", async () => {
  await using t = await lifecycle();
  const created = await t.create("web");
  const marked = await eventually("pod marked", async () => {
    const p = await t.pod("web");
    return p.metadata?.finalizers?.includes(FINALIZER) ? p : undefined;
  });
  const [twin] = t.provider.liveTwinsOf("default/web");
  assert.equal(t.provider.calls.filter((c) => c.op === "create").length, 1);
  assert.equal(twin.owner.uid, created.metadata!.uid);
  assert.equal(marked.metadata!.annotations![ANNOTATION_PHYSICAL_POD_UID], twin.ref.uid);
  assert.equal(marked.metadata!.annotations![ANNOTATION_PHYSICAL_POD_NAME], twin.ref.name);
  assert.equal(t.podWrites("web"), 1, "finalizer and annotations in one write");
  assert.equal((await t.events("DroppedForWorker")).length, 1);

  t.provider.setStatus(twin.ref.name, running);
  const status = await eventually("Running", async () => {
    const p = await t.pod("web");
    return p.status?.phase === "Running" ? p.status : undefined;
  });
  assert.equal(status.podIP, "192.168.1.7");
  assert.equal(status.hostIP, HOST_IP, "the virtual node's address, not the worker host's");

  // The same status again writes nothing.
  const writes = t.podWrites("web", "status");
  const again = t.reconciled("default/web");
  t.provider.setStatus(twin.ref.name, running);
  assert.equal((await again).result, "requeue_after");
  assert.equal(t.podWrites("web", "status"), writes);
});

Deno.test("lifecycle: deleting the virtual pod deletes the twin with its grace period, then completes", async () => {
  await using t = await lifecycle();
  await t.create("web");
  await eventually("pod marked", async () => (await t.pod("web")).metadata?.finalizers?.includes(FINALIZER));
  const [twin] = t.provider.liveTwinsOf("default/web");
  await t.core.pods("default").delete("web", { gracePeriodSeconds: 17 });
  await eventually("twin deleted", () => t.provider.twins.get(twin.ref.name)?.deleting);
  const deletion = t.provider.calls.find((c) => c.op === "delete" && c.twin === twin.ref.name);
  assert.deepEqual(deletion, {
    op: "delete",
    twin: twin.ref.name,
    owner: "default/web",
    gracePeriodSeconds: 17,
  });
  assert.ok((await t.pod("web")).metadata?.deletionTimestamp, "held by the finalizer while the twin exists");
  t.provider.remove(twin.ref.name); // the worker finished the deletion
  await eventually("virtual pod gone", async () => !(await t.core.pods("default").list()).items.length);
  const hops = await (await SyncerMetrics.of(t.registry).hop.get()).values;
  assert.ok(
    hops.some((v) => v.labels.hop === "deleted" && v.metricName?.endsWith("_count") && v.value === 1),
  );
});

Deno.test("lifecycle: twins of an earlier pod of the same name are deleted, never adopted (fencing by UID)", async () => {
  await using t = await lifecycle();
  t.provider.add({
    ref: { namespace: "mount", name: "old-twin", uid: "old-twin-uid" },
    owner: { namespace: "default", name: "web", uid: "uid-of-an-earlier-pod" },
    status: running,
    deleting: false,
  });
  const created = await t.create("web");
  await eventually("pod marked", async () => (await t.pod("web")).metadata?.finalizers?.includes(FINALIZER));
  assert.ok(t.provider.calls.some((c) => c.op === "delete" && c.twin === "old-twin"));
  const live = t.provider.liveTwinsOf("default/web");
  assert.equal(live.length, 1);
  assert.equal(live[0].owner.uid, created.metadata!.uid);
  assert.notEqual((await t.pod("web")).metadata!.annotations![ANNOTATION_PHYSICAL_POD_UID], "old-twin-uid");
});

Deno.test("lifecycle: terminal phases never regress; a vanished twin fails a running pod; an ended pod's twin goes", async () => {
  await using t = await lifecycle();
  await t.create("job");
  await t.create("svc");
  await t.create("ended");
  await eventually("three twins", () => t.provider.listTwins().length === 3);
  const twinOf = (name: string) => t.provider.liveTwinsOf(`default/${name}`)[0];
  for (const name of ["job", "svc", "ended"]) t.provider.setStatus(twinOf(name).ref.name, running);
  await eventually(
    "all Running",
    async () => (await t.core.pods("default").list()).items.every((p) => p.status?.phase === "Running"),
  );

  // Succeeded stays Succeeded, whatever the twin says later, and when it disappears.
  const jobTwin = twinOf("job").ref.name;
  t.provider.setStatus(jobTwin, { phase: "Succeeded", reason: "Completed" });
  await eventually("Succeeded", async () => (await t.pod("job")).status?.phase === "Succeeded");
  const later = t.reconciled("default/job");
  t.provider.setStatus(jobTwin, running);
  await later;
  assert.equal((await t.pod("job")).status?.phase, "Succeeded");
  assert.ok(t.provider.twins.get(jobTwin)?.deleting, "a twin running for an ended pod is deleted");
  const gone = t.reconciled("default/job");
  t.provider.remove(jobTwin);
  await gone;
  assert.equal((await t.pod("job")).status?.phase, "Succeeded");

  // A running pod whose twin vanished fails, so that its controller replaces it.
  t.provider.remove(twinOf("svc").ref.name);
  const failed = await eventually("Failed", async () => {
    const p = await t.pod("svc");
    return p.status?.phase === "Failed" ? p : undefined;
  });
  assert.equal(failed.status?.reason, "WorkerPodDeleted");
  assert.match(failed.status?.message ?? "", /in cluster fake was deleted or evicted/);
  assert.equal((await t.events("WorkerPodDeleted")).length, 1);

  // A virtual pod ended by someone else: its twin must not keep running.
  const twin = twinOf("ended");
  await t.core.pods("default").patchStatus("ended", { status: { phase: "Failed", reason: "Evicted" } }, {
    type: "merge",
  });
  await eventually("twin of the ended pod deleted", () => t.provider.twins.get(twin.ref.name)?.deleting);
});

Deno.test("lifecycle: pods elsewhere are ignored; DaemonSet pods, waits and failures are told on the pod", async () => {
  await using t = await lifecycle();
  await t.core.pods("default").create({
    metadata: { name: "elsewhere" },
    spec: { nodeName: "a-real-node", containers: [{ name: "app", image: "app:1" }] },
  });
  await t.create("daemon", {
    metadata: {
      name: "daemon",
      ownerReferences: [{
        apiVersion: "apps/v1",
        kind: "DaemonSet",
        name: "ds",
        uid: "ds-uid",
        controller: true,
      }],
    },
  });
  t.provider.nextCreate = { reason: "WaitingForVolume", note: "claim data is Pending" };
  await t.create("waits");
  await eventually("wait told", async () => (await t.events("WaitingForVolume")).length === 1);
  await eventually("DaemonSet pod told", async () => (await t.events("DaemonSetPodNotRun")).length === 1);
  t.provider.nextCreate = new Error("quota exceeded");
  await t.create("fails");
  await eventually("failure told", async () => (await t.events("FailedCreateWorkerPod")).length === 1);
  await eventually("then created on retry", () => t.provider.liveTwinsOf("default/fails").length === 1);
  const created = t.provider.calls.filter((c) => c.op === "create").map((c) => c.op === "create" && c.pod);
  assert.ok(!created.includes("default/elsewhere"));
  assert.ok(!created.includes("default/daemon"));
  assert.equal(t.provider.liveTwinsOf("default/waits").length, 0);
});

Deno.test("lifecycle: the audit deletes twins without a live virtual pod and counts pods by phase", async () => {
  await using t = await lifecycle();
  await t.create("web");
  await eventually("pod marked", async () => (await t.pod("web")).metadata?.finalizers?.includes(FINALIZER));
  t.provider.add({
    ref: { namespace: "mount", name: "orphan", uid: "orphan-uid" },
    owner: { namespace: "", name: "", uid: "" }, // its annotations were lost: only the audit finds it
    status: running,
    deleting: false,
  });
  assert.equal(await t.audit.audit(), 1);
  assert.ok(t.provider.twins.get("orphan")?.deleting);
  assert.equal(t.provider.liveTwinsOf("default/web").length, 1, "the live pod's twin stays");
  const gauge = await SyncerMetrics.of(t.registry).virtualPods.get();
  assert.equal(gauge.values.find((v) => v.labels.phase === "Pending")?.value, 1);
  const orphans = await SyncerMetrics.of(t.registry).orphans.get();
  assert.equal(orphans.values.find((v) => v.labels.side === "worker")?.value, 1);
});

Deno.test("lifecycle: binding cleanup removes every twin through the provider and releases the virtual pods", async () => {
  await using t = await lifecycle();
  await t.create("web");
  await eventually("pod marked", async () => (await t.pod("web")).metadata?.finalizers?.includes(FINALIZER));
  assert.equal(await t.pods.cleanup(), true);
  assert.ok(t.provider.calls.some((c) => c.op === "cleanup"));
  assert.deepEqual((await t.pod("web")).metadata?.finalizers ?? [], []);
});
