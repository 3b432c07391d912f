/**
 * Taking a virtual node out of service once its physical node is no longer leased (the policy is
 * deleted or invalid, a node selector stops matching, or the physical node is deleted).
 *
 * 1. The virtual node is cordoned: `spec.unschedulable`, the taint `kubeocean.io/vnode-deleting`
 *    (NoSchedule) and the annotation `kubeocean.io/draining-since` (written once, from the
 *    syncer's clock), so that the computing scheduler places nothing more there.
 * 2. Its pods:
 *    - when the physical node is gone they are evicted at once (they cannot run anywhere);
 *    - otherwise, without `forceReclaim`, they run to completion;
 *    - with `forceReclaim`, they are evicted once `gracefulReclaimPeriodSeconds` have passed
 *      since draining began — never before — and the controller wakes exactly then.
 * 3. Once no non-terminal pod is left (a host-port placeholder does not count), the virtual node,
 *    its Lease and its CSINode are deleted.
 *
 * The policy may be gone by then, so the reclaim settings that applied while the node was leased
 * are read from the virtual node's own annotations (written by the node controller while it
 * leases the node). Everything is derived from the object: a restarted syncer keeps the deadline.
 *
 * @module
 */

import type { Node, Taint } from "../../../apis/core/v1/mod.ts";
import { isConflict, isNotFound, isTransient } from "../../../toolkit/client/errors.ts";
import { Action } from "../../../toolkit/runtime/controller.ts";
import {
  ANNOTATION_DRAINING_SINCE,
  ANNOTATION_FORCE_RECLAIM,
  ANNOTATION_GRACEFUL_RECLAIM_PERIOD,
  isHostPortPlaceholder,
  TAINT_VNODE_DELETING,
} from "../../common/names.ts";
import { BY_NODE, type SyncerContext } from "../context.ts";
import { isNonTerminal } from "./capacity.ts";
import { lastOwned, mergeOwned, type OwnedMetadata } from "./vnode.ts";

/** A policy's reclaim settings, as they apply to the virtual nodes it leases. */
export interface ReclaimSettings {
  /** Evict pods (after the grace period) instead of letting them run to completion. */
  forceReclaim: boolean;
  gracefulReclaimPeriodSeconds: number;
}

/** The taint of a draining virtual node. */
const DELETING_TAINT: Taint = { key: TAINT_VNODE_DELETING, value: "true", effect: "NoSchedule" };

/** The annotations that record a policy's reclaim settings on a virtual node it leases. */
export function reclaimAnnotations(
  policy: { forceReclaim?: boolean; gracefulReclaimPeriodSeconds?: number },
): Record<string, string> {
  return {
    [ANNOTATION_FORCE_RECLAIM]: String(policy.forceReclaim ?? false),
    [ANNOTATION_GRACEFUL_RECLAIM_PERIOD]: String(Math.max(0, policy.gracefulReclaimPeriodSeconds ?? 0)),
  };
}

/** The reclaim settings recorded on a virtual node (no forced reclaim when absent or unreadable). */
export function recordedReclaim(vnode: Node): ReclaimSettings {
  const annotations = vnode.metadata?.annotations ?? {};
  const grace = Number(annotations[ANNOTATION_GRACEFUL_RECLAIM_PERIOD] ?? "0");
  return {
    forceReclaim: annotations[ANNOTATION_FORCE_RECLAIM] === "true",
    gracefulReclaimPeriodSeconds: Number.isFinite(grace) && grace > 0 ? grace : 0,
  };
}

/** When the virtual node started draining, as recorded on it (undefined when absent or unreadable). */
export function drainingSince(vnode: Node): Date | undefined {
  const text = vnode.metadata?.annotations?.[ANNOTATION_DRAINING_SINCE];
  const instant = text ? Date.parse(text) : NaN;
  return Number.isNaN(instant) ? undefined : new Date(instant);
}

/** Whether the virtual node is cordoned for draining, with a readable start. */
export function isCordoned(vnode: Node): boolean {
  return !!vnode.spec?.unschedulable &&
    !!vnode.spec.taints?.some((t) => t.key === TAINT_VNODE_DELETING) &&
    drainingSince(vnode) !== undefined;
}

/**
 * Kubeocean's metadata of a cordoned virtual node: what it owned while leasing the node, plus the
 * deleting taint and the draining start (kept when already recorded, else `now`). Users' own
 * labels, annotations and taints are kept by {@linkcode mergeOwned}.
 */
