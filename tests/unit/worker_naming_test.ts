/**
 * Names of worker objects and the dependency keys of pods: pure functions, checked without a
 * cluster (the end-to-end tests show them at work).
 */

import assert from "node:assert/strict";
import type { Pod } from "../../apis/core/v1/mod.ts";
import {
  mirroredName,
  mirroredVolumeName,
  tokenSecretName,
  twinName,
} from "../../controllers/syncer/worker/naming.ts";
import { dependencyKeys } from "../../controllers/syncer/worker/references.ts";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

Deno.test("twin names: deterministic, valid DNS labels, different for a re-created pod of the same name", async () => {
  const a = await twinName("default", "web-7d9c", "uid-1");
  assert.equal(a, await twinName("default", "web-7d9c", "uid-1"));
  assert.notEqual(a, await twinName("default", "web-7d9c", "uid-2"), "the UID fences the name");
  assert.match(a, /^default-web-7d9c-[0-9a-f]{12}$/);
  const long = await twinName("a-very-long-namespace-name", "x".repeat(200) + ".-", "uid");
  assert.ok(long.length <= 53, long);
  assert.match(long, DNS_LABEL);
});

Deno.test("mirrored names: one per binding, kind and object; volumes per mount namespace; tokens per pod", async () => {
  const cm = await mirroredName("worker1", "ConfigMap", "ns", "config");
  assert.notEqual(cm, await mirroredName("worker1", "Secret", "ns", "config"));
  assert.notEqual(cm, await mirroredName("worker1", "PersistentVolumeClaim", "ns", "config"));
  assert.notEqual(
    cm,
    await mirroredName("worker2", "ConfigMap", "ns", "config"),
    "two bindings never share a copy",
  );
  assert.equal(cm, await mirroredName("worker1", "ConfigMap", "ns", "config"));
  const pv = await mirroredVolumeName("kubeocean-worker", "pvc-1234");
  assert.match(pv, /^kubeocean-pv-pvc-1234-[0-9a-f]{12}$/);
  assert.notEqual(pv, await mirroredVolumeName("other-mount", "pvc-1234"), "two bindings of one worker");
  assert.ok((await mirroredVolumeName("m", "v".repeat(253))).length < 70);
  const token = await tokenSecretName("worker1", "ns", "pod", "uid-1");
  assert.match(token, /^kubeocean-sa-[0-9a-f]{16}$/);
  assert.notEqual(token, await tokenSecretName("worker1", "ns", "pod", "uid-2"), "bound to one incarnation");
});

Deno.test("dependency keys cover volumes, projected sources, env, envFrom, pull secrets, claims and the token", () => {
  const pod: Pod = {
    metadata: { namespace: "app", name: "p" },
    spec: {
      serviceAccountName: "runner",
      imagePullSecrets: [{ name: "registry" }],
      initContainers: [{ name: "init", image: "i", envFrom: [{ configMapRef: { name: "init-env" } }] }],
      containers: [{
        name: "c",
        image: "i",
        env: [{ name: "PASSWORD", valueFrom: { secretKeyRef: { name: "db", key: "password" } } }],
      }],
      volumes: [
        { name: "config", configMap: { name: "settings" } },
        {
          name: "kube-api-access-abcde",
          projected: {
            sources: [{ serviceAccountToken: { path: "token" } }, {
              configMap: { name: "kube-root-ca.crt" },
            }],
          },
        },
        { name: "data", persistentVolumeClaim: { claimName: "data" } },
      ],
    },
  };
  assert.deepEqual(
    new Set(dependencyKeys(pod)),
    new Set([
      "ConfigMap/app/settings",
      "ConfigMap/app/init-env",
      "Secret/app/db",
      "Secret/app/registry",
      "Token/app/p",
      "PersistentVolumeClaim/app/data",
    ]),
  );
});
