/**
 * The drift audit of the pod lifecycle, at start-up and every resync period: twins whose virtual
 * pod is gone (or is another incarnation) are deleted through the provider, virtual pods whose
 * twin vanished are counted, and the per-phase gauges of both sides are refreshed. It never
 * touches a twin the provider does not list as the binding's.
 *
 * @module
 */

import type { Pod, PodStatus } from "../../../apis/core/v1/mod.ts";
import type { Runnable } from "../../../toolkit/runtime/controller.ts";
import { sleep } from "../../../toolkit/util/mod.ts";
import { ANNOTATION_PHYSICAL_POD_UID, twinFinalizer } from "../../common/names.ts";
import type { SyncerContext } from "../context.ts";
import type { PodProvider } from "../provider.ts";
import { isTerminal } from "./pod_status.ts";

const PHASES = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];

/** Removes orphan twins and refreshes the pod gauges, periodically. */
export class PodAudit implements Runnable {
  readonly name: string;

  constructor(readonly ctx: SyncerContext, readonly provider: PodProvider) {
    this.name = `pod-audit/${ctx.config.bindingName}`;
  }

  /** Audits once the caches have listed, then every resync period until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const caches = [this.ctx.virtualPodInformer, ...this.provider.caches];
    for (const cache of caches) cache.start();
    try {
      await Promise.all(caches.map((c) => c.ready(signal)));
    } catch {
      return; // stopped before the caches listed
    }
    while (!signal.aborted) {
      try {
        await this.audit();
      } catch (err) {
        this.ctx.log.warn("drift audit failed", { error: err });
      }
      await sleep(this.ctx.config.resyncMs, signal).catch(() => {});
    }
  }

  /** Deletes twins without a live virtual pod; returns how many. */
  async audit(): Promise<number> {
    const ctx = this.ctx;
    const binding = ctx.config.bindingName;
    const virtualPods = ctx.virtualPodInformer.store.list();
    const liveUids = new Set(virtualPods.map((p) => p.metadata?.uid));
    let removed = 0;
    for (const twin of this.provider.listTwins()) {
      if (liveUids.has(twin.owner.uid) || twin.deleting) continue;
      ctx.log.info("drift audit: deleting orphan twin", { twin: twin.ref.name, virtualUid: twin.owner.uid });
      ctx.metrics.orphans.inc({ cluster_binding: binding, side: "worker" });
      await this.provider.deleteTwin(twin);
      removed++;
    }
    // Virtual pods that hold our finalizer but whose twin vanished: the lifecycle controller fails
    // them; counted here so that drift shows on dashboards.
    const finalizer = twinFinalizer(ctx.config.clusterID);
    const ours = virtualPods.filter((p) => p.metadata?.finalizers?.includes(finalizer));
    for (const pod of ours) {
      const twinUid = pod.metadata?.annotations?.[ANNOTATION_PHYSICAL_POD_UID];
      if (!twinUid || isTerminal(pod.status)) continue;
      const key = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
      if (!this.provider.twinsOf(key).some((t) => t.ref.uid === twinUid)) {
        ctx.metrics.orphans.inc({ cluster_binding: binding, side: "computing" });
      }
    }
    this.#updateGauges(ours, this.provider.listTwins().map((t) => t.status));
    return removed;
  }

  #updateGauges(virtualPods: Pod[], twinStatuses: (PodStatus | undefined)[]): void {
    const binding = this.ctx.config.bindingName;
    const count = (statuses: (PodStatus | undefined)[]) =>
      PHASES.map((phase) =>
        [phase, statuses.filter((s) => (s?.phase ?? "Pending") === phase).length] as const
      );
    for (const [phase, n] of count(twinStatuses)) {
      this.ctx.metrics.physicalPods.set({ cluster_binding: binding, phase }, n);
    }
    for (const [phase, n] of count(virtualPods.map((p) => p.status))) {
      this.ctx.metrics.virtualPods.set({ cluster_binding: binding, phase }, n);
    }
  }
}
