import assert from "node:assert/strict";
import type { KubeObject } from "../../toolkit/client/resource.ts";
import {
  LABEL_INDEX,
  NAMESPACE_INDEX,
  OWNER_INDEX,
  type ReflectedEvent,
  reflector,
  shareUnchanged,
  Store,
} from "../../toolkit/runtime/store.ts";
import type { WatcherEvent } from "../../toolkit/runtime/watcher.ts";

function obj(
  ns: string,
  name: string,
  rv: string,
  labels: Record<string, string> = {},
  owner?: string,
): KubeObject {
  return {
    metadata: {
      namespace: ns,
      name,
      resourceVersion: rv,
      labels,
      ownerReferences: owner ? [{ apiVersion: "v1", kind: "X", name: "o", uid: owner }] : undefined,
    },
  };
}

async function* from<T>(events: T[]): AsyncGenerator<T> {
  for (const e of events) yield e;
}

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const e of stream) out.push(e);
  return out;
}

Deno.test("store: a re-list shows each new version at once, and drops vanished objects (tombstones) when it completes", async () => {
  const store = new Store<KubeObject>();
  const first: WatcherEvent<KubeObject>[] = [
    { type: "Init" },
    { type: "InitApply", object: obj("a", "one", "1") },
    { type: "InitApply", object: obj("a", "two", "2") },
    { type: "InitDone", resourceVersion: "2" },
  ];
  await collect(reflector(store, from(first)));
  assert.equal(store.size, 2);
  assert.equal(store.isReady, true);

  // During the second list each listed object's new version is visible at once (a reconcile its
  // event triggers must not read the replaced one); objects not listed stay until InitDone.
  const store2Events: WatcherEvent<KubeObject>[] = [
    { type: "Init" },
    { type: "InitApply", object: obj("a", "two", "5") },
  ];
  await collect(reflector(store, from(store2Events)));
  assert.equal(store.size, 2, "objects not listed yet are kept during a re-list");
  assert.equal(store.get("a/two")?.metadata?.resourceVersion, "5", "the listed version is visible at once");

  const rest = await collect(reflector(
    store,
    from<WatcherEvent<KubeObject>>([
      { type: "InitApply", object: obj("a", "three", "6") },
      { type: "InitDone", resourceVersion: "6" },
    ]),
  ));
  assert.deepEqual(store.keys().sort(), ["a/three", "a/two"]);
  assert.equal(store.get("a/two")?.metadata?.resourceVersion, "5");
  const tombstones = rest.filter((e): e is Extract<ReflectedEvent<KubeObject>, { type: "Delete" }> =>
    e.type === "Delete"
  );
  assert.equal(tombstones.length, 1);
  assert.equal(tombstones[0].object.metadata?.name, "one");
  assert.equal(tombstones[0].tombstone, true);
});

Deno.test("store: apply and delete keep secondary indexes exact, and carry the previous version", async () => {
  const store = new Store<KubeObject>({ byName: (o) => [o.metadata?.name ?? ""] });
  const events = await collect(reflector(
    store,
    from<WatcherEvent<KubeObject>>([
      { type: "Init" },
      { type: "InitDone", resourceVersion: "1" },
      { type: "Apply", object: obj("a", "x", "2", { app: "web" }, "u1") },
      { type: "Apply", object: obj("b", "y", "3", { app: "db" }) },
      { type: "Apply", object: obj("a", "x", "4", { app: "api" }, "u2") },
      { type: "Delete", object: obj("b", "y", "5") },
    ]),
  ));
  const updated = events.find((e) => e.type === "Apply" && e.object.metadata?.resourceVersion === "4");
  assert.equal(updated?.type === "Apply" ? updated.previous?.metadata?.resourceVersion : undefined, "2");
  assert.deepEqual(store.byIndex(NAMESPACE_INDEX, "a").map((o) => o.metadata?.name), ["x"]);
  assert.deepEqual(store.byIndex(NAMESPACE_INDEX, "b"), []);
  assert.deepEqual(store.byIndex(LABEL_INDEX, "app=web"), []);
  assert.deepEqual(store.byIndex(LABEL_INDEX, "app=api").map((o) => o.metadata?.name), ["x"]);
  assert.deepEqual(store.byIndex(OWNER_INDEX, "u1"), []);
  assert.equal(store.byIndex(OWNER_INDEX, "u2").length, 1);
  assert.equal(store.byIndex("byName", "x").length, 1);
  assert.throws(() => store.byIndex("nope", "x"), /no index "nope"/);
  store.addIndex("late", (o) => [o.metadata?.resourceVersion ?? ""]);
  assert.equal(store.byIndex("late", "4").length, 1);
});

