/**
 * `manager-sigkill-mid-burst`: 150 pods; mid-burst the leading manager is SIGKILLed (no lease
 * release) and a replacement started. Pods never depend on the manager, so all must run 1:1; the
 * standby (or the replacement) must take the `kubeocean-manager` Lease, and the binding must
 * stay or return Ready.
 *
 * @module
 */

import { faultDuringBurst } from "../fault_burst.ts";
import { firstLine, poll } from "../poll.ts";
import type { ChaosScenario } from "../scenario.ts";

/** See the module documentation. */
export const managerSigkillMidBurst: ChaosScenario = {
  name: "manager-sigkill-mid-burst",
  quick: true,
  timeoutMs: 300_000,
  async run(world, signal) {
    let killed = "";
    return await faultDuringBurst(world, signal, {
      name: "mgr",
      pods: 150,
      async fault() {
        const leader = await world.fleet.leader("manager");
        if (!leader) throw new Error("no live manager holds the kubeocean-manager Lease before the fault");
        killed = leader.identity;
        await leader.kill("SIGKILL");
        world.fleet.spawn("manager");
      },
      async check() {
        const problems: (string | undefined)[] = [];
        try {
          const leader = await poll("another live manager to hold the Lease", async () => {
            const l = await world.fleet.leader("manager");
            return l && l.identity !== killed ? l : undefined;
          }, { timeoutMs: 60_000, intervalMs: 500, signal });
          world.note(`${killed} killed, ${leader.identity} leads`);
        } catch (err) {
          problems.push(firstLine(err));
        }
        try {
          await poll("the binding healthy", async () => !await world.bindingProblem(), {
            timeoutMs: 60_000,
            signal,
          });
        } catch {
          problems.push(`binding after the kill: ${await world.bindingProblem().catch(firstLine)}`);
        }
        return problems;
      },
    });
  },
};
