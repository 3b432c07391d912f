import assert from "node:assert/strict";
import { isGone } from "../../toolkit/client/errors.ts";
import type { KubeObject, ResourceDescriptor } from "../../toolkit/client/resource.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";
import { Informer } from "../../toolkit/runtime/informer.ts";
import type { ReflectedEvent } from "../../toolkit/runtime/store.ts";
import { watcher, type WatcherEvent } from "../../toolkit/runtime/watcher.ts";

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

function names(objects: KubeObject[]): string[] {
  return objects.map((o) => o.metadata?.name ?? "").sort();
}

envTest("watch: resume, 410 re-list, tombstones, API server restart, streaming lists", {
  clusters: [{ name: "w1" }],
}, async (env, t) => {
  const cluster = env.cluster("w1");
  const client = await connect(cluster);
  const stop = new AbortController();
  try {
    await client.resource<KubeObject>(NAMESPACES).create({ metadata: { name: "watch" } });
    const cms = client.resource<KubeObject & { data?: Record<string, string> }>(CONFIGMAPS, "watch");
    for (const name of ["a", "b", "c"]) await cms.create({ metadata: { name } });

    await t.step(
      "the watcher resumes from its last resourceVersion after the server closes the watch",
      async () => {
        const events: WatcherEvent<KubeObject>[] = [];
        const abort = new AbortController();
        const done = (async () => {
          for await (
            const event of watcher(cms, { pageSize: 2, watchTimeoutSeconds: [1, 1], signal: abort.signal })
          ) events.push(event);
        })();
        await eventually("initial list", () => events.some((e) => e.type === "InitDone"));
        await new Promise((r) => setTimeout(r, 2_500)); // at least two server-side watch timeouts
        await cms.create({ metadata: { name: "after-timeout" } });
        await eventually(
          "event after resume",
          () => events.some((e) => e.type === "Apply" && e.object.metadata?.name === "after-timeout"),
        );
        abort.abort();
        await done;
        assert.equal(
          events.filter((e) => e.type === "Init").length,
          1,
          "no re-list: the watch resumed",
        );
        assert.equal(events.filter((e) => e.type === "Error").length, 0);
      },
    );

    await t.step(
      "an informer converges across an API server restart with compaction; deletions become tombstones",
      async () => {
        const informer = new Informer(cms, { onError: () => {} });
        const seen: ReflectedEvent<KubeObject>[] = [];
        (async () => {
          for await (const event of informer.events(stop.signal)) seen.push(event);
        })();
        await informer.ready(stop.signal);
        assert.deepEqual(names(informer.store.list()), ["a", "after-timeout", "b", "c"]);

        await cluster.stopApiserver();
        await eventually("watch error seen", () => seen.some((e) => e.type === "Error"), {
          timeoutMs: 20_000,
        });
        // While the API server is down, delete "b" behind its back in etcd and compact history.
        const response = await fetch(`http://127.0.0.1:${cluster.state.ports.etcd}/v3/kv/deleterange`, {
          method: "POST",
          body: JSON.stringify({ key: btoa("/registry/configmaps/watch/b") }),
        });
        assert.equal((await response.json()).deleted, "1");
        await cluster.compactEtcd();
        await cluster.startApiserver();
        await cms.create({ metadata: { name: "d" } });

        await eventually("store equals the server's list", async () => {
          const server = names((await cms.list()).items);
          return JSON.stringify(names(informer.store.list())) === JSON.stringify(server);
        }, { timeoutMs: 60_000 });
        assert.deepEqual(names(informer.store.list()), ["a", "after-timeout", "c", "d"]);
        const tombstones = seen.filter((e) => e.type === "Delete" && e.tombstone);
        assert.deepEqual(tombstones.map((e) => (e as { object: KubeObject }).object.metadata?.name), ["b"]);
        assert.ok(seen.filter((e) => e.type === "Init").length >= 2, "re-listed after the restart");
        await informer.stop();
      },
    );

    await t.step("a raw watch from a compacted resourceVersion ends with a typed 410 Gone", async () => {
      await assert.rejects(async () => {
        for await (const _ of cms.watch({ resourceVersion: "2" })) break;
      }, (e) => isGone(e));
    });

    await t.step(
      "a streaming list (sendInitialEvents) or its fallback yields the same initial state",
      async () => {
        const events: WatcherEvent<KubeObject>[] = [];
        const abort = new AbortController();
        for await (const event of watcher(cms, { initialList: "stream", signal: abort.signal })) {
          events.push(event);
          if (event.type === "InitDone") break;
        }
        abort.abort();
        const initial = events.filter((e) => e.type === "InitApply").map((e) =>
          (e as { object: KubeObject }).object
        );
        assert.deepEqual(names(initial), names((await cms.list()).items));
      },
    );

    await t.step("subscribers that join late get the full state first", async () => {
      const informer = new Informer(cms);
      await informer.start().ready();
      const late = informer.events(stop.signal)[Symbol.asyncIterator]();
      assert.equal((await late.next()).value?.type, "Init");
      const applies: string[] = [];
      for (let i = 0; i < 4; i++) {
        const { value } = await late.next();
        assert.equal(value?.type, "InitApply");
        applies.push((value as { object: KubeObject }).object.metadata?.name ?? "");
      }
      assert.deepEqual(applies.sort(), ["a", "after-timeout", "c", "d"]);
      assert.equal((await late.next()).value?.type, "InitDone");
      await informer.stop();
    });
  } finally {
    stop.abort();
    client.close();
  }
});
