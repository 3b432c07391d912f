/**
 * Building a twin from a virtual pod, and a virtual pod's status from its twin's: pure functions,
 * checked without a cluster (the end-to-end tests show them at work).
 */

import assert from "node:assert/strict";
import type { Pod } from "../../apis/core/v1/mod.ts";
import { comparableStatus, statusFromTwin } from "../../controllers/syncer/topdown/pod_status.ts";
import { buildTwin, type TwinContext } from "../../controllers/syncer/worker/twin.ts";

function virtualPod(): Pod {
  return {
    metadata: {
      name: "web-1",
      namespace: "shop",
      uid: "uid-1",
      labels: { app: "web" },
      annotations: {
        "team": "blue",
        "kubeocean.io/physical-pod-name": "old",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
      },
    },
    spec: {
      nodeName: "vnode-w1-node-a",
      priority: 1000,
      serviceAccountName: "shop-sa",
      nodeSelector: { disk: "ssd" },
      topologySpreadConstraints: [{ maxSkew: 1, topologyKey: "zone", whenUnsatisfiable: "DoNotSchedule" }],
      imagePullSecrets: [{ name: "registry" }],
      initContainers: [{ name: "init", image: "init:1", envFrom: [{ configMapRef: { name: "settings" } }] }],
      containers: [{
        name: "app",
        image: "app:1",
        env: [
          { name: "NODE", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
          { name: "PASSWORD", valueFrom: { secretKeyRef: { name: "db", key: "password" } } },
        ],
        volumeMounts: [
          { name: "config", mountPath: "/etc/app" },
          { name: "kube-api-access-abcde", mountPath: "/var/run/secrets/kubernetes.io/serviceaccount" },
        ],
      }],
      ephemeralContainers: [{ name: "debug", image: "busybox" }],
      volumes: [
        { name: "config", configMap: { name: "settings" } },
        { name: "tls", secret: { secretName: "certs" } },
        { name: "scratch", ephemeral: { volumeClaimTemplate: { spec: {} } } },
        {
          name: "info",
          downwardAPI: { items: [{ path: "node", fieldRef: { fieldPath: "spec.nodeName" } }] },
        },
        {
          name: "kube-api-access-abcde",
          projected: {
            sources: [
              { serviceAccountToken: { path: "token", expirationSeconds: 3607 } },
              { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
            ],
          },
        },
      ],
    },
  };
}

function context(extra: Partial<TwinContext> = {}): TwinContext {
  return {
    twinName: "shop-web-1-0123456789ab",
    mountNamespace: "mount",
    bindingName: "worker1",
    binding: {
      clusterID: "w1",
      mountNamespace: "mount",
      secretRef: { name: "k", namespace: "kubeocean-system" },
    },
    vnodeName: "vnode-w1-node-a",
    physicalNode: "node-a",
    configMaps: new Map([["settings", "shop-settings-aaaaaaaaaaaa"]]),
    secrets: new Map([["db", "shop-db-bbbbbbbbbbbb"], ["certs", "shop-certs-cccccccccccc"], [
      "registry",
      "shop-registry-dddddddddddd",
    ]]),
    tokenSecret: "kubeocean-sa-0123456789abcdef",
    ...extra,
  };
}

Deno.test("twin: identity, labels and annotations; system annotations stay behind; the virtual pod is not changed", () => {
  const pod = virtualPod();
  const before = structuredClone(pod);
  const { pod: twin } = buildTwin(pod, context());
  assert.deepEqual(pod, before, "the virtual pod is not mutated");
  assert.equal(twin.metadata!.name, "shop-web-1-0123456789ab");
  assert.equal(twin.metadata!.namespace, "mount");
  assert.deepEqual(twin.metadata!.labels, {
    app: "web",
    "kubeocean.io/managed-by": "kubeocean",
    "kubeocean.io/cluster-binding": "worker1",
    "kubeocean.io/virtual-namespace": "shop",
  });
  assert.deepEqual(twin.metadata!.annotations, {
    "kubeocean.io/virtual-pod-namespace": "shop",
    "kubeocean.io/virtual-pod-name": "web-1",
    "kubeocean.io/virtual-pod-uid": "uid-1",
    "kubeocean.io/virtual-node-name": "vnode-w1-node-a",
  });
});

Deno.test("twin: only allowlisted annotations cross; the binding can allow more, by key or prefix", () => {
  const pod = virtualPod();
  pod.metadata!.annotations = {
    ...pod.metadata!.annotations,
    "kubectl.kubernetes.io/default-container": "app",
    "prometheus.io/scrape": "true",
    "container.apparmor.security.beta.kubernetes.io/app": "unconfined",
    "example.com/owner": "shop",
  };
  const annotationsOf = (extra?: string[]) =>
    Object.keys(
      buildTwin(pod, { ...context(), binding: { ...context().binding, allowedAnnotations: extra } }).pod
        .metadata!
        .annotations!,
    ).filter((k) => !k.startsWith("kubeocean.io/")).sort();
  assert.deepEqual(annotationsOf(), ["kubectl.kubernetes.io/default-container", "prometheus.io/scrape"]);
  assert.deepEqual(annotationsOf(["team", "example.com/*"]), [
    "example.com/owner",
    "kubectl.kubernetes.io/default-container",
    "prometheus.io/scrape",
    "team",
  ]);
});

Deno.test("twin: pinned to the physical node by required affinity; the computing cluster's placement stays behind", () => {
  const { pod: twin } = buildTwin(virtualPod(), context());
  const spec = twin.spec!;
  assert.equal(spec.nodeName, undefined);
  assert.deepEqual(spec.affinity, {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [{ matchFields: [{ key: "metadata.name", operator: "In", values: ["node-a"] }] }],
      },
    },
  });
  assert.equal(spec.nodeSelector, undefined);
  assert.equal(spec.topologySpreadConstraints, undefined);
  assert.equal(spec.priority, undefined);
  assert.equal(spec.priorityClassName, "kubeocean-default");
  assert.equal(spec.schedulerName, "default-scheduler");
  assert.equal(spec.serviceAccountName, "default");
  assert.equal(spec.automountServiceAccountToken, false);
  assert.equal(spec.enableServiceLinks, false);

  const direct = buildTwin(virtualPod(), {
    ...context(),
    binding: { ...context().binding, directScheduling: true, podPriorityClassName: "lent" },
  }).pod.spec!;
  assert.equal(direct.nodeName, "node-a");
  assert.equal(direct.affinity, undefined);
  assert.equal(direct.priorityClassName, "lent");
});

