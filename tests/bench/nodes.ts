/**
 * `deno task bench nodes [--nodes 200] [--observe 30]`: how fast a running syncer turns a worker's
 * nodes into Ready virtual nodes once a policy lends them, against a baseline measured in the same
 * run — creating the same number of Ready nodes directly in the computing cluster the way the
 * syncer writes them (the node with its status in one create, then its lease) with a client of the
 * syncer's settings, before any syncer runs — plus the steady-state heartbeat write rate.
 *
 * Last line: `nodes: ratio X, heartbeat writes Y/s`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { Node } from "../../apis/core/v1/mod.ts";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { CoordinationK8sIoV1Api } from "../../apis/coordination.k8s.io/v1/mod.ts";
import { KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { KubeClient } from "../../toolkit/client/client.ts";
import { DEFAULT_CLIENT_LIMITS } from "../../controllers/common/process.ts";
import { connect } from "../../toolkit/envtest/testing.ts";
import type { KubeObject } from "../../toolkit/client/resource.ts";
import { bindForBench, observeChanges, startEnvironment, SyncerProcess } from "./support.ts";

const ready = (n: Node) =>
  n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

/** Runs the benchmark. */
export async function benchNodes(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { nodes: { type: "string", default: "200" }, observe: { type: "string", default: "30" } },
  });
  const count = Number(values.nodes);
  const observeSeconds = Number(values.observe);
  console.log(
    `bench nodes: ${count} kwok nodes in a worker; baseline: ${count} Ready nodes created directly`,
  );
  const env = await startEnvironment({
    clusters: [
      { name: "computing", controlPlane: true },
      { name: "worker", kwok: true, controlPlane: true },
    ],
  });
  const computing = await connect(env.cluster("computing"));
  const worker = await connect(env.cluster("worker"));
  let syncer: SyncerProcess | undefined;
  try {
    await env.cluster("worker").createNodes(count, { deadline: Date.now() + 300_000 });
    await bindForBench(computing, worker, "bench");

    // Baseline: the same client settings the syncer uses.
    const direct = await KubeClient.load({
      kubeconfig: env.cluster("computing").kubeconfig,
      ...DEFAULT_CLIENT_LIMITS,
    });
    const nodes = new CoreV1Api(direct).nodes();
    const leases = new CoordinationK8sIoV1Api(direct).leases("kube-node-lease");
    const t0 = performance.now();
    const template = (await new CoreV1Api(worker).nodes().get("worker-node-1")).status!;
    await Promise.all(Array.from({ length: count }, async (_, i) => {
      const name = `direct-${i}`;
      const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
      // As the syncer does (and a kubelet registers): the status in the create, one write.
      const node = await nodes.create({
        metadata: { name, labels: { bench: "direct" } },
        spec: { taints: [{ key: "bench", effect: "NoSchedule" }] },
        status: {
          capacity: template.capacity,
          allocatable: template.allocatable,
          conditions: [{
            type: "Ready",
            status: "True",
            reason: "KubeletReady",
            message: "direct",
            lastHeartbeatTime: now,
            lastTransitionTime: now,
          }],
          nodeInfo: template.nodeInfo,
        },
      });
      await leases.create({
        metadata: {
          name,
          ownerReferences: [{ apiVersion: "v1", kind: "Node", name, uid: node.metadata!.uid! }],
        },
        spec: {
          holderIdentity: name,
          leaseDurationSeconds: 40,
          renewTime: new Date().toISOString().replace("Z", "000Z"),
        },
      });
    }));
    const baselineMs = performance.now() - t0;
    console.log(`  baseline: ${count} Ready nodes created directly in ${(baselineMs / 1000).toFixed(2)} s`);
    await nodes.deleteCollection({ labelSelector: "bench=direct" });
    await leases.deleteCollection({});
    direct.close();

    // Measured: the syncer, as its own process and started (caches synced), from the policy that
    // lends the nodes to every virtual node Ready.
    syncer = new SyncerProcess(env.cluster("computing").kubeconfig, "bench");
    await syncer.ready();
    const readyNames = new Set<string>();
    const watching = new AbortController();
    const allReady = Promise.withResolvers<void>();
    await observeChanges(
      new CoreV1Api(computing).nodes(),
      { labelSelector: "kubeocean.io/cluster-binding=bench", signal: watching.signal },
      (type, node) => {
        if (type === "Apply" && ready(node)) readyNames.add(node.metadata!.name!);
        if (readyNames.size === count) allReady.resolve();
      },
    );
    const t1 = performance.now();
    await new KubeoceanIoV1beta1Api(worker).resourceleasingpolicies().create({
      metadata: { name: "all" },
      spec: { cluster: "bench" },
    });
    await allReady.promise;
    const syncerMs = performance.now() - t1;
    watching.abort();
    console.log(
      `  syncer:   ${count} virtual nodes Ready in ${(syncerMs / 1000).toFixed(2)} s after the policy`,
    );

    // Steady state: count writes to virtual nodes and their leases for a while.
    let writes = 0;
    const steady = new AbortController();
    const countWrites = (type: "Apply" | "Delete", object: KubeObject) => {
      if (type === "Apply" && object.metadata?.name?.startsWith("vnode-b1-")) writes++;
    };
    await observeChanges(new CoreV1Api(computing).nodes(), { signal: steady.signal }, countWrites);
    await observeChanges(
      new CoordinationK8sIoV1Api(computing).leases("kube-node-lease"),
      { signal: steady.signal },
      countWrites,
    );
    await new Promise((r) => setTimeout(r, observeSeconds * 1000));
    steady.abort();
    const rss = await syncer.rssMiB();
    const perSecond = writes / observeSeconds;
    console.log(`  steady state: ${writes} writes in ${observeSeconds} s; syncer RSS ${rss.toFixed(0)} MiB`);
    const ratio = syncerMs / baselineMs;
    console.log(`nodes: ratio ${ratio.toFixed(2)}, heartbeat writes ${perSecond.toFixed(1)}/s`);
  } finally {
    await syncer?.stop();
    computing.close();
    worker.close();
    await env.stop();
  }
}
