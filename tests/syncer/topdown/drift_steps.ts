/**
 * Drift: orphan twins removed at once and by the audit, never a pod Kubeocean did not create.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CoreV1Api } from "../../../apis/core/v1/mod.ts";

import { isNotFound } from "../../../toolkit/client/errors.ts";
import { eventually } from "../../../toolkit/envtest/testing.ts";

import { NS, type Step } from "./scenario.ts";

/** The steps, in order. */
export const DRIFT_STEPS: Step[] = [
  {
    name: "orphan twins removed (at once, and by the drift audit); a non-Kubeocean pod untouched",
    async run(s) {
      const { workers, syncers } = s;
      const wcore = new CoreV1Api(workers[0]);
      const labels = { "kubeocean.io/managed-by": "kubeocean", "kubeocean.io/cluster-binding": "worker1" };
      const spec = {
        nodeName: "worker1-node-2",
        containers: [{ name: "c", image: "registry.example/app:1" }],
      };
      // Its virtual pod default/gone does not exist: the pod controller removes it at once.
      const orphan = await wcore.pods(NS).create({
        metadata: {
          name: "default-gone-0123456789ab",
          labels,
          annotations: {
            "kubeocean.io/virtual-pod-namespace": "default",
            "kubeocean.io/virtual-pod-name": "gone",
            "kubeocean.io/virtual-pod-uid": crypto.randomUUID(),
          },
        },
        spec,
      });
      // Only the UID says whose it is (nothing maps it to a virtual pod): only the audit finds it.
      const uidOnly = await wcore.pods(NS).create({
        metadata: {
          name: "default-lost-0123456789ab",
          labels,
          annotations: { "kubeocean.io/virtual-pod-uid": crypto.randomUUID() },
        },
        spec,
      });
      await wcore.pods(NS).create({ metadata: { name: "not-ours" }, spec });
      const gone = (name: string) => async () => {
        try {
          const p = await wcore.pods(NS).get(name);
          return !!p.metadata?.deletionTimestamp;
        } catch (err) {
          return isNotFound(err);
        }
      };
      await eventually("the orphan of a missing virtual pod gone", gone(orphan.metadata!.name!));
      await eventually(
        "the syncer's cache sees the others",
        () =>
          syncers[0]!.ctx.physicalPodInformer.store.get(`${NS}/not-ours`) &&
          syncers[0]!.ctx.physicalPodInformer.store.get(`${NS}/${uidOnly.metadata!.name}`),
      );
      assert.ok(await gone(uidOnly.metadata!.name!)() === false, "the controller left it to the audit");
      const removed = await syncers[0]!.audit();
      assert.ok(removed >= 1);
      await eventually("the audit removed it", gone(uidOnly.metadata!.name!));
      const kept = await wcore.pods(NS).get("not-ours");
      assert.equal(kept.metadata!.deletionTimestamp, undefined);
    },
  },
];
