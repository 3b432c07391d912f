/**
 * The virtual pod lifecycle: each virtual pod bound to one of the binding's virtual nodes gets
 * exactly one twin from the {@linkcode PodProvider}, and the twin's status flows back.
 *
 * Keyed by virtual pod. Once its twin exists, the virtual pod gets, in one write, the finalizer
 * `kubeocean.io/twin-<clusterID>` (held until the twin is gone) and annotations naming the twin. A
 * twin whose virtual pod vanished before that write (a crash, a deletion in between) is found
 * through its owner and deleted; so is a twin of an earlier pod of the same name (fencing by
 * UID: a re-created pod never adopts, nor is killed by, the old twin). Deleting the virtual pod
 * deletes the twin with the same grace period, then completes the virtual deletion (there is no
 * kubelet to do so). A twin that disappears while its virtual pod runs (deleted or evicted in the
 * worker) fails the virtual pod with a reason naming it, so its controller replaces it. Terminal
 * phases never regress. Host-port placeholders (in `kubeocean-reserved`, see `isHostPortPlaceholder`)
 * are bound to virtual nodes too but never get a twin.
 *
 * @module
 */

import type { Pod } from "../../../apis/core/v1/mod.ts";
import type { ClusterBinding } from "../../../apis/kubeocean.io/v1beta1/mod.ts";
import { rfc3339 } from "../../../toolkit/apimachinery/time.ts";
import { isConflict, isNotFound } from "../../../toolkit/client/errors.ts";
import type { ObjectRef } from "../../../toolkit/client/resource.ts";
import { Action, type Controller, type ReconcileContext } from "../../../toolkit/runtime/controller.ts";
import { removeFinalizer } from "../../../toolkit/runtime/finalizer.ts";
import { PendingWrites } from "../../../toolkit/runtime/pending_writes.ts";
import {
  ANNOTATION_PHYSICAL_POD_NAME,
  ANNOTATION_PHYSICAL_POD_NAMESPACE,
  ANNOTATION_PHYSICAL_POD_UID,
  ANNOTATION_RUNNING_DAEMONSET,
  CONDITION_WORKER_ADMITTED,
  isHostPortPlaceholder,
  LABEL_CLUSTER_BINDING,
  twinFinalizer,
} from "../../common/names.ts";
import { BY_NODE, nodeNameOf, type SyncerContext } from "../context.ts";
import type { PodProvider, Twin } from "../provider.ts";
import {
  comparableStatus,
  failedStatus,
  isDaemonSetPod,
  isTerminal,
  runningSince,
  statusFromTwin,
} from "./pod_status.ts";
import { virtualPodTransform } from "../pod_slimming.ts";

/** A completed deletion: the pod's UID and the resourceVersion acted on. */
interface Completion {
  uid: string;
  resourceVersion?: string;
}

/** The pod lifecycle controller of one binding. */
export class PodLifecycleController {
  readonly controller: Controller<Pod>;
  readonly finalizer: string;
  /** Status and mark writes the cache may not show yet (so they are not sent twice). */
  readonly #writes = new PendingWrites();
  /**
   * Virtual pods whose deletion we completed (`namespace/name`): the update that removed our
   * finalizer still reaches the queue after the pod is gone and must not send the final delete
   * again, and a reconcile that still sees the version we acted on (the cache has not caught up)
   * must not remove the finalizer again.
   */
  readonly #completed = new Map<string, Completion>();
  /** Incarnations (`namespace/name/uid`) already told that DaemonSet pods do not run here. */
  readonly #warnedDaemonSet = new Set<string>();
  /** Incarnations whose Running hop was measured. */
  readonly #runningMeasured = new Set<string>();

