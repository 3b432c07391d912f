/**
 * Unleasing is graceful: the drain rules of a virtual node whose physical node is no longer
 * leased, and the node controller applying them against in-memory API servers with a clock the
 * test moves — cordon, pods left to run or evicted after the recorded grace, undrain when leased
 * again, cordon on binding deletion — plus the policy quantities the CRD schema lets through but
 * leasing cannot use.
 */

import assert from "node:assert/strict";
import type { Node, Pod } from "../../apis/core/v1/mod.ts";
import type { ResourceLeasingPolicy } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import {
  ANNOTATION_DRAINING_SINCE,
  ANNOTATION_FORCE_RECLAIM,
  ANNOTATION_GRACEFUL_RECLAIM_PERIOD,
  FINALIZER_SYNCER,
  TAINT_VNODE_DELETING,
} from "../../controllers/common/names.ts";
import { cordonedMetadata, podVerdict, reclaimAnnotations } from "../../controllers/syncer/bottomup/drain.ts";
import { nodeController } from "../../controllers/syncer/bottomup/node_controller.ts";
import { policyProblem } from "../../controllers/syncer/bottomup/policy_selection.ts";
import { mergeOwned } from "../../controllers/syncer/bottomup/vnode.ts";
import { isNotFound } from "../../toolkit/client/errors.ts";
import type { ReconcileOutcome } from "../../toolkit/runtime/controller.ts";
import { eventually } from "../../toolkit/envtest/testing.ts";
import { memorySyncerContext } from "../fixtures/memory_syncer.ts";

const SINCE = new Date("2026-11-25T10:00:00.250Z");
const at = (ms: number) => new Date(SINCE.getTime() + ms);

/** A cordoned virtual node that recorded `reclaim` while it was leased. */
function drainingNode(reclaim: { forceReclaim?: boolean; gracefulReclaimPeriodSeconds?: number }): Node {
  return {
    metadata: {
      name: "vnode-w1-node1",
      annotations: { ...reclaimAnnotations(reclaim), [ANNOTATION_DRAINING_SINCE]: SINCE.toISOString() },
    },
    spec: {
      unschedulable: true,
      taints: [{ key: TAINT_VNODE_DELETING, value: "true", effect: "NoSchedule" }],
    },
  };
}

Deno.test("drain rule: without forceReclaim pods are never evicted (they run to completion)", () => {
  for (
    const node of [drainingNode({}), drainingNode({ forceReclaim: false, gracefulReclaimPeriodSeconds: 10 })]
  ) {
    assert.deepEqual(podVerdict(node, false, at(0)), { evict: false });
    assert.deepEqual(podVerdict(node, false, at(365 * 24 * 3600_000)), { evict: false });
  }
  // A node that never recorded settings (e.g. made before they were recorded) is not reclaimed either.
  assert.deepEqual(podVerdict({ metadata: { name: "v" } }, false, at(0)), { evict: false });
});

Deno.test("drain rule: forceReclaim with a 10 s grace evicts from draining-since + 10 s on, never before", () => {
  const node = drainingNode({ forceReclaim: true, gracefulReclaimPeriodSeconds: 10 });
  assert.deepEqual(podVerdict(node, false, at(0)), { evict: false, evictAt: at(10_000) });
  assert.deepEqual(podVerdict(node, false, at(9_999)), { evict: false, evictAt: at(10_000) });
  assert.deepEqual(podVerdict(node, false, at(10_000)), { evict: true });
  assert.deepEqual(podVerdict(node, false, at(60_000)), { evict: true });
  // No grace: at once.
  assert.deepEqual(podVerdict(drainingNode({ forceReclaim: true }), false, at(0)), { evict: true });
});

Deno.test("drain rule: a deleted physical node's pods are evicted now, whatever the policy said", () => {
  assert.deepEqual(podVerdict(drainingNode({}), true, at(0)), { evict: true });
  const graceful = drainingNode({ forceReclaim: true, gracefulReclaimPeriodSeconds: 3600 });
  assert.deepEqual(podVerdict(graceful, true, at(0)), { evict: true });
});

