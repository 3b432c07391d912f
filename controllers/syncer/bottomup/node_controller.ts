/**
 * Bottom-up: one virtual node per leased physical node.
 *
 * Keyed by physical node name. A node is leased while the binding's node selector and one of the
 * binding's valid policies select it; its virtual node then carries the leased capacity, the
 * physical node's conditions and node info, copied taints plus Kubeocean's own, and addresses
 * pointing at the proxier. A node that is no longer leased (deleted, relabelled, no policy) is
 * tainted and cordoned, its pods are evicted, and the virtual node, its Lease and CSINode are
 * deleted once it is empty. Time windows are evaluated in the policy's time zone; the controller
 * wakes at the next transition.
 *
 * @module
 */

import type { CSINode } from "../../../apis/storage.k8s.io/v1/mod.ts";
import type { Node, NodeStatus, Pod, Taint } from "../../../apis/core/v1/mod.ts";
import type { ResourceLeasingPolicy } from "../../../apis/kubeocean.io/v1beta1/mod.ts";
import { isAlreadyExists, isConflict, isNotFound, isTransient } from "../../../toolkit/client/errors.ts";
import type { ObjectRef } from "../../../toolkit/client/resource.ts";
import { Action, type Controller, ControllerBuilder } from "../../../toolkit/runtime/controller.ts";
import type { Informer } from "../../../toolkit/runtime/informer.ts";
import {
  LABEL_CLUSTER_BINDING,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
  TAINT_OUT_OF_TIME_WINDOWS,
  TAINT_VNODE,
  TAINT_VNODE_DELETING,
} from "../../common/names.ts";
import { BY_NODE, type SyncerContext } from "../context.ts";
import { applyLimits, effectiveRequests, freeCapacity, isNonTerminal, toResourceList } from "./capacity.ts";
import { matchesNodeSelector } from "./node_selector.ts";
import { selectPolicy } from "./policy_selection.ts";
import { evaluateWindows } from "./time_windows.ts";
import { mergeOwned, type OwnedMetadata, virtualNodeLabels, virtualNodeName } from "./vnode.ts";

/** Annotation on a virtual node naming its physical node (label values may be shortened). */
export const ANNOTATION_PHYSICAL_NODE = "kubeocean.io/physical-node-name";
/** Annotation naming the policy a virtual node's capacity comes from. */
export const ANNOTATION_POLICY = "kubeocean.io/policy";

/** Physical taints managed by each cluster's own node lifecycle; never copied. */
function copiedTaint(t: Taint): boolean {
  return !t.key.startsWith("node.kubernetes.io/") && !t.key.startsWith("node.cloudprovider.kubernetes.io/") &&
    !t.key.startsWith("kubeocean.io/");
}

/** The physical node behind a virtual node of this binding. */
export function physicalNameOf(vnode: Node): string | undefined {
  return vnode.metadata?.annotations?.[ANNOTATION_PHYSICAL_NODE];
}

