/**
 * Lifecycle edges: scaling to 0, a finished Job, a pod deleted and re-created under the same name.
 *
 * @module
 */

import assert from "node:assert/strict";
import { BatchV1Api } from "../../../apis/batch/v1/mod.ts";
import { CoreV1Api, type Pod } from "../../../apis/core/v1/mod.ts";
import { virtualNodeName } from "../../../controllers/syncer/bottomup/vnode.ts";
import { isNotFound } from "../../../toolkit/client/errors.ts";
import { eventually } from "../../../toolkit/envtest/testing.ts";

import { MANAGED, NS, running, type Step, template } from "./scenario.ts";
import { completeTwin } from "../fixture.ts";

/** The steps, in order. */
export const LIFECYCLE_STEPS: Step[] = [
  {
    name: "scaled to 0 → every twin and the now-unused copies gone",
    async run(s) {
      const { workers, vcore, apps } = s;
      await apps.deployments("default").patch("web", { spec: { replicas: 0 } }, { type: "merge" });
      await eventually(
        "no virtual pods left running",
        async () => running(await s.virtualPods("web")).length === 0,
        {
          timeoutMs: 120_000,
          intervalMs: 1_000,
        },
      );
      // The failed pod of the previous step is not deleted by its ReplicaSet; delete it as a user would.
      for (const p of await s.virtualPods("web")) {
        await vcore.pods("default").delete(p.metadata!.name!).catch((err) =>
          isNotFound(err) ? undefined : Promise.reject(err)
        );
      }
      await eventually("no twins", async () => (await s.allTwins()).length === 0, { timeoutMs: 60_000 });
      let left: string[] = [];
      await eventually("no ConfigMap or Secret copies", async () => {
        left = [];
        for (const w of workers) {
          const core = new CoreV1Api(w);
          const cms = (await core.configmaps(NS).list({ labelSelector: MANAGED })).items;
          const secrets = (await core.secrets(NS).list({ labelSelector: MANAGED })).items
            .filter((s) => s.metadata!.annotations?.["kubeocean.io/virtual-name"]);
          left.push(...[...cms, ...secrets].map((o) => `${o.kind ?? ""} ${o.metadata!.name}`));
        }
        return left.length === 0;
      }, { timeoutMs: 90_000 }).catch((err) => {
        throw new Error(`${err.message}; left: ${left.slice(0, 10).join(", ")} (${left.length})`);
      });
    },
  },
  {
    name: "a finished Job's pod stays Succeeded when its twin disappears",
    async run(s) {
      const { computing, workers, vcore, syncers } = s;
      const jobs = new BatchV1Api(computing).jobs("default");
      const spec = template("job");
      await jobs.create({
        metadata: { name: "once" },
        spec: { template: { ...spec, spec: { ...spec.spec, restartPolicy: "Never" } }, backoffLimit: 0 },
      });
      const pod = await eventually("job pod Running", async () => running(await s.virtualPods("job"))[0]);
      const twinName = pod.metadata!.annotations!["kubeocean.io/physical-pod-name"];
      const worker = workers[pod.spec!.nodeName!.startsWith("vnode-w1-") ? 0 : 1];
      const wcore = new CoreV1Api(worker);
      // Play the kubelet: the container exits 0 (kwok completes only pods a Job owns directly).
      await completeTwin(worker, NS, twinName);
      await eventually(
        "virtual pod Succeeded",
        async () => (await vcore.pods("default").get(pod.metadata!.name!)).status?.phase === "Succeeded",
      );
      await wcore.pods(NS).delete(twinName, { gracePeriodSeconds: 0 });
      await eventually(
        "twin gone",
        async () => !(await s.twinsOf(worker)).some((p) => p.metadata!.name === twinName),
      );
      for (const s of syncers) await s!.audit();
      await new Promise((r) => setTimeout(r, 2_000));
      assert.equal((await vcore.pods("default").get(pod.metadata!.name!)).status?.phase, "Succeeded");
      await eventually(
        "Job complete",
        async () => (await jobs.get("once")).status?.succeeded === 1,
      );
    },
  },
  {
    name: "delete and at once re-create a pod of the same name → exactly one twin, of the new UID",
    async run(s) {
      const { workers, vcore } = s;
      const body = (): Pod => ({
        metadata: { name: "same-name", labels: { app: "same" } },
        spec: {
          nodeName: virtualNodeName("w1", "worker1-node-1"),
          tolerations: [{ operator: "Exists" }],
          containers: [{ name: "c", image: "registry.example/app:1" }],
        },
      });
      const first = await vcore.pods("default").create(body());
      await eventually(
        "first Running",
        async () => (await vcore.pods("default").get("same-name")).status?.phase === "Running",
      );
      await vcore.pods("default").delete("same-name", { gracePeriodSeconds: 0 });
      let second: Pod | undefined;
      await eventually("re-created", async () => {
        try {
          second = await vcore.pods("default").create(body());
          return true;
        } catch {
          return false; // the old one is still finishing (our finalizer)
        }
      }, { intervalMs: 20 });
      assert.notEqual(second!.metadata!.uid, first.metadata!.uid);
      await eventually("second Running", async () => {
        const p = await vcore.pods("default").get("same-name");
        return p.metadata!.uid === second!.metadata!.uid && p.status?.phase === "Running";
      });
      const twins = (await s.twinsOf(workers[0])).filter((p) =>
        p.metadata!.annotations!["kubeocean.io/virtual-pod-name"] === "same-name"
      );
      assert.equal(twins.length, 1);
      assert.equal(twins[0].metadata!.annotations!["kubeocean.io/virtual-pod-uid"], second!.metadata!.uid);
      await vcore.pods("default").delete("same-name");
    },
  },
];
