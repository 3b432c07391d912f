/**
 * Events about twins shown on their virtual pods, so that `kubectl describe pod` in the computing
 * cluster tells why a pod is stuck. Notes are prefixed with the worker's clusterID; the recorder
 * aggregates repeats and limits their rate.
 *
 * @module
 */

import type { Runnable } from "../../../toolkit/runtime/controller.ts";
import type { SyncerContext } from "../context.ts";
import type { PodProvider } from "../provider.ts";

/** Publishes the provider's twin events onto the virtual pods. */
export class EventReflector implements Runnable {
  readonly name: string;

  constructor(readonly ctx: SyncerContext, readonly provider: PodProvider) {
    this.name = `pod-events/${ctx.config.bindingName}`;
  }

  async run(signal: AbortSignal): Promise<void> {
    for await (const event of this.provider.events(signal)) {
      await this.ctx.recorder.publish({
        regarding: {
          apiVersion: "v1",
          kind: "Pod",
          namespace: event.owner.namespace,
          name: event.owner.name,
          uid: event.owner.uid,
          fieldPath: event.fieldPath,
        },
        type: event.type,
        reason: event.reason,
        action: "Worker",
        note: `[${this.ctx.config.clusterID}] ${event.message}`,
      });
    }
  }
}
