/**
 * `etcd-compaction`: 150 pods (with ServiceAccount tokens, so token copies are made too) while
 * the ConfigMap they read changes every round and etcd of both clusters is compacted to its
 * current revision every round (about every 2 s) until the burst converges. Compaction does not
 * break a watch that is already streaming, so after the third round the worker's kube-apiserver is
 * restarted once: every watch then resumes from a revision that is compacted away and must get
 * 410 Gone and list again. Nothing may be lost or duplicated, and the worker's copy of the
 * ConfigMap must end with its last content. The row notes how many 410s the processes logged.
 *
 * @module
 */

import { CoreV1Api } from "../../../apis/core/v1/mod.ts";
import { ANNOTATION_VIRTUAL_NAME, ANNOTATION_VIRTUAL_NAMESPACE } from "../../../controllers/common/names.ts";
import { sleep } from "../../../toolkit/util/mod.ts";
import { BURST_CONFIGMAP, CHAOS_NAMESPACE } from "../burst.ts";
import { faultDuringBurst } from "../fault_burst.ts";
import { firstLine, poll } from "../poll.ts";
import type { ChaosScenario } from "../scenario.ts";

/** Log lines of a watch that got 410 Gone (the toolkit logs watch errors with the API's reason). */
const GONE = /\b410\b|Expired|too old resource version/i;

/** See the module documentation. */
export const etcdCompaction: ChaosScenario = {
  name: "etcd-compaction",
  quick: false,
  timeoutMs: 360_000,
  async run(world, signal) {
    const configmaps = new CoreV1Api(world.computing).configmaps(CHAOS_NAMESPACE);
    const goneBefore = await world.fleet.countInLogs(GONE);
    let rounds = 0;
    let lastMode = "";
    return await faultDuringBurst(world, signal, {
      name: "etcd",
      pods: 150,
      burst: { serviceAccountToken: true },
      fault() {
        let stop = false;
        let failure: unknown;
        const loop = (async () => {
          while (!stop && !signal.aborted) {
            rounds++;
            await Promise.all([world.computingCluster.compactEtcd(), world.workerCluster.compactEtcd()]);
            lastMode = `churn-${rounds}`;
            await configmaps.patch(BURST_CONFIGMAP, { data: { mode: lastMode } }, { type: "merge" });
            if (rounds === 3) await world.workerCluster.restartApiserver();
            await sleep(2_000, signal).catch(() => {});
          }
        })().catch((err) => failure = err);
        return Promise.resolve(async () => {
          stop = true;
          await loop;
          if (failure) throw failure;
        });
      },
      async check() {
        const problems: (string | undefined)[] = [];
        try {
          await poll("the worker's ConfigMap copy to hold the last change", async () => {
            const copies = await new CoreV1Api(world.worker).configmaps(world.mountNamespace).list();
            const copy = copies.items.find((c) =>
              c.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAME] === BURST_CONFIGMAP &&
              c.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAMESPACE] === CHAOS_NAMESPACE
            );
            return copy?.data?.mode === lastMode;
          }, { timeoutMs: 60_000, signal });
        } catch (err) {
          problems.push(`ConfigMap copy: ${firstLine(err)}`);
        }
        const gone = (await world.fleet.countInLogs(GONE)) - goneBefore;
        world.note(`${rounds} compactions of both clusters, ${gone} watch 410s logged`);
        return problems;
      },
    });
  },
};
