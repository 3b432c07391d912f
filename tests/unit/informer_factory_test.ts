import assert from "node:assert/strict";
import { ApiError } from "../../toolkit/client/errors.ts";
import type { KubeObject } from "../../toolkit/client/resource.ts";
import { ResourceClient } from "../../toolkit/client/resource_client.ts";
import type { Transport } from "../../toolkit/client/transport.ts";
import { InformerFactory } from "../../toolkit/runtime/informer.ts";

// Nothing here is started, so the transport is never used.
const transport = {} as Transport;
const pods = new ResourceClient<KubeObject>(transport, {
  group: "",
  version: "v1",
  kind: "Pod",
  plural: "pods",
  namespaced: true,
});

Deno.test("informer factory: asking again for an informer keeps its indexes instead of re-indexing every object", () => {
  const factory = new InformerFactory(transport);
  let calls = 0;
  const byName = (o: KubeObject) => (calls++, [o.metadata?.name ?? ""]);
  const informer = factory.for(pods, { indexers: { byName } });
  for (let i = 0; i < 100; i++) {
    informer.store.apply({ type: "Apply", object: { metadata: { namespace: "a", name: `p${i}` } } });
  }
  assert.equal(calls, 100);

  // A getter that builds its options on every call passes new functions under the same names.
  for (let i = 0; i < 10; i++) {
    const again = factory.for(pods, {
      indexers: { byName: (o: KubeObject) => (calls++, [o.metadata?.name ?? ""]) },
    });
    assert.equal(again, informer);
  }
  assert.equal(calls, 100, "an index that exists is not rebuilt");
  assert.deepEqual(informer.store.byIndex("byName", "p7").map((o) => o.metadata?.name), ["p7"]);

  // A new index name is added and covers the cached objects.
  factory.for(pods, { indexers: { byFirstLetter: (o: KubeObject) => [o.metadata?.name?.[0] ?? ""] } });
  assert.equal(informer.store.byIndex("byFirstLetter", "p").length, 100);
});

Deno.test("informer factory: its onError hears every informer it hands out, whoever asked first", async () => {
  const refusing = {
    config: { server: "https://refusing.invalid" },
    request: () =>
      Promise.reject(
        new ApiError(403, { code: 403, reason: "Forbidden", message: "pods is forbidden" }, "LIST"),
      ),
    stream: () => Promise.reject(new Error("not used")),
    close: () => {},
  } as unknown as Transport;
  const heard: { error: string; plural: string }[] = [];
  const perCall: string[] = [];
  const factory = new InformerFactory(refusing, {
    onError: (error, informer) =>
      heard.push({ error: error.message, plural: informer.client.descriptor.plural }),
  });
  const refusedPods = new ResourceClient<KubeObject>(refusing, pods.descriptor);
  const informer = factory.for(refusedPods, {
    backoff: { next: () => 10, reset: () => {} },
    onError: (error) => perCall.push(error.message),
  });
  // A later caller with its own handler gets the same informer.
  assert.equal(factory.for(refusedPods, { onError: () => {} }), informer);
  informer.start();
  while (heard.length < 2) await new Promise((r) => setTimeout(r, 10));
  await factory.stop();
  assert.equal(heard[0].plural, "pods");
  assert.match(heard[0].error, /forbidden/);
  assert.ok(perCall.length >= 2, "the first caller's own handler is kept too");
});