export function cordonedMetadata(vnode: Node, now: Date): OwnedMetadata {
  const owned = lastOwned(vnode);
  const since = drainingSince(vnode) ?? now;
  return mergeOwned(vnode, {
    labels: owned.labels,
    // Milliseconds kept (RFC 3339 allows them): eviction never comes before the full grace period.
    annotations: { ...owned.annotations, [ANNOTATION_DRAINING_SINCE]: since.toISOString() },
    taints: [...owned.taints.filter((t) => t.key !== TAINT_VNODE_DELETING), DELETING_TAINT],
  });
}

/** What to do with the pods of a draining virtual node. */
export type PodVerdict =
  /** Evict them now. */
  | { evict: true }
  /** Not now: at `evictAt` (forced reclaim after its grace period), or never (they run to completion). */
  | { evict: false; evictAt?: Date };

/**
 * The rule for the pods of a cordoned virtual node at `now`: evict at once when the physical node
 * is gone; without a recorded `forceReclaim` never; with it from draining-since + grace on (a
 * missing start counts as `now`, which only ever delays eviction).
 */
export function podVerdict(vnode: Node, physicalGone: boolean, now: Date): PodVerdict {
  if (physicalGone) return { evict: true };
  const reclaim = recordedReclaim(vnode);
  if (!reclaim.forceReclaim) return { evict: false };
  const since = drainingSince(vnode) ?? now;
  const evictAt = new Date(since.getTime() + reclaim.gracefulReclaimPeriodSeconds * 1000);
  return now.getTime() >= evictAt.getTime() ? { evict: true } : { evict: false, evictAt };
}

/**
 * Cordons `vnode` (idempotent: no write when it already is). Returns the node as written, or
 * undefined when it is gone meanwhile.
 */
export async function cordon(ctx: SyncerContext, vnode: Node): Promise<Node | undefined> {
  if (isCordoned(vnode)) return vnode;
  const merged = cordonedMetadata(vnode, ctx.clock.now());
  try {
    const written = await ctx.virtual.core.nodes().replace({
      ...vnode,
      metadata: { ...vnode.metadata, labels: merged.labels, annotations: merged.annotations },
      spec: { ...vnode.spec, taints: merged.taints, unschedulable: true },
    });
    ctx.log.info("draining virtual node", { vnode: vnode.metadata?.name, reclaim: recordedReclaim(vnode) });
    return written;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * Drains virtual node `vname` of a physical node that is no longer leased (`physicalGone` when it
 * was deleted) and deletes it, its Lease and its CSINode once it is empty. Returns when to look
 * again: at the eviction deadline, soon while evicted pods end, or at the resync while pods run to
 * completion (their ends wake the controller sooner).
 */
export async function drainAndRemove(
  ctx: SyncerContext,
  vname: string,
  current: Node | undefined,
  physicalGone: boolean,
): Promise<Action> {
  const vnode = current && await cordon(ctx, current);
  if (!vnode) {
    await removeLeaseAndCsiNode(ctx, vname);
    return Action.done();
  }
  // A host-port placeholder is no tenant's pod: it goes with the node (host_ports.ts).
  const remaining = ctx.virtualPodInformer.store.byIndex(BY_NODE, vname)
    .filter((p) => isNonTerminal(p) && !isHostPortPlaceholder(p));
  if (remaining.length === 0) {
    await removeLeaseAndCsiNode(ctx, vname);
    await deleteIgnoringMissing(() =>
      ctx.virtual.core.nodes().delete(vname, { preconditions: { uid: vnode.metadata!.uid } })
    );
    ctx.log.info("virtual node removed", { vnode: vname });
    return Action.done();
  }
  const now = ctx.clock.now();
  const verdict = podVerdict(vnode, physicalGone, now);
  if (!verdict.evict) {
    const untilDeadline = verdict.evictAt ? verdict.evictAt.getTime() - now.getTime() : Infinity;
    return Action.requeueAfter(Math.max(0, Math.min(untilDeadline, ctx.config.resyncMs)));
  }
  for (const pod of remaining) {
    if (pod.metadata?.deletionTimestamp) continue;
    try {
      await ctx.virtual.core.pods(pod.metadata!.namespace!).evict(pod.metadata!.name!);
    } catch (err) {
      if (isNotFound(err)) continue;
      if (isTransient(err)) return Action.requeueAfter(5_000); // e.g. a PodDisruptionBudget says not now
      throw err;
    }
  }
  return Action.requeueAfter(2_000);
}

async function removeLeaseAndCsiNode(ctx: SyncerContext, vname: string): Promise<void> {
  await deleteIgnoringMissing(() => ctx.virtual.coordination.leases("kube-node-lease").delete(vname));
  await deleteIgnoringMissing(() => ctx.virtual.storage.csinodes().delete(vname));
}

async function deleteIgnoringMissing(op: () => Promise<unknown>): Promise<void> {
  try {
    await op();
  } catch (err) {
    if (!isNotFound(err) && !isConflict(err)) throw err;
  }
}
