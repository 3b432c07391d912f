/**
 * The top-down half of a syncer: the pod controller, the dependency controllers, worker events
 * reflected onto virtual pods, a drift audit (at start and every resync period) and the cleanup
 * run when the binding is deleted.
 *
 * The audit compares both sides by UID annotations and repairs or removes orphans in both
 * directions — twins whose virtual pod is gone (or is another incarnation), and mirrored objects
 * no twin uses — but never touches an object without Kubeocean's labels.
 *
 * @module
 */

import type { Event, Pod } from "../../../apis/core/v1/mod.ts";
import type { ClusterBinding } from "../../../apis/kubeocean.io/v1beta1/mod.ts";
import { isNotFound } from "../../../toolkit/client/errors.ts";
import type { KubeObject } from "../../../toolkit/client/resource.ts";
import type { Controller } from "../../../toolkit/runtime/controller.ts";
import {
  ANNOTATION_VIRTUAL_NAME,
  ANNOTATION_VIRTUAL_NAMESPACE,
  ANNOTATION_VIRTUAL_POD_NAME,
  ANNOTATION_VIRTUAL_POD_NAMESPACE,
  ANNOTATION_VIRTUAL_POD_UID,
  LABEL_CLUSTER_BINDING,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
} from "../../common/names.ts";
import type { SyncerContext } from "../context.ts";
import { Dependencies, LABEL_SA_TOKEN } from "./dependencies.ts";
import { podController, twinFinalizer } from "./pod_controller.ts";

/** Top-down controllers of one binding. */
export class TopDown {
  readonly dependencies: Dependencies;
  readonly controllers: Controller<never>[];
  #auditTimer?: ReturnType<typeof setTimeout>;
  #eventsLoop?: Promise<void>;

  constructor(readonly ctx: SyncerContext) {
    this.dependencies = new Dependencies(ctx);
    this.controllers = [
      podController(ctx, this.dependencies),
      ...this.dependencies.controllers,
    ] as unknown as Controller<never>[];
  }

