/**
 * Least privilege, as shipped: `kubectl apply` of deploy/manager in a computing cluster and `bind`
 * in a worker, then what the manager's and the syncer's identities may do — `kubectl auth can-i
 * --list`, and the admission policies refusing what RBAC cannot narrow (objects not labelled as
 * Kubeocean's, a tenant's Secret contents, unbound tokens, foreign or hostPath volumes).
 */

import assert from "node:assert/strict";
import { CoordinationK8sIoV1Api } from "../../apis/coordination.k8s.io/v1/mod.ts";
import { CoreV1Api, type PersistentVolume, type Pod, type PodSpec } from "../../apis/core/v1/mod.ts";
import { StorageK8sIoV1Api } from "../../apis/storage.k8s.io/v1/mod.ts";
import { KubeClient } from "../../toolkit/client/client.ts";
import { ApiError } from "../../toolkit/client/errors.ts";
import type { Cluster } from "../../toolkit/envtest/cluster.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";
import { placeholderPod } from "../../controllers/syncer/bottomup/host_ports.ts";
import { bindWorker, type BoundWorker } from "../syncer/fixture.ts";

const ROOT = new URL("../../", import.meta.url);
const MANAGER = "system:serviceaccount:kubeocean-system:kubeocean-manager";
const SYNCER = "system:serviceaccount:kubeocean-system:kubeocean-syncer";
const GROUPS = ["system:serviceaccounts", "system:serviceaccounts:kubeocean-system"];

/** `kubectl auth can-i --list` as `user` in `namespace`: resource → verbs. */
async function canI(cluster: Cluster, user: string, namespace: string): Promise<Map<string, string[]>> {
  const out = await cluster.kubectl([
    "auth",
    "can-i",
    "--list",
    `--as=${user}`,
    ...GROUPS.flatMap((g) => [`--as-group=${g}`]),
    "-n",
    namespace,
  ]);
  const rules = new Map<string, string[]>();
  for (const line of out.stdout.split("\n").slice(1)) {
    const match = /^(\S+)\s+\[.*?\]\s+\[(.*?)\]\s+\[(.*?)\]$/.exec(line.trim());
    if (!match) continue;
    const [, resource, names, verbs] = match;
    if (names) continue; // rules restricted to named objects
    rules.set(resource, [...(rules.get(resource) ?? []), ...verbs.split(" ").filter(Boolean)]);
  }
  return rules;
}

/** Asserts that `write` is refused by the admission policy `policy`. */
async function refusedBy(policy: string, write: () => Promise<unknown>): Promise<void> {
  await eventually(`refused by ${policy}`, async () => {
    try {
      await write();
      return false; // the policy may take a moment to load; try again
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      assert.match(err.message, new RegExp(`ValidatingAdmissionPolicy '${policy}'`), err.message);
      return true;
    }
  }, { timeoutMs: 20_000, intervalMs: 500 });
}

