/**
 * Pods with their ConfigMaps, Secrets and ServiceAccount tokens: created, kept current, their events
 * and their loss shown on the virtual pod.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CoreV1Api } from "../../../apis/core/v1/mod.ts";

import { eventually } from "../../../toolkit/envtest/testing.ts";

import { MANAGED, NS, running, type Step, template } from "./scenario.ts";

/** The steps, in order. */
export const POD_STEPS: Step[] = [
  {
    name:
      "100 replicas with a ConfigMap volume, a Secret env var and a ServiceAccount: 100 Running, one twin each, on both workers",
    async run(s) {
      const { workers, apps } = s;
      const spec = template("web", { serviceAccountName: "app-sa" });
      spec.spec.containers[0] = {
        ...spec.spec.containers[0],
        env: [{ name: "TOKEN", valueFrom: { secretKeyRef: { name: "app-secret", key: "token" } } }],
        volumeMounts: [{ name: "config", mountPath: "/etc/app" }],
      };
      await apps.deployments("default").create({
        metadata: { name: "web" },
        spec: {
          replicas: 100,
          selector: { matchLabels: { app: "web" } },
          template: {
            ...spec,
            spec: { ...spec.spec, volumes: [{ name: "config", configMap: { name: "app-config" } }] },
          },
        },
      });
      await eventually(
        "100 Running virtual pods",
        async () => running(await s.virtualPods("web")).length === 100,
        {
          timeoutMs: 180_000,
          intervalMs: 1_000,
        },
      );
      await s.assertOneTwinEach("web");
      const perWorker = await Promise.all(workers.map(s.twinsOf.bind(s)));
      assert.ok(
        perWorker.every((twins) => twins.length >= 40),
        `spread: ${perWorker.map((p) => p.length)}`,
      );
      // The twin carries the mirrored ConfigMap, Secret and a projected token for app-sa.
      const twin = perWorker[0][0];
      const volumes = JSON.stringify(twin.spec!.volumes);
      const cms = (await new CoreV1Api(workers[0]).configmaps(NS).list({ labelSelector: MANAGED })).items;
      const copy = cms.find((c) => c.metadata!.annotations!["kubeocean.io/virtual-name"] === "app-config");
      assert.ok(copy, "ConfigMap mirrored");
      assert.equal(copy.data!.mode, "one");
      assert.ok(volumes.includes(copy.metadata!.name!), "the twin mounts the copy");
      const env = JSON.stringify(twin.spec!.containers[0].env);
      assert.ok(!env.includes('"app-secret"'), "the Secret reference is mapped");
      assert.ok(twin.spec!.automountServiceAccountToken === false, "no worker token is mounted");
      assert.ok(env.includes("KUBERNETES_SERVICE_HOST"), "points at the computing cluster");
    },
  },
  {
    name: "the ConfigMap edited in the computing cluster → the copies updated",
    async run(s) {
      const { workers, vcore } = s;
      await vcore.configmaps("default").patch("app-config", { data: { mode: "two" } }, { type: "merge" });
      await eventually("copies updated in both workers", async () => {
        const lists = await Promise.all(
          workers.map((w) => new CoreV1Api(w).configmaps(NS).list({ labelSelector: MANAGED })),
        );
        return lists.every((l) =>
          l.items.some((c) =>
            c.metadata!.annotations!["kubeocean.io/virtual-name"] === "app-config" && c.data?.mode === "two"
          )
        );
      });
    },
  },
  {
    name: "an Event about a twin in the worker shows on its virtual pod (kubectl describe)",
    async run(s) {
      const { workers, vcore } = s;
      const twin = (await s.twinsOf(workers[0]))[0];
      const virtualName = twin.metadata!.annotations!["kubeocean.io/virtual-pod-name"];
      const now = new Date().toISOString();
      // What a kubelet would report, e.g. a failing image pull.
      await new CoreV1Api(workers[0]).events(NS).create({
        metadata: { generateName: "twin-event-" },
        involvedObject: {
          apiVersion: "v1",
          kind: "Pod",
          namespace: NS,
          name: twin.metadata!.name!,
          uid: twin.metadata!.uid!,
          fieldPath: "spec.containers{app}",
        },
        reason: "BackOff",
        message: "Back-off pulling image registry.example/app:1",
        type: "Warning",
        source: { component: "kubelet" },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      });
      const seen = await eventually("the Event on the virtual pod", async () => {
        const events = await vcore.events("default").list({
          fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${virtualName}`,
        });
        return events.items.find((e) => e.reason === "BackOff");
      });
      assert.equal(seen.type, "Warning");
      assert.equal(seen.involvedObject.uid, twin.metadata!.annotations!["kubeocean.io/virtual-pod-uid"]);
      assert.match(seen.message ?? "", /Back-off pulling image/);
      assert.match(seen.message ?? "", /w1/);
    },
  },
  {
    name: "a twin deleted in the worker → the virtual pod fails with a reason and its ReplicaSet replaces it",
    async run(s) {
      const { workers, vcore } = s;
      const twin = (await s.twinsOf(workers[1]))[0];
      const virtualName = twin.metadata!.annotations!["kubeocean.io/virtual-pod-name"];
      await new CoreV1Api(workers[1]).pods(NS).delete(twin.metadata!.name!, { gracePeriodSeconds: 0 });
      const failed = await eventually("virtual pod Failed", async () => {
        const p = await vcore.pods("default").get(virtualName).catch(() => undefined);
        return p?.status?.phase === "Failed" ? p : undefined;
      });
      assert.equal(failed.status!.reason, "WorkerPodDeleted");
      assert.match(failed.status!.message!, /worker2|w2/);
      await eventually("100 Running again", async () => running(await s.virtualPods("web")).length === 100, {
        timeoutMs: 60_000,
      });
      await s.assertOneTwinEach("web");
    },
  },
];