/** Builds the bottom-up node controller; `onVirtualNode` is called for every created virtual node (lease). */
export function nodeController(
  ctx: SyncerContext,
  onVirtualNode: (vnode: Node) => Promise<void>,
): Controller<Node> {
  const bindingName = ctx.config.bindingName;
  const vnodeSelector = `${LABEL_CLUSTER_BINDING}=${bindingName}`;
  const virtualNodeInformer = ctx.virtualInformers.for(ctx.virtualNodes, { labelSelector: vnodeSelector });
  const policyInformer = ctx.physicalInformers.for(ctx.policies);
  const physicalPods = ctx.physicalPodInformer;
  const virtualPods = ctx.virtualPodInformer;
  const csiNodes = ctx.physicalInformers.for(ctx.physicalStorage.csinodes());
  const virtualCsiNodes = ctx.virtualInformers.for(ctx.virtualStorage.csinodes(), {
    labelSelector: vnodeSelector,
  });
  const everyNode = (): ObjectRef[] => {
    const names = new Set<string>();
    try {
      for (const n of controller.store.list()) names.add(n.metadata!.name!);
    } catch {
      // not running yet
    }
    for (const v of virtualNodeInformer.store.list()) {
      const physical = physicalNameOf(v);
      if (physical) names.add(physical);
    }
    return [...names].map((name) => ({ name }));
  };
  const physicalOfVirtual = (vnodeName: string): ObjectRef[] => {
    const v = virtualNodeInformer.store.get(vnodeName);
    const physical = v && physicalNameOf(v);
    return physical ? [{ name: physical }] : [];
  };

  const controller: Controller<Node> = new ControllerBuilder(ctx.physicalNodes, {
    name: `vnodes/${bindingName}`,
    concurrency: 64,
    logger: ctx.log,
    metrics: ctx.runtimeMetrics,
    informers: (t) => ctx.informersFor(t),
  })
    // Other workloads' pods change what can be leased; twins do not (they run on the lease).
    .watches(ctx.physicalPods, (pod) => pod.spec?.nodeName ? [{ name: pod.spec.nodeName }] : [], {
      indexers: { [BY_NODE]: (p: Pod) => [p.spec?.nodeName ?? ""] },
      predicates: [(e) => e.object.metadata?.labels?.[LABEL_MANAGED_BY] !== MANAGED_BY_VALUE],
    })
    .watches(ctx.policies, () => everyNode())
    .watches(ctx.bindings, () => everyNode(), { fieldSelector: `metadata.name=${bindingName}` })
    .watches(ctx.virtualNodes, (v) => physicalOfVirtual(v.metadata!.name!), { labelSelector: vnodeSelector })
    .watches(
      ctx.virtualPods,
      (pod) => pod.spec?.nodeName?.startsWith("vnode-") ? physicalOfVirtual(pod.spec.nodeName) : [],
      {
        indexers: { [BY_NODE]: (p: Pod) => [p.spec?.nodeName ?? ""] },
        // A draining node waits for its pods to end; their other changes only move usage gauges,
        // which the node's next reconcile (heartbeats, resync) refreshes.
        predicates: [(e) => e.type === "Delete" || !isNonTerminal(e.object)],
      },
    )
    .watches(ctx.physicalStorage.csinodes(), (c) => [{ name: c.metadata!.name! }])
    // Our virtual CSINodes, cached so that a reconcile needs no GET to compare them.
    .watches(ctx.virtualStorage.csinodes(), (c) => physicalOfVirtual(c.metadata!.name!), {
      labelSelector: vnodeSelector,
    })
    .build(async (ref, rc) => {
      const binding = ctx.binding;
      if (!binding || binding.metadata?.deletionTimestamp) return Action.done(); // the binding finalizer cleans up
      const clusterID = binding.spec!.clusterID;
      const vname = virtualNodeName(clusterID, ref.name);
      const vnode = virtualNodeInformer.store.get(vname);
      if (vnode && vnode.metadata?.labels?.[LABEL_CLUSTER_BINDING] !== bindingName) {
        rc.log.warn("virtual node belongs to another binding; not touching it", { vnode: vname });
        return Action.done();
      }
      const physical = rc.object;
      const leasable = physical && physical.metadata?.labels?.type !== "virtual-kubelet" &&
        physical.metadata?.labels?.["node.kubernetes.io/instance-type"] !== "vnode" &&
        matchesNodeSelector(binding.spec?.nodeSelector, ref.name, physical.metadata?.labels);
      const policy = leasable ? selectPolicy(policyInformer.store.list(), bindingName, physical) : undefined;
      if (!physical || !policy) {
        clearNodeMetrics(ref.name);
        return await drainAndRemove(vname, vnode);
      }
      return await upsert(
        physical,
        policy,
        vname,
        vnode,
        binding.spec!.disableNodeDefaultTaint ?? false,
        clusterID,
      );
    });

  async function upsert(
    physical: Node,
    policy: ResourceLeasingPolicy,
    vname: string,
    current: Node | undefined,
    disableDefaultTaint: boolean,
    clusterID: string,
  ): Promise<Action> {
    const now = ctx.clock.now();
    const spec = policy.spec!;
    const physicalName = physical.metadata!.name!;
    // Capacity.
    const ownPods = physicalPods.store.byIndex(BY_NODE, physicalName)
      .filter((p) => isNonTerminal(p) && p.metadata?.labels?.[LABEL_MANAGED_BY] !== MANAGED_BY_VALUE);
    const allocatable = (physical.status?.allocatable ?? {}) as Record<string, string>;
    const free = freeCapacity(allocatable, ownPods);
    const leased = applyLimits(free, spec.resourceLimits as never);
    recordNodeMetrics(physicalName, allocatable, ownPods, leased, vname);

    // Taints and time windows.
    const taints: Taint[] = (physical.spec?.taints ?? []).filter(copiedTaint).map((t) => ({
      key: t.key,
      value: t.value,
      effect: t.effect,
    }));
    if (!disableDefaultTaint) taints.push({ key: TAINT_VNODE, effect: "NoSchedule" });
    const windows = evaluateWindows(spec.timeWindows, spec.timeZone ?? "UTC", now);
    let wakeAt = windows.nextTransition?.getTime();
    if (!windows.active) {
      let effect: Taint["effect"] = "NoSchedule";
      if (spec.forceReclaim) {
        const since = (windows.lastTransition ?? now).getTime();
        const evictAt = since + (spec.gracefulReclaimPeriodSeconds ?? 0) * 1000;
        if (now.getTime() >= evictAt) effect = "NoExecute";
        else wakeAt = Math.min(wakeAt ?? Infinity, evictAt);
      }
      taints.push({ key: TAINT_OUT_OF_TIME_WINDOWS, value: "true", effect });
    }
    const desired: OwnedMetadata = {
      labels: virtualNodeLabels(physical, vname, { name: bindingName, clusterID }),
      annotations: { [ANNOTATION_PHYSICAL_NODE]: physicalName, [ANNOTATION_POLICY]: policy.metadata!.name! },
      taints,
    };
    const merged = mergeOwned(current, desired);
    const unschedulable = physical.spec?.unschedulable ? true : undefined;
    let node = current;
    if (!node) {
      node = await ctx.virtualNodes.create({
        apiVersion: "v1",
        kind: "Node",
        metadata: { name: vname, labels: merged.labels, annotations: merged.annotations },
        spec: { taints: merged.taints, unschedulable },
        // Nodes keep their status on create (as a kubelet registers): Ready in one write.
        status: desiredStatus(physical, leased, vname),
      });
      ctx.log.info("virtual node created", {
        vnode: vname,
        physical: physicalName,
        policy: policy.metadata?.name,
      });
      await onVirtualNode(node);
    } else if (!sameMetadata(node, merged, unschedulable)) {
      node = await ctx.virtualNodes.replace({
        ...node,
        metadata: { ...node.metadata, labels: merged.labels, annotations: merged.annotations },
        spec: { ...node.spec, taints: merged.taints, unschedulable },
      });
    }
    const status = desiredStatus(physical, leased, vname);
    if (!sameStatus(node.status, status)) {
      // Merge patch without a resourceVersion: the syncer owns these fields (no needless conflicts).
      await ctx.virtualNodes.patchStatus(vname, { status } as never, { type: "merge" });
    }
    await syncCsiNode(physicalName, node);
    const resyncAt = now.getTime() + ctx.config.resyncMs * (0.9 + Math.random() * 0.2);
    return Action.requeueAfter(Math.max(0, Math.min(resyncAt, wakeAt ?? Infinity) - now.getTime()));
  }

  function desiredStatus(physical: Node, leased: ReturnType<typeof applyLimits>, vname: string): NodeStatus {
    const resources = toResourceList(leased);
    const heartbeat = ctx.clock.now().toISOString().replace(/\.\d{3}Z$/, "Z");
    return {
      capacity: resources,
      allocatable: resources,
      conditions: (physical.status?.conditions ?? []).map((c) => ({ ...c, lastHeartbeatTime: heartbeat })),
      addresses: [
        { type: "InternalIP", address: ctx.config.proxier.address },
        { type: "Hostname", address: vname },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: ctx.config.proxier.port } },
      nodeInfo: physical.status?.nodeInfo,
      phase: physical.status?.phase,
    };
  }

  async function syncCsiNode(physicalName: string, vnode: Node): Promise<void> {
    const source = csiNodes.store.get(physicalName) as CSINode | undefined;
    const virtualCsi = ctx.virtualStorage.csinodes();
    const name = vnode.metadata!.name!;
    const existing = virtualCsiNodes.store.get(name) as CSINode | undefined;
    if (!source) {
      if (existing) {
        await virtualCsi.delete(name).catch((err) => isNotFound(err) ? undefined : Promise.reject(err));
      }
      return;
    }
    const drivers = source.spec?.drivers ?? [];
    if (existing && JSON.stringify(existing.spec?.drivers ?? []) === JSON.stringify(drivers)) return;
    const body: CSINode = {
      apiVersion: "storage.k8s.io/v1",
      kind: "CSINode",
      metadata: {
        name,
        labels: { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE, [LABEL_CLUSTER_BINDING]: bindingName },
        annotations: { [ANNOTATION_PHYSICAL_NODE]: physicalName },
        ownerReferences: [{ apiVersion: "v1", kind: "Node", name, uid: vnode.metadata!.uid! }],
      },
      spec: { drivers },
    };
    if (existing) await virtualCsi.replace({ ...body, metadata: { ...existing.metadata, ...body.metadata } });
    else {
      // The cache may lag behind a create of ours: the next event reconciles again.
      await virtualCsi.create(body).catch((err) => isAlreadyExists(err) ? undefined : Promise.reject(err));
    }
  }

  async function drainAndRemove(vname: string, vnode: Node | undefined): Promise<Action> {
    if (!vnode) {
      await deleteIgnoringMissing(() => ctx.virtualCoordination.leases("kube-node-lease").delete(vname));
      await deleteIgnoringMissing(() => ctx.virtualStorage.csinodes().delete(vname));
      return Action.done();
    }
    const deletingTaint = { key: TAINT_VNODE_DELETING, value: "true", effect: "NoSchedule" as const };
    if (!vnode.spec?.unschedulable || !vnode.spec.taints?.some((t) => t.key === TAINT_VNODE_DELETING)) {
      const previous = JSON.parse(
        vnode.metadata?.annotations?.["kubeocean.io/expected-metadata"] ?? "{}",
      ) as Partial<OwnedMetadata>;
      const desired: OwnedMetadata = {
        labels: previous.labels ?? {},
        annotations: previous.annotations ?? {},
        taints: [...(previous.taints ?? []).filter((t) => t.key !== TAINT_VNODE_DELETING), deletingTaint],
      };
      const merged = mergeOwned(vnode, desired);
      await ctx.virtualNodes.replace({
        ...vnode,
        metadata: { ...vnode.metadata, annotations: merged.annotations },
        spec: { ...vnode.spec, taints: merged.taints, unschedulable: true },
      });
      ctx.log.info("draining virtual node", { vnode: vname });
    }
    const remaining = virtualPods.store.byIndex(BY_NODE, vname).filter(isNonTerminal);
    for (const pod of remaining) {
      if (pod.metadata?.deletionTimestamp) continue;
      try {
        await ctx.virtualCore.pods(pod.metadata!.namespace!).evict(pod.metadata!.name!);
      } catch (err) {
        if (isNotFound(err)) continue;
        if (isTransient(err)) return Action.requeueAfter(5_000); // e.g. a PodDisruptionBudget says not now
        throw err;
      }
    }
    if (remaining.length > 0) return Action.requeueAfter(2_000);
    await deleteIgnoringMissing(() => ctx.virtualCoordination.leases("kube-node-lease").delete(vname));
    await deleteIgnoringMissing(() => ctx.virtualStorage.csinodes().delete(vname));
    await deleteIgnoringMissing(() =>
      ctx.virtualNodes.delete(vname, { preconditions: { uid: vnode.metadata!.uid } })
    );
    ctx.log.info("virtual node removed", { vnode: vname });
    return Action.done();
  }

  function recordNodeMetrics(
    physicalName: string,
    allocatable: Record<string, string>,
    ownPods: Pod[],
    leased: ReturnType<typeof applyLimits>,
    vname: string,
  ): void {
    const m = ctx.metrics;
    const used = freeUsage(ownPods);
    const virtualUsed = freeUsage(virtualPods.store.byIndex(BY_NODE, vname).filter(isNonTerminal));
    for (const [resource, value] of Object.entries(allocatable)) {
      const labels = { cluster_binding: bindingName, node: physicalName, resource };
      m.origin.set(labels, numberOf(value));
      m.available.set(labels, leased[resource]?.toNumber() ?? 0);
      m.physicalUsage.set(labels, used[resource] ?? 0);
      m.virtualUsage.set(labels, virtualUsed[resource] ?? 0);
    }
  }

  function clearNodeMetrics(physicalName: string): void {
    for (
      const gauge of [
        ctx.metrics.origin,
        ctx.metrics.available,
        ctx.metrics.physicalUsage,
        ctx.metrics.virtualUsage,
      ]
    ) {
      for (const resource of ["cpu", "memory", "pods", "ephemeral-storage"]) {
        gauge.remove({ cluster_binding: bindingName, node: physicalName, resource });
      }
    }
  }

  return controller;
}

