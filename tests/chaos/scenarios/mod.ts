/**
 * Every chaos scenario, in the order `deno task chaos` runs them. Add yours here (one file per
 * scenario, named after it, or per family of variants; see `../scenario.ts`). A scenario that
 * destroys the world goes last.
 *
 * @module
 */

import type { ChaosScenario } from "../scenario.ts";
import { computingApiserverRestart } from "./computing-apiserver-restart.ts";
import { etcdCompaction } from "./etcd-compaction.ts";
import { fuzzedInputs } from "./fuzzed-inputs.ts";
import { managerSigkillMidBurst } from "./manager-sigkill-mid-burst.ts";
import { policyDeletedWithPods } from "./policy-deleted-with-pods.ts";
import { syncerLeaderSigkill } from "./syncer-leader-sigkill.ts";
import { workerApiserverFrozen120s, workerApiserverFrozen30s } from "./worker-apiserver-frozen.ts";
import { workerGoneDuringDeletion } from "./worker-gone-during-deletion.ts";

/** The registered scenarios. */
export const SCENARIOS: ChaosScenario[] = [
  managerSigkillMidBurst,
  syncerLeaderSigkill,
  computingApiserverRestart,
  etcdCompaction,
  workerApiserverFrozen30s,
  workerApiserverFrozen120s,
  policyDeletedWithPods,
  fuzzedInputs,
  // Deletes the world's binding after stopping its worker for good: last.
  workerGoneDuringDeletion,
];
