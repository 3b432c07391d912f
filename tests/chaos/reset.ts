/**
 * The last resort between scenarios: what a scenario left behind and Kubeocean did not clean up
 * is removed by force (finalizers dropped, twins and copies deleted), so that the next scenario
 * starts from a clean world. Every object forced out is counted (as an orphan of the scenario
 * that left it).
 *
 * @module
 */

import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { ANNOTATION_VIRTUAL_POD_UID } from "../../controllers/common/names.ts";
import { BURST_LABEL, CHAOS_NAMESPACE } from "./burst.ts";
import { removeFuzzObjects } from "./fuzz/cleanup.ts";
import { listTwins, type MeasureTarget } from "./measure.ts";

/** Forces out leftover burst pods, their twins and fuzzed objects; returns how many objects it had to touch. */
export async function forceCleanup(target: MeasureTarget): Promise<number> {
  const vpods = new CoreV1Api(target.computing).pods(CHAOS_NAMESPACE);
  let forced = 0;
  for (const pod of (await vpods.list({ labelSelector: BURST_LABEL })).items) {
    const name = pod.metadata!.name!;
    if (!pod.metadata?.deletionTimestamp) await vpods.delete(name, { gracePeriodSeconds: 0 }).catch(() => {});
    if (pod.metadata?.finalizers?.length) {
      await vpods.patch(name, { metadata: { finalizers: null } }, { type: "merge" }).catch(() => {});
    }
    forced++;
  }
  const live = new Set(
    (await new CoreV1Api(target.computing).pods().list()).items.map((p) => p.metadata!.uid!),
  );
  const twins = new CoreV1Api(target.worker).pods(target.mountNamespace);
  for (const twin of await listTwins(target)) {
    if (live.has(twin.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_UID] ?? "")) continue;
    await twins.delete(twin.metadata!.name!, { gracePeriodSeconds: 0 }).catch(() => {});
    forced++;
  }
  forced += await removeFuzzObjects(target, { force: true });
  return forced;
}