envTest("security: the shipped permissions are least privilege, and admission policies hold the rest", {
  clusters: [{ name: "computing" }, { name: "worker", nodes: 1 }],
}, async (env, t) => {
  const computing = env.cluster("computing");
  const admin = await connect(computing);
  const worker = await connect(env.cluster("worker"));
  let bound: BoundWorker | undefined;
  const asUser = async (user: string) => {
    const identity = await computing.addUser(user, GROUPS);
    return await KubeClient.load({ kubeconfig: identity.kubeconfig });
  };
  try {
    await t.step("kubectl apply deploy/manager: namespace, RBAC, admission policies", async () => {
      for (const file of ["namespace", "rbac", "admission-policies"]) {
        const out = await computing.kubectl([
          "apply",
          "-f",
          new URL(`deploy/manager/${file}.yaml`, ROOT).pathname,
        ], {
          check: false,
        });
        assert.equal(out.code, 0, out.stderr);
      }
    });

    await t.step(
      "can-i --list: no Secret listed anywhere but the manager's namespace, no RBAC writes",
      async () => {
        for (const user of [MANAGER, SYNCER]) {
          for (const namespace of ["default", "kube-system"]) {
            const rules = await canI(computing, user, namespace);
            const secrets = rules.get("secrets") ?? [];
            assert.ok(
              !secrets.includes("list") && !secrets.includes("watch") && !secrets.includes("*"),
              `${user} in ${namespace}: secrets ${secrets}`,
            );
            for (
              const resource of [
                "clusterrolebindings.rbac.authorization.k8s.io",
                "clusterroles.rbac.authorization.k8s.io",
                "rolebindings.rbac.authorization.k8s.io",
                "serviceaccounts",
              ]
            ) {
              const verbs = rules.get(resource) ?? [];
              assert.deepEqual(
                verbs.filter((v) => v !== "get" && v !== "list" && v !== "watch"),
                [],
                `${user}: ${resource} ${verbs}`,
              );
            }
          }
        }
        const manager = await canI(computing, MANAGER, "default");
        assert.equal(
          manager.get("secrets"),
          undefined,
          "the manager reads no Secret outside kubeocean-system",
        );
        const own = await canI(computing, MANAGER, "kubeocean-system");
        assert.deepEqual(own.get("secrets")?.sort(), ["get", "list", "watch"]);
        const syncer = await canI(computing, SYNCER, "default");
        assert.deepEqual(syncer.get("secrets")?.sort(), ["get", "patch", "update"], "read by name only");
        assert.equal(syncer.get("leases.coordination.k8s.io"), undefined, "Leases only in kube-node-lease");
        assert.ok(
          (await canI(computing, SYNCER, "kube-node-lease")).get("leases.coordination.k8s.io")?.includes(
            "create",
          ),
        );
      },
    );

    await t.step(
      "as the syncer: Nodes, CSINodes and Leases not labelled as Kubeocean's are refused",
      async () => {
        const syncer = await asUser(SYNCER);
        const nodes = new CoreV1Api(syncer).nodes();
        const labels = { "kubeocean.io/managed-by": "kubeocean" };
        await refusedBy("kubeocean-syncer-objects", () => nodes.create({ metadata: { name: "not-ours" } }));
        await nodes.create({ metadata: { name: "vnode-ours", labels } });
        await nodes.delete("vnode-ours");
        await new CoreV1Api(admin).nodes().create({ metadata: { name: "someone-elses" } });
        await refusedBy("kubeocean-syncer-objects", () => nodes.delete("someone-elses"));
        await refusedBy(
          "kubeocean-syncer-objects",
          () => nodes.patch("someone-elses", { metadata: { labels } }, { type: "merge" }),
        );
        const leases = new CoordinationK8sIoV1Api(syncer).leases("kube-node-lease");
        await refusedBy(
          "kubeocean-syncer-objects",
          () => leases.create({ metadata: { name: "someone-elses" }, spec: { holderIdentity: "x" } }),
        );
        await leases.create({
          metadata: { name: "vnode-ours", labels },
          spec: { holderIdentity: "vnode-ours" },
        });
        await assert.rejects(
          new CoordinationK8sIoV1Api(syncer).leases("default").create({
            metadata: { name: "elsewhere", labels },
          }),
          (err) => err instanceof ApiError && err.code === 403,
        );
        await refusedBy("kubeocean-syncer-objects", () =>
          new StorageK8sIoV1Api(syncer).csinodes().create({
            metadata: { name: "not-ours" },
            spec: { drivers: [] },
          }));
        syncer.close();
      },
    );

    await t.step(
      "as the syncer: a tenant's Secret may gain only a kubeocean.io label and finalizer",
      async () => {
        const syncer = await asUser(SYNCER);
        await new CoreV1Api(admin).secrets("default").create({
          metadata: { name: "tenant" },
          stringData: { a: "1" },
        });
        const secrets = new CoreV1Api(syncer).secrets("default");
        await refusedBy(
          "kubeocean-syncer-secrets",
          () => secrets.patch("tenant", { data: { a: btoa("2") } }, { type: "merge" }),
        );
        await refusedBy(
          "kubeocean-syncer-secrets",
          () => secrets.patch("tenant", { metadata: { labels: { team: "x" } } }, { type: "merge" }),
        );
        await secrets.patch("tenant", {
          metadata: {
            labels: { "kubeocean.io/synced-by-w1": "true" },
            finalizers: ["kubeocean.io/finalizer-w1"],
          },
        }, { type: "merge" });
        await secrets.patch("tenant", { metadata: { finalizers: [] } }, { type: "merge" });
        syncer.close();
      },
    );

    await t.step(
      "as the syncer: pods created only in kubeocean-reserved, only as host-port placeholders; nobody else creates there",
      async () => {
        const reserved = await canI(computing, SYNCER, "kubeocean-reserved");
        assert.ok(reserved.get("pods")?.includes("create"), "placeholders");
        assert.ok(
          !(await canI(computing, SYNCER, "default")).get("pods")?.includes("create"),
          "no pods elsewhere",
        );
        assert.equal(reserved.get("namespaces"), undefined, "the namespace is shipped, never created");
        const syncer = await asUser(SYNCER);
        const pods = new CoreV1Api(syncer).pods("kubeocean-reserved");
        const labels = {
          "kubeocean.io/managed-by": "kubeocean",
          "kubeocean.io/host-port-placeholder": "true",
        };
        const placeholder = (
          name: string,
          spec: Partial<PodSpec> = {},
          podLabels: Record<string, string> = labels,
        ): Pod => ({
          metadata: { name, labels: podLabels },
          spec: {
            nodeName: "vnode-w-n1",
            automountServiceAccountToken: false,
            containers: [{ name: "c", image: "pause", ports: [{ containerPort: 80, hostPort: 80 }] }],
            ...spec,
          },
        });
        await refusedBy(
          "kubeocean-syncer-placeholders",
          () => pods.create(placeholder("unlabelled", {}, {})),
        );
        await refusedBy(
          "kubeocean-syncer-placeholders",
          () => pods.create(placeholder("real", { nodeName: "n1" })),
        );
        await refusedBy(
          "kubeocean-syncer-placeholders",
          () => pods.create(placeholder("host", { hostNetwork: true })),
        );
        await refusedBy(
          "kubeocean-syncer-placeholders",
          () => pods.create(placeholder("volume", { volumes: [{ name: "v", hostPath: { path: "/" } }] })),
        );
        await refusedBy("kubeocean-syncer-placeholders", () =>
          pods.create(placeholder("privileged", {
            containers: [{ name: "c", image: "pause", securityContext: { privileged: true } }],
          })));
        await eventually("a placeholder created", async () => {
          try {
            // Exactly what the host-port controller writes.
            const vnode = { metadata: { name: "vnode-w-n1", uid: crypto.randomUUID() } };
            await pods.create(
              placeholderPod("ours", vnode, "w", [{ hostIP: "0.0.0.0", protocol: "TCP", hostPort: 80 }]),
            );
            return true;
          } catch (err) {
            // The namespace's default ServiceAccount may not exist yet (no controller-manager here).
            if (err instanceof ApiError && /service ?account/i.test(err.message)) return false;
            throw err;
          }
        }, { timeoutMs: 20_000, intervalMs: 500 });
        await pods.delete("ours", { gracePeriodSeconds: 0 });
        syncer.close();
        // A tenant whose RBAC would allow it still cannot put a pod there.
        const tenantName = "tenant-with-cluster-wide-pods";
        await computing.kubectl(["create", "clusterrole", "all-pods", "--verb=create", "--resource=pods"]);
        await computing.kubectl([
          "create",
          "clusterrolebinding",
          "all-pods",
          "--clusterrole=all-pods",
          `--user=${tenantName}`,
        ]);
        const tenant = await KubeClient.load({
          kubeconfig: (await computing.addUser(tenantName, [])).kubeconfig,
        });
        await refusedBy(
          "kubeocean-reserved-pods",
          () => new CoreV1Api(tenant).pods("kubeocean-reserved").create(placeholder("fake")),
        );
        tenant.close();
      },
    );

    await t.step("as the syncer: only tokens bound to a pod", async () => {
      const syncer = await asUser(SYNCER);
      await new CoreV1Api(admin).serviceaccounts("default").create({ metadata: { name: "robot" } });
      await refusedBy(
        "kubeocean-syncer-tokens",
        () =>
          new CoreV1Api(syncer).serviceaccounts("default").createToken("robot", { expirationSeconds: 600 }),
      );
      syncer.close();
    });

    await t.step(
      "in the worker, as the syncer: foreign, unlabelled or hostPath volumes are refused",
      async () => {
        bound = await bindWorker(admin, worker, {
          name: "w",
          clusterID: "w",
          mountNamespace: "kubeocean-worker",
        });
        const volumes = new CoreV1Api(bound.workerAsSyncer).persistentvolumes();
        const labels = { "kubeocean.io/managed-by": "kubeocean", "kubeocean.io/cluster-binding": "w" };
        const volume = (name: string, extra: Partial<PersistentVolume["spec"]>): PersistentVolume => ({
          metadata: { name, labels },
          spec: {
            capacity: { storage: "1Gi" },
            accessModes: ["ReadWriteOnce"],
            persistentVolumeReclaimPolicy: "Retain",
            storageClassName: "",
            claimRef: {
              apiVersion: "v1",
              kind: "PersistentVolumeClaim",
              namespace: "kubeocean-worker",
              name: "c",
            },
            csi: { driver: "csi.example.com", volumeHandle: "v" },
            ...extra,
          },
        });
        await refusedBy(
          "kubeocean-syncer-persistentvolumes",
          () => volumes.create({ ...volume("unlabelled", {}), metadata: { name: "unlabelled" } }),
        );
        await refusedBy(
          "kubeocean-syncer-persistentvolumes",
          () => volumes.create(volume("host", { csi: undefined, hostPath: { path: "/" } })),
        );
        await refusedBy("kubeocean-syncer-persistentvolumes", () =>
          volumes.create(volume("other-namespace", {
            claimRef: { apiVersion: "v1", kind: "PersistentVolumeClaim", namespace: "default", name: "c" },
          })));
        await volumes.create(volume("ours", {}));
        await volumes.delete("ours");
        await new CoreV1Api(worker).persistentvolumes().create({
          metadata: { name: "the-owners" },
          spec: { capacity: { storage: "1Gi" }, accessModes: ["ReadWriteOnce"], hostPath: { path: "/data" } },
        });
        await refusedBy("kubeocean-syncer-persistentvolumes", () => volumes.delete("the-owners"));
        // The proxier's streams: on twins in the mount namespace only, never elsewhere, never nodes/proxy.
        const user = "system:serviceaccount:kubeocean-worker:kubeocean-syncer";
        const inMount = await canI(env.cluster("worker"), user, "kubeocean-worker");
        const elsewhere = await canI(env.cluster("worker"), user, "default");
        for (const subresource of ["pods/exec", "pods/attach", "pods/portforward"]) {
          assert.deepEqual(inMount.get(subresource)?.sort(), ["create", "get"], subresource);
          assert.equal(elsewhere.get(subresource), undefined, `${subresource} outside the mount namespace`);
        }
        assert.deepEqual(inMount.get("pods/log"), ["get"]);
        assert.equal(elsewhere.get("pods/log"), undefined);
        assert.equal(inMount.get("nodes/proxy"), undefined, "nodes/proxy reaches every pod of a node");
      },
    );
  } finally {
    bound?.close();
    admin.close();
    worker.close();
  }
});