Deno.test("twin: ConfigMaps, Secrets and pull secrets point at their copies; the token comes from its Secret", () => {
  const { pod: twin } = buildTwin(virtualPod(), context());
  const spec = twin.spec!;
  const volume = (name: string) => spec.volumes!.find((v) => v.name === name);
  assert.equal(volume("config")?.configMap?.name, "shop-settings-aaaaaaaaaaaa");
  assert.equal(volume("tls")?.secret?.secretName, "shop-certs-cccccccccccc");
  assert.deepEqual(volume("kube-api-access-abcde"), {
    name: "kube-api-access-abcde",
    secret: { secretName: "kubeocean-sa-0123456789abcdef", defaultMode: undefined },
  });
  assert.deepEqual(spec.imagePullSecrets, [{ name: "shop-registry-dddddddddddd" }]);
  assert.equal(spec.initContainers![0].envFrom![0].configMapRef!.name, "shop-settings-aaaaaaaaaaaa");
  const env = spec.containers[0].env!;
  assert.deepEqual(env.find((e) => e.name === "PASSWORD")?.valueFrom?.secretKeyRef, {
    name: "shop-db-bbbbbbbbbbbb",
    key: "password",
  });
  assert.equal(spec.containers[0].volumeMounts!.length, 2, "the token mount stays, now backed by the Secret");

  // Without a token Secret the token volume and its mounts go.
  const noToken = buildTwin(virtualPod(), context({ tokenSecret: undefined })).pod.spec!;
  assert.equal(noToken.volumes!.some((v) => v.name.startsWith("kube-api-access-")), false);
  assert.deepEqual(noToken.containers[0].volumeMounts!.map((m) => m.name), ["config"]);
});

