/**
 * PersistentVolumeClaims: bound claims mirrored with their volumes, unbound ones keep their pod
 * Pending.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CoreV1Api, type Pod } from "../../../apis/core/v1/mod.ts";
import { virtualNodeName } from "../../../controllers/syncer/bottomup/vnode.ts";
import { isNotFound } from "../../../toolkit/client/errors.ts";
import { eventually } from "../../../toolkit/envtest/testing.ts";

import { NS, type Step } from "./scenario.ts";

/** The steps, in order. */
export const VOLUME_STEPS: Step[] = [
  {
    name:
      "a bound claim and its volume mirrored (Retain, pre-bound); an unbound claim keeps its pod Pending with a reason; unused copies removed",
    async run(s) {
      const { workers, vcore } = s;
      const wcore = new CoreV1Api(workers[0]);
      await vcore.persistentvolumes().create({
        metadata: { name: "data-pv" },
        spec: {
          capacity: { storage: "1Gi" },
          accessModes: ["ReadWriteOnce"],
          persistentVolumeReclaimPolicy: "Delete",
          storageClassName: "manual",
          csi: { driver: "csi.example.com", volumeHandle: "vol-data" },
        },
      });
      await vcore.persistentvolumeclaims("default").create({
        metadata: { name: "data" },
        spec: {
          accessModes: ["ReadWriteOnce"],
          resources: { requests: { storage: "1Gi" } },
          storageClassName: "manual",
          volumeName: "data-pv",
        },
      });
      await eventually(
        "the claim Bound in the computing cluster",
        async () => (await vcore.persistentvolumeclaims("default").get("data")).status?.phase === "Bound",
      );
      const withClaim = (name: string, claimName: string): Pod => ({
        metadata: { name },
        spec: {
          nodeName: virtualNodeName("w1", "worker1-node-1"),
          tolerations: [{ operator: "Exists" }],
          containers: [{
            name: "c",
            image: "registry.example/app:1",
            volumeMounts: [{ name: "data", mountPath: "/data" }],
          }],
          volumes: [{ name: "data", persistentVolumeClaim: { claimName } }],
        },
      });
      const pod = await vcore.pods("default").create(withClaim("with-claim", "data"));
      await eventually(
        "Running",
        async () => (await vcore.pods("default").get("with-claim")).status?.phase === "Running",
      );
      const [twin] = (await s.twinsOf(workers[0])).filter((p) =>
        p.metadata!.annotations!["kubeocean.io/virtual-pod-uid"] === pod.metadata!.uid
      );
      const copyName = twin.spec!.volumes!.find((v) => v.name === "data")!.persistentVolumeClaim!.claimName;
      assert.notEqual(copyName, "data");
      const copy = await eventually("the claim copy Bound in the worker", async () => {
        const c = await wcore.persistentvolumeclaims(NS).get(copyName);
        return c.status?.phase === "Bound" ? c : undefined;
      });
      assert.equal(copy.metadata!.annotations!["kubeocean.io/virtual-name"], "data");
      const volume = await wcore.persistentvolumes().get(copy.spec!.volumeName!);
      assert.equal(
        volume.spec!.persistentVolumeReclaimPolicy,
        "Retain",
        "deleting the copy never touches storage",
      );
      assert.equal(volume.spec!.claimRef!.namespace, NS);
      assert.equal(volume.spec!.claimRef!.name, copyName);
      assert.equal(volume.spec!.csi!.volumeHandle, "vol-data");
      assert.equal(volume.metadata!.labels!["kubeocean.io/cluster-binding"], "worker1");

      // A claim nothing binds: the pod waits, and says why.
      await vcore.persistentvolumeclaims("default").create({
        metadata: { name: "pending-claim" },
        spec: {
          accessModes: ["ReadWriteOnce"],
          resources: { requests: { storage: "1Gi" } },
          storageClassName: "nothing-provisions-this",
        },
      });
      const waiting = await vcore.pods("default").create(withClaim("waits-for-claim", "pending-claim"));
      const event = await eventually("WaitingForVolume Event", async () => {
        const events = await vcore.events("default").list({
          fieldSelector: "involvedObject.kind=Pod,involvedObject.name=waits-for-claim",
        });
        return events.items.find((e) => e.reason === "WaitingForVolume");
      });
      assert.equal(event.type, "Warning");
      assert.match(event.message ?? "", /pending-claim/);
      assert.equal((await vcore.pods("default").get("waits-for-claim")).status?.phase, "Pending");
      assert.equal(
        (await s.allTwins()).filter((p) =>
          p.metadata!.annotations!["kubeocean.io/virtual-pod-uid"] === waiting.metadata!.uid
        ).length,
        0,
        "no twin without its volume",
      );

      // No pod uses the claim any more: both copies go; the original claim and volume stay.
      await vcore.pods("default").delete("with-claim", { gracePeriodSeconds: 0 });
      await vcore.pods("default").delete("waits-for-claim", { gracePeriodSeconds: 0 });
      const gone = (get: () => Promise<unknown>) => get().then(() => false, (err) => isNotFound(err));
      await eventually(
        "claim and volume copies gone",
        async () =>
          await gone(() => wcore.persistentvolumeclaims(NS).get(copyName)) &&
          await gone(() => wcore.persistentvolumes().get(copy.spec!.volumeName!)),
        { timeoutMs: 90_000 },
      );
      assert.equal((await vcore.persistentvolumeclaims("default").get("data")).status?.phase, "Bound");
    },
  },
];
