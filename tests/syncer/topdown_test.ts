/**
 * Top-down, end to end: the real kube-scheduler of the computing cluster places pods on virtual
 * nodes of two kwok workers; each binding's syncer (least-privilege worker ServiceAccount) creates
 * the twins with their ConfigMaps, Secrets, claims and service-account tokens and reflects status
 * back. One environment serves every concern's steps (`topdown/*_steps.ts`), in this order.
 */

import { envTest } from "../../toolkit/envtest/testing.ts";
import { DRIFT_STEPS } from "./topdown/drift_steps.ts";
import { LIFECYCLE_STEPS } from "./topdown/lifecycle_steps.ts";
import { POD_STEPS } from "./topdown/pods_steps.ts";
import { RESTART_STEPS } from "./topdown/restart_steps.ts";
import { CLUSTERS, TopDownScenario } from "./topdown/scenario.ts";
import { VOLUME_STEPS } from "./topdown/volume_steps.ts";

envTest("syncer top-down: pods and dependencies flow to two workers, status flows back", {
  clusters: CLUSTERS,
}, async (env, t) => {
  const scenario = await TopDownScenario.start(env);
  try {
    for (
      const step of [...POD_STEPS, ...LIFECYCLE_STEPS, ...VOLUME_STEPS, ...DRIFT_STEPS, ...RESTART_STEPS]
    ) {
      await t.step(step.name, () => step.run(scenario));
    }
  } finally {
    await scenario.stop();
  }
});
