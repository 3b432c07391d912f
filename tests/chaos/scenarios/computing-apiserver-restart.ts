/**
 * `computing-apiserver-restart`: 150 pods; mid-burst the computing cluster's kube-apiserver is
 * stopped and started again on the same port (etcd keeps the data; every watch breaks and resumes
 * against a fresh watch cache). Everything must converge; the binding must be healthy afterwards.
 * Processes that exit meanwhile (e.g. a leader that could not renew within its deadline) are
 * restarted by the world, as a kubelet would, and named in the row.
 *
 * @module
 */

import { faultDuringBurst } from "../fault_burst.ts";
import { firstLine, poll, seconds } from "../poll.ts";
import type { ChaosScenario } from "../scenario.ts";

/** See the module documentation. */
export const computingApiserverRestart: ChaosScenario = {
  name: "computing-apiserver-restart",
  quick: false,
  timeoutMs: 360_000,
  async run(world, signal) {
    return await faultDuringBurst(world, signal, {
      name: "api",
      pods: 150,
      async fault() {
        const stoppedAt = Date.now();
        await world.computingCluster.restartApiserver();
        world.note(`API server away ${seconds(Date.now() - stoppedAt)} s`);
      },
      async check() {
        try {
          await poll("the binding healthy", async () => !await world.bindingProblem(), {
            timeoutMs: 90_000,
            signal,
          });
          return [];
        } catch {
          return [`binding after the restart: ${await world.bindingProblem().catch(firstLine)}`];
        }
      },
    });
  },
};
