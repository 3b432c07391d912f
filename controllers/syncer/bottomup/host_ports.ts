/**
 * Bottom-up: host ports in use on a physical node, reserved on its virtual node.
 *
 * The worker's own pods (not Kubeocean's twins) may hold host ports on a node; the computing
 * cluster's scheduler cannot see them and would place a pod asking for the same port on the
 * virtual node, whose twin could then never start. So, per virtual node, the host ports of the
 * physical node's non-terminal, non-Kubeocean pods (every container and init container port
 * with a hostPort; protocol TCP and hostIP 0.0.0.0 when unset) are held in the computing cluster
 * by one placeholder pod bound to the virtual node (`spec.nodeName`, so no scheduler is involved)
 * in namespace {@linkcode PLACEHOLDER_NAMESPACE}:
 *
 * - one container listing exactly those ports, sorted (hostIP, protocol, port); no requests, a
 *   toleration of every taint, priority class `system-node-critical` (no tenant pod preempts it
 *   to take the port), no ServiceAccount token;
 * - its name is the virtual node's plus a hash of the ports, so a set is created once however
 *   often the reconcile runs, a restarted syncer finds the one it made, and a changed set is a new
 *   pod (ports are immutable): the new one is created before the old one is deleted;
 * - deleted (fenced by UID, grace 0: no kubelet completes it) when no host port is left, when the
 *   virtual node goes, or when the binding is deleted ({@linkcode removeAllPlaceholders});
 * - status: `PodScheduled=True` only (it never runs, so it is never Running);
 * - never given a twin (top-down skips it, see {@linkcode isHostPortPlaceholder}); it does not
 *   keep a draining virtual node alive, and is not counted in the usage figures. The scheduler
 *   counts it as one pod, so the virtual node advertises one more `pods` while it exists
 *   ({@linkcode withPlaceholderSlot}).
 *
 * Keyed by virtual node name.
 *
 * @module
 */

import type { ContainerPort, Node, Pod } from "../../../apis/core/v1/mod.ts";
import { Quantity } from "../../../toolkit/apimachinery/quantity.ts";
import { rfc3339 } from "../../../toolkit/apimachinery/time.ts";
import { isAlreadyExists, isConflict, isNotFound } from "../../../toolkit/client/errors.ts";
import type { ObjectRef } from "../../../toolkit/client/resource.ts";
import { Action, type Controller } from "../../../toolkit/runtime/controller.ts";
import type { ChangeEvent } from "../../../toolkit/runtime/predicates.ts";
import {
  isHostPortPlaceholder,
  LABEL_CLUSTER_BINDING,
  LABEL_HOST_PORT_PLACEHOLDER,
  LABEL_MANAGED_BY,
  LABEL_VIRTUAL_NODE,
  MANAGED_BY_VALUE,
  PLACEHOLDER_NAMESPACE,
} from "../../common/names.ts";
import { BY_NODE, nodeNameOf, type SyncerContext } from "../context.ts";
import { physicalPodTransform, virtualPodTransform } from "../pod_slimming.ts";
import { isNonTerminal } from "./capacity.ts";
import { virtualNodeName } from "./vnode.ts";

/** A host port as the scheduler compares them: protocol and host IP made explicit. */
export interface HostPort {
  hostIP: string;
  protocol: "SCTP" | "TCP" | "UDP";
  hostPort: number;
}

/** The host ports a pod's containers and init containers declare (defaults made explicit). */
export function hostPortsOfPod(pod: Pod): HostPort[] {
  const containers = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  return containers.flatMap((c) => c.ports ?? []).filter((p) => (p.hostPort ?? 0) > 0).map((p) => ({
    hostIP: p.hostIP || "0.0.0.0",
    protocol: p.protocol ?? "TCP",
    hostPort: p.hostPort!,
  }));
}

/** Whether a worker pod's host ports count: not Kubeocean's, scheduled, not terminal. */
function holdsHostPorts(pod: Pod): boolean {
  return pod.metadata?.labels?.[LABEL_MANAGED_BY] !== MANAGED_BY_VALUE && !!pod.spec?.nodeName &&
    isNonTerminal(pod);
}

/**
 * The host ports `pods` (the pods of one physical node) hold: every port of every pod that is not
 * Kubeocean's and not terminal, once each (the API refuses a pod that lists one twice), sorted by
 * host IP, protocol, then port.
 */
export function hostPortsInUse(pods: readonly Pod[]): HostPort[] {
  const unique = new Map<string, HostPort>();
  for (const pod of pods) {
    if (!holdsHostPorts(pod)) continue;
    for (const port of hostPortsOfPod(pod)) unique.set(portKey(port), port);
  }
  return [...unique.values()].sort(comparePorts);
}

function portKey(p: HostPort): string {
  return `${p.hostIP}/${p.protocol}/${p.hostPort}`;
}

function comparePorts(a: HostPort, b: HostPort): number {
  return a.hostIP.localeCompare(b.hostIP) || a.protocol.localeCompare(b.protocol) || a.hostPort - b.hostPort;
}

