/**
 * `syncer-leader-sigkill`: 150 pods; mid-burst the syncer process holding the Lease
 * `kubeocean-syncer-worker` is SIGKILLed. The standby must take the Lease, every pod must run with
 * exactly one twin, and a replacement standby is started afterwards (it must be alive and not lead).
 *
 * Takeover is timed from the kill to the Lease naming the standby. A crashed leader releases
 * nothing, so a standby with client-go's semantics (toolkit/runtime/leader_election.ts) acquires
 * only once the lease has not changed for its duration *as observed locally*: it may have observed
 * the last renewal up to one retry period after it happened, and notices the expiry at its next
 * retry — each retry period is 2 s plus up to 20 % jitter. The bound is therefore the Lease's
 * `leaseDurationSeconds` plus two such retry periods; more than that is a failure.
 *
 * @module
 */

import { CoordinationK8sIoV1Api } from "../../../apis/coordination.k8s.io/v1/mod.ts";
import { faultDuringBurst } from "../fault_burst.ts";
import { firstLine, poll, seconds } from "../poll.ts";
import type { ChaosScenario } from "../scenario.ts";

/** The toolkit elector's retry period with its largest jitter (2 s × 1.2). */
const RETRY_PERIOD_MS = 2_400;

/** See the module documentation. */
export const syncerLeaderSigkill: ChaosScenario = {
  name: "syncer-leader-sigkill",
  quick: true,
  timeoutMs: 300_000,
  async run(world, signal) {
    let takeoverMs = 0;
    let leaseMs = 0;
    let replacement: ReturnType<typeof world.fleet.spawn> | undefined;
    const leases = new CoordinationK8sIoV1Api(world.computing).leases(world.namespace);
    const leaseName = world.fleet.leaseName("syncer");
    return await faultDuringBurst(world, signal, {
      name: "syn",
      pods: 150,
      async fault() {
        const leader = await world.fleet.leader("syncer");
        if (!leader) throw new Error(`no live syncer holds the Lease ${leaseName} before the fault`);
        leaseMs = ((await leases.get(leaseName)).spec?.leaseDurationSeconds ?? 15) * 1000;
        const killedAt = Date.now();
        await leader.kill("SIGKILL");
        const standby = await poll("the standby to take the Lease", async () => {
          const next = await world.fleet.leader("syncer");
          return next && next.identity !== leader.identity ? next : undefined;
        }, { timeoutMs: 120_000, intervalMs: 100, signal });
        takeoverMs = Date.now() - killedAt;
        world.note(`takeover ${seconds(takeoverMs)} s by ${standby.identity} (lease ${leaseMs / 1000} s)`);
        replacement = world.fleet.spawn("syncer");
      },
      async check() {
        const problems: (string | undefined)[] = [];
        const bound = leaseMs + 2 * RETRY_PERIOD_MS;
        if (takeoverMs > bound) {
          problems.push(
            `takeover took ${seconds(takeoverMs)} s, more than the lease duration ${
              leaseMs / 1000
            } s + two retry periods`,
          );
        }
        if (replacement) {
          const standby = replacement;
          try {
            await poll("the replacement standby alive", () => world.fleet.isAlive(standby), {
              timeoutMs: 60_000,
              signal,
            });
            if ((await world.fleet.leaderIdentity("syncer")) === standby.identity) {
              problems.push(`the replacement ${standby.identity} took the Lease from a live leader`);
            }
          } catch (err) {
            problems.push(firstLine(err));
          }
        }
        return problems;
      },
    });
  },
};
