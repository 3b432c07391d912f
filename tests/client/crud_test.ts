import assert from "node:assert/strict";
import { KubeClient } from "../../toolkit/client/client.ts";
import {
  ApiError,
  isAlreadyExists,
  isConflict,
  isForbidden,
  isInvalid,
  isNotFound,
} from "../../toolkit/client/errors.ts";
import type { KubeObject, ResourceDescriptor } from "../../toolkit/client/resource.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";

const CONFIGMAPS: ResourceDescriptor = {
  group: "",
  version: "v1",
  kind: "ConfigMap",
  plural: "configmaps",
  namespaced: true,
};
const NAMESPACES: ResourceDescriptor = {
  group: "",
  version: "v1",
  kind: "Namespace",
  plural: "namespaces",
  namespaced: false,
};
const PODS: ResourceDescriptor = { group: "", version: "v1", kind: "Pod", plural: "pods", namespaced: true };
const DEPLOYMENTS: ResourceDescriptor = {
  group: "apps",
  version: "v1",
  kind: "Deployment",
  plural: "deployments",
  namespaced: true,
};
const SERVICE_ACCOUNTS: ResourceDescriptor = {
  group: "",
  version: "v1",
  kind: "ServiceAccount",
  plural: "serviceaccounts",
  namespaced: true,
};
const WIDGETS: ResourceDescriptor = {
  group: "example.kubeocean.io",
  version: "v1",
  kind: "Widget",
  plural: "widgets",
  namespaced: true,
  subresources: ["status", "scale"],
};

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}
interface Widget extends KubeObject {
  spec?: { size?: number; colour?: string };
  status?: { phase?: string; replicas?: number };
}
interface Pod extends KubeObject {
  spec?: { nodeName?: string; containers: { name: string; image: string }[] };
  status?: { phase?: string };
}

const WIDGET_CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: widgets.example.kubeocean.io }
spec:
  group: example.kubeocean.io
  names: { kind: Widget, plural: widgets, singular: widget, listKind: WidgetList }
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      subresources:
        status: {}
        scale: { specReplicasPath: .spec.size, statusReplicasPath: .status.replicas }
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: { type: integer }
                colour: { type: string }
            status:
              type: object
              properties:
                phase: { type: string }
                replicas: { type: integer }
