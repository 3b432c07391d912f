/**
 * Writes the syncer's heartbeat Lease (see `controllers/common/syncer_heartbeat.ts`): every
 * {@linkcode HEARTBEAT_INTERVAL_MS}, and at once when the reported health changes. It runs as a
 * runnable of the syncer process's Manager, so only the leading replica writes it, and it stops
 * with the leading work: a syncer that crashed, hung or lost its lead stops renewing and the
 * manager sees the heartbeat go stale.
 *
 * @module
 */

import { CoordinationK8sIoV1Api, type Lease } from "../../apis/coordination.k8s.io/v1/mod.ts";
import { microTime } from "../../toolkit/apimachinery/time.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { isConflict, isNotFound } from "../../toolkit/client/errors.ts";
import type { Runnable } from "../../toolkit/runtime/controller.ts";
import type { Logger } from "../../toolkit/runtime/log.ts";
import { sleep } from "../../toolkit/util/mod.ts";
import {
  ANNOTATION_SYNCER_HEALTH,
  LABEL_CLUSTER_BINDING,
  LABEL_HEARTBEAT,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
} from "../common/names.ts";
import {
  HEARTBEAT_DURATION_SECONDS,
  HEARTBEAT_INTERVAL_MS,
  heartbeatLeaseName,
  type SyncerHealth,
} from "../common/syncer_heartbeat.ts";

/** Options of {@linkcode HeartbeatLease}. */
export interface HeartbeatLeaseOptions {
  client: KubeClient;
  namespace: string;
  binding: string;
  /** This replica's identity (written as the holder). */
  identity: string;
  /** What the syncer vouches for now. */
  health: () => SyncerHealth;
  log: Logger;
  /** How often the health is checked for a change between renewals (default 1 s). */
  checkMs?: number;
}

/** Renews the heartbeat Lease while it runs. */
export class HeartbeatLease implements Runnable {
  readonly name = "syncer-heartbeat";
  #lastWritten?: { at: number; health: string };
  #lease?: Lease;

  constructor(readonly options: HeartbeatLeaseOptions) {}

  /** When the heartbeat was last written (monotonic ms), for the liveness check. */
  get lastWrittenAt(): number | undefined {
    return this.#lastWritten?.at;
  }

  /** Renews until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const health = JSON.stringify(this.options.health());
      const last = this.#lastWritten;
      if (!last || last.health !== health || performance.now() - last.at >= HEARTBEAT_INTERVAL_MS) {
        await this.write(health).catch((err) =>
          this.options.log.warn("heartbeat write failed", { error: err })
        );
      }
      await sleep(this.options.checkMs ?? 1_000, signal).catch(() => {});
    }
  }

  /** Writes `health` (JSON) now, creating the Lease if needed. */
  async write(health: string = JSON.stringify(this.options.health())): Promise<void> {
    const { namespace, binding, identity } = this.options;
    const leases = new CoordinationK8sIoV1Api(this.options.client).leases(namespace);
    const name = heartbeatLeaseName(binding);
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: HEARTBEAT_DURATION_SECONDS,
      renewTime: microTime(Date.now()),
    };
    const metadata = {
      name,
      namespace,
      labels: {
        [LABEL_HEARTBEAT]: "syncer",
        [LABEL_CLUSTER_BINDING]: binding,
        [LABEL_MANAGED_BY]: MANAGED_BY_VALUE,
      },
      annotations: { [ANNOTATION_SYNCER_HEALTH]: health },
    };
    // One write per renewal: the Lease as last written, read again only after a conflict.
    let lease = this.#lease;
    if (!lease) {
      try {
        lease = await leases.get(name);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    try {
      if (lease) {
        this.#lease = await leases.replace({
          ...lease,
          metadata: {
            ...lease.metadata,
            labels: { ...lease.metadata?.labels, ...metadata.labels },
            annotations: { ...lease.metadata?.annotations, ...metadata.annotations },
          },
          spec: { ...lease.spec, ...spec },
        });
      } else {
        this.#lease = await leases.create({
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata,
          spec,
        });
      }
    } catch (err) {
      this.#lease = undefined;
      if (isConflict(err) || isNotFound(err)) return; // changed or deleted meanwhile: the next round reads again
      throw err;
    }
    this.#lastWritten = { at: performance.now(), health };
  }
}