  constructor(readonly ctx: SyncerContext, readonly provider: PodProvider) {
    this.finalizer = twinFinalizer(ctx.config.clusterID);
    const vnodes = ctx.virtualNodeInformer;
    this.controller = ctx.manager.controller(ctx.virtual.core.pods(), {
      name: `pods/${ctx.config.bindingName}`,
      concurrency: 128,
      indexers: { [BY_NODE]: nodeNameOf },
      transform: virtualPodTransform(ctx.config.clusterID),
    })
      // Reconciles read the binding and the provider's caches: a pod reconciled before they are
      // listed would be dropped until the next resync.
      .requires(ctx.bindingInformer, ...provider.caches)
      // Until the virtual nodes have been listed, whether a pod is ours cannot be told: let every
      // pod through (the reconciler runs only once every cache is synced and checks again).
      .withPredicate((e) => !vnodes.store.isReady || ctx.isOnOurNode(e.object) || this.#holds(e.object))
      // Host-port placeholders (bottomup/host_ports.ts) hold ports on a virtual node and never run.
      .withPredicate((e) => !isHostPortPlaceholder(e.object))
      // Twin changes come back as their virtual pods.
      .watchesStream(provider.changes())
      // A virtual node appearing (or going) affects the pods bound to it.
      .watches(
        ctx.virtual.core.nodes(),
        (vnode, _event, pods) => pods.byIndex(BY_NODE, vnode.metadata!.name!).map(refOfPod),
        {
          labelSelector: `${LABEL_CLUSTER_BINDING}=${ctx.config.bindingName}`,
          // Only appearing and going: heartbeats would otherwise requeue every pod on the node.
          predicates: [(e) => e.type === "Delete" || !e.previous],
        },
      )
      .build((ref, rc) => this.reconcile(ref, rc));
  }

  /** Reconciles one virtual pod. */
  async reconcile(ref: ObjectRef, rc: ReconcileContext<Pod>): Promise<Action> {
    const binding = this.ctx.binding;
    const pod = rc.object;
    const key = `${ref.namespace}/${ref.name}`;
    if (!binding) return Action.done();
    if (!pod) {
      this.#completed.delete(key);
      await this.#deleteTwinsExcept(key, undefined);
      return Action.done();
    }
    const holds = this.#holds(pod);
    if ((!this.ctx.isOnOurNode(pod) && !holds) || isHostPortPlaceholder(pod)) return Action.done();
    const finished = this.#completed.get(key);
    if (
      finished && finished.uid === pod.metadata?.uid &&
      (!holds || finished.resourceVersion === pod.metadata?.resourceVersion)
    ) {
      return Action.done(); // the event of our own completion brings us back if anything is left
    }
    // Twins of an earlier pod of the same name: never adopted, never left behind.
    await this.#deleteTwinsExcept(key, pod.metadata!.uid!);
    const twin = this.provider.twinsOf(key).find((t) => t.owner.uid === pod.metadata!.uid);

    if (pod.metadata?.deletionTimestamp || binding.metadata?.deletionTimestamp) {
      return await this.#delete(pod, twin, key);
    }
    if (!twin) return await this.#create(pod, binding);
    // Created, but the virtual pod was not marked (a crash between the two writes): mark it now.
    if (!holds || pod.metadata?.annotations?.[ANNOTATION_PHYSICAL_POD_UID] !== twin.ref.uid) {
      if (this.#writes.alreadySent(pod, `mark ${twin.ref.uid}`)) return Action.done(); // the update brings us back
      await this.#mark(pod, twin);
      return Action.done();
    }
    // A virtual pod that ended while its twin still runs (failed by us or by someone else): the
    // twin must not keep consuming the worker's capacity.
    if (isTerminal(pod.status) && !isTerminal(twin.status) && !twin.deleting) {
      await this.provider.deleteTwin(twin);
      return Action.done();
    }
    await this.#syncStatus(pod, twin);
    return Action.requeueAfter(this.ctx.config.resyncMs);
  }

  /** Whether the pod carries our finalizer. */
  #holds(pod: Pod): boolean {
    return pod.metadata?.finalizers?.includes(this.finalizer) ?? false;
  }

  async #create(pod: Pod, binding: ClusterBinding): Promise<Action> {
    const ctx = this.ctx;
    if (isTerminal(pod.status)) return Action.done();
    const incarnation = incarnationOf(pod);
    const recordedUid = pod.metadata?.annotations?.[ANNOTATION_PHYSICAL_POD_UID];
    if (recordedUid) {
      // A twin existed. The cache may simply not have seen it yet: ask before calling it gone.
      const recorded = {
        namespace: pod.metadata!.annotations![ANNOTATION_PHYSICAL_POD_NAMESPACE] ?? "",
        name: pod.metadata!.annotations![ANNOTATION_PHYSICAL_POD_NAME] ?? "",
        uid: recordedUid,
      };
      const live = await this.provider.getTwin(recorded);
      if (live?.ref.uid === recordedUid && !live.deleting) return Action.requeueAfter(1_000);
      await this.#fail(
        pod,
        "WorkerPodDeleted",
        `worker pod ${recorded.namespace}/${recorded.name} in ${this.provider.location} was deleted or evicted`,
      );
      return Action.done();
    }
    if (
      isDaemonSetPod(pod) && !binding.spec?.runningDaemonsetByDefault &&
      pod.metadata?.annotations?.[ANNOTATION_RUNNING_DAEMONSET] !== "true"
    ) {
      if (!this.#warnedDaemonSet.has(incarnation)) {
        this.#warnedDaemonSet.add(incarnation);
        await ctx.recorder.publish({
          regarding: pod,
          type: "Warning",
          reason: "DaemonSetPodNotRun",
          action: "CreateWorkerPod",
          note:
            `DaemonSet pods run on virtual nodes only with annotation ${ANNOTATION_RUNNING_DAEMONSET}=true (or the binding's runningDaemonsetByDefault)`,
        });
      }
      return Action.done();
    }
    const node = ctx.virtualNode(pod.spec!.nodeName!)!;
    let result;
    try {
      result = await this.provider.createTwin(pod, node);
    } catch (err) {
      ctx.metrics.createPodErrors.inc({ cluster_binding: ctx.config.bindingName });
      await ctx.recorder.publish({
        regarding: pod,
        type: "Warning",
        reason: "FailedCreateWorkerPod",
        action: "CreateWorkerPod",
        note: `cluster ${ctx.config.clusterID}: ${(err as Error).message}`,
      });
      throw err;
    }
    if (result.kind === "refused") {
      // Told once, on the pod, naming the fields; a change to the pod (or the resync, in case the
      // worker's rules changed) brings it back, never a retry storm against the worker.
      if (!this.#refusalShown(pod, result.message)) {
        await this.#showRefusal(pod, result.reason, result.message);
      }
      return Action.requeueAfter(ctx.config.resyncMs);
    }
    if (result.kind === "waiting") {
      // Like a kubelet, wait (Pending, with the reason as a Warning) for what the pod needs.
      await ctx.recorder.publish({
        regarding: pod,
        type: "Warning",
        reason: result.reason,
        action: "CreateWorkerPod",
        note: result.note,
      });
      return Action.requeueAfter(result.retryAfterMs);
    }
    const scheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled")?.lastTransitionTime;
    if (scheduled) this.#observeHop("bound_to_created", scheduled);
    for (const what of result.dropped) {
      await ctx.recorder.publish({
        regarding: pod,
        type: "Warning",
        reason: "DroppedForWorker",
        action: "CreateWorkerPod",
        note: `not carried over: ${what}`,
      });
    }
    await this.#mark(pod, result.twin);
    return Action.done();
  }

  #refusalShown(pod: Pod, message: string): boolean {
    return pod.status?.conditions?.some((c) =>
      c.type === CONDITION_WORKER_ADMITTED && c.status === "False" && c.message === message
    ) ?? false;
  }

  /** The pod stays Pending: a Warning Event and a condition say what the worker refuses. */
  async #showRefusal(pod: Pod, reason: string, message: string): Promise<void> {
    const conditions = (pod.status?.conditions ?? []).filter((c) => c.type !== CONDITION_WORKER_ADMITTED);
    conditions.push({
      type: CONDITION_WORKER_ADMITTED,
      status: "False",
      reason,
      message,
      lastTransitionTime: rfc3339(this.ctx.clock.now()),
    });
    await this.ctx.virtual.core.pods(pod.metadata!.namespace!).patchStatus(pod.metadata!.name!, {
      metadata: { resourceVersion: pod.metadata!.resourceVersion },
      status: { conditions },
    }, { type: "merge" }).catch((err) => isNotFound(err) ? undefined : Promise.reject(err));
    await this.ctx.recorder.publish({
      regarding: pod,
      type: "Warning",
      reason,
      action: "CreateWorkerPod",
      note: message,
    });
  }

  /** Deletion: the twin goes first, with the same grace period; then the virtual pod completes. */
  async #delete(pod: Pod, twin: Twin | undefined, key: string): Promise<Action> {
    if (twin) {
      await this.provider.deleteTwin(twin, pod.metadata?.deletionGracePeriodSeconds);
      return Action.requeueAfter(2_000);
    }
    if (pod.metadata?.deletionTimestamp) {
      const since = Date.parse(pod.metadata.deletionTimestamp) -
        (pod.metadata.deletionGracePeriodSeconds ?? 0) * 1000;
      if (!Number.isNaN(since)) this.#observeHop("deleted", since);
    }
    await this.#completeDeletion(pod);
    this.#completed.set(key, { uid: pod.metadata!.uid!, resourceVersion: pod.metadata?.resourceVersion });
    const incarnation = incarnationOf(pod);
    this.#runningMeasured.delete(incarnation);
    this.#warnedDaemonSet.delete(incarnation);
    this.#writes.forget(pod.metadata!.uid);
    return Action.done();
  }

  /**
   * One write to the virtual pod: our finalizer (if missing) and the twin's namespace, name and
   * UID. Fenced by the virtual pod's UID; a pod that is gone or re-created leaves its twin to be
   * deleted here.
   */
  async #mark(pod: Pod, twin: Twin): Promise<void> {
    const pods = this.ctx.virtual.core.pods(pod.metadata!.namespace!);
    // Strategic merge: finalizers merge as a set and annotations as a map, whatever the cache says;
    // the UID in the patch fails it on a re-created pod of the same name.
    const patch = {
      metadata: {
        uid: pod.metadata!.uid,
        annotations: {
          [ANNOTATION_PHYSICAL_POD_NAMESPACE]: twin.ref.namespace,
          [ANNOTATION_PHYSICAL_POD_NAME]: twin.ref.name,
          [ANNOTATION_PHYSICAL_POD_UID]: twin.ref.uid,
        },
        finalizers: [this.finalizer],
      },
    };
    try {
      await pods.patch(pod.metadata!.name!, patch, { type: "strategic" });
      this.#writes.sent(pod, `mark ${twin.ref.uid}`);
    } catch (err) {
      // Gone, or re-created under the same name (the UID does not match): the twin is an orphan.
      const gone = isNotFound(err) ||
        ([409, 422].includes((err as { code?: number }).code ?? 0) &&
          await pods.get(pod.metadata!.name!).then(
            (now) => now.metadata?.uid !== pod.metadata!.uid,
            (e) => isNotFound(e) ? true : Promise.reject(e),
          ));
      if (!gone) throw err;
      await this.#deleteTwinsOf(`${pod.metadata!.namespace}/${pod.metadata!.name}`, pod.metadata!.uid!);
    }
  }

  /** Deletes the twins of `key` whose owner is not the incarnation `keepUid` (all when undefined). */
  async #deleteTwinsExcept(key: string, keepUid: string | undefined): Promise<void> {
    for (const twin of this.provider.twinsOf(key)) {
      if (twin.deleting || twin.owner.uid === keepUid) continue;
      await this.provider.deleteTwin(twin);
    }
  }

  /** Deletes the twins of the incarnation `uid` of `key`. */
  async #deleteTwinsOf(key: string, uid: string): Promise<void> {
    for (const twin of this.provider.twinsOf(key)) {
      if (twin.deleting || twin.owner.uid !== uid) continue;
      await this.provider.deleteTwin(twin);
    }
  }

  async #syncStatus(pod: Pod, twin: Twin): Promise<void> {
    if (isTerminal(pod.status)) return; // terminal phases never regress
    // The twin's cached status may be stale: write nothing until the worker answers again (a resync follows).
    if (this.ctx.worker.down) return;
    const status = statusFromTwin(twin.status, pod.status, this.ctx.proxierAddress());
    if (!status) return;
    const current = pod.status ?? {};
    const desired = comparableStatus({ ...current, ...status });
    if (comparableStatus(current) === desired || this.#writes.alreadySent(pod, desired)) return;
    try {
      await this.ctx.virtual.core.pods(pod.metadata!.namespace!).patchStatus(pod.metadata!.name!, {
        metadata: { resourceVersion: pod.metadata!.resourceVersion },
        status,
      }, { type: "merge" });
      this.#writes.sent(pod, desired);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    const incarnation = incarnationOf(pod);
    if (status.phase === "Running" && !this.#runningMeasured.has(incarnation)) {
      this.#runningMeasured.add(incarnation);
      const since = runningSince(twin.status);
      if (since) this.#observeHop("running", since);
    }
  }

  async #fail(pod: Pod, reason: string, message: string): Promise<void> {
    await this.ctx.virtual.core.pods(pod.metadata!.namespace!).patchStatus(pod.metadata!.name!, {
      metadata: { resourceVersion: pod.metadata!.resourceVersion },
      status: failedStatus(pod, reason, message),
    }, { type: "merge" });
    await this.ctx.recorder.publish({
      regarding: pod,
      type: "Warning",
      reason,
      action: "SyncStatus",
      note: message,
    });
  }

  /** Removes our finalizer and completes the deletion (grace 0: the twin is already gone). */
  async #completeDeletion(pod: Pod): Promise<void> {
    const pods = this.ctx.virtual.core.pods();
    try {
      await removeFinalizer(pods, pod, this.finalizer);
      if (pod.metadata?.deletionTimestamp) {
        await pods.namespace(pod.metadata.namespace!).delete(pod.metadata.name!, {
          gracePeriodSeconds: 0,
          preconditions: { uid: pod.metadata.uid },
        });
      }
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }

  /**
   * The binding is being deleted: the provider removes every twin, then the virtual pods lose our
   * finalizer (their nodes are going away). True once the provider has nothing left.
   */
  async cleanup(): Promise<boolean> {
    const done = await this.provider.cleanup();
    const pods = this.ctx.virtual.core.pods();
    for (const pod of this.ctx.virtualPodInformer.store.list()) {
      if (!this.#holds(pod)) continue;
      await removeFinalizer(pods, pod, this.finalizer).catch((e) =>
        isNotFound(e) || isConflict(e) ? undefined : Promise.reject(e)
      );
    }
    return done;
  }

  #observeHop(hop: "bound_to_created" | "running" | "deleted", since: string | number): void {
    const start = typeof since === "number" ? since : Date.parse(since);
    if (Number.isNaN(start)) return;
    const seconds = Math.max(0, this.ctx.clock.now().getTime() - start) / 1000;
    this.ctx.metrics.hop.observe({ cluster_binding: this.ctx.config.bindingName, hop }, seconds);
  }
}

function incarnationOf(pod: Pod): string {
  return `${pod.metadata?.namespace}/${pod.metadata?.name}/${pod.metadata?.uid}`;
}

function refOfPod(pod: Pod): ObjectRef {
  return { namespace: pod.metadata!.namespace!, name: pod.metadata!.name! };
}