/** The placeholder's container ports for `ports` (the container port is the host port: nothing listens). */
export function placeholderPorts(ports: readonly HostPort[]): ContainerPort[] {
  return ports.map((p) => ({
    containerPort: p.hostPort,
    hostPort: p.hostPort,
    protocol: p.protocol,
    hostIP: p.hostIP,
  }));
}

/** Whether placeholder `pod` holds exactly `ports`. */
export function holdsExactly(pod: Pod, ports: readonly HostPort[]): boolean {
  const held = hostPortsOfPod(pod).map(portKey).sort();
  const wanted = ports.map(portKey).sort();
  return held.length === wanted.length && held.every((key, i) => key === wanted[i]);
}

/** The placeholder's name: the virtual node's and a hash of the port set (one name per set). */
export async function placeholderName(vnode: string, ports: readonly HostPort[]): Promise<string> {
  const text = ports.map(portKey).join(",");
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  const hex = [...digest.slice(0, 5)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${vnode}-hostports-${hex}`;
}

/** The placeholder pod reserving `ports` on virtual node `vnode` of binding `binding`. */
export function placeholderPod(
  name: string,
  vnode: Node,
  binding: string,
  ports: readonly HostPort[],
): Pod {
  const vname = vnode.metadata!.name!;
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: PLACEHOLDER_NAMESPACE,
      labels: {
        [LABEL_MANAGED_BY]: MANAGED_BY_VALUE,
        [LABEL_HOST_PORT_PLACEHOLDER]: "true",
        [LABEL_CLUSTER_BINDING]: binding,
        [LABEL_VIRTUAL_NODE]: vname,
      },
      // The node's deletion takes it along even if no syncer is left to do it.
      ownerReferences: [{ apiVersion: "v1", kind: "Node", name: vname, uid: vnode.metadata!.uid! }],
    },
    spec: {
      nodeName: vname,
      tolerations: [{ operator: "Exists" }],
      priorityClassName: "system-node-critical",
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      restartPolicy: "Never",
      containers: [{
        name: "host-ports",
        image: "registry.k8s.io/pause:3.10",
        ports: placeholderPorts(ports),
      }],
    },
  };
}

/**
 * The capacity a virtual node advertises: `leased`, plus one `pods` while a placeholder holds
 * host ports there (the scheduler counts the placeholder against `pods`; tenants keep the count
 * that was leased).
 */
export function withPlaceholderSlot(
  leased: Readonly<Record<string, Quantity>>,
  physicalPods: readonly Pod[],
): Record<string, Quantity> {
  if (!leased.pods || hostPortsInUse(physicalPods).length === 0) return { ...leased };
  return { ...leased, pods: leased.pods.add(Quantity.parse("1")) };
}

/** Builds the host-port placeholder controller of the syncer's binding. */
export function hostPortController(ctx: SyncerContext): Controller<Node> {
  const bindingName = ctx.config.bindingName;
  const physicalPods = ctx.physicalPodInformer;
  const virtualPods = ctx.virtualPodInformer;
  /** The placeholders of this binding (of any vnode, gone or not), by their node. */
  const placeholdersOn = (vname: string): Pod[] =>
    virtualPods.store.byIndex(BY_NODE, vname).filter((p) =>
      isHostPortPlaceholder(p) && p.metadata?.labels?.[LABEL_CLUSTER_BINDING] === bindingName
    );
  const vnodeOfWorkerPod = (pod: Pod): ObjectRef[] =>
    pod.spec?.nodeName ? [{ name: virtualNodeName(ctx.config.clusterID, pod.spec.nodeName) }] : [];
  const workerPortsMayChange = (e: ChangeEvent<Pod>): boolean =>
    [e.object, e.previous].some((p) => p !== undefined && hostPortsOfPod(p).length > 0);

  return ctx.manager.controller(ctx.virtual.core.nodes(), {
    name: `hostports/${bindingName}`,
    labelSelector: `${LABEL_CLUSTER_BINDING}=${bindingName}`,
    concurrency: 8,
  })
    .requires(ctx.bindingInformer)
    // The same informer options as every other watch of these pods: one shared cache each.
    .watches(ctx.physical.core.pods(), vnodeOfWorkerPod, {
      indexers: { [BY_NODE]: nodeNameOf },
      transform: physicalPodTransform,
      predicates: [workerPortsMayChange],
    })
    .watches(ctx.virtual.core.pods(), (p) => p.spec?.nodeName ? [{ name: p.spec.nodeName }] : [], {
      indexers: { [BY_NODE]: nodeNameOf },
      transform: virtualPodTransform(ctx.config.clusterID),
      predicates: [(e) => isHostPortPlaceholder(e.object)],
    })
    .build(async (ref, rc) => {
      const vnode = rc.object;
      const existing = placeholdersOn(ref.name);
      const physical = vnode && !vnode.metadata?.deletionTimestamp ? ctx.physicalNodeOf(vnode) : undefined;
      const wanted = physical && ctx.binding && !ctx.binding.metadata?.deletionTimestamp
        ? hostPortsInUse(physicalPods.store.byIndex(BY_NODE, physical))
        : [];
      // A silent worker's cached pods may be stale: keep what is there.
      if (ctx.worker.down && vnode) return Action.requeueAfter(5_000);
      if (!vnode || wanted.length === 0) {
        for (const pod of existing) await deletePlaceholder(ctx, pod);
        return Action.done();
      }
      return await ensurePlaceholder(ctx, vnode, wanted, existing);
    });
}

/** Makes the placeholder of `wanted` exist on `vnode` (created before the others are deleted). */
async function ensurePlaceholder(
  ctx: SyncerContext,
  vnode: Node,
  wanted: HostPort[],
  existing: Pod[],
): Promise<Action> {
  const name = await placeholderName(vnode.metadata!.name!, wanted);
  let keep = existing.find((p) =>
    p.metadata?.name === name && !p.metadata.deletionTimestamp && holdsExactly(p, wanted)
  );
  if (!keep) {
    const created = await createPlaceholder(ctx, placeholderPod(name, vnode, ctx.config.bindingName, wanted));
    if (!created) return Action.requeueAfter(1_000);
    keep = created;
  }
  for (const pod of existing) if (pod.metadata?.uid !== keep.metadata?.uid) await deletePlaceholder(ctx, pod);
  if (!isScheduled(keep)) await markScheduled(ctx, keep);
  return Action.done();
}

/**
 * Creates `pod`; returns it, or the one of that name already there when it is ours and holds the
 * same ports (a reconcile ahead of the cache, or a restarted syncer). Returns undefined to try
 * again later: one of that name is being deleted, or was not ours and has just been deleted.
 */
async function createPlaceholder(ctx: SyncerContext, pod: Pod): Promise<Pod | undefined> {
  const pods = ctx.virtual.core.pods(PLACEHOLDER_NAMESPACE);
  try {
    const created = await pods.create(pod);
    ctx.log.info("host-port placeholder created", {
      pod: pod.metadata!.name,
      ports: pod.spec!.containers[0].ports!.length,
    });
    return created;
  } catch (err) {
    if (isNotFound(err)) {
      // Retried with backoff: the syncer creates no namespace (least privilege).
      throw new Error(
        `namespace ${PLACEHOLDER_NAMESPACE} is missing (apply deploy/manager/namespace.yaml): ${
          err instanceof Error ? err.message : String(err)
        }`,
      );
    }
    if (!isAlreadyExists(err)) throw err;
  }
  const found = await pods.get(pod.metadata!.name!).catch((e) =>
    isNotFound(e) ? undefined : Promise.reject(e)
  );
  if (!found || found.metadata?.deletionTimestamp) return undefined;
  const same = isHostPortPlaceholder(found) && found.spec?.nodeName === pod.spec!.nodeName &&
    found.metadata?.labels?.[LABEL_CLUSTER_BINDING] === ctx.config.bindingName &&
    holdsExactly(found, hostPortsOfPod(pod));
  if (same) return found;
  await deletePlaceholder(ctx, found);
  return undefined;
}

/** Deletes a placeholder, that incarnation only, at once (no kubelet will confirm it). */
async function deletePlaceholder(ctx: SyncerContext, pod: Pod): Promise<void> {
  try {
    await ctx.virtual.core.pods(PLACEHOLDER_NAMESPACE).delete(pod.metadata!.name!, {
      gracePeriodSeconds: 0,
      preconditions: { uid: pod.metadata!.uid },
    });
    ctx.log.info("host-port placeholder deleted", { pod: pod.metadata!.name, node: pod.spec?.nodeName });
  } catch (err) {
    if (!isNotFound(err) && !isConflict(err)) throw err;
  }
}

function isScheduled(pod: Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === "PodScheduled" && c.status === "True") ?? false;
}

/** Records that the placeholder is bound (it never runs: its phase stays Pending). */
async function markScheduled(ctx: SyncerContext, pod: Pod): Promise<void> {
  const now = rfc3339(ctx.clock.now());
  await ctx.virtual.core.pods(PLACEHOLDER_NAMESPACE).patchStatus(pod.metadata!.name!, {
    metadata: { uid: pod.metadata!.uid },
    status: {
      conditions: [{ type: "PodScheduled", status: "True", lastProbeTime: now, lastTransitionTime: now }],
    },
  }, { type: "merge" }).catch((err) => isNotFound(err) || isConflict(err) ? undefined : Promise.reject(err));
}

/**
 * Deletes every placeholder of the binding (its deletion's cleanup hook); true once none is left
 * in the cache.
 */
export async function removeAllPlaceholders(ctx: SyncerContext): Promise<boolean> {
  const ours = ctx.virtualPodInformer.store.list().filter((p) =>
    isHostPortPlaceholder(p) && p.metadata?.labels?.[LABEL_CLUSTER_BINDING] === ctx.config.bindingName
  );
  for (const pod of ours) await deletePlaceholder(ctx, pod);
  return ours.length === 0;
}
