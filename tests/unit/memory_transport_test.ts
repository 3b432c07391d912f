/**
 * The in-memory API server of unit tests, driven through the real typed clients and the real
 * runtime (informers, watcher). Everything here runs in memory, in milliseconds.
 */

import assert from "node:assert/strict";
import { AppsV1Api } from "../../apis/apps/v1/mod.ts";
import type { Deployment } from "../../apis/apps/v1/mod.ts";
import { type ConfigMap, CoreV1Api, type Node, type Pod } from "../../apis/core/v1/mod.ts";
import { KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { KubeClient } from "../../toolkit/client/client.ts";
import {
  ApiError,
  isAlreadyExists,
  isConflict,
  isGone,
  isInvalid,
  isNotFound,
  isTransient,
  type Status,
} from "../../toolkit/client/errors.ts";
import { removeFinalizer } from "../../toolkit/runtime/finalizer.ts";
import { Informer, InformerFactory } from "../../toolkit/runtime/informer.ts";
import { watcher, type WatcherEvent } from "../../toolkit/runtime/watcher.ts";
import { MemoryApiServer } from "../../toolkit/testing/memory_transport.ts";

const noBackoff = { next: () => 0, reset: () => {} };
const T0 = Date.parse("2030-01-01T00:00:00Z");

function setup(options: ConstructorParameters<typeof MemoryApiServer>[0] = {}) {
  const server = new MemoryApiServer({ now: () => T0, ...options });
  const client = new KubeClient(server.transport());
  return { server, client, core: new CoreV1Api(client), apps: new AppsV1Api(client) };
}

async function until(what: string, check: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

function apiError(code: number, reason: string, check?: (e: ApiError) => void) {
  return (err: unknown) => {
    assert.ok(err instanceof ApiError, `expected an ApiError, got ${err}`);
    assert.equal(err.code, code, err.message);
    assert.equal(err.reason, reason, err.message);
    check?.(err);
    return true;
  };
}

Deno.test("memory API server: CRUD with conflicts, AlreadyExists, generateName, a fake clock and copies", async () => {
  const { server, core, client } = setup();
  const cms = core.configmaps("default");

  const created = await cms.create({ metadata: { name: "a", labels: { app: "x" } }, data: { k: "1" } });
  assert.equal(created.metadata?.namespace, "default");
  assert.match(created.metadata?.uid ?? "", /^[0-9a-f-]{36}$/);
  assert.equal(created.metadata?.generation, 1);
  assert.equal(created.metadata?.creationTimestamp, "2030-01-01T00:00:00Z");
  assert.equal(created.metadata?.resourceVersion, server.resourceVersion);

  await assert.rejects(
    cms.create({ metadata: { name: "a" } }),
    apiError(409, "AlreadyExists", (e) => {
      assert.ok(isAlreadyExists(e) && !isConflict(e));
      assert.equal(e.request, "POST /api/v1/namespaces/default/configmaps");
      assert.equal(e.status.details?.name, "a");
      assert.equal(e.status.details?.kind, "configmaps");
    }),
  );

  // Objects are copies both ways.
  const read = await cms.get("a");
  read.data!.k = "mutated";
  created.data!.k = "mutated too";
  assert.equal(server.get<ConfigMap>("configmaps", "a", "default")?.data?.k, "1");
  assert.equal((await cms.get("a")).data?.k, "1");

  // Optimistic concurrency: a stale resourceVersion conflicts, the current one wins.
  const updated = await cms.replace({ ...read, data: { k: "2" } });
  assert.ok(Number(updated.metadata?.resourceVersion) > Number(read.metadata?.resourceVersion));
  await assert.rejects(
    cms.replace({ ...read, data: { k: "3" } }),
    apiError(409, "Conflict", (e) => assert.match(e.message, /the object has been modified/)),
  );
  // A uid in the body is a precondition too (409 on an update).
  await assert.rejects(
    cms.replace({ ...updated, metadata: { ...updated.metadata, uid: "someone-else" } }),
    apiError(409, "Conflict", (e) => assert.match(e.message, /Precondition failed: UID/)),
  );
  // Without a resourceVersion the update is unconditional; an unchanged object is not written.
  const unconditional = await cms.replace({ metadata: { name: "a" }, data: { k: "4" } });
  assert.equal(unconditional.metadata?.uid, created.metadata?.uid);
  assert.equal(unconditional.metadata?.creationTimestamp, created.metadata?.creationTimestamp);
  const same = await cms.replace(unconditional);
  assert.equal(same.metadata?.resourceVersion, unconditional.metadata?.resourceVersion);

  // generateName, with the clock moved on.
  server.advanceClock(90_000);
  const generated = await cms.create({ metadata: { generateName: "gen-" } });
  assert.match(generated.metadata?.name ?? "", /^gen-[a-z0-9]{5}$/);
  assert.equal(generated.metadata?.creationTimestamp, "2030-01-01T00:01:30Z");
  await assert.rejects(cms.create({ metadata: {} }), apiError(422, "Invalid"));

  // The body's namespace must be the path's.
  await assert.rejects(
    cms.create({ metadata: { name: "b", namespace: "other" } }),
    apiError(400, "BadRequest"),
  );

  // Dry run persists nothing.
  await cms.create({ metadata: { name: "dry" } }, { dryRun: true });
  assert.equal(server.get("configmaps", "dry", "default"), undefined);

  // Delete answers a Status; the object is gone.
  const status = await cms.delete("a") as Status;
  assert.equal(status.kind, "Status");
  assert.equal(status.status, "Success");
  await assert.rejects(cms.get("a"), apiError(404, "NotFound", (e) => assert.ok(isNotFound(e))));
  await assert.rejects(cms.delete("a"), (e) => isNotFound(e));

  // Cluster-scoped resources, seeding, reads by path, /version.
  const [node] = server.seed<Node>([{
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: "n1" },
    status: { phase: "Running" },
  }]);
  assert.equal(node.metadata?.generation, 1);
  const nodes = await core.nodes().list();
  assert.deepEqual(nodes.items.map((n) => n.metadata?.name), ["n1"]);
  assert.equal(server.get("/api/v1/nodes/n1")?.metadata?.uid, node.metadata?.uid);
  const cluster = await core.nodes().create({ metadata: { name: "n2", namespace: "ignored" } });
  assert.equal(cluster.metadata?.namespace, undefined);
  assert.equal((await client.version()).major, "1");
});

Deno.test("memory API server: lists filter by label and field selectors and page with one resourceVersion", async () => {
  const { server, core } = setup();
  server.seed([
    pod("a", "p1", { app: "web", tier: "fe" }, "n1"),
    pod("a", "p2", { app: "web", tier: "be", canary: "true" }, "n2"),
    pod("a", "p3", { app: "db" }),
    pod("b", "p4", { app: "web", tier: "fe" }, "n1"),
    pod("b", "p5", {}),
  ]);
  const names = async (selectors: { labelSelector?: string; fieldSelector?: string }, namespace?: string) =>
    (await core.pods(namespace).list(selectors)).items.map((p) => p.metadata?.name);

  assert.deepEqual(await names({ labelSelector: "app=web" }, "a"), ["p1", "p2"]);
  assert.deepEqual(await names({ labelSelector: "app==web" }), ["p1", "p2", "p4"]);
  assert.deepEqual(await names({ labelSelector: "app!=web" }), ["p3", "p5"]);
  assert.deepEqual(await names({ labelSelector: "tier in (fe, be)" }), ["p1", "p2", "p4"]);
  assert.deepEqual(await names({ labelSelector: "tier notin (fe)" }), ["p2", "p3", "p5"]);
  assert.deepEqual(await names({ labelSelector: "canary" }), ["p2"]);
  assert.deepEqual(await names({ labelSelector: "!canary,app=web,tier in (fe)" }), ["p1", "p4"]);
  assert.deepEqual(await names({ fieldSelector: "metadata.name=p3" }), ["p3"]);
  assert.deepEqual(await names({ fieldSelector: "metadata.namespace=b" }), ["p4", "p5"]);
  assert.deepEqual(await names({ fieldSelector: "spec.nodeName=n1" }), ["p1", "p4"]);
  assert.deepEqual(await names({ fieldSelector: "spec.nodeName!=", labelSelector: "tier=be" }), ["p2"]);
  await assert.rejects(core.pods().list({ labelSelector: "app in web" }), apiError(400, "BadRequest"));

  // A list carries the current resourceVersion; every page of a paged list carries the first page's.
  const all = await core.pods().list();
  assert.equal(all.metadata.resourceVersion, server.resourceVersion);
  assert.ok(all.items.every((p) => p.kind === "Pod" && p.apiVersion === "v1"));
  const pages: { names: (string | undefined)[]; rv?: string }[] = [];
  for await (const page of core.pods().listPages({ limit: 2 })) {
    pages.push({ names: page.items.map((p) => p.metadata?.name), rv: page.metadata.resourceVersion });
    if (pages.length === 1) {
      await core.pods("a").create({ metadata: { name: "p0" }, spec: { containers: [] } });
    }
  }
  assert.deepEqual(pages.map((p) => p.names), [["p1", "p2"], ["p3", "p4"], ["p5"]], "a consistent snapshot");
  assert.ok(pages.every((p) => p.rv === all.metadata.resourceVersion));
  assert.equal(server.list("pods", "a").length, 4);
  assert.deepEqual(
    server.list("pods", undefined, { labelSelector: "tier=fe" }).map((p) => p.metadata?.name),
    [
      "p1",
      "p4",
    ],
  );

  // deletecollection honours the namespace and the selectors.
  const deleted = await core.pods("a").deleteCollection({ labelSelector: "app=web" });
  assert.equal(deleted.status, "Success");
  assert.deepEqual(
    server.list<Pod>("pods").map((p) =>
      `${p.metadata?.name}${p.metadata?.deletionTimestamp ? " (deleting)" : ""}`
    ),
    ["p0", "p1 (deleting)", "p2 (deleting)", "p3", "p4", "p5"],
    "p1 and p2 are bound to nodes: they wait for their kubelet",
  );
});

Deno.test("memory API server: an informer lists, then sees ADDED, MODIFIED and DELETED through the watch", async () => {
  const { server, core } = setup();
  const cms = core.configmaps("default");
  await cms.create({ metadata: { name: "before" }, data: { v: "1" } });
  await core.configmaps("elsewhere").create({ metadata: { name: "other" } });

  const informer = new Informer(cms, { backoff: noBackoff });
  const seen: string[] = [];
  const stop = new AbortController();
  const consumer = (async () => {
    for await (const event of informer.events(stop.signal)) {
      if (event.type === "InitApply" || event.type === "Apply" || event.type === "Delete") {
        seen.push(`${event.type} ${event.object.metadata?.name} ${event.object.data?.v ?? "-"}`);
      }
    }
  })();
  await informer.ready();
  assert.deepEqual(informer.store.keys(), ["default/before"]);

  await cms.create({ metadata: { name: "later" }, data: { v: "1" } });
  const before = await cms.get("before");
  await cms.replace({ ...before, data: { v: "2" } });
  await cms.delete("later");
  await until("the delete", () => seen.length === 4);
  assert.deepEqual(seen, ["InitApply before 1", "Apply later 1", "Apply before 2", "Delete later 1"]);
  assert.equal(informer.store.get("default/before")?.data?.v, "2");
  assert.equal(informer.store.get("default/later"), undefined);
  assert.equal(server.openWatches, 1);

  stop.abort();
  await informer.stop();
  await consumer;
  assert.equal(server.openWatches, 0, "stopping the informer ends its watch");
});

Deno.test("memory API server: a watch from a compacted resourceVersion gets 410 Gone and the watcher re-lists", async () => {
  const { server, core } = setup();
  const cms = core.configmaps("default");
  await cms.create({ metadata: { name: "a" } });

  // A raw watch: resuming from an old resourceVersion replays history, unless it was compacted.
  const replayed: string[] = [];
  for await (const event of cms.watch({ resourceVersion: "1", timeoutSeconds: 1 })) {
    replayed.push(`${event.type} ${event.object.metadata?.name}`);
    break;
  }
  assert.deepEqual(replayed, ["ADDED a"]);
  server.compact();
  // A bounded history forgets old events by itself.
  const small = setup({ historyLimit: 2 });
  const start = small.server.resourceVersion;
  for (const name of ["1", "2", "3"]) await small.core.configmaps("default").create({ metadata: { name } });
  await assert.rejects(
    (async () => {
      for await (
        const _ of small.core.configmaps("default").watch({
          resourceVersion: start,
        })
      ) {
        // nothing arrives
      }
    })(),
    (e) => isGone(e),
  );
  await assert.rejects(
    (async () => {
      for await (const _ of cms.watch({ resourceVersion: "1" })) { /* nothing arrives */ }
    })(),
    (e: unknown) => {
      assert.ok(isGone(e));
      assert.equal((e as ApiError).reason, "Expired");
      assert.match((e as ApiError).message, /too old resource version: 1/);
      return true;
    },
  );

  const stop = new AbortController();
  const events = watcher(cms, { signal: stop.signal });
  const next = async (): Promise<WatcherEvent<ConfigMap>> => {
    const result = await events.next();
    assert.ok(!result.done);
    return result.value;
  };
  const describe = (e: WatcherEvent<ConfigMap>) =>
    "object" in e ? `${e.type} ${e.object.metadata?.name}` : e.type === "Error" ? `Error ${e.phase}` : e.type;

  assert.equal(describe(await next()), "Init");
  assert.equal(describe(await next()), "InitApply a");
  const done = await next();
  assert.equal(done.type, "InitDone");
  // The watcher is paused before its watch: a write and a compaction make its resourceVersion too old.
  await cms.create({ metadata: { name: "b" } });
  server.compact();
  const failure = await next();
  assert.equal(describe(failure), "Error watch");
  assert.ok(failure.type === "Error" && isGone(failure.error));
  // It re-lists: the new object arrives in the new initial state.
  assert.deepEqual([await next(), await next(), await next(), await next()].map(describe), [
    "Init",
    "InitApply a",
    "InitApply b",
    "InitDone",
  ]);
  const pending = next();
  await cms.create({ metadata: { name: "c" } });
  assert.equal(describe(await pending), "Apply c");

  stop.abort();
  await events.return();
  assert.equal(server.openWatches, 0);
});

Deno.test("memory API server: finalizers hold a deletion; emptying them removes the object and the watch sees DELETED", async () => {
  const { server, core } = setup();
  const cms = core.configmaps("default");
  const created = await cms.create({ metadata: { name: "held", finalizers: ["example.com/cleanup"] } });

  const stop = new AbortController();
  const events: string[] = [];
  const watching = (async () => {
    for await (
      const event of cms.watch({ resourceVersion: created.metadata?.resourceVersion, signal: stop.signal })
    ) {
      events.push(`${event.type} ${event.object.metadata?.deletionTimestamp ? "deleting" : "live"}`);
      if (event.type === "DELETED") break;
    }
  })();

  const pending = await cms.delete("held") as ConfigMap;
  assert.equal(pending.metadata?.deletionTimestamp, "2030-01-01T00:00:00Z");
  assert.equal(pending.metadata?.deletionGracePeriodSeconds, 0);
  assert.equal(pending.metadata?.generation, 2, "setting deletionTimestamp bumps the generation");
  assert.ok(server.get("configmaps", "held", "default"), "still there while a finalizer remains");
  // Deleting again changes nothing; no finalizer may be added now.
  assert.equal(
    (await cms.delete("held") as ConfigMap).metadata?.resourceVersion,
    pending.metadata?.resourceVersion,
  );
  await assert.rejects(
    cms.patch("held", { metadata: { finalizers: ["example.com/cleanup", "example.com/late"] } }, {
      type: "merge",
    }),
    apiError(422, "Invalid", (e) => assert.match(e.message, /no new finalizers/)),
  );
  // The runtime's finalizer helper (a guarded JSON patch) removes the last one: the object goes.
  await removeFinalizer(cms, pending, "example.com/cleanup");
  await assert.rejects(cms.get("held"), (e) => isNotFound(e));
  await watching;
  assert.deepEqual(events, ["MODIFIED deleting", "DELETED deleting"]);
  stop.abort();
});

Deno.test("memory API server: merge, strategic and JSON patches", async () => {
  const { server, core, client } = setup();
  const pods = core.pods("default");
  const pod = await pods.create({
    metadata: { name: "web", labels: { app: "web", old: "x" }, finalizers: ["a"] },
    spec: { containers: [{ name: "app", image: "app:1" }, { name: "sidecar", image: "side:1" }] },
  });

  // Merge patch: null deletes, lists are replaced.
  let patched = await pods.patch(
    "web",
    { metadata: { labels: { old: null, new: "y" }, finalizers: ["z"] } },
    {
      type: "merge",
    },
  );
  assert.deepEqual(patched.metadata?.labels, { app: "web", new: "y" });
  assert.deepEqual(patched.metadata?.finalizers, ["z"]);

  // Strategic merge: finalizers merge as a set, containers by name; the uid is a precondition.
  patched = await pods.patch("web", {
    metadata: { uid: pod.metadata?.uid, finalizers: ["b", "z"], annotations: { note: "1" } },
    spec: { containers: [{ name: "sidecar", image: "side:2" }] },
  }, { type: "strategic" });
  assert.deepEqual(patched.metadata?.finalizers, ["z", "b"]);
  assert.deepEqual(patched.spec?.containers.map((c) => `${c.name}=${c.image}`), [
    "app=app:1",
    "sidecar=side:2",
  ]);
  const rv = patched.metadata?.resourceVersion;
  // A re-created pod of the same name has another uid: the write must fail (the pod controller
  // accepts 409 or 422 here; kube-apiserver answers 422 Invalid, "field is immutable").
  await assert.rejects(
    pods.patch("web", { metadata: { uid: "0000-other", annotations: { note: "2" } } }, { type: "strategic" }),
    apiError(422, "Invalid", (e) => {
      assert.ok([409, 422].includes(e.code));
      assert.ok(e.causes.some((c) => c.startsWith("metadata.uid: ")), e.causes.join("; "));
    }),
  );
  // A stale resourceVersion in a patch: 409 Conflict.
  await assert.rejects(
    pods.patch("web", { metadata: { resourceVersion: "1", labels: { x: "1" } } }, { type: "strategic" }),
    (e) => isConflict(e),
  );
  assert.equal(
    server.get<Pod>("pods", "web", "default")?.metadata?.resourceVersion,
    rv,
    "failed patches write nothing",
  );

  // JSON patch: `~1` escapes a slash; a failed test is 422 Invalid and nothing is applied.
  patched = await pods.patch("web", [
    { op: "test", path: "/metadata/resourceVersion", value: rv },
    { op: "add", path: "/metadata/annotations/example.com~1owner", value: "me" },
    { op: "replace", path: "/spec/containers/0/image", value: "app:2" },
    { op: "remove", path: "/metadata/labels/new" },
  ], { type: "json" });
  assert.equal(patched.metadata?.annotations?.["example.com/owner"], "me");
  assert.equal(patched.spec?.containers[0].image, "app:2");
  assert.deepEqual(patched.metadata?.labels, { app: "web" });
  await assert.rejects(
    pods.patch("web", [
      { op: "test", path: "/metadata/resourceVersion", value: rv },
      { op: "remove", path: "/metadata/annotations" },
    ], { type: "json" }),
    apiError(422, "Invalid", (e) => {
      assert.ok(isInvalid(e));
      assert.ok(e.causes.some((c) => c.includes("testing value /metadata/resourceVersion failed")));
    }),
  );
  await assert.rejects(
    pods.patch("web", [{ op: "remove", path: "/metadata/labels/missing" }], { type: "json" }),
    (e) => isInvalid(e),
  );
  assert.equal(server.get<Pod>("pods", "web", "default")?.metadata?.annotations?.["example.com/owner"], "me");

  // Server-side apply (approximated): creates what is missing, then merges.
  const cms = core.configmaps("default");
  await cms.apply({ metadata: { name: "applied" }, data: { a: "1" } }, { fieldManager: "test" });
  const applied = await cms.apply({ metadata: { name: "applied" }, data: { b: "2" } }, {
    fieldManager: "test",
  });
  assert.deepEqual(applied.data, { a: "1", b: "2" });

  // Custom resources refuse strategic merge patches, as a real server does.
  const bindings = new KubeoceanIoV1beta1Api(client).clusterbindings();
  await bindings.create({
    metadata: { name: "cb" },
    spec: { clusterID: "w1", secretRef: { name: "s", namespace: "kubeocean-system" }, mountNamespace: "m" },
  });
  await assert.rejects(
    bindings.patch("cb", { metadata: { labels: { a: "b" } } }, { type: "strategic" }),
    apiError(
      415,
      "UnsupportedMediaType",
    ),
  );
  assert.equal(
    (await bindings.patch("cb", { metadata: { labels: { a: "b" } } }, { type: "merge" })).metadata?.labels?.a,
    "b",
  );
});

Deno.test("memory API server: status subresource writes are separate from spec writes", async () => {
  const { server, apps, core } = setup();
  const deployments = apps.deployments("default");
  const spec = {
    replicas: 1,
    selector: { matchLabels: { app: "d" } },
    template: { metadata: { labels: { app: "d" } }, spec: { containers: [{ name: "c", image: "c:1" }] } },
  };
  const created = await deployments.create({ metadata: { name: "d" }, spec, status: { replicas: 5 } });
  assert.equal(created.status, undefined, "status is dropped on create");

  // The main resource ignores status; a spec change bumps the generation.
  const scaled = await deployments.replace({
    ...created,
    spec: { ...spec, replicas: 2 },
    status: { replicas: 9 },
  });
  assert.equal(scaled.metadata?.generation, 2);
  assert.equal(scaled.status, undefined);
  const labelled = await deployments.replace({
    ...scaled,
    metadata: { ...scaled.metadata, labels: { x: "1" } },
  });
  assert.equal(labelled.metadata?.generation, 2, "metadata changes keep the generation");

  // The status subresource ignores everything else.
  const withStatus = await deployments.replaceStatus({
    ...labelled,
    spec: { ...spec, replicas: 7 },
    metadata: { ...labelled.metadata, labels: { x: "changed" } },
    status: { replicas: 2, observedGeneration: 2 },
  });
  assert.equal(withStatus.spec?.replicas, 2);
  assert.deepEqual(withStatus.metadata?.labels, { x: "1" });
  assert.deepEqual(withStatus.status, { replicas: 2, observedGeneration: 2 });
  assert.equal(withStatus.metadata?.generation, 2);
  const patched = await deployments.patchStatus("d", { status: { readyReplicas: 1 } }, { type: "merge" });
  assert.deepEqual(patched.status, { replicas: 2, observedGeneration: 2, readyReplicas: 1 });
  assert.deepEqual((await deployments.getStatus("d")).status, patched.status);

  // The scale subresource reads and writes spec.replicas.
  assert.deepEqual((await deployments.getScale("d")).spec, { replicas: 2 });
  await deployments.scale("d", 4);
  const deployment = server.get<Deployment>("deployments.apps", "d", "default");
  assert.equal(deployment?.spec?.replicas, 4);
  assert.equal(deployment?.metadata?.generation, 3);

  // Without a status subresource, /status does not exist and status is ordinary data.
  await core.configmaps("default").create({ metadata: { name: "cm" } });
  await assert.rejects(
    server.transport().request({ method: "GET", path: "/api/v1/namespaces/default/configmaps/cm/status" }),
    apiError(404, "NotFound"),
  );
  // Pods are created Pending whatever their status said.
  const pod = await core.pods("default").create({
    metadata: { name: "p" },
    spec: { containers: [] },
    status: { phase: "Running" },
  });
  assert.deepEqual(pod.status, { phase: "Pending" });

  // Which resources have a status subresource is configurable.
  const plain = setup({ statusSubresources: [] });
  const kept = await plain.apps.deployments("default").create({
    metadata: { name: "d" },
    spec,
    status: { replicas: 5 },
  });
  assert.deepEqual(kept.status, { replicas: 5 });
});

Deno.test("memory API server: pods wait for a kubelet to finish a graceful delete; eviction, binding, tokens", async () => {
  const { server, core } = setup();
  const pods = core.pods("default");
  await pods.create({ metadata: { name: "bound" }, spec: { nodeName: "n1", containers: [] } });
  await pods.create({ metadata: { name: "unbound" }, spec: { containers: [] } });

  const pending = await pods.delete("bound") as Pod;
  assert.equal(pending.metadata?.deletionGracePeriodSeconds, 30);
  assert.equal(pending.metadata?.deletionTimestamp, "2030-01-01T00:00:30Z");
  assert.ok(server.get("pods", "bound", "default"));
  // What a kubelet does once the containers stopped:
  assert.equal((await pods.delete("bound", { gracePeriodSeconds: 0 }) as Status).status, "Success");
  assert.equal(server.get("pods", "bound", "default"), undefined);
  // An unscheduled pod goes at once.
  await pods.delete("unbound");
  assert.equal(server.list("pods").length, 0);

  // Eviction deletes like a delete, with the eviction's options.
  await pods.create({ metadata: { name: "e1" }, spec: { nodeName: "n1", containers: [] } });
  const evicted = await pods.evict("e1");
  assert.equal(evicted.status, "Success");
  assert.ok(server.get<Pod>("pods", "e1", "default")?.metadata?.deletionTimestamp);
  await pods.create({ metadata: { name: "e2" }, spec: { nodeName: "n1", containers: [] } });
  await pods.evict("e2", { gracePeriodSeconds: 0 });
  assert.equal(server.get("pods", "e2", "default"), undefined);
  await assert.rejects(pods.evict("e2"), (e) => isNotFound(e));
  await pods.create({ metadata: { name: "e3" }, spec: { containers: [] } });
  await assert.rejects(pods.evict("e3", { preconditions: { uid: "wrong" } }), (e) => isConflict(e));

  // Binding sets the node once.
  await pods.bind("e3", "n2");
  const bound = server.get<Pod>("pods", "e3", "default");
  assert.equal(bound?.spec?.nodeName, "n2");
  assert.equal(bound?.status?.conditions?.find((c) => c.type === "PodScheduled")?.status, "True");
  await assert.rejects(pods.bind("e3", "n3"), (e) => isConflict(e));

  // ServiceAccount tokens.
  await core.serviceaccounts("default").create({ metadata: { name: "sa" } });
  const token = await core.serviceaccounts("default").createToken("sa", { expirationSeconds: 600 });
  assert.ok((token.status?.token.split(".").length ?? 0) === 3);
  assert.equal(token.status?.expirationTimestamp, "2030-01-01T00:10:00Z");
  await assert.rejects(core.serviceaccounts("default").createToken("nobody"), (e) => isNotFound(e));

  // Without the kubelet rule, a bound pod goes at once.
  const quick = setup({ podsNeedKubelet: false });
  await quick.core.pods("default").create({
    metadata: { name: "p" },
    spec: { nodeName: "n1", containers: [] },
  });
  await quick.core.pods("default").delete("p");
  assert.equal(quick.server.list("pods").length, 0);
});

Deno.test("memory API server: injected failures surface as ApiError; the request log counts writes", async () => {
  const { server, client, core } = setup();
  const cms = core.configmaps("default");
  const cm = await cms.create({ metadata: { name: "x" } });

  server.failNext({ method: "PUT", status: 409 });
  await assert.rejects(
    cms.replace(cm),
    apiError(409, "Conflict", (e) => assert.equal(e.request, "PUT /api/v1/namespaces/default/configmaps/x")),
  );
  await cms.replace(cm); // only once

  server.failNext({ verb: "create", path: /\/configmaps$/, times: 2, status: 503 });
  for (let i = 0; i < 2; i++) {
    await assert.rejects(
      cms.create({ metadata: { name: "y" } }),
      (e) => isTransient(e) && (e as ApiError).code === 503,
    );
  }
  await cms.create({ metadata: { name: "y" } });

  server.failNext({
    status: { code: 429, reason: "TooManyRequests", message: "slow down", details: { retryAfterSeconds: 1 } },
  });
  await assert.rejects(
    cms.get("y"),
    apiError(429, "TooManyRequests", (e) => assert.match(e.message, /slow down/)),
  );
  const refused = new Error("connection refused");
  server.failNext({ path: "/api/v1/namespaces/default/configmaps/y", error: refused });
  await assert.rejects(cms.get("y"), (e) => e === refused);

  // A failed watch reaches the informer's error handler; the informer recovers.
  const errors: Error[] = [];
  const factory = new InformerFactory(client.transport, { onError: (e) => errors.push(e) });
  server.failNext({ verb: "watch", status: 500 });
  const informer = factory.for(cms, { backoff: noBackoff }).start();
  await informer.ready();
  await until("the watch failure", () => errors.length === 1);
  assert.ok(errors[0] instanceof ApiError && errors[0].code === 500);
  await cms.create({ metadata: { name: "z" } });
  await until("the informer to recover", () => informer.store.get("default/z") !== undefined);
  await factory.stop();

  // The log: every request, with verb, body and answer.
  const writes = server.writes.map((r) => `${r.verb} ${r.name ?? ""} ${r.code}`);
  assert.deepEqual(writes, [
    "create  201",
    "update x 409",
    "update x 200",
    "create  503",
    "create  503",
    "create  201",
    "create  201",
  ]);
  const creates = server.requests.filter((r) => r.verb === "create" && r.code === 201);
  assert.deepEqual(creates.map((r) => (r.body as ConfigMap).metadata?.name), ["x", "y", "z"]);
  assert.ok(server.requests.some((r) => r.verb === "watch" && r.code === 500));
  server.clearRequests();
  assert.equal(server.requests.length, 0);
});

Deno.test("memory API server: watches apply selectors, and a streaming list ends with the initial-events bookmark", async () => {
  const { server, core } = setup();
  const cms = core.configmaps("default");
  await cms.create({ metadata: { name: "a", labels: { app: "web" } } });
  await cms.create({ metadata: { name: "b" } });

  // A streaming list (sendInitialEvents) through the watcher.
  const stop = new AbortController();
  const stream = watcher(cms, { initialList: "stream", labelSelector: "app=web", signal: stop.signal });
  const first: string[] = [];
  for (let i = 0; i < 3; i++) {
    const { value } = await stream.next();
    first.push(
      value && "object" in value ? `${value.type} ${value.object.metadata?.name}` : `${value?.type}`,
    );
  }
  assert.deepEqual(first, ["Init", "InitApply a", "InitDone"]);
  // Label changes move objects in and out of a selected watch.
  const pending = (async () => {
    const seen: string[] = [];
    while (seen.length < 3) {
      const { value } = await stream.next();
      if (value && "object" in value) seen.push(`${value.type} ${value.object.metadata?.name}`);
    }
    return seen;
  })();
  await cms.patch("b", { metadata: { labels: { app: "web" } } }, { type: "merge" });
  await cms.patch("a", { metadata: { labels: { app: null } } }, { type: "merge" });
  await cms.create({ metadata: { name: "c", labels: { app: "web" } } });
  await cms.create({ metadata: { name: "d", labels: { app: "db" } } });
  assert.deepEqual(await pending, ["Apply b", "Delete a", "Apply c"]);
  stop.abort();
  await stream.return();

  // Closing the transport ends its watches.
  const open = cms.watch({ resourceVersion: server.resourceVersion });
  const next = open.next();
  await until("the watch to open", () => server.openWatches === 1);
  server.transport().close();
  assert.deepEqual(await next, { done: true, value: undefined });
  assert.equal(server.openWatches, 0);
  await assert.rejects(cms.get("a"), /client is closed/);
  assert.notEqual(server.transport(), cms.transport, "a closed transport is replaced");
});

function pod(namespace: string, name: string, labels: Record<string, string>, nodeName?: string): Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { namespace, name, labels },
    spec: { containers: [], ...(nodeName ? { nodeName } : {}) },
  };
}