Deno.test("twin: the node name reads the virtual node's; the API server endpoint points at the computing cluster", () => {
  const { pod: twin } = buildTwin(virtualPod(), {
    ...context(),
    binding: { ...context().binding, kubernetesEndpoint: { host: "10.1.2.3", port: 6443 } },
  });
  const spec = twin.spec!;
  const env = spec.containers[0].env!;
  assert.deepEqual(env.find((e) => e.name === "NODE"), { name: "NODE", value: "vnode-w1-node-a" });
  assert.deepEqual(env.filter((e) => e.name.startsWith("KUBERNETES_SERVICE_")), [
    { name: "KUBERNETES_SERVICE_HOST", value: "10.1.2.3" },
    { name: "KUBERNETES_SERVICE_PORT", value: "6443" },
  ]);
  const info = spec.volumes!.find((v) => v.name === "info")!;
  assert.equal(
    info.downwardAPI!.items![0].fieldRef!.fieldPath,
    "metadata.annotations['kubeocean.io/virtual-node-name']",
  );
});

Deno.test("twin: what cannot cross clusters is dropped and reported", () => {
  const { pod: twin, dropped } = buildTwin(virtualPod(), context());
  assert.deepEqual(dropped.sort(), ["ephemeral containers", "ephemeral volume scratch"]);
  assert.equal(twin.spec!.ephemeralContainers, undefined);
  assert.equal(twin.spec!.volumes!.some((v) => v.name === "scratch"), false);
  // A claim that was not mirrored is dropped with a reason (the pod controller never gets here).
  const withClaim = virtualPod();
  withClaim.spec!.volumes!.push({ name: "data", persistentVolumeClaim: { claimName: "data" } });
  assert.ok(
    buildTwin(withClaim, context()).dropped.includes(
      "persistentVolumeClaim volume data (its claim was not mirrored)",
    ),
  );
  const mirrored =
    buildTwin(withClaim, context({ claims: new Map([["data", "shop-data-eeeeeeeeeeee"]]) })).pod;
  assert.equal(
    mirrored.spec!.volumes!.find((v) => v.name === "data")?.persistentVolumeClaim?.claimName,
    "shop-data-eeeeeeeeeeee",
  );
});

Deno.test("status: a fresh twin says nothing yet; later ones flow back with the virtual node's address", () => {
  assert.equal(statusFromTwin(undefined, undefined, "10.0.0.1"), undefined);
  assert.equal(statusFromTwin({ phase: "Pending" }, undefined, "10.0.0.1"), undefined);
  const status = statusFromTwin(
    {
      phase: "Running",
      podIP: "192.168.0.4",
      hostIP: "172.16.0.9",
      conditions: [{ type: "Ready", status: "True" }],
    },
    { qosClass: "Burstable" },
    "10.0.0.1",
  )!;
  assert.equal(status.hostIP, "10.0.0.1");
  assert.deepEqual(status.hostIPs, [{ ip: "10.0.0.1" }]);
  assert.equal(status.qosClass, "Burstable", "kept when the twin has none");
  // Heartbeat-like changes (transition times) are not worth a write; a condition flip is.
  const later = {
    ...status,
    conditions: [{ type: "Ready", status: "True", lastProbeTime: "2026-12-02T10:00:00Z" }],
  };
  assert.equal(comparableStatus(later), comparableStatus(status));
  const flipped = { ...status, conditions: [{ type: "Ready", status: "False" }] };
  assert.notEqual(comparableStatus(flipped), comparableStatus(status));
});
