/**
 * `policy-deleted-with-pods`: 60 pods run on the `main` virtual nodes; the policy lending them
 * (`chaos-main`, without `forceReclaim`) is deleted. Unleasing is graceful: every virtual node is
 * cordoned, no pod is evicted or loses its twin (checked for 20 s), and once the pods are deleted
 * the virtual nodes go. The policy is then restored and the nodes must come back Ready.
 *
 * @module
 */

import { KubeoceanIoV1beta1Api, type ResourceLeasingPolicy } from "../../../apis/kubeocean.io/v1beta1/mod.ts";
import { sleep } from "../../../toolkit/util/mod.ts";
import { applyPolicy } from "../../syncer/fixture.ts";
import { auditProblems } from "../fault_burst.ts";
import { firstLine, poll } from "../poll.ts";
import { type ChaosScenario, Failures } from "../scenario.ts";

const POLICY = "chaos-main";

/** See the module documentation. */
export const policyDeletedWithPods: ChaosScenario = {
  name: "policy-deleted-with-pods",
  quick: true,
  timeoutMs: 360_000,
  async run(world, signal) {
    const failures = new Failures();
    const policies = new KubeoceanIoV1beta1Api(world.worker).resourceleasingpolicies();
    const policy: ResourceLeasingPolicy = await policies.get(POLICY);
    const burst = world.startBurst("pol", 60, signal);
    const started = await world.converge(burst, signal);
    if (!started.settled) failures.add(`the burst did not start: ${started.summary}`);
    const deletedAt = Date.now();
    await policies.delete(POLICY);
    let convergedMs = 0;
    let outcome = { lost: 0, duplicates: 0, orphans: 0 };
    try {
      await poll("every virtual node cordoned", async () => {
        const nodes = await world.virtualNodes();
        return nodes.length > 0 && nodes.every((n) => n.spec?.unschedulable);
      }, { timeoutMs: 30_000, signal });
      convergedMs = Date.now() - deletedAt;
      // Without forceReclaim the pods run on: nothing is lost while the nodes stay cordoned.
      await sleep(20_000, signal);
      const during = await world.audit([burst]);
      if ((await world.virtualNodes()).length === 0) {
        failures.add("virtual nodes removed while their pods ran");
      }
      const after = await world.drain(burst, signal);
      failures.add(auditProblems(during, after));
      outcome = { lost: during.lost, duplicates: during.duplicates, orphans: after.orphans };
      await poll(
        "the virtual nodes removed after their pods ended",
        async () => (await world.virtualNodes()).length === 0,
        { timeoutMs: 60_000, signal },
      );
    } catch (err) {
      failures.add(firstLine(err));
    } finally {
      await applyPolicy(world.worker, POLICY, policy.spec);
    }
    await poll("the virtual nodes back and Ready", async () => {
      const nodes = await world.virtualNodes();
      return nodes.length > 0 &&
        nodes.every((n) =>
          !n.spec?.unschedulable &&
          n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
        );
    }, { timeoutMs: 90_000, signal }).catch((err) => failures.add(firstLine(err)));
    return { ...outcome, convergedMs, failure: failures.text };
  },
};
