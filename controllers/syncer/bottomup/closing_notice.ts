/**
 * Advance notice before a virtual node stops being lent: from `closingNoticeSeconds` (default
 * 600) before its policy's lending ends (a window closes, a `lend: false` exception begins), the
 * virtual node carries the condition `kubeocean.io/LeaseEnding=True` and one Warning Event, and
 * each pod on it one Warning Event, saying when the node stops being lent and, with
 * `forceReclaim`, when its pods will be evicted. Nothing is tainted yet: controllers and people
 * can move work in time. Outside the notice the condition is False and says what comes next.
 *
 * Which pods were told is kept per node and closing instant, so each pod hears it once per
 * closing (pods arriving during the notice hear it at the node's next reconcile); a restarted
 * syncer tells the pods again once.
 *
 * @module
 */

import type { Node, NodeCondition, Pod } from "../../../apis/core/v1/mod.ts";
import type { ResourceLeasingPolicy } from "../../../apis/kubeocean.io/v1beta1/mod.ts";
import { rfc3339 } from "../../../toolkit/apimachinery/time.ts";
import type { SyncerContext } from "../context.ts";
import { localTimeText, type WindowState } from "./time_windows.ts";

/** The virtual node condition that announces the end of lending. */
export const CONDITION_LEASE_ENDING = "kubeocean.io/LeaseEnding";

/** The default notice, in seconds. */
export const DEFAULT_CLOSING_NOTICE_SECONDS = 600;

/** The coming end of lending of one node, when it is within the notice. */
export interface Closing {
  closesAt: Date;
  /** When pods are evicted (forceReclaim), else absent. */
  evictsAt?: Date;
  /** One sentence for conditions and Events. */
  message: string;
}

/** When the notice for `state` begins (absent when lending does not end, or notice is off). */
export function noticeStart(state: WindowState, spec: ResourceLeasingPolicy["spec"]): Date | undefined {
  const seconds = spec?.closingNoticeSeconds ?? DEFAULT_CLOSING_NOTICE_SECONDS;
  if (!state.active || !state.nextTransition || seconds <= 0) return undefined;
  return new Date(state.nextTransition.getTime() - seconds * 1000);
}

/** The closing announced at `now`, or undefined outside the notice. */
export function closingAt(
  state: WindowState,
  spec: ResourceLeasingPolicy["spec"],
  now: Date,
): Closing | undefined {
  const start = noticeStart(state, spec);
  if (!start || now < start) return undefined;
  const closesAt = state.nextTransition!;
  const timeZone = spec?.timeZone ?? "UTC";
  const evictsAt = spec?.forceReclaim
    ? new Date(closesAt.getTime() + (spec.gracefulReclaimPeriodSeconds ?? 0) * 1000)
    : undefined;
  const then = evictsAt
    ? `pods will be evicted at ${rfc3339(evictsAt)}`
    : "no new pods are placed here after that; running pods may finish";
  return {
    closesAt,
    evictsAt,
    message: `this node stops being lent at ${rfc3339(closesAt)} (${
      localTimeText(closesAt, timeZone)
    }); ${then}`,
  };
}

/** The LeaseEnding condition for a node (keeping its transition time while its status holds). */
export function leaseEndingCondition(
  state: WindowState,
  closing: Closing | undefined,
  timeZone: string,
  previous: NodeCondition | undefined,
  now: Date,
): NodeCondition {
  const status = closing ? "True" : "False";
  const next = state.nextTransition;
  const message = closing?.message ??
    (next
      ? `lent ${state.active ? "until" : "again from"} ${rfc3339(next)} (${localTimeText(next, timeZone)})`
      : state.active
      ? "lent with no end in the schedule"
      : "not lent, and no window opens");
  return {
    type: CONDITION_LEASE_ENDING,
    status,
    reason: closing ? "LeaseEndingSoon" : state.active ? "Lent" : "NotLent",
    message,
    lastHeartbeatTime: rfc3339(now),
    lastTransitionTime: previous?.status === status && previous.lastTransitionTime
      ? previous.lastTransitionTime
      : rfc3339(now),
  };
}

/** The Events of closing notices, once per node, pod and closing instant. */
export class ClosingNotices {
  /** Per virtual node: the closing instant told, and the UIDs (node's own included) told of it. */
  readonly #told = new Map<string, { closesAt: number; uids: Set<string> }>();

  constructor(readonly ctx: SyncerContext) {}

  /** Tells `vnode` and each of `pods` (not terminal, on that node) of `closing`, unless told. */
  async announce(vnode: Node, closing: Closing, pods: readonly Pod[]): Promise<void> {
    const name = vnode.metadata!.name!;
    let told = this.#told.get(name);
    if (told?.closesAt !== closing.closesAt.getTime()) {
      told = { closesAt: closing.closesAt.getTime(), uids: new Set() };
      this.#told.set(name, told);
    }
    const targets = [
      { apiVersion: "v1", kind: "Node", name, uid: vnode.metadata!.uid },
      ...pods.map((p) => ({
        apiVersion: "v1",
        kind: "Pod",
        name: p.metadata!.name,
        namespace: p.metadata!.namespace,
        uid: p.metadata!.uid,
      })),
    ].filter((t) => t.uid && !told.uids.has(t.uid));
    for (const target of targets) {
      await this.ctx.recorder.publish({
        regarding: target,
        type: "Warning",
        reason: "LeaseEnding",
        action: "Notify",
        note: target.kind === "Pod" ? `${name}: ${closing.message}` : closing.message,
      });
      told.uids.add(target.uid!);
    }
  }

  /** Forgets what `vnodeName` was told (it is no longer closing, or gone). */
  forget(vnodeName: string): void {
    this.#told.delete(vnodeName);
  }
}
