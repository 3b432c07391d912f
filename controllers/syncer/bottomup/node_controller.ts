/**
 * Bottom-up: one virtual node per leased physical node.
 *
 * Keyed by physical node name. A node is leased while the binding's node selector and one of the
 * binding's valid policies select it; its virtual node then carries the leased capacity, the
 * physical node's conditions and node info, copied taints plus Kubeocean's own, and addresses
 * pointing at the proxier, and records the policy's reclaim settings. A node that is no longer
 * leased (deleted, relabelled, no valid policy) is drained (`drain.ts`): cordoned, its pods left to
 * run to completion or evicted as the recorded settings say, and the virtual node, its Lease and
 * CSINode deleted once it is empty. While the binding is being deleted its virtual nodes are only
 * cordoned (the binding controller removes them). Time windows are evaluated in the policy's time
 * zone, with calendar exceptions; the controller wakes at the next transition, and gives notice
 * before lending ends (`closing_notice.ts`).
 *
 * @module
 */

import type { CSINode } from "../../../apis/storage.k8s.io/v1/mod.ts";
import type { Node, NodeCondition, NodeStatus, Taint } from "../../../apis/core/v1/mod.ts";
import type { ResourceLeasingPolicy } from "../../../apis/kubeocean.io/v1beta1/mod.ts";
import { isAlreadyExists, isNotFound } from "../../../toolkit/client/errors.ts";
import type { ObjectRef } from "../../../toolkit/client/resource.ts";
import { rfc3339 } from "../../../toolkit/apimachinery/time.ts";
import { Action, type Controller } from "../../../toolkit/runtime/controller.ts";
import type { ReadStore } from "../../../toolkit/runtime/store.ts";
import {
  ANNOTATION_PHYSICAL_NODE,
  ANNOTATION_POLICY,
  ANNOTATION_RESOURCE_METRICS_PATH,
  isHostPortPlaceholder,
  LABEL_CLUSTER_BINDING,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
  resourceMetricsPath,
  TAINT_OUT_OF_TIME_WINDOWS,
  TAINT_VNODE,
} from "../../common/names.ts";
import { BY_NODE, nodeNameOf, proxierPodSelector, type SyncerContext } from "../context.ts";
import { type applyLimits, isNonTerminal, toResourceList } from "./capacity.ts";
import { cordon, drainAndRemove, reclaimAnnotations } from "./drain.ts";
import { withPlaceholderSlot } from "./host_ports.ts";
import { NodeNameConflicts } from "./name_conflicts.ts";
import { NodeFigures } from "./node_figures.ts";
import { leasableNode, leasedCapacity, takesFromLease } from "./lease_plan.ts";
import { selectPolicy } from "./policy_selection.ts";
import { evaluateSchedule } from "./time_windows.ts";
import {
  closingAt,
  ClosingNotices,
  CONDITION_LEASE_ENDING,
  leaseEndingCondition,
  noticeStart,
} from "./closing_notice.ts";
import { mergeOwned, type OwnedMetadata, virtualNodeLabels, virtualNodeName } from "./vnode.ts";
import { physicalPodTransform, virtualPodTransform } from "../pod_slimming.ts";

/** Physical taints managed by each cluster's own node lifecycle; never copied. */
function copiedTaint(t: Taint): boolean {
  return !t.key.startsWith("node.kubernetes.io/") && !t.key.startsWith("node.cloudprovider.kubernetes.io/") &&
    !t.key.startsWith("kubeocean.io/");
}

