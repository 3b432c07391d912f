/**
 * `worker-apiserver-frozen-30s` and `worker-apiserver-frozen-120s`: mid-burst the worker's
 * kube-apiserver is frozen (SIGSTOP: connections are accepted, nothing answers), then thawed.
 *
 * - 30 s is a blip, shorter than the virtual nodes' lease duration (40 s): the virtual nodes must
 *   stay Ready throughout, and the burst converges after the thaw.
 * - 120 s is an outage: the syncer stops renewing the virtual nodes' leases once the worker has
 *   been silent for the lease duration, so the computing cluster's node lifecycle marks them
 *   NotReady — within the lease duration plus the world's grace period (20 s) plus 15 s of probe
 *   and monitor periods, or the scenario fails — and the binding shows `Connected=False`.
 *   Kubeocean deletes and fails nothing meanwhile (the audit counts it as lost otherwise), and
 *   every pod runs again with one twin after the thaw.
 *
 * @module
 */

import type { Node } from "../../../apis/core/v1/mod.ts";
import { sleep } from "../../../toolkit/util/mod.ts";
import { faultDuringBurst } from "../fault_burst.ts";
import { seconds } from "../poll.ts";
import type { ChaosScenario } from "../scenario.ts";
import type { ChaosWorld } from "../world.ts";

/** The syncer's virtual node lease duration. */
const LEASE_MS = 40_000;
/** The world's `--node-monitor-grace-period`. */
const GRACE_MS = 20_000;
/** Probe deadline, probe and node-monitor periods, and the test's own polling. */
const SLACK_MS = 15_000;

const isReady = (node: Node) =>
  node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");

/** A frozen worker API server for `freezeMs`, mid-burst. */
function frozenWorker(name: string, freezeMs: number, quick: boolean): ChaosScenario {
  const outage = freezeMs > LEASE_MS;
  return {
    name,
    quick,
    timeoutMs: freezeMs + 360_000,
    async run(world, signal) {
      const problems: string[] = [];
      return await faultDuringBurst(world, signal, {
        name: outage ? "fro" : "bli",
        pods: 60,
        async fault() {
          const frozenAt = Date.now();
          world.workerCluster.freezeApiserver();
          try {
            const seen = await watchWhileFrozen(world, frozenAt, freezeMs, signal);
            if (outage) {
              const bound = LEASE_MS + GRACE_MS + SLACK_MS;
              if (seen.notReadyAfterMs === undefined) {
                problems.push(`virtual nodes never NotReady in ${seconds(freezeMs)} s`);
              } else if (seen.notReadyAfterMs > bound) {
                problems.push(
                  `virtual nodes NotReady after ${seconds(seen.notReadyAfterMs)} s (bound ${
                    seconds(bound)
                  } s)`,
                );
              } else if (seen.notReadyAfterMs < LEASE_MS) {
                problems.push(
                  `virtual nodes NotReady after ${
                    seconds(seen.notReadyAfterMs)
                  } s, before the lease duration`,
                );
              }
              if (!seen.unreachableCondition) {
                problems.push("the binding never showed Connected=False while the worker was silent");
              }
              world.note(
                `NotReady after ${
                  seen.notReadyAfterMs === undefined ? "never" : seconds(seen.notReadyAfterMs)
                } s`,
              );
            } else if (seen.notReadyAfterMs !== undefined) {
              problems.push(
                `a ${seconds(freezeMs)} s blip made virtual nodes NotReady after ${
                  seconds(seen.notReadyAfterMs)
                } s`,
              );
            }
          } finally {
            world.workerCluster.thawApiserver();
          }
        },
        check() {
          return Promise.resolve(problems);
        },
        convergeMs: 180_000,
      });
    },
  };
}

/** What was seen while the worker was frozen. */
interface FrozenObservations {
  /** When the world's virtual nodes were all NotReady, from the freeze. */
  notReadyAfterMs?: number;
  /** Whether the binding showed Connected=False meanwhile. */
  unreachableCondition: boolean;
}

/** Watches virtual nodes and the binding every second until `freezeMs` have passed. */
async function watchWhileFrozen(
  world: ChaosWorld,
  frozenAt: number,
  freezeMs: number,
  signal: AbortSignal,
): Promise<FrozenObservations> {
  const seen: FrozenObservations = { unreachableCondition: false };
  while (Date.now() - frozenAt < freezeMs) {
    signal.throwIfAborted();
    try {
      const nodes = await world.virtualNodes();
      if (seen.notReadyAfterMs === undefined && nodes.length > 0 && nodes.every((n) => !isReady(n))) {
        seen.notReadyAfterMs = Date.now() - frozenAt;
      }
      const binding = await world.bindingObject();
      if (binding.status?.conditions?.some((c) => c.type === "Connected" && c.status === "False")) {
        seen.unreachableCondition = true;
      }
    } catch {
      // The computing cluster answers; a failed read is retried next second.
    }
    await sleep(1_000, signal);
  }
  return seen;
}

/** See the module documentation. */
export const workerApiserverFrozen30s: ChaosScenario = frozenWorker(
  "worker-apiserver-frozen-30s",
  30_000,
  true,
);
/** See the module documentation. */
export const workerApiserverFrozen120s: ChaosScenario = frozenWorker(
  "worker-apiserver-frozen-120s",
  120_000,
  false,
);