Deno.test("cordoned metadata: adds the taint and draining-since once, keeps users' keys; leasing again undoes it", () => {
  const leasedAs = mergeOwned(undefined, {
    labels: { "kubeocean.io/managed-by": "kubeocean" },
    annotations: { "kubeocean.io/policy": "p", ...reclaimAnnotations({ forceReclaim: true }) },
    taints: [{ key: "kubeocean.io/vnode", effect: "NoSchedule" }],
  });
  const leased: Node = {
    metadata: {
      name: "vnode-w1-node1",
      labels: { ...leasedAs.labels, "team.example/owner": "ops" },
      annotations: { ...leasedAs.annotations, "team.example/note": "keep" },
    },
    spec: { taints: [...leasedAs.taints, { key: "team.example/gpu", effect: "NoSchedule" }] },
  };
  const cordoned = cordonedMetadata(leased, SINCE);
  assert.equal(cordoned.annotations[ANNOTATION_DRAINING_SINCE], SINCE.toISOString());
  assert.equal(cordoned.annotations[ANNOTATION_FORCE_RECLAIM], "true");
  assert.equal(cordoned.annotations["team.example/note"], "keep");
  assert.deepEqual(cordoned.taints.map((t) => t.key).sort(), [
    "kubeocean.io/vnode",
    TAINT_VNODE_DELETING,
    "team.example/gpu",
  ]);
  const drained: Node = {
    metadata: { ...leased.metadata, labels: cordoned.labels, annotations: cordoned.annotations },
    spec: { taints: cordoned.taints, unschedulable: true },
  };
  // Cordoning again keeps the first start (the deadline survives restarts).
  assert.equal(
    cordonedMetadata(drained, at(60_000)).annotations[ANNOTATION_DRAINING_SINCE],
    SINCE.toISOString(),
  );
  // Leased again: what the node controller wants then drops the taint and the start, not users' keys.
  const undrained = mergeOwned(drained, leasedAs);
  assert.equal(undrained.annotations[ANNOTATION_DRAINING_SINCE], undefined);
  assert.equal(undrained.annotations["team.example/note"], "keep");
  assert.equal(undrained.labels["team.example/owner"], "ops");
  assert.deepEqual(undrained.taints.map((t) => t.key).sort(), ["kubeocean.io/vnode", "team.example/gpu"]);
});

Deno.test("policy problem: a quantity the schema's pattern accepts but the parser rejects names the field", () => {
  const policy = (quantity: string | number): ResourceLeasingPolicy => ({
    metadata: { name: "p" },
    spec: {
      cluster: "w1",
      resourceLimits: [{ resource: "memory", quantity: "8Gi" }, { resource: "cpu", quantity }],
    },
  });
  assert.equal(
    policyProblem(policy("1e1.5")),
    'spec.resourceLimits[1].quantity: "1e1.5" is not a Kubernetes quantity (e.g. 8, 500m, 16Gi)',
  );
  assert.match(policyProblem(policy("1e2000"))!, /^spec\.resourceLimits\[1\]\.quantity: "1e2000"/);
  for (const valid of ["1.5", "500m", "1e3", 8]) {
    assert.equal(policyProblem(policy(valid)), undefined, String(valid));
  }
});

// The node controller against in-memory clusters.

const VNODE = "vnode-w1-node1";