function freeUsage(pods: Pod[]): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const pod of pods) {
    for (const [resource, q] of Object.entries(effectiveRequests(pod))) {
      sums[resource] = (sums[resource] ?? 0) + q.toNumber();
    }
  }
  return sums;
}

function numberOf(value: string): number {
  try {
    return Number(value.replace(/[^\d.]/g, "")) || 0;
  } catch {
    return 0;
  }
}

async function deleteIgnoringMissing(op: () => Promise<unknown>): Promise<void> {
  try {
    await op();
  } catch (err) {
    if (!isNotFound(err) && !isConflict(err)) throw err;
  }
}

function sameMetadata(node: Node, merged: OwnedMetadata, unschedulable: boolean | undefined): boolean {
  const same = (a: unknown, b: unknown) => JSON.stringify(a ?? {}) === JSON.stringify(b ?? {});
  const taintsOf = (ts: Taint[] | undefined) =>
    (ts ?? []).map((t) => `${t.key}=${t.value ?? ""}:${t.effect}`).sort();
  return same(sortKeys(node.metadata?.labels), sortKeys(merged.labels)) &&
    same(sortKeys(node.metadata?.annotations), sortKeys(merged.annotations)) &&
    same(taintsOf(node.spec?.taints), taintsOf(merged.taints)) &&
    Boolean(node.spec?.unschedulable) === Boolean(unschedulable);
}

function sortKeys(record: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(record ?? {}).sort(([a], [b]) => a.localeCompare(b)));
}

/** Whether a status write would change anything but heartbeat times. */
function sameStatus(current: NodeStatus | undefined, desired: NodeStatus): boolean {
  if (!current) return false;
  const strip = (s: NodeStatus) =>
    JSON.stringify({
      capacity: s.capacity,
      allocatable: s.allocatable,
      conditions: (s.conditions ?? []).map((c) => [c.type, c.status, c.reason, c.message]).sort(),
      addresses: s.addresses,
      port: s.daemonEndpoints?.kubeletEndpoint?.Port,
      nodeInfo: s.nodeInfo,
    });
  return strip(current) === strip(desired);
}

/** The informer of this binding's virtual nodes. */
export function virtualNodeInformer(ctx: SyncerContext): Informer<Node> {
  return ctx.virtualInformers.for(ctx.virtualNodes, {
    labelSelector: `${LABEL_CLUSTER_BINDING}=${ctx.config.bindingName}`,
  });
}
