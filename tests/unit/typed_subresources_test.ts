// Subresource methods exist only on clients of resources that serve the subresource, and merge
// patches are typed. `deno test` type-checks this file: every `@ts-expect-error` below must be an
// error (else the check fails), and every other call must compile. No server is needed: the
// transport records the requests and the tests assert their paths.
import assert from "node:assert/strict";
import { AppsV1Api } from "../../apis/apps/v1/mod.ts";
import {
  type ConfigMap,
  ConfigMapResource,
  CoreV1Api,
  type Node,
  type NodeStatus,
  type Pod,
} from "../../apis/core/v1/mod.ts";
import { type ClusterBinding, KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import {
  type ClientConfig,
  KubeClient,
  type KubeObject,
  type MergePatch,
  type RequestOptions,
  ResourceClient,
  StaticCredentials,
  type Transport,
} from "../../toolkit/client/mod.ts";

/** A transport that records every request and answers with a small object (or a two-line stream). */
class RecordingTransport implements Transport {
  readonly config: ClientConfig = {
    server: "https://recording.invalid",
    tls: {},
    credentials: new StaticCredentials({}),
    namespace: "default",
    source: "recording transport",
  };
  readonly requests: RequestOptions[] = [];

  request<T = unknown>(options: RequestOptions): Promise<T> {
    this.requests.push(options);
    // JSON.parse returns `any`, which stands in for whatever the caller expects.
    return Promise.resolve(JSON.parse('{"metadata":{"name":"answer"}}'));
  }

  stream(options: RequestOptions): Promise<Response> {
    this.requests.push(options);
    return Promise.resolve(new Response("one\ntwo\n"));
  }

  close(): void {}

  /** `METHOD path` of every request so far, then forgets them. */
  take(): string[] {
    return this.requests.splice(0).map((r) => `${r.method} ${r.path}`);
  }
}

const transport = new RecordingTransport();
const core = new CoreV1Api(transport);
const apps = new AppsV1Api(transport);
const kubeocean = new KubeoceanIoV1beta1Api(transport);
const client = new KubeClient(transport);

/** Needs a client with the `status` subresource. */
function statusWriter<T extends KubeObject>(c: ResourceClient<T, "status">): ResourceClient<T, "status"> {
  return c;
}
/** Takes any client of `T`, whatever its subresources. */
function anyClient<T extends KubeObject>(c: ResourceClient<T>): ResourceClient<T> {
  return c;
}
/** Infers `T` from a client (as informers and controllers do). */
function objectsOf<T extends KubeObject>(_client: ResourceClient<T>): T[] {
  return [];
}

// None of these compiles; they are never called.
const rejected = [
  // @ts-expect-error ConfigMaps have no eviction subresource
  () => core.configmaps("ns").evict("x"),
  // @ts-expect-error ConfigMaps have no status subresource
  () => core.configmaps("ns").patchStatus("x", { data: { a: "1" } }, { type: "merge" }),
  // @ts-expect-error ConfigMaps have no status subresource
  () => core.configmaps("ns").getStatus("x"),
  // @ts-expect-error Secrets have no scale subresource
  () => core.secrets("ns").scale("x", 2),
  // @ts-expect-error Secrets have no scale subresource
  () => core.secrets("ns").getScale("x"),
  // @ts-expect-error Deployments cannot be evicted
  () => apps.deployments("ns").evict("x"),
  // @ts-expect-error Deployments have no binding subresource
  () => apps.deployments("ns").bind("x", "node-1"),
  // @ts-expect-error Nodes have no token subresource
  () => core.nodes().createToken("x"),
  // @ts-expect-error ServiceAccounts have no log subresource
  () => core.serviceaccounts("ns").logs("x"),
  // @ts-expect-error ServiceAccounts have no log subresource
  () => core.serviceaccounts("ns").logLines("x"),
  // @ts-expect-error Pods have no scale subresource
  () => core.pods("ns").scale("x", 1),
  // @ts-expect-error ClusterBindings have no scale subresource
  () => kubeocean.clusterbindings().getScale("x"),
  // @ts-expect-error ConfigMaps have no status subresource
  () => core.configmaps("ns").replaceStatus({ metadata: { name: "x" } }),
  // @ts-expect-error binding to a namespace keeps the subresources: still none
  () => core.configmaps().namespace("ns").evict("x"),
  // @ts-expect-error namespaceOf keeps them too
  () => core.secrets().namespaceOf({ metadata: { namespace: "ns" } }).patchStatus("x", {}, { type: "merge" }),
  // @ts-expect-error a client of a descriptor has no subresources unless named
  () => client.resource<ConfigMap>(ConfigMapResource, "ns").patchStatus("x", {}, { type: "merge" }),
  // @ts-expect-error a ConfigMap client is not a client with the status subresource
  () => statusWriter(core.configmaps("ns")),
  // @ts-expect-error a generic client is not one with more subresources
  () => statusWriter(anyClient(kubeocean.clusterbindings())),
  // @ts-expect-error ConfigMaps have no exec subresource (not a PodClient either)
  () => core.configmaps("ns").exec("x", ["true"]),
  // @ts-expect-error merge patches are typed: no such field
  () => core.nodes().patch("n", { spec: { colour: "blue" } }, { type: "merge" }),
  // @ts-expect-error merge patches are typed: a label value is a string or null
  () => core.nodes().patch("n", { metadata: { labels: { pool: 3 } } }, { type: "merge" }),
  // @ts-expect-error arrays are replaced whole: every taint needs its key and effect
  () => core.nodes().patch("n", { spec: { taints: [{ value: "v" }] } }, { type: "merge" }),
];

Deno.test("typed subresources: calls a resource does not serve are compile errors", () => {
  // The assertions are the @ts-expect-error lines above, enforced by the type check.
  assert.equal(rejected.length, 22);
});

Deno.test("typed subresources: served subresources compile and address the subresource path", async () => {
  await core.pods("default").evict("web-0", { gracePeriodSeconds: 0 });
  await core.pods().namespace("ns").evict("web-1");
  await core.pods("default").bind("web-0", "node-1");
  assert.equal(await core.pods("default").logs("web-0"), "one\ntwo\n");
  const lines: string[] = [];
  for await (const line of core.pods("default").logLines("web-0")) lines.push(line);
  assert.deepEqual(lines, ["one", "two"]);
  assert.deepEqual(transport.take(), [
    "POST /api/v1/namespaces/default/pods/web-0/eviction",
    "POST /api/v1/namespaces/ns/pods/web-1/eviction",
    "POST /api/v1/namespaces/default/pods/web-0/binding",
    "GET /api/v1/namespaces/default/pods/web-0/log",
    "GET /api/v1/namespaces/default/pods/web-0/log",
  ]);

  await apps.deployments("default").scale("web", 3);
  await apps.deployments("default").getScale("web");
  await apps.statefulsets().namespaceOf({ metadata: { namespace: "db" } }).scale("pg", 1);
  assert.deepEqual(transport.take(), [
    "PATCH /apis/apps/v1/namespaces/default/deployments/web/scale",
    "GET /apis/apps/v1/namespaces/default/deployments/web/scale",
    "PATCH /apis/apps/v1/namespaces/db/statefulsets/pg/scale",
  ]);

  const status: ClusterBinding["status"] = {
    conditions: [{
      type: "Ready",
      status: "True",
      lastTransitionTime: "2026-01-01T00:00:00Z",
      reason: "Connected",
      message: "",
    }],
  };
  await kubeocean.clusterbindings().patchStatus("worker", { status }, { type: "merge" });
  await kubeocean.clusterbindings().getStatus("worker");
  await kubeocean.clusterbindings().replaceStatus({
    metadata: { name: "worker" },
    spec: sampleSpec(),
    status,
  });
  const token = await core.serviceaccounts("default").createToken("reader", { expirationSeconds: 600 });
  assert.equal(token.metadata?.name, "answer");
  assert.deepEqual(transport.take(), [
    "PATCH /apis/kubeocean.io/v1beta1/clusterbindings/worker/status",
    "GET /apis/kubeocean.io/v1beta1/clusterbindings/worker/status",
    "PUT /apis/kubeocean.io/v1beta1/clusterbindings/worker/status",
    "POST /api/v1/namespaces/default/serviceaccounts/reader/token",
  ]);
});

Deno.test("typed subresources: a client with more subresources is usable as one with fewer", async () => {
  // `T` is inferred as the object type itself (the patch types do not widen it).
  const inferred: [Pod[], Node[], ConfigMap[]] = [
    objectsOf(core.pods()),
    objectsOf(core.nodes()),
    objectsOf(core.configmaps()),
  ];
  assert.equal(inferred.length, 3);
  const pods: ResourceClient<Pod, "status"> = core.pods("default");
  const plain: ResourceClient<Pod> = core.pods("default");
  await statusWriter(kubeocean.clusterbindings()).patchStatus("w", { status: {} }, { type: "merge" });
  await statusWriter(core.pods("default")).getStatus("web-0");
  await anyClient(core.configmaps("default")).get("settings");
  await pods.patchStatus("web-0", { status: { phase: "Running" } }, { type: "merge" });
  await plain.get("web-0");
  assert.deepEqual(transport.take(), [
    "PATCH /apis/kubeocean.io/v1beta1/clusterbindings/w/status",
    "GET /api/v1/namespaces/default/pods/web-0/status",
    "GET /api/v1/namespaces/default/configmaps/settings",
    "PATCH /api/v1/namespaces/default/pods/web-0/status",
    "GET /api/v1/namespaces/default/pods/web-0",
  ]);
});

Deno.test("typed subresources: KubeClient.resource names them; generic subresource calls are unchecked", async () => {
  const configMaps = client.resource<ConfigMap, "status">(ConfigMapResource, "ns");
  await configMaps.patchStatus("x", { data: { a: "1" } }, { type: "merge" });
  await client.resource<ConfigMap>(ConfigMapResource, "ns").getSubresource("x", "custom");
  await core.configmaps("ns").createSubresource("x", "custom", { any: "body" });
  assert.deepEqual(transport.take(), [
    "PATCH /api/v1/namespaces/ns/configmaps/x/status",
    "GET /api/v1/namespaces/ns/configmaps/x/custom",
    "POST /api/v1/namespaces/ns/configmaps/x/custom",
  ]);
});

Deno.test("merge patches: null deletes, nested partials and whole objects compile without casts", async () => {
  await core.nodes().patch("n", { metadata: { labels: { pool: null } } }, { type: "merge" });
  const nodeStatus: NodeStatus = { capacity: { cpu: "4" }, conditions: [{ type: "Ready", status: "True" }] };
  await core.nodes().patchStatus("n", { status: nodeStatus }, { type: "merge" });
  await core.nodes().patch("n", {
    spec: { taints: [{ key: "k", effect: "NoSchedule" }], unschedulable: null },
  }, {
    type: "merge",
  });
  const patch: MergePatch<Node> = { metadata: { annotations: { note: null } }, status: { capacity: null } };
  await core.nodes().patch("n", patch, { type: "strategic" });
  await core.configmaps("ns").apply({ metadata: { name: "applied" }, data: { owner: "me" } }, {
    fieldManager: "test",
  });
  const sent = transport.requests.splice(0);
  assert.deepEqual(sent.map((r) => `${r.method} ${r.path} ${r.contentType}`), [
    "PATCH /api/v1/nodes/n application/merge-patch+json",
    "PATCH /api/v1/nodes/n/status application/merge-patch+json",
    "PATCH /api/v1/nodes/n application/merge-patch+json",
    "PATCH /api/v1/nodes/n application/strategic-merge-patch+json",
    "PATCH /api/v1/namespaces/ns/configmaps/applied application/apply-patch+yaml",
  ]);
  assert.equal(sent[0].body, '{"metadata":{"labels":{"pool":null}}}');
  assert.deepEqual(JSON.parse(String(sent[4].body)), {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "applied" },
    data: { owner: "me" },
  });
});

/** A complete ClusterBinding spec for replaceStatus. */
function sampleSpec(): ClusterBinding["spec"] {
  return {
    clusterID: "w1",
    secretRef: { name: "kubeconfig", namespace: "kubeocean-system" },
    mountNamespace: "kubeocean-worker",
  };
}