  /** Starts the audit loop and the event reflection. */
  start(signal: AbortSignal): void {
    const audit = async () => {
      try {
        await this.audit();
      } catch (err) {
        this.ctx.log.warn("drift audit failed", { error: err });
      }
      if (!signal.aborted) this.#auditTimer = setTimeout(audit, this.ctx.config.resyncMs);
    };
    // First audit once caches have synced.
    this.#auditTimer = setTimeout(async () => {
      await this.ctx.physicalPodInformer.ready(signal).catch(() => {});
      await this.ctx.virtualPodInformer.ready(signal).catch(() => {});
      if (!signal.aborted) await audit();
    }, 0);
    this.#eventsLoop = this.#reflectEvents(signal);
  }

  async stop(): Promise<void> {
    clearTimeout(this.#auditTimer);
    await this.#eventsLoop?.catch(() => {});
  }

  /** Removes orphans on both sides; returns how many were removed. */
  async audit(): Promise<number> {
    const ctx = this.ctx;
    const bindingName = ctx.config.bindingName;
    let removed = 0;
    const virtualUids = new Set(ctx.virtualPodInformer.store.list().map((p) => p.metadata?.uid));
    for (const twin of ctx.physicalPodInformer.store.byIndex("namespace", ctx.config.mountNamespace)) {
      if (twin.metadata?.labels?.[LABEL_MANAGED_BY] !== MANAGED_BY_VALUE) continue; // never ours to touch
      if (twin.metadata?.labels?.[LABEL_CLUSTER_BINDING] !== bindingName) continue;
      const uid = twin.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_UID];
      if (uid && virtualUids.has(uid)) continue;
      ctx.log.info("drift audit: deleting orphan worker pod", { pod: twin.metadata?.name, virtualUid: uid });
      ctx.metrics.orphans.inc({ cluster_binding: bindingName, side: "worker" });
      await ctx.physicalCore.pods(ctx.config.mountNamespace).delete(twin.metadata!.name!, {
        preconditions: { uid: twin.metadata!.uid },
      }).catch((err) => isNotFound(err) ? undefined : Promise.reject(err));
      removed++;
    }
    // Mirrored ConfigMaps and Secrets no twin uses any more.
    for (const kind of ["ConfigMap", "Secret"] as const) {
      const client = kind === "ConfigMap"
        ? ctx.physicalCore.configmaps(ctx.config.mountNamespace)
        : ctx.physicalCore.secrets(ctx.config.mountNamespace);
      const copies = await client.list({
        labelSelector: `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE},${LABEL_CLUSTER_BINDING}=${bindingName}`,
      });
      for (const copy of copies.items as KubeObject[]) {
        if (copy.metadata?.labels?.[LABEL_SA_TOKEN]) continue; // the token controller owns these
        const ns = copy.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAMESPACE];
        const name = copy.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAME];
        if (!ns || !name || this.dependencies.isUsed(`${kind}/${ns}/${name}`)) continue;
        const age = Date.now() - Date.parse(copy.metadata?.creationTimestamp ?? "");
        if (age < 60_000) continue; // its twin may be on its way
        ctx.metrics.orphans.inc({ cluster_binding: bindingName, side: "worker" });
        await this.dependencies.release(kind, ns, name);
        removed++;
      }
    }
    // Mirrored claims (and their volumes) no twin uses any more.
    const claimCopies = await ctx.physicalCore.persistentvolumeclaims(ctx.config.mountNamespace).list({
      labelSelector: `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE},${LABEL_CLUSTER_BINDING}=${bindingName}`,
    });
    for (const copy of claimCopies.items) {
      const ns = copy.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAMESPACE];
      const name = copy.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAME];
      if (!ns || !name || this.dependencies.isUsed(`PersistentVolumeClaim/${ns}/${name}`)) continue;
      const age = Date.now() - Date.parse(copy.metadata?.creationTimestamp ?? "");
      if (age < 60_000) continue; // its twin may be on its way
      ctx.metrics.orphans.inc({ cluster_binding: bindingName, side: "worker" });
      await this.dependencies.releaseClaim(copy);
      removed++;
    }
    // Virtual pods still carrying our finalizer whose node is gone and that are being deleted are
    // completed by the pod controller; virtual pods whose twin is missing are failed by it too.
    for (const pod of ctx.virtualPodInformer.store.list()) {
      if (!pod.metadata?.finalizers?.includes(twinFinalizer(ctx.config.clusterID))) continue;
      const phys = pod.metadata.annotations?.["kubeocean.io/physical-pod-name"];
      if (!phys) continue;
      const twin = ctx.physicalPodInformer.store.get(`${ctx.config.mountNamespace}/${phys}`);
      if (!twin && pod.status?.phase !== "Succeeded" && pod.status?.phase !== "Failed") {
        ctx.metrics.orphans.inc({ cluster_binding: bindingName, side: "computing" });
      }
    }
    this.#updateGauges();
    return removed;
  }

  #updateGauges(): void {
    const ctx = this.ctx;
    const bindingName = ctx.config.bindingName;
    const phases = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];
    const count = (pods: Pod[]) =>
      Object.fromEntries(
        phases.map((p) => [p, pods.filter((x) => (x.status?.phase ?? "Pending") === p).length]),
      );
    const twins = ctx.physicalPodInformer.store.byIndex("namespace", ctx.config.mountNamespace)
      .filter((p) => p.metadata?.labels?.[LABEL_CLUSTER_BINDING] === bindingName);
    const virtual = ctx.virtualPodInformer.store.list().filter((p) =>
      p.metadata?.finalizers?.includes(twinFinalizer(ctx.config.clusterID))
    );
    for (const [phase, n] of Object.entries(count(twins))) {
      ctx.metrics.physicalPods.set({ cluster_binding: bindingName, phase }, n);
    }
    for (const [phase, n] of Object.entries(count(virtual))) {
      ctx.metrics.virtualPods.set({ cluster_binding: bindingName, phase }, n);
    }
  }

  /** Reflects events of twins onto their virtual pods (aggregated and rate limited by the recorder). */
  async #reflectEvents(signal: AbortSignal): Promise<void> {
    const ctx = this.ctx;
    const events = ctx.physicalInformers.for(ctx.physicalCore.events(ctx.config.mountNamespace));
    const started = new Date();
    for await (const change of events.events(signal)) {
      if (change.type !== "Apply" && change.type !== "InitApply") continue;
      const event = change.object as Event;
      if (event.involvedObject?.kind !== "Pod") continue;
      const seen = Date.parse(
        event.lastTimestamp ?? event.eventTime ?? event.metadata?.creationTimestamp ?? "",
      );
      if (change.type === "InitApply" && seen < started.getTime()) continue; // old news
      const twin = ctx.physicalPodInformer.store.get(
        `${ctx.config.mountNamespace}/${event.involvedObject.name}`,
      );
      const ns = twin?.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_NAMESPACE];
      const name = twin?.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_NAME];
      const uid = twin?.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_UID];
      if (!ns || !name || !uid) continue;
      await ctx.recorder.publish({
        regarding: {
          apiVersion: "v1",
          kind: "Pod",
          namespace: ns,
          name,
          uid,
          fieldPath: event.involvedObject.fieldPath,
        },
        type: event.type === "Warning" ? "Warning" : "Normal",
        reason: event.reason ?? "WorkerEvent",
        action: "Worker",
        note: `[${ctx.config.clusterID}] ${event.message ?? ""}`,
      });
    }
  }

  /** Binding deletion: delete twins and mirrored objects, release virtual objects; true once done. */
  async cleanup(_binding: ClusterBinding): Promise<boolean> {
    const ctx = this.ctx;
    const selector =
      `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE},${LABEL_CLUSTER_BINDING}=${ctx.config.bindingName}`;
    const pods = ctx.physicalCore.pods(ctx.config.mountNamespace);
    const twins = await pods.list({ labelSelector: selector });
    for (const twin of twins.items) {
      await pods.delete(twin.metadata!.name!, { gracePeriodSeconds: 0 }).catch((e) =>
        isNotFound(e) ? undefined : Promise.reject(e)
      );
    }
    for (const kind of ["ConfigMap", "Secret"] as const) {
      const client = kind === "ConfigMap"
        ? ctx.physicalCore.configmaps(ctx.config.mountNamespace)
        : ctx.physicalCore.secrets(ctx.config.mountNamespace);
      for (const copy of (await client.list({ labelSelector: selector })).items as KubeObject[]) {
        const ns = copy.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAMESPACE];
        const name = copy.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAME];
        if (ns && name && !copy.metadata?.labels?.[LABEL_SA_TOKEN]) {
          await this.dependencies.release(kind, ns, name);
        } else {await client.delete(copy.metadata!.name!).catch((e) =>
            isNotFound(e) ? undefined : Promise.reject(e)
          );}
      }
    }
    // Claim copies, then the volume copies this binding created (Retain: storage untouched).
    const claims = ctx.physicalCore.persistentvolumeclaims(ctx.config.mountNamespace);
    for (const copy of (await claims.list({ labelSelector: selector })).items) {
      await this.dependencies.releaseClaim(copy);
    }
    const volumes = ctx.physicalCore.persistentvolumes();
    for (const volume of (await volumes.list({ labelSelector: selector })).items) {
      await volumes.delete(volume.metadata!.name!).catch((e) =>
        isNotFound(e) ? undefined : Promise.reject(e)
      );
    }
    // Virtual pods lose our finalizer (their nodes are going away).
    for (const pod of ctx.virtualPodInformer.store.list()) {
      const index = pod.metadata?.finalizers?.indexOf(twinFinalizer(ctx.config.clusterID)) ?? -1;
      if (index < 0) continue;
      await ctx.virtualPods.namespace(pod.metadata!.namespace!).patch(pod.metadata!.name!, [
        { op: "test", path: `/metadata/finalizers/${index}`, value: twinFinalizer(ctx.config.clusterID) },
        { op: "remove", path: `/metadata/finalizers/${index}` },
      ], { type: "json" }).catch((e) => isNotFound(e) ? undefined : Promise.reject(e));
    }
    return (await pods.list({ labelSelector: selector })).items.length === 0;
  }
}
