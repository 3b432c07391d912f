/**
 * Top-down pods: each virtual pod bound to one of the binding's virtual nodes gets exactly one
 * twin in the worker's mount namespace, and the twin's status flows back.
 *
 * Keyed by virtual pod. Once its twin is created, the virtual pod gets, in one write, the
 * finalizer `kubeocean.io/twin-<clusterID>` (held until the twin is gone) and annotations with the
 * twin's namespace, name and UID. A twin whose virtual pod vanished before that write (a crash, a
 * deletion in between) is found through its annotations and deleted. Deleting the virtual pod
 * deletes the twin with the same grace period, then completes the virtual deletion (there is no
 * kubelet to do so). A twin that disappears while its virtual pod runs (deleted or evicted in the
 * worker) fails the virtual pod with a reason naming it, so its controller replaces it. Terminal
 * phases never regress. Twin names include the virtual pod's UID, so a re-created pod of the same
 * name never adopts, nor is killed by, the old twin.
 *
 * @module
 */

import type { Pod, PodStatus } from "../../../apis/core/v1/mod.ts";
import { isAlreadyExists, isConflict, isNotFound } from "../../../toolkit/client/errors.ts";
import { Action, type Controller, ControllerBuilder } from "../../../toolkit/runtime/controller.ts";
import {
  ANNOTATION_PHYSICAL_POD_NAME,
  ANNOTATION_PHYSICAL_POD_NAMESPACE,
  ANNOTATION_PHYSICAL_POD_UID,
  ANNOTATION_RUNNING_DAEMONSET,
  ANNOTATION_VIRTUAL_POD_NAME,
  ANNOTATION_VIRTUAL_POD_NAMESPACE,
  ANNOTATION_VIRTUAL_POD_UID,
  LABEL_CLUSTER_BINDING,
} from "../../common/names.ts";
import { BY_NODE, BY_VIRTUAL_POD, type SyncerContext } from "../context.ts";
import { physicalNameOf, virtualNodeInformer } from "../bottomup/node_controller.ts";
import { ANNOTATION_DEPENDENCIES, type Dependencies } from "./dependencies.ts";
import { twinName } from "./naming.ts";
import { buildTwin } from "./transform.ts";

/** Finalizer on virtual pods that have (or may have) a twin in the worker `clusterID`. */
export function twinFinalizer(clusterID: string): string {
  return `kubeocean.io/twin-${clusterID}`;
}

function terminal(pod: Pod | undefined): boolean {
  return pod?.status?.phase === "Succeeded" || pod?.status?.phase === "Failed";
}

