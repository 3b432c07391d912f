/**
 * A computing-cluster tenant cannot escape into a worker: the worker's Pod Security level holds
 * (checked by the syncer, enforced by the worker's own API server), two computing clusters bound to
 * one worker never share a mount namespace nor touch each other's copies, and a twin's
 * ServiceAccount token dies with its virtual pod. On real clusters, with the syncers using the
 * least-privilege worker credentials `bind` mints.
 */

import assert from "node:assert/strict";
import { CoreV1Api, type Pod, type PodSpec } from "../../apis/core/v1/mod.ts";
import { KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { virtualNodeName } from "../../controllers/syncer/bottomup/vnode.ts";
import type { Syncer } from "../../controllers/syncer/syncer.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { ApiError, isNotFound } from "../../toolkit/client/errors.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";
import { applyPolicy, bindWorker, type BoundWorker, startSyncer } from "../syncer/fixture.ts";

const MANAGED = "kubeocean.io/managed-by=kubeocean";

/** A pod bound to a virtual node, with `spec` merged in. */
function podOn(
  node: string,
  name: string,
  spec: Partial<PodSpec> = {},
  container: PodSpec["containers"][0] = {
    name: "app",
    image: "registry.example/app:1",
  },
): Pod {
  return {
    metadata: { name },
    spec: { nodeName: node, tolerations: [{ operator: "Exists" }], containers: [container], ...spec },
  };
}

envTest("security: tenants stay inside what the worker granted", {
  clusters: [
    { name: "computing", controlPlane: true },
    { name: "computing2", controlPlane: true },
    { name: "worker", nodes: 2 },
  ],
}, async (env, t) => {
  const computing = await connect(env.cluster("computing"));
  const computing2 = await connect(env.cluster("computing2"));
  const worker = await connect(env.cluster("worker"));
  const wcore = new CoreV1Api(worker);
  const bound: BoundWorker[] = [];
  const syncers: Syncer[] = [];
  const vnodeA = virtualNodeName("wa", "worker-node-1");
  const vnodeB = virtualNodeName("wb", "worker-node-1");
  const ready = (client: KubeClient, node: string) =>
    eventually(`${node} Ready`, async () => {
      const n = await new CoreV1Api(client).nodes().get(node).catch(() => undefined);
      return n?.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");
    }, { timeoutMs: 60_000 });
  const twinsIn = async (namespace: string) =>
    (await wcore.pods(namespace).list({ labelSelector: MANAGED })).items;
  const warnings = async (client: KubeClient, pod: string) =>
    (await new CoreV1Api(client).events("default").list({
      fieldSelector: `involvedObject.name=${pod},type=Warning`,
    })).items;

  try {
    await t.step(
      "a mount namespace belongs to one binding: a second computing cluster is refused",
      async () => {
        const a = await bindWorker(computing, worker, {
          name: "tenant-a",
          clusterID: "wa",
          mountNamespace: "tenant-a",
        });
        bound.push(a);
        await applyPolicy(worker, "lend-a", { cluster: "tenant-a" });
        syncers.push(startSyncer(computing, a));
        await assert.rejects(
          bindWorker(computing2, worker, { name: "tenant-b", clusterID: "wb", mountNamespace: "tenant-a" }),
          /--mount-namespace: namespace tenant-a of the worker is already bound/,
        );
        const namespace = await wcore.namespaces().get("tenant-a");
        assert.equal(namespace.metadata!.labels!["pod-security.kubernetes.io/enforce"], "baseline");
        const b = await bindWorker(computing2, worker, {
          name: "tenant-b",
          clusterID: "wb",
          mountNamespace: "tenant-b",
          podSecurity: "restricted",
        });
        bound.push(b);
        await applyPolicy(worker, "lend-b", { cluster: "tenant-b" });
        syncers.push(startSyncer(computing2, b));
        await ready(computing, vnodeA);
        await ready(computing2, vnodeB);
      },
    );

    await t.step(
      "pods that would escalate in the worker stay Pending with a Warning naming the field; a compliant one runs",
      async () => {
        const escalating: [string, Pod, RegExp][] = [
          [
            "privileged",
            podOn(vnodeA, "privileged", {}, {
              name: "app",
              image: "i",
              securityContext: { privileged: true },
            }),
            /securityContext\.privileged=true/,
          ],
          ["host-network", podOn(vnodeA, "host-network", { hostNetwork: true }), /spec\.hostNetwork=true/],
          ["host-pid", podOn(vnodeA, "host-pid", { hostPID: true }), /spec\.hostPID=true/],
          ["host-ipc", podOn(vnodeA, "host-ipc", { hostIPC: true }), /spec\.hostIPC=true/],
          [
            "host-path",
            podOn(vnodeA, "host-path", { volumes: [{ name: "root", hostPath: { path: "/" } }] }),
            /spec\.volumes\[name=root\]\.hostPath/,
          ],
          [
            "sys-admin",
            podOn(vnodeA, "sys-admin", {}, {
              name: "app",
              image: "i",
              securityContext: { capabilities: { add: ["SYS_ADMIN"] } },
            }),
            /capabilities\.add=SYS_ADMIN/,
          ],
          [
            "host-port",
            podOn(vnodeA, "host-port", {}, {
              name: "app",
              image: "i",
              ports: [{ containerPort: 80, hostPort: 8080 }],
            }),
            /hostPort=8080/,
          ],
        ];
        const pods = new CoreV1Api(computing).pods("default");
        for (const [, pod] of escalating) await pods.create(pod);
        await pods.create(podOn(vnodeA, "compliant"));
        await eventually(
          "the compliant pod Running",
          async () => (await pods.get("compliant")).status?.phase === "Running",
          {
            timeoutMs: 60_000,
          },
        );
        for (const [name, , field] of escalating) {
          const warning = await eventually(
            `a Warning on ${name}`,
            async () => (await warnings(computing, name)).find((e) => e.reason === "PodSecurity"),
          );
          assert.match(warning.message ?? "", field, name);
          assert.match(warning.message ?? "", /enforces Pod Security "baseline"/, name);
          const pod = await pods.get(name);
          assert.equal(pod.status?.phase, "Pending", name);
          const condition = pod.status?.conditions?.find((c) => c.type === "kubeocean.io/WorkerAdmitted");
          assert.equal(condition?.status, "False", name);
          assert.match(condition?.message ?? "", field, name);
        }
        const twins = await twinsIn("tenant-a");
        assert.deepEqual(twins.map((p) => p.metadata!.annotations!["kubeocean.io/virtual-pod-name"]), [
          "compliant",
        ]);
        // Refused once, not retried against the worker: still one Warning per pod.
        await new Promise((r) => setTimeout(r, 2_000));
        for (const [name] of escalating) {
          const count = (await warnings(computing, name)).filter((e) => e.reason === "PodSecurity")
            .reduce((n, e) => n + (e.count ?? 1), 0);
          assert.equal(count, 1, `${name}: ${count} warnings`);
        }
      },
    );

    await t.step(
      "under restricted, a pod that does not say runAsNonRoot stays Pending; a hardened one runs",
      async () => {
        const hardened = {
          allowPrivilegeEscalation: false,
          capabilities: { drop: ["ALL"] },
          seccompProfile: { type: "RuntimeDefault" as const },
        };
        const pods = new CoreV1Api(computing2).pods("default");
        await pods.create(podOn(vnodeB, "maybe-root", { automountServiceAccountToken: false }, {
          name: "app",
          image: "i",
          securityContext: hardened,
        }));
        await pods.create(podOn(vnodeB, "non-root", { automountServiceAccountToken: false }, {
          name: "app",
          image: "i",
          securityContext: { ...hardened, runAsNonRoot: true },
        }));
        await eventually(
          "the hardened pod Running",
          async () => (await pods.get("non-root")).status?.phase === "Running",
          {
            timeoutMs: 60_000,
          },
        );
        const warning = await eventually(
          "a Warning on maybe-root",
          async () => (await warnings(computing2, "maybe-root")).find((e) => e.reason === "PodSecurity"),
        );
        assert.match(warning.message ?? "", /enforces Pod Security "restricted"/);
        assert.match(warning.message ?? "", /runAsNonRoot/);
        assert.equal((await pods.get("maybe-root")).status?.phase, "Pending");
      },
    );

    await t.step(
      "the worker's own API server refuses a privileged pod from the syncer's credentials",
      async () => {
        const asSyncer = new CoreV1Api(bound[0].workerAsSyncer).pods("tenant-a");
        await assert.rejects(
          asSyncer.create({
            metadata: { name: "direct-privileged" },
            spec: { containers: [{ name: "app", image: "i", securityContext: { privileged: true } }] },
          }),
          (err) => {
            assert.ok(err instanceof ApiError, String(err));
            assert.equal(err.code, 403);
            assert.match(err.message, /violates PodSecurity "baseline:latest": privileged/);
            return true;
          },
        );
      },
    );

    await t.step("two bindings of one worker never touch each other's copies", async () => {
      for (const client of [computing, computing2]) {
        await new CoreV1Api(client).configmaps("default").create({
          metadata: { name: "shared" },
          data: { from: client === computing ? "a" : "b" },
        });
      }
      const user = (): Partial<PodSpec> => ({
        automountServiceAccountToken: false,
        volumes: [{ name: "shared", configMap: { name: "shared" } }],
      });
      const container = {
        name: "app",
        image: "i",
        securityContext: {
          allowPrivilegeEscalation: false,
          runAsNonRoot: true,
          capabilities: { drop: ["ALL"] },
          seccompProfile: { type: "RuntimeDefault" as const },
        },
      };
      await new CoreV1Api(computing).pods("default").create(podOn(vnodeA, "uses-a", user(), container));
      await new CoreV1Api(computing2).pods("default").create(podOn(vnodeB, "uses-b", user(), container));
      const copyIn = async (namespace: string) =>
        (await wcore.configmaps(namespace).list({ labelSelector: MANAGED })).items.find((c) =>
          c.metadata!.annotations!["kubeocean.io/virtual-name"] === "shared"
        );
      const copyA = await eventually("A's copy", () => copyIn("tenant-a"));
      const copyB = await eventually("B's copy", () => copyIn("tenant-b"));
      assert.equal(copyA.data!.from, "a");
      assert.equal(copyB.data!.from, "b");
      assert.notEqual(copyA.metadata!.name, copyB.metadata!.name, "the binding is part of a copy's name");
      assert.equal(copyA.metadata!.labels!["kubeocean.io/cluster-binding"], "tenant-a");
      assert.equal(copyB.metadata!.labels!["kubeocean.io/cluster-binding"], "tenant-b");
      // A's pod goes: A's copy goes with it, B's stays exactly as it was.
      await new CoreV1Api(computing).pods("default").delete("uses-a", { gracePeriodSeconds: 0 });
      await eventually("A's copy released", async () => !(await copyIn("tenant-a")), { timeoutMs: 60_000 });
      const after = await copyIn("tenant-b");
      assert.equal(after?.metadata?.resourceVersion, copyB.metadata!.resourceVersion);
    });

    await t.step(
      "a virtual node name another binding owns: the second binding says so, and lends nothing there",
      async () => {
        // clusterIDs containing '-' can meet: vnode-wa-worker-node-1 is tenant-a's (wa + worker-node-1)
        // and would be wa-worker + node-1's too.
        await env.cluster("worker").createNodes(1, { names: ["node-1"] });
        const c = await bindWorker(computing, worker, {
          name: "tenant-c",
          clusterID: "wa-worker",
          mountNamespace: "tenant-c",
          spec: {
            nodeSelector: {
              nodeSelectorTerms: [{
                matchFields: [{ key: "metadata.name", operator: "In", values: ["node-1"] }],
              }],
            },
          },
        });
        bound.push(c);
        await applyPolicy(worker, "lend-c", { cluster: "tenant-c" });
        syncers.push(startSyncer(computing, c));
        const bindings = new KubeoceanIoV1beta1Api(computing).clusterbindings();
        const condition = await eventually(
          "the binding's VirtualNodeNames condition",
          async () =>
            (await bindings.get("tenant-c")).status?.conditions?.find((c) =>
              c.type === "VirtualNodeNames" && c.status === "False"
            ),
          { timeoutMs: 30_000 },
        );
        assert.match(condition.message, /vnode-wa-worker-node-1 \(tenant-a\)/);
        const events = await new CoreV1Api(computing).events("default").list({
          fieldSelector:
            "involvedObject.kind=ClusterBinding,involvedObject.name=tenant-c,reason=VirtualNodeNameTaken",
        });
        assert.match(events.items[0]?.message ?? "", /worker node node-1 is not lent/);
        const node = await new CoreV1Api(computing).nodes().get("vnode-wa-worker-node-1");
        assert.equal(node.metadata!.labels!["kubeocean.io/cluster-binding"], "tenant-a", "never taken over");
      },
    );

    await t.step("a twin's ServiceAccount token stops working once its virtual pod is deleted", async () => {
      const pods = new CoreV1Api(computing).pods("default");
      await pods.create(podOn(vnodeA, "with-token"));
      const pod = await eventually("Running", async () => {
        const p = await pods.get("with-token");
        return p.status?.phase === "Running" ? p : undefined;
      }, { timeoutMs: 60_000 });
      const twinName = pod.metadata!.annotations!["kubeocean.io/physical-pod-name"];
      const twin = await wcore.pods("tenant-a").get(twinName);
      const tokenSecret = twin.spec!.volumes!.find((v) => v.name.startsWith("kube-api-access-"))!.secret!
        .secretName!;
      const secret = await wcore.secrets("tenant-a").get(tokenSecret);
      const token = atob(secret.data!.token);
      const whoami = () =>
        fetch(`${env.cluster("computing").server}/apis/authentication.k8s.io/v1/selfsubjectreviews`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" }),
          client: Deno.createHttpClient({ caCerts: [env.cluster("computing").pki.ca.certPem] }),
        });
      const before = await whoami();
      const review = await before.json();
      assert.equal(before.status, 201, JSON.stringify(review));
      assert.equal(review.status.userInfo.username, "system:serviceaccount:default:default");
      assert.deepEqual(review.status.userInfo.extra?.["authentication.kubernetes.io/pod-name"], [
        "with-token",
      ]);
      await pods.delete("with-token");
      await eventually(
        "the virtual pod gone",
        async () => await pods.get("with-token").then(() => false, (err) => isNotFound(err)),
        { timeoutMs: 60_000 },
      );
      // The API server caches a successful token authentication for up to 10 s.
      await eventually("the token refused", async () => {
        const after = await whoami();
        await after.body?.cancel();
        return after.status === 401;
      }, { timeoutMs: 30_000, intervalMs: 1_000 });
    });
  } finally {
    await Promise.all(syncers.map((s) => s.stop()));
    for (const b of bound) b.close();
    for (const c of [computing, computing2, worker]) c.close();
  }
});