`;

envTest("client: CRUD, paging, patches, deletes and subresources against a real API server", {
  clusters: [{ name: "c1", nodes: 1 }],
}, async (env, t) => {
  const cluster = env.cluster("c1");
  const client = await connect(cluster, { qps: 1000, burst: 1000 });
  try {
    const ns = client.resource<KubeObject>(NAMESPACES);
    await ns.create({ metadata: { name: "crud" } });
    const cms = client.resource<ConfigMap>(CONFIGMAPS, "crud");

    await t.step("create, get, replace, delete a ConfigMap; typed errors", async () => {
      const created = await cms.create({ metadata: { name: "one" }, data: { a: "1" } });
      assert.equal(created.metadata?.namespace, "crud");
      assert.equal((await cms.get("one")).data?.a, "1");
      await assert.rejects(cms.create({ metadata: { name: "one" } }), (e) => isAlreadyExists(e));
      const replaced = await cms.replace({ ...created, data: { a: "2" } });
      assert.equal(replaced.data?.a, "2");
      await assert.rejects(
        cms.replace({ ...created, data: { a: "3" } }),
        (e) => isConflict(e),
        "stale resourceVersion",
      );
      await cms.delete("one");
      await assert.rejects(cms.get("one"), (e: unknown) => {
        assert.ok(isNotFound(e));
        assert.equal((e as ApiError).reason, "NotFound");
        assert.match(
          (e as ApiError).message,
          /GET \/api\/v1\/namespaces\/crud\/configmaps\/one: 404 NotFound/,
        );
        return true;
      });
    });

    await t.step("a custom resource: create, status and scale subresources", async () => {
      await cluster.kubectl(["apply", "-f", "-"], { stdin: WIDGET_CRD });
      await cluster.kubectl(["wait", "--for=condition=Established", "crd/widgets.example.kubeocean.io"]);
      const widgets = client.resource<Widget, "status" | "scale">(WIDGETS, "crud");
      await eventually(
        "widget created",
        () => widgets.create({ metadata: { name: "w" }, spec: { size: 1, colour: "red" } }),
      );
      const read = await widgets.get("w");
      assert.deepEqual(read.spec, { size: 1, colour: "red" });
      const withStatus = await widgets.replaceStatus({ ...read, status: { phase: "Ready", replicas: 1 } });
      assert.equal(withStatus.status?.phase, "Ready");
      // Status writes ignore spec changes, spec writes ignore status changes.
      const ignored = await widgets.replace({ ...withStatus, status: { phase: "Lost" } });
      assert.equal(ignored.status?.phase, "Ready");
      await widgets.patchStatus("w", { status: { phase: "Patched" } }, { type: "merge" });
      assert.equal((await widgets.getStatus("w")).status?.phase, "Patched");
      assert.equal((await widgets.getScale("w")).spec?.replicas, 1);
      await widgets.scale("w", 4);
      assert.equal((await widgets.get("w")).spec?.size, 4);
    });

    await t.step("pagination over 1,200 objects with a page size of 500", async () => {
      const paged = client.resource<ConfigMap>(CONFIGMAPS, "crud");
      const names = Array.from({ length: 1200 }, (_, i) => `page-${String(i).padStart(4, "0")}`);
      for (let i = 0; i < names.length; i += 50) {
        await Promise.all(
          names.slice(i, i + 50).map((name) =>
            paged.create({ metadata: { name, labels: { set: "paged" } } })
          ),
        );
      }
      const pages: number[] = [];
      for await (const page of paged.listPages({ labelSelector: "set=paged", limit: 500 })) {
        pages.push(page.items.length);
      }
      assert.deepEqual(pages, [500, 500, 200]);
      const all = await paged.listAll({ labelSelector: "set=paged", limit: 500 });
      assert.deepEqual(all.items.map((c) => c.metadata?.name), names);
      assert.ok(
        all.items.every((c) => c.kind === "ConfigMap" && c.apiVersion === "v1"),
        "items are self-describing",
      );
      assert.ok(Number(all.resourceVersion) > 0);
      await paged.deleteCollection({ labelSelector: "set=paged" });
      await eventually(
        "collection deleted",
        async () => (await paged.list({ labelSelector: "set=paged" })).items.length === 0,
      );
    });

    await t.step("every patch type, and server-side apply conflicts surface as ApiError", async () => {
      await cms.create({ metadata: { name: "p", labels: { a: "1" } }, data: { x: "1" } });
      await cms.patch("p", [{ op: "add", path: "/data/y", value: "2" }], { type: "json" });
      await cms.patch("p", { data: { z: "3" }, metadata: { labels: { a: null } } }, { type: "merge" });
      await cms.patch("p", { metadata: { labels: { b: "2" } } }, { type: "strategic" });
      let cm = await cms.get("p");
      assert.deepEqual(cm.data, { x: "1", y: "2", z: "3" });
      assert.deepEqual(cm.metadata?.labels, { b: "2" });
      await assert.rejects(
        cms.patch("p", [{ op: "test", path: "/data/x", value: "nope" }, { op: "remove", path: "/data/x" }], {
          type: "json",
        }),
        (e) => isInvalid(e),
      );

      await cms.apply({ metadata: { name: "applied" }, data: { owner: "alice" } }, { fieldManager: "alice" });
      await assert.rejects(
        cms.apply({ metadata: { name: "applied" }, data: { owner: "bob" } }, { fieldManager: "bob" }),
        (e: unknown) => {
          assert.ok(e instanceof ApiError);
          assert.equal(e.code, 409);
          assert.ok(isConflict(e));
          assert.ok(e.causes.some((c) => c.includes(".data.owner")), e.causes.join("; "));
          return true;
        },
      );
      cm = await cms.apply({ metadata: { name: "applied" }, data: { owner: "bob" } }, {
        fieldManager: "bob",
        force: true,
      });
      assert.equal(cm.data?.owner, "bob");

      // Strategic merge on a list keyed by name (Deployment containers).
      const deployments = client.resource<KubeObject & { spec: Record<string, unknown> }>(
        DEPLOYMENTS,
        "crud",
      );
      await deployments.create({
        metadata: { name: "d" },
        spec: {
          replicas: 0,
          selector: { matchLabels: { app: "d" } },
          template: {
            metadata: { labels: { app: "d" } },
            spec: { containers: [{ name: "a", image: "a:1" }, { name: "b", image: "b:1" }] },
          },
        },
      });
      const patched = await deployments.patch("d", {
        spec: { template: { spec: { containers: [{ name: "b", image: "b:2" }] } } },
      }, { type: "strategic" });
      const containers =
        (patched.spec as { template: { spec: { containers: { name: string; image: string }[] } } })
          .template.spec.containers;
      assert.deepEqual(containers.map((c) => `${c.name}=${c.image}`), ["a=a:1", "b=b:2"]);
    });

    await t.step("dry-run writes persist nothing; deletes honour preconditions", async () => {
      const dry = await cms.create({ metadata: { name: "dry" } }, { dryRun: true });
      assert.equal(dry.metadata?.name, "dry");
      await assert.rejects(cms.get("dry"), (e) => isNotFound(e));
      const victim = await cms.create({ metadata: { name: "victim" } });
      await assert.rejects(
        cms.delete("victim", { preconditions: { uid: "00000000-0000-0000-0000-000000000000" } }),
        (e) => isConflict(e),
      );
      await cms.delete("victim", { dryRun: true });
      await cms.get("victim");
      await cms.delete("victim", {
        preconditions: { uid: victim.metadata?.uid },
        propagationPolicy: "Background",
        gracePeriodSeconds: 0,
      });
      await assert.rejects(cms.get("victim"), (e) => isNotFound(e));
    });

    await t.step("pod subresources: binding, log, eviction; ServiceAccount token", async () => {
      const pods = client.resource<Pod, "binding" | "eviction" | "log">(PODS, "crud");
      const sas = client.resource<KubeObject, "token">(SERVICE_ACCOUNTS, "crud");
      await eventually("default service account", () => sas.get("default").then(() => true));
      await pods.create({
        metadata: { name: "bound" },
        spec: { schedulerName: "nobody", containers: [{ name: "main", image: "x" }] } as Pod["spec"],
      });
      await pods.bind("bound", "c1-node-1");
      const running = await eventually("pod running", async () => {
        const pod = await pods.get("bound");
        return pod.status?.phase === "Running" ? pod : undefined;
      });
      assert.equal(running.spec?.nodeName, "c1-node-1");
      const log = await pods.logs("bound", { container: "main" });
      assert.match(log, /kubeocean envtest: serving/);
      const lines: string[] = [];
      for await (const line of pods.logLines("bound", { tailLines: 2 })) lines.push(line);
      assert.equal(lines.length, 2);
      await pods.evict("bound", { gracePeriodSeconds: 0 });
      await eventually("evicted pod gone", () => pods.get("bound").then(() => false, (e) => isNotFound(e)));

      const token = await sas.createToken("default", { expirationSeconds: 600 });
      assert.match(token.status?.token ?? "", /^ey/);
    });

    await t.step("a forbidden request is a typed 403", async () => {
      const { kubeconfig } = await cluster.addUser("nobody");
      const restricted = await KubeClient.load({ kubeconfig });
      try {
        await assert.rejects(restricted.resource<ConfigMap>(CONFIGMAPS, "crud").list(), (e: unknown) => {
          assert.ok(isForbidden(e));
          assert.match((e as Error).message, /403 Forbidden: .*"nobody" cannot list resource "configmaps"/);
          return true;
        });
      } finally {
        restricted.close();
      }
    });
  } finally {
    client.close();
  }
});