/** Builds the pod controller. */
export function podController(ctx: SyncerContext, deps: Dependencies): Controller<Pod> {
  const bindingName = ctx.config.bindingName;
  const FINALIZER_TWIN = twinFinalizer(ctx.config.clusterID);
  const vnodes = virtualNodeInformer(ctx);
  const twins = ctx.physicalPodInformer;
  const warned = new Set<string>();
  const runningSeen = new Set<string>();
  /**
   * Virtual pods whose deletion we completed (`namespace/name` → UID and the resourceVersion we
   * acted on): the update that removed our finalizer still reaches the queue after the pod is gone
   * and must not send the final delete again, and a reconcile that still sees the version we acted
   * on (the cache has not caught up) must not remove the finalizer again.
   */
  const completed = new Map<string, { uid: string; resourceVersion?: string }>();
  /**
   * Our last write to each virtual pod (by UID): what it said and the resourceVersion it was based
   * on. Until the cache moves past that version, the cache cannot show the write yet, and the same
   * write is not sent again.
   */
  const lastWrite = new Map<string, { basedOn: string; what: string }>();
  const alreadySent = (pod: Pod, what: string) => {
    const last = lastWrite.get(pod.metadata!.uid!);
    return last !== undefined && last.basedOn === pod.metadata?.resourceVersion && last.what === what;
  };
  const sent = (pod: Pod, what: string) =>
    lastWrite.set(pod.metadata!.uid!, { basedOn: pod.metadata?.resourceVersion ?? "", what });

  const physicalNodes = ctx.physicalInformers.for(ctx.physicalNodes);
  /** Whether the twin is bound to a node the worker no longer has (known only once nodes are listed). */
  const onMissingNode = (twin: Pod) =>
    !!twin.spec?.nodeName && physicalNodes.store.isReady && !physicalNodes.store.get(twin.spec.nodeName);

  const ours = (pod: Pod) => !!pod.spec?.nodeName && vnodes.store.get(pod.spec.nodeName) !== undefined;

  return new ControllerBuilder(ctx.virtualPods, {
    name: `pods/${bindingName}`,
    concurrency: 128,
    logger: ctx.log,
    metrics: ctx.runtimeMetrics,
    informers: (t) => ctx.informersFor(t),
    indexers: { [BY_NODE]: (p: Pod) => [p.spec?.nodeName ?? ""] },
  })
    // Reconciles read the binding: a pod reconciled before it is listed would be dropped until
    // the next resync (seen as a stall after a restart during a burst).
    .requires(ctx.bindingInformer)
    // Until the virtual nodes have been listed, `ours` cannot tell: let every pod through (the
    // reconciler runs only once every cache is synced and checks again). Otherwise a pod listed
    // before its node would be dropped for good, since a pod bound earlier may never change again.
    .withPredicate((e) =>
      !vnodes.store.isReady || ours(e.object) ||
      (e.object.metadata?.finalizers?.includes(FINALIZER_TWIN) ?? false)
    )
    // Twin changes map back through the twin's annotations.
    .watches(ctx.physicalPods, (twin) => {
      if (twin.metadata?.labels?.[LABEL_CLUSTER_BINDING] !== bindingName) return [];
      const ns = twin.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_NAMESPACE];
      const name = twin.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_NAME];
      return ns && name ? [{ namespace: ns, name }] : [];
    })
    // A virtual node appearing (or going) affects the pods bound to it.
    .watches(
      ctx.virtualNodes,
      (vnode) =>
        ctx.virtualPodInformer.store.byIndex(BY_NODE, vnode.metadata!.name!).map((p) => ({
          namespace: p.metadata!.namespace!,
          name: p.metadata!.name!,
        })),
      {
        labelSelector: `${LABEL_CLUSTER_BINDING}=${bindingName}`,
        // Only appearing and going: heartbeats would otherwise requeue every pod on the node.
        predicates: [(e) => e.type === "Delete" || !e.previous],
      },
    )
    .build(async (ref, rc) => {
      const binding = ctx.binding;
      const pod = rc.object;
      if (!binding) return Action.done();
      if (!pod) {
        completed.delete(`${ref.namespace}/${ref.name}`);
        await deleteTwinsOf(`${ref.namespace}/${ref.name}`);
        return Action.done();
      }
      const hasFinalizer = pod.metadata?.finalizers?.includes(FINALIZER_TWIN) ?? false;
      if (!ours(pod) && !hasFinalizer) return Action.done();
      const finished = completed.get(`${ref.namespace}/${ref.name}`);
      if (
        finished && finished.uid === pod.metadata?.uid &&
        (!hasFinalizer || finished.resourceVersion === pod.metadata?.resourceVersion)
      ) {
        return Action.done(); // the event of our own completion brings us back if anything is left
      }
      // Twins of an earlier pod of the same name (never adopted, never left behind).
      await deleteTwinsOf(`${ref.namespace}/${ref.name}`);
      const name = await twinName(pod.metadata!.namespace!, pod.metadata!.name!, pod.metadata!.uid!);
      const twin = twins.store.get(`${ctx.config.mountNamespace}/${name}`);
      const key = `${ref.namespace}/${ref.name}/${pod.metadata!.uid}`;

      // Deletion: the twin goes first, with the same grace period; then the virtual pod completes.
      if (pod.metadata?.deletionTimestamp || binding.metadata?.deletionTimestamp) {
        if (twin) {
          if (!twin.metadata?.deletionTimestamp) {
            await ctx.physicalCore.pods(ctx.config.mountNamespace).delete(name, {
              gracePeriodSeconds: pod.metadata?.deletionGracePeriodSeconds,
              preconditions: { uid: twin.metadata!.uid },
            }).catch((err) => isNotFound(err) || isConflict(err) ? undefined : Promise.reject(err));
          } else if (onMissingNode(twin)) {
            // No kubelet will ever confirm this deletion (the worker's pod GC would, after its
            // quarantine): finish it now.
            await ctx.physicalCore.pods(ctx.config.mountNamespace).delete(name, {
              gracePeriodSeconds: 0,
              preconditions: { uid: twin.metadata!.uid },
            }).catch((err) => isNotFound(err) || isConflict(err) ? undefined : Promise.reject(err));
          }
          return Action.requeueAfter(2_000);
        }
        if (pod.metadata?.deletionTimestamp) {
          const since = Date.parse(pod.metadata.deletionTimestamp) -
            (pod.metadata.deletionGracePeriodSeconds ?? 0) * 1000;
          if (!Number.isNaN(since)) {
            ctx.metrics.hop.observe(
              { cluster_binding: bindingName, hop: "deleted" },
              Math.max(0, Date.now() - since) / 1000,
            );
          }
        }
        await completeDeletion(pod);
        completed.set(`${ref.namespace}/${ref.name}`, {
          uid: pod.metadata!.uid!,
          resourceVersion: pod.metadata?.resourceVersion,
        });
        runningSeen.delete(key);
        warned.delete(key);
        lastWrite.delete(pod.metadata!.uid!);
        return Action.done();
      }

      if (!twin) {
        if (terminal(pod)) return Action.done();
        const recordedUid = pod.metadata?.annotations?.[ANNOTATION_PHYSICAL_POD_UID];
        if (recordedUid) {
          // We created a twin before. The informer may simply not have seen it yet: ask the
          // worker before calling it gone.
          const live = await ctx.physicalCore.pods(ctx.config.mountNamespace).get(name).catch((err) =>
            isNotFound(err) ? undefined : Promise.reject(err)
          );
          if (live?.metadata?.uid === recordedUid && !live.metadata?.deletionTimestamp) {
            return Action.requeueAfter(1_000);
          }
          // It is gone (or being deleted) while the virtual pod is not terminal.
          await failVirtualPod(
            pod,
            "WorkerPodDeleted",
            `worker pod ${ctx.config.mountNamespace}/${name} in cluster ${ctx.config.clusterID} was deleted or evicted`,
          );
          return Action.done();
        }
        if (
          isDaemonSetPod(pod) && !binding.spec?.runningDaemonsetByDefault &&
          pod.metadata?.annotations?.[ANNOTATION_RUNNING_DAEMONSET] !== "true"
        ) {
          if (!warned.has(key)) {
            warned.add(key);
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
        return await createTwin(pod, name);
      }

      // Created, but the virtual pod was not marked (a crash between the two writes): mark it now.
      if (!hasFinalizer || pod.metadata?.annotations?.[ANNOTATION_PHYSICAL_POD_UID] !== twin.metadata?.uid) {
        if (alreadySent(pod, `mark ${twin.metadata?.uid}`)) return Action.done(); // the update brings us back
        await markVirtualPod(pod, twin);
        return Action.done();
      }

      // A virtual pod that ended while its twin still runs (failed by us or by someone else):
      // the twin must not keep consuming the worker's capacity.
      if (terminal(pod) && !terminal(twin) && !twin.metadata?.deletionTimestamp) {
        await ctx.physicalCore.pods(ctx.config.mountNamespace).delete(name, {
          preconditions: { uid: twin.metadata!.uid },
        }).catch((err) => isNotFound(err) || isConflict(err) ? undefined : Promise.reject(err));
        return Action.done();
      }

      // Twin exists: status flows back.
      await syncStatus(pod, twin, key);
      return Action.requeueAfter(ctx.config.resyncMs);
    });

  async function createTwin(pod: Pod, name: string): Promise<Action> {
    const vnode = vnodes.store.get(pod.spec!.nodeName!)!;
    const physicalNode = physicalNameOf(vnode);
    if (!physicalNode) return Action.requeueAfter(1_000);
    const dependencies = await deps.ensureFor(pod);
    // Like a kubelet, wait (Pending, with the reason as a Warning) for what the pod needs.
    const waiting = dependencies.unbound
      ? { reason: "WaitingForVolume", note: `${dependencies.unbound}; the pod stays Pending until it is` }
      : dependencies.missing
      ? { reason: "WaitingForDependency", note: `${dependencies.missing} does not exist yet` }
      : undefined;
    if (waiting) {
      await ctx.recorder.publish({ regarding: pod, type: "Warning", action: "CreateWorkerPod", ...waiting });
      return Action.requeueAfter(5_000);
    }
    const { pod: twin, dropped } = buildTwin(pod, {
      twinName: name,
      mountNamespace: ctx.config.mountNamespace,
      bindingName,
      binding: ctx.binding!.spec!,
      vnodeName: vnode.metadata!.name!,
      physicalNode,
      configMaps: dependencies.configMaps,
      secrets: dependencies.secrets,
      tokenSecret: dependencies.tokenSecret,
      claims: dependencies.claims,
    });
    twin.metadata!.annotations![ANNOTATION_DEPENDENCIES] = dependencies.keys.join(",");
    let created: Pod;
    try {
      created = await ctx.physicalCore.pods(ctx.config.mountNamespace).create(twin);
      ctx.metrics.createPod.inc({ cluster_binding: bindingName });
    } catch (err) {
      if (isAlreadyExists(err)) {
        created = await ctx.physicalCore.pods(ctx.config.mountNamespace).get(name);
      } else {
        ctx.metrics.createPodErrors.inc({ cluster_binding: bindingName });
        await ctx.recorder.publish({
          regarding: pod,
          type: "Warning",
          reason: "FailedCreateWorkerPod",
          action: "CreateWorkerPod",
          note: `cluster ${ctx.config.clusterID}: ${(err as Error).message}`,
        });
        throw err;
      }
    }
    const scheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled")?.lastTransitionTime;
    if (scheduled) {
      ctx.metrics.hop.observe(
        { cluster_binding: bindingName, hop: "bound_to_created" },
        Math.max(0, Date.now() - Date.parse(scheduled)) / 1000,
      );
    }
    for (const what of dropped) {
      await ctx.recorder.publish({
        regarding: pod,
        type: "Warning",
        reason: "DroppedForWorker",
        action: "CreateWorkerPod",
        note: `not carried over: ${what}`,
      });
    }
    await markVirtualPod(pod, created);
    return Action.done();
  }

  /**
   * One write to the virtual pod: our finalizer (if missing) and the twin's namespace, name and
   * UID. Fenced by the virtual pod's UID; a pod that is gone or re-created leaves the twin to
   * {@linkcode deleteTwinsOf}.
   */
  async function markVirtualPod(pod: Pod, twin: Pod): Promise<void> {
    // Strategic merge: finalizers merge as a set and annotations as a map, whatever the cache says;
    // the UID in the patch fails it on a re-created pod of the same name.
    const patch = {
      metadata: {
        uid: pod.metadata!.uid,
        annotations: {
          [ANNOTATION_PHYSICAL_POD_NAMESPACE]: ctx.config.mountNamespace,
          [ANNOTATION_PHYSICAL_POD_NAME]: twin.metadata!.name!,
          [ANNOTATION_PHYSICAL_POD_UID]: twin.metadata!.uid!,
        },
        finalizers: [FINALIZER_TWIN],
      },
    };
    try {
      await ctx.virtualPods.namespace(pod.metadata!.namespace!).patch(pod.metadata!.name!, patch, {
        type: "strategic",
      });
      sent(pod, `mark ${twin.metadata!.uid}`);
    } catch (err) {
      // Gone, or re-created under the same name (the UID does not match): the twin is an orphan.
      const gone = isNotFound(err) ||
        ([409, 422].includes((err as { code?: number }).code ?? 0) &&
          await ctx.virtualPods.namespace(pod.metadata!.namespace!).get(pod.metadata!.name!).then(
            (now) => now.metadata?.uid !== pod.metadata!.uid,
            (e) => isNotFound(e) ? true : Promise.reject(e),
          ));
      if (!gone) throw err;
      await deleteTwinsOf(`${pod.metadata!.namespace}/${pod.metadata!.name}`, pod.metadata!.uid);
    }
  }

  /**
   * Deletes this binding's twins of the virtual pod `key` (`namespace/name`): those of the virtual
   * UID `staleUid` when given, else every one whose virtual UID is not that of the pod now holding
   * the name (all of them when the name is free).
   */
  async function deleteTwinsOf(key: string, staleUid?: string): Promise<void> {
    const current = ctx.virtualPodInformer.store.get(key);
    for (const twin of twins.store.byIndex(BY_VIRTUAL_POD, key)) {
      if (twin.metadata?.labels?.[LABEL_CLUSTER_BINDING] !== bindingName) continue;
      if (twin.metadata?.deletionTimestamp) continue;
      const uid = twin.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_UID];
      if (staleUid ? uid !== staleUid : current && uid === current.metadata?.uid) continue;
      await ctx.physicalCore.pods(ctx.config.mountNamespace).delete(twin.metadata!.name!, {
        preconditions: { uid: twin.metadata!.uid },
      }).catch((err) => isNotFound(err) || isConflict(err) ? undefined : Promise.reject(err));
    }
  }

  async function syncStatus(pod: Pod, twin: Pod, key: string): Promise<void> {
    if (terminal(pod)) return; // terminal phases never regress
    const source = twin.status ?? {};
    const status: PodStatus = {
      phase: source.phase,
      conditions: source.conditions,
      message: source.message,
      reason: source.reason,
      containerStatuses: source.containerStatuses,
      initContainerStatuses: source.initContainerStatuses,
      podIP: source.podIP,
      podIPs: source.podIPs,
      hostIP: ctx.config.proxier.address,
      hostIPs: [{ ip: ctx.config.proxier.address }],
      startTime: source.startTime,
      qosClass: source.qosClass ?? pod.status?.qosClass,
    };
    if (!source.phase) return;
    // A twin just created says nothing yet: the virtual pod is Pending already.
    if (
      source.phase === "Pending" && !source.conditions?.length && !source.containerStatuses?.length &&
      !source.initContainerStatuses?.length && !source.message && !source.reason
    ) return;
    const current = pod.status ?? {};
    const comparable = (s: PodStatus) =>
      JSON.stringify([
        s.phase,
        s.conditions?.map((c) => [c.type, c.status, c.reason]),
        s.containerStatuses,
        s.initContainerStatuses,
        s.podIP,
        s.startTime,
        s.message,
        s.reason,
      ]);
    const desired = comparable({ ...current, ...status });
    if (comparable(current) === desired || alreadySent(pod, desired)) return;
    try {
      await ctx.virtualPods.namespace(pod.metadata!.namespace!).patchStatus(pod.metadata!.name!, {
        metadata: { resourceVersion: pod.metadata!.resourceVersion },
        status,
      }, { type: "merge" });
      sent(pod, desired);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    if (status.phase === "Running" && !runningSeen.has(key)) {
      runningSeen.add(key);
      const running = twin.status?.conditions?.find((c) =>
        c.type === "Ready" && c.status === "True"
      )?.lastTransitionTime ??
        twin.status?.startTime;
      if (running) {
        ctx.metrics.hop.observe(
          { cluster_binding: bindingName, hop: "running" },
          Math.max(0, Date.now() - Date.parse(running)) / 1000,
        );
      }
    }
  }

  async function failVirtualPod(pod: Pod, reason: string, message: string): Promise<void> {
    await ctx.virtualPods.namespace(pod.metadata!.namespace!).patchStatus(pod.metadata!.name!, {
      metadata: { resourceVersion: pod.metadata!.resourceVersion },
      status: {
        phase: "Failed",
        reason,
        message,
        conditions: (pod.status?.conditions ?? []).map((c) =>
          c.type === "Ready" || c.type === "ContainersReady" ? { ...c, status: "False", reason, message } : c
        ),
      },
    }, { type: "merge" });
    await ctx.recorder.publish({
      regarding: pod,
      type: "Warning",
      reason,
      action: "SyncStatus",
      note: message,
    });
  }

  /** Removes our finalizer and completes the deletion (grace 0: the worker pod is already gone). */
  async function completeDeletion(pod: Pod): Promise<void> {
    const pods = ctx.virtualPods.namespace(pod.metadata!.namespace!);
    const index = pod.metadata?.finalizers?.indexOf(FINALIZER_TWIN) ?? -1;
    try {
      if (index >= 0) {
        await pods.patch(pod.metadata!.name!, [
          { op: "test", path: `/metadata/finalizers/${index}`, value: FINALIZER_TWIN },
          { op: "remove", path: `/metadata/finalizers/${index}` },
        ], { type: "json" });
      }
      if (pod.metadata?.deletionTimestamp) {
        await pods.delete(pod.metadata!.name!, {
          gracePeriodSeconds: 0,
          preconditions: { uid: pod.metadata!.uid },
        });
      }
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }
}

function isDaemonSetPod(pod: Pod): boolean {
  return pod.metadata?.ownerReferences?.some((r) => r.kind === "DaemonSet" && r.controller) ?? false;
}