/** A running node controller for binding `w1`, worker node `node1`, and a clock the test sets. */
async function bottomUp() {
  let now = SINCE.getTime();
  const { ctx, computing, worker, virtual, manager } = memorySyncerContext(
    { address: "10.0.0.9", port: 10250 },
    { clock: { now: () => new Date(now) } },
  );
  const controller = nodeController(ctx, async () => {});
  await ctx.bindings.create({
    metadata: { name: "w1", finalizers: [FINALIZER_SYNCER] },
    spec: {
      clusterID: "w1",
      mountNamespace: "mount",
      secretRef: { name: "w1-kubeconfig", namespace: "kubeocean-system" },
    },
  });
  await ctx.physical.core.nodes().create({
    metadata: { name: "node1", labels: { pool: "spare" } },
    status: { allocatable: { cpu: "4", memory: "8Gi", pods: "110" } },
  });
  const outcomes: ReconcileOutcome[] = [];
  const stop = new AbortController();
  const collecting = (async () => {
    for await (const outcome of controller.outcomes(stop.signal)) outcomes.push(outcome);
  })();
  const running = manager.run(stop.signal);
  await eventually("caches listed", () => manager.synced);
  const vcore = ctx.virtual.core;
  const vnode = async () => {
    try {
      return await vcore.nodes().get(VNODE);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };
  return {
    ctx,
    computing,
    vcore,
    outcomes,
    vnode,
    advance(ms: number) {
      now += ms;
    },
    async applyPolicy(spec: Partial<NonNullable<ResourceLeasingPolicy["spec"]>> = {}) {
      const body: ResourceLeasingPolicy = { metadata: { name: "p" }, spec: { cluster: "w1", ...spec } };
      try {
        const current = await ctx.policies.get("p");
        await ctx.policies.replace({ ...current, spec: body.spec });
      } catch (err) {
        if (!isNotFound(err)) throw err;
        await ctx.policies.create(body);
      }
    },
    async leased(): Promise<Node> {
      return await eventually("virtual node leased", async () => {
        const n = await vnode();
        return n && !n.spec?.unschedulable && n.metadata?.annotations?.["kubeocean.io/policy"]
          ? n
          : undefined;
      });
    },
    async cordoned(): Promise<Node> {
      return await eventually("virtual node cordoned", async () => {
        const n = await vnode();
        return n?.spec?.unschedulable && n.metadata?.annotations?.[ANNOTATION_DRAINING_SINCE] ? n : undefined;
      });
    },
    async createPod(name: string): Promise<Pod> {
      return await vcore.pods("default").create({
        metadata: { name },
        spec: { nodeName: VNODE, containers: [{ name: "app", image: "app:1" }] },
      });
    },
    async podTerminating(name: string): Promise<boolean> {
      return !!(await vcore.pods("default").get(name)).metadata?.deletionTimestamp;
    },
    evictions(): number {
      return computing.writes.filter((r) => r.subresource === "eviction").length;
    },
    /** The outcome of a reconcile of node1 asked for now (an earlier one still running may answer). */
    async reconcile(): Promise<ReconcileOutcome> {
      const done = new AbortController();
      const next = (async () => {
        for await (const outcome of controller.outcomes(done.signal)) {
          if (outcome.key === "node1") return outcome;
        }
        throw new Error("controller stopped");
      })();
      controller.enqueue({ name: "node1" });
      try {
        return await next;
      } finally {
        done.abort();
      }
    },
    async [Symbol.asyncDispose]() {
      stop.abort();
      await running;
      await collecting;
      virtual.close();
      worker.close();
    },
  };
}

Deno.test("node controller: a leased node records its policy's reclaim settings", async () => {
  await using t = await bottomUp();
  await t.applyPolicy({ forceReclaim: true, gracefulReclaimPeriodSeconds: 10 });
  const leased = await t.leased();
  assert.equal(leased.metadata!.annotations![ANNOTATION_FORCE_RECLAIM], "true");
  assert.equal(leased.metadata!.annotations![ANNOTATION_GRACEFUL_RECLAIM_PERIOD], "10");
  const owned = JSON.parse(leased.metadata!.annotations!["kubeocean.io/expected-metadata"]);
  assert.equal(owned.annotations[ANNOTATION_FORCE_RECLAIM], "true", "owned: removed when no longer wanted");
});

Deno.test("node controller: policy deleted without forceReclaim → cordoned, pods not evicted, node removed after the last ends", async () => {
  await using t = await bottomUp();
  await t.applyPolicy();
  await t.leased();
  await t.createPod("web");
  await t.createPod("batch");
  await t.ctx.policies.delete("p");
  const cordoned = await t.cordoned();
  assert.ok(cordoned.spec!.taints!.some((x) => x.key === TAINT_VNODE_DELETING && x.effect === "NoSchedule"));
  assert.equal(cordoned.metadata!.annotations![ANNOTATION_DRAINING_SINCE], SINCE.toISOString());

  t.advance(24 * 3600_000); // a day later, still nothing evicted
  const outcome = await t.reconcile();
  assert.equal(outcome.result, "requeue_after");
  assert.equal(t.evictions(), 0);
  assert.equal(await t.podTerminating("web"), false);
  assert.ok(await t.vnode(), "the virtual node stays while its pods run");

  await t.vcore.pods("default").patchStatus("web", { status: { phase: "Succeeded" } }, { type: "merge" });
  await t.reconcile();
  assert.ok(await t.vnode(), "one pod still runs");
  await t.vcore.pods("default").delete("batch", { gracePeriodSeconds: 0 });
  await eventually("virtual node removed", async () => !(await t.vnode()));
  assert.equal(t.evictions(), 0);
  assert.equal((await t.computing.list("csinodes.storage.k8s.io")).length, 0);
  assert.equal((await t.computing.list("leases.coordination.k8s.io", "kube-node-lease")).length, 0);
});

Deno.test("node controller: forceReclaim with a 10 s grace → requeued exactly at the deadline, evicted then and not before", async () => {
  await using t = await bottomUp();
  await t.applyPolicy({ forceReclaim: true, gracefulReclaimPeriodSeconds: 10 });
  await t.leased();
  await t.createPod("web");
  await t.ctx.policies.delete("p");
  await t.cordoned();
  assert.deepEqual((await t.reconcile()).action, { requeueAfterMs: 10_000 });
  assert.equal(t.evictions(), 0);

  t.advance(9_999);
  assert.deepEqual((await t.reconcile()).action, { requeueAfterMs: 1 });
  assert.equal(t.evictions(), 0);
  assert.equal(await t.podTerminating("web"), false);

  t.advance(1);
  await t.reconcile();
  assert.equal(t.evictions(), 1);
  assert.equal(await t.podTerminating("web"), true);
  // Every reconcile of the draining node started from the same recorded start.
  assert.ok(!t.outcomes.some((o) => o.key === "node1" && o.result === "error"));
});

Deno.test("node controller: a deleted physical node's pods are evicted at once, even without forceReclaim", async () => {
  await using t = await bottomUp();
  await t.applyPolicy();
  await t.leased();
  await t.createPod("web");
  await t.ctx.physical.core.nodes().delete("node1");
  await eventually("pod evicted", () => t.podTerminating("web"));
  assert.ok(t.evictions() >= 1); // an eviction repeated before the cache shows the first is harmless
});

Deno.test("node controller: leased again while draining → uncordoned, draining-since removed, users' keys kept", async () => {
  await using t = await bottomUp();
  await t.applyPolicy({ forceReclaim: true, gracefulReclaimPeriodSeconds: 600 });
  const leased = await t.leased();
  await t.vcore.nodes().replace({
    ...leased,
    metadata: { ...leased.metadata, labels: { ...leased.metadata!.labels, "team.example/owner": "ops" } },
    spec: {
      ...leased.spec,
      taints: [...leased.spec!.taints!, { key: "team.example/gpu", effect: "NoSchedule" }],
    },
  });
  await t.createPod("web");
  await t.ctx.policies.delete("p");
  const cordoned = await t.cordoned();
  assert.equal(cordoned.metadata!.labels!["team.example/owner"], "ops");
  assert.ok(cordoned.spec!.taints!.some((x) => x.key === "team.example/gpu"));

  await t.applyPolicy({ gracefulReclaimPeriodSeconds: 5 });
  const back = await t.leased();
  assert.equal(back.metadata!.annotations![ANNOTATION_DRAINING_SINCE], undefined);
  assert.equal(back.metadata!.annotations![ANNOTATION_FORCE_RECLAIM], "false");
  assert.equal(back.metadata!.annotations![ANNOTATION_GRACEFUL_RECLAIM_PERIOD], "5");
  assert.ok(!back.spec!.taints!.some((x) => x.key === TAINT_VNODE_DELETING));
  assert.equal(back.metadata!.labels!["team.example/owner"], "ops");
  assert.ok(back.spec!.taints!.some((x) => x.key === "team.example/gpu"));
  assert.equal(t.evictions(), 0);
  assert.equal(back.metadata!.uid, leased.metadata!.uid, "the same node object");
});

Deno.test("node controller: binding being deleted → virtual nodes cordoned, nothing evicted or deleted", async () => {
  await using t = await bottomUp();
  await t.applyPolicy({ forceReclaim: true });
  await t.leased();
  await t.createPod("web");
  await t.ctx.bindings.delete("w1"); // held by the syncer finalizer: only marked
  const cordoned = await t.cordoned();
  assert.ok(cordoned.spec!.taints!.some((x) => x.key === TAINT_VNODE_DELETING));
  await t.reconcile();
  assert.equal(t.evictions(), 0);
  assert.equal(await t.podTerminating("web"), false);
  assert.ok(await t.vnode(), "the binding controller deletes virtual nodes, not this one");
});

Deno.test("node controller: a policy with a parser-rejected quantity leases nothing, without reconcile errors", async () => {
  await using t = await bottomUp();
  await t.applyPolicy({ resourceLimits: [{ resource: "cpu", quantity: "1e1.5" }] });
  const outcome = await t.reconcile();
  assert.notEqual(outcome.result, "error");
  assert.equal(await t.vnode(), undefined);
  await t.applyPolicy({ resourceLimits: [{ resource: "cpu", quantity: "1.5" }] });
  const leased = await t.leased();
  assert.equal(leased.status!.allocatable!.cpu, "1500m");
  assert.ok(!t.outcomes.some((o) => o.key === "node1" && o.result === "error"));
});