/** Builds the bottom-up node controller; `onVirtualNode` is called for every created virtual node (lease). */
export function nodeController(
  ctx: SyncerContext,
  onVirtualNode: (vnode: Node) => Promise<void>,
): Controller<Node> {
  const bindingName = ctx.config.bindingName;
  const vnodeSelector = `${LABEL_CLUSTER_BINDING}=${bindingName}`;
  const virtualNodeInformer = ctx.virtualNodeInformer;
  const policyInformer = ctx.policyInformer;
  const physicalPods = ctx.physicalPodInformer;
  const virtualPods = ctx.virtualPodInformer;
  const csiNodes = ctx.manager.cache(ctx.physical.storage.csinodes());
  const virtualCsiNodes = ctx.manager.cache(ctx.virtual.storage.csinodes(), { labelSelector: vnodeSelector });
  const figures = new NodeFigures(ctx);
  const conflicts = new NodeNameConflicts(ctx);
  const notices = new ClosingNotices(ctx);
  /** Every physical node, and every one a virtual node still stands for (to drain it). */
  const everyNode = (physicalNodes: ReadStore<Node>): ObjectRef[] => {
    const names = new Set(physicalNodes.list().map((n) => n.metadata!.name!));
    for (const v of virtualNodeInformer.store.list()) {
      const physical = ctx.physicalNodeOf(v);
      if (physical) names.add(physical);
    }
    return [...names].map((name) => ({ name }));
  };
  const physicalOfVirtual = (vnodeName: string): ObjectRef[] => {
    const physical = ctx.physicalNodeOf(vnodeName);
    return physical ? [{ name: physical }] : [];
  };

  const builder = ctx.manager.controller(ctx.physical.core.nodes(), {
    name: `vnodes/${bindingName}`,
    concurrency: 64,
  });
  const proxierNamespace = ctx.config.proxier.podNamespace;
  if (proxierNamespace) {
    // Virtual nodes advertise a proxier pod's IP: every node follows when the chosen pod changes.
    builder.watches(ctx.virtual.core.pods(proxierNamespace), (_pod, _event, nodes) => everyNode(nodes), {
      labelSelector: proxierPodSelector(bindingName),
    });
  }
  const controller: Controller<Node> = builder
    // Other workloads' pods change what can be leased; twins do not (they run on the lease).
    .watches(ctx.physical.core.pods(), (pod) => pod.spec?.nodeName ? [{ name: pod.spec.nodeName }] : [], {
      indexers: { [BY_NODE]: nodeNameOf },
      transform: physicalPodTransform,
      predicates: [(e) => e.object.metadata?.labels?.[LABEL_MANAGED_BY] !== MANAGED_BY_VALUE],
    })
    .watches(ctx.policies, (_policy, _event, nodes) => everyNode(nodes))
    .watches(ctx.bindings, (_binding, _event, nodes) => everyNode(nodes), {
      fieldSelector: `metadata.name=${bindingName}`,
    })
    .watches(ctx.virtual.core.nodes(), (v) => physicalOfVirtual(v.metadata!.name!), {
      labelSelector: vnodeSelector,
    })
    .watches(
      ctx.virtual.core.pods(),
      (pod) => pod.spec?.nodeName?.startsWith("vnode-") ? physicalOfVirtual(pod.spec.nodeName) : [],
      {
        indexers: { [BY_NODE]: nodeNameOf },
        transform: virtualPodTransform(ctx.config.clusterID),
        // A draining node waits for its pods to end; their other changes only move usage gauges,
        // which the node's next reconcile (heartbeats, resync) refreshes.
        predicates: [(e) => e.type === "Delete" || !isNonTerminal(e.object)],
      },
    )
    .watches(ctx.physical.storage.csinodes(), (c) => [{ name: c.metadata!.name! }])
    // Our virtual CSINodes, cached so that a reconcile needs no GET to compare them.
    .watches(ctx.virtual.storage.csinodes(), (c) => physicalOfVirtual(c.metadata!.name!), {
      labelSelector: vnodeSelector,
    })
    .build(async (ref, rc) => {
      const binding = ctx.binding;
      if (!binding) return Action.done();
      const clusterID = binding.spec!.clusterID;
      const vname = virtualNodeName(clusterID, ref.name);
      // The cache holds this binding's virtual nodes only (by label): another owner's is never touched.
      const vnode = virtualNodeInformer.store.get(vname);
      if (binding.metadata?.deletionTimestamp) {
        // The binding controller deletes the virtual nodes; meanwhile the scheduler places nothing there.
        if (vnode) await cordon(ctx, vnode);
        return Action.done();
      }
      // A silent worker: its cached nodes and pods may be stale. Like a kubelet cut off from its
      // node, write nothing (no status, no drain, no removal) and let the leases lapse.
      if (ctx.worker.down) return Action.requeueAfter(5_000);
      const physical = rc.object;
      const physicalGone = !physical || !!physical.metadata?.deletionTimestamp;
      const policy = leasableNode(physical, binding.spec?.nodeSelector)
        ? selectPolicy(policyInformer.store.list(), bindingName, physical!)
        : undefined;
      if (!physical || !policy) {
        figures.clear(ref.name);
        notices.forget(vname);
        return await drainAndRemove(ctx, vname, vnode, physicalGone);
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
    const ownPods = physicalPods.store.byIndex(BY_NODE, physicalName).filter(takesFromLease);
    const { allocatable, leased } = leasedCapacity(physical, ownPods, policy);
    const tenantPods = virtualPods.store.byIndex(BY_NODE, vname).filter((p) => !isHostPortPlaceholder(p));
    figures.record(physicalName, allocatable, ownPods, leased, tenantPods);
    // What the node advertises: one more pod while a host-port placeholder takes one (host_ports.ts).
    const advertised = withPlaceholderSlot(leased, ownPods);

    // Taints and time windows.
    const taints: Taint[] = (physical.spec?.taints ?? []).filter(copiedTaint).map((t) => ({
      key: t.key,
      value: t.value,
      effect: t.effect,
    }));
    if (!disableDefaultTaint) taints.push({ key: TAINT_VNODE, effect: "NoSchedule" });
    const windows = evaluateSchedule(spec, now);
    let wakeAt = windows.nextTransition?.getTime();
    // Advance notice of the end of lending: wake when it begins; during it, look for new pods.
    const closing = closingAt(windows, spec, now);
    const notice = noticeStart(windows, spec);
    if (closing) wakeAt = Math.min(wakeAt ?? Infinity, now.getTime() + 30_000);
    else if (notice) wakeAt = Math.min(wakeAt ?? Infinity, notice.getTime());
    const leaseEnding = leaseEndingCondition(
      windows,
      closing,
      spec.timeZone ?? "UTC",
      current?.status?.conditions?.find((c) => c.type === CONDITION_LEASE_ENDING),
      now,
    );
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
      annotations: {
        [ANNOTATION_PHYSICAL_NODE]: physicalName,
        [ANNOTATION_POLICY]: policy.metadata!.name!,
        // metrics-server scrapes this path of the kubelet endpoint (the proxier) for the node's usage.
        [ANNOTATION_RESOURCE_METRICS_PATH]: resourceMetricsPath(vname),
        // Drained nodes follow these once the policy may be gone (drain.ts).
        ...reclaimAnnotations(spec),
      },
      taints,
    };
    const merged = mergeOwned(current, desired);
    const unschedulable = physical.spec?.unschedulable ? true : undefined;
    let node = current;
    if (!node) {
      try {
        node = await ctx.virtual.core.nodes().create({
          apiVersion: "v1",
          kind: "Node",
          metadata: { name: vname, labels: merged.labels, annotations: merged.annotations },
          spec: { taints: merged.taints, unschedulable },
          // Nodes keep their status on create (as a kubelet registers): Ready in one write.
          status: desiredStatus(physical, advertised, vname, leaseEnding),
        });
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        const existing = await ctx.virtual.core.nodes().get(vname);
        if (await conflicts.takenBy(existing, physicalName)) return Action.requeueAfter(ctx.config.resyncMs);
        return Action.requeueAfter(1_000); // ours, and the cache is catching up
      }
      await conflicts.released(vname);
      ctx.log.info("virtual node created", {
        vnode: vname,
        physical: physicalName,
        policy: policy.metadata?.name,
      });
      await onVirtualNode(node);
    } else if (!sameMetadata(node, merged, unschedulable)) {
      node = await ctx.virtual.core.nodes().replace({
        ...node,
        metadata: { ...node.metadata, labels: merged.labels, annotations: merged.annotations },
        spec: { ...node.spec, taints: merged.taints, unschedulable },
      });
    }
    const status = desiredStatus(physical, advertised, vname, leaseEnding);
    if (!sameStatus(node.status, status)) {
      // Merge patch without a resourceVersion: the syncer owns these fields (no needless conflicts).
      await ctx.virtual.core.nodes().patchStatus(vname, { status }, { type: "merge" });
    }
    if (closing) {
      const onNode = tenantPods.filter(isNonTerminal);
      await notices.announce(node, closing, onNode);
    } else notices.forget(vname);
    await syncCsiNode(physicalName, node);
    const resyncAt = now.getTime() + ctx.config.resyncMs * (0.9 + Math.random() * 0.2);
    return Action.requeueAfter(Math.max(0, Math.min(resyncAt, wakeAt ?? Infinity) - now.getTime()));
  }

  function desiredStatus(
    physical: Node,
    leased: ReturnType<typeof applyLimits>,
    vname: string,
    leaseEnding: NodeCondition,
  ): NodeStatus {
    const resources = toResourceList(leased);
    const heartbeat = rfc3339(ctx.clock.now());
    return {
      capacity: resources,
      allocatable: resources,
      conditions: [
        ...(physical.status?.conditions ?? []).map((c) => ({ ...c, lastHeartbeatTime: heartbeat })),
        leaseEnding,
      ],
      addresses: [
        { type: "InternalIP", address: ctx.proxierAddress() },
        { type: "Hostname", address: vname },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: ctx.config.proxier.port } },
      nodeInfo: physical.status?.nodeInfo,
      phase: physical.status?.phase,
    };
  }

  async function syncCsiNode(physicalName: string, vnode: Node): Promise<void> {
    const source = csiNodes.store.get(physicalName) as CSINode | undefined;
    const virtualCsi = ctx.virtual.storage.csinodes();
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

  return controller;
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