Deno.test("store: ready() resolves after the first InitDone and honours abort", async () => {
  const store = new Store<KubeObject>();
  const aborted = new AbortController();
  const early = store.ready(aborted.signal);
  aborted.abort(new Error("stop"));
  await assert.rejects(early, /stop/);
  const waiting = store.ready();
  store.apply({ type: "Init" });
  store.apply({ type: "InitDone", resourceVersion: "1" });
  await waiting;
});

Deno.test("store: an update keeps the unchanged parts of the previous version and only what changed is new", () => {
  const store = new Store<KubeObject & { data?: Record<string, string>; spec?: unknown }>();
  const first = JSON.parse(
    `{"metadata":{"namespace":"a","name":"x","resourceVersion":"1","labels":{"k":"v"}},` +
      `"spec":{"list":[{"n":1},{"n":2}]},"data":{"payload":"${"p".repeat(100)}","round":"0"}}`,
  );
  store.apply({ type: "Apply", object: first });
  const second = JSON.parse(
    `{"metadata":{"namespace":"a","name":"x","resourceVersion":"2","labels":{"k":"v"}},` +
      `"spec":{"list":[{"n":1},{"n":3}]},"data":{"payload":"${"p".repeat(100)}","round":"1"}}`,
  );
  const { previous } = store.apply({ type: "Apply", object: second });
  assert.equal(previous, first);
  const stored = store.get("a/x")!;
  assert.equal(stored, second);
  // Values are those of the new version…
  assert.deepEqual(stored, JSON.parse(JSON.stringify(second)));
  assert.equal(stored.metadata?.resourceVersion, "2");
  assert.equal(stored.data?.round, "1");
  // …and every unchanged part is the previous version's own object.
  assert.equal(stored.metadata?.labels, first.metadata.labels);
  assert.equal((stored.spec as { list: unknown[] }).list[0], first.spec.list[0]);
  assert.notEqual((stored.spec as { list: unknown[] }).list[1], first.spec.list[1]);
  assert.notEqual(stored.data, first.data);
  assert.notEqual(stored.metadata, first.metadata);
});

Deno.test("store: shareUnchanged tells added, removed and re-typed members apart", () => {
  const same = { a: [1, "x", { b: null }] };
  assert.equal(shareUnchanged({ a: [1, "x", { b: null }] }, same), same);
  const extraKey = { a: [1, "x", { b: null }], c: 1 };
  assert.equal(shareUnchanged(extraKey, same), extraKey);
  assert.equal(extraKey.a, same.a);
  const missingKey = {};
  assert.equal(shareUnchanged(missingKey, { gone: 1 }), missingKey);
  const longer = [1, 2, 3];
  assert.equal(shareUnchanged(longer, [1, 2]), longer);
  const shorter = [1];
  assert.equal(shareUnchanged(shorter, [1, 2]), shorter);
  const arrayForObject = [1];
  assert.equal(shareUnchanged(arrayForObject, { 0: 1 }), arrayForObject);
  const objectForArray = { 0: 1 };
  assert.equal(shareUnchanged(objectForArray, [1]), objectForArray);
  const undefinedMember = { x: undefined };
  assert.equal(shareUnchanged(undefinedMember, {}), undefinedMember);
});
