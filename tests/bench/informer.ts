/**
 * `deno task bench informer`: our informer against `@kubernetes/client-node`'s, in one run on one
 * real API server. Each side runs in its own process (see informer_worker.ts) and is measured
 * twice, interleaved; the better run of each counts.
 *
 * Measures: time until the informer holds all objects (list of N ~1 KiB ConfigMaps), the time
 * to observe M updates written as fast as the API server accepts them (update throughput), and
 * the process RSS at the end, in two rows: each library with its defaults (ours drops
 * managedFields), and both storing the same data (ours keeping managedFields too). The last line,
 * `informer: time ratio X, rss ratio Y, floor ratio F`, compares equal data, ours divided by
 * client-node's (time = time to synced; below 1 means we are faster / smaller), and F is the
 * floor's time divided by client-node's, so X ÷ F says how far we are from the floor. A third process
 * measures the floor any client on this runtime pays: loading the config and one small request
 * (the process's first TLS connection), then the whole list in one request parsed with JSON.parse
 * and stored nowhere, and the runtime's RSS before that list.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { KubeObject } from "../../toolkit/client/resource.ts";
import { startEnvironment } from "./support.ts";
import { connect } from "../../toolkit/envtest/testing.ts";

interface Measurement {
  syncMs: number;
  updateMs: number;
  /** RSS and heap once synced. */
  syncRss: number;
  syncHeap: number;
  /** RSS and heap after the updates. */
  rss: number;
  heap: number;
}

/** Spawns one side (see informer_worker.ts) and reads its standard output line by line. */
function startWorker(impl: string, args: string[]) {
  const script = new URL("./informer_worker.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", script, impl, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream())[Symbol.asyncIterator]();
  let buffer = "";
  const nextLine = async (expected: string): Promise<string[]> => {
    while (!buffer.includes("\n")) {
      const { value, done } = await lines.next();
      if (done) throw new Error(`${impl} worker ended early`);
      buffer += value;
    }
    const i = buffer.indexOf("\n");
    const line = buffer.slice(0, i).split(" ");
    buffer = buffer.slice(i + 1);
    if (line[0] !== expected) throw new Error(`${impl} worker: expected ${expected}, got ${line.join(" ")}`);
    return line;
  };
  const finished = async () => {
    if (!(await child.status).success) throw new Error(`${impl} worker failed`);
  };
  return { nextLine, finished };
}

async function runWorker(
  impl: string,
  args: string[],
  write: () => Promise<void>,
): Promise<Measurement> {
  const worker = startWorker(impl, args);
  const synced = await worker.nextLine("SYNCED");
  await write();
  const done = await worker.nextLine("UPDATED");
  await worker.finished();
  return {
    syncMs: Number(synced[1]),
    syncRss: Number(synced[2]),
    syncHeap: Number(synced[3]),
    updateMs: Number(done[1]),
    rss: Number(done[2]),
    heap: Number(done[3]),
  };
}

/** The floor: one unpaged list request plus JSON.parse, and the runtime's RSS before it. */
async function runFloor(
  args: string[],
): Promise<{ listMs: number; firstRequestMs: number; idleRss: number }> {
  const worker = startWorker("floor", args);
  const line = await worker.nextLine("FLOOR");
  await worker.finished();
  return { listMs: Number(line[1]), firstRequestMs: Number(line[2]), idleRss: Number(line[3]) };
}

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** Runs the benchmark and prints the report. */
export async function benchInformer(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { objects: { type: "string", default: "10000" }, updates: { type: "string", default: "5000" } },
  });
  const objects = Number(values.objects);
  const updates = Number(values.updates);
  const log = (line: string) => console.error(`[bench] ${line}`);
  const env = await startEnvironment({
    clusters: [{ name: "bench", apiserverArgs: ["--max-requests-inflight=1000"] }],
    log,
  });
  try {
    const cluster = env.cluster("bench");
    const client = await connect(cluster, { qps: 0 });
    const ns = "bench";
    await client.resource<KubeObject>({
      group: "",
      version: "v1",
      kind: "Namespace",
      plural: "namespaces",
      namespaced: false,
    })
      .create({ metadata: { name: ns } });
    const cms = client.resource<KubeObject & { data?: Record<string, string> }>(
      { group: "", version: "v1", kind: "ConfigMap", plural: "configmaps", namespaced: true },
      ns,
    );
    const names = Array.from({ length: objects }, (_, i) => `cm-${String(i).padStart(5, "0")}`);
    const payload = "x".repeat(800);
    const created = performance.now();
    await pool(
      names,
      64,
      (name) =>
        cms.create({ metadata: { name, labels: { bench: "informer" } }, data: { payload, round: "0" } }),
    );
    log(`created ${objects} ConfigMaps in ${Math.round(performance.now() - created)} ms`);

    let round = 0;
    const results: Record<string, Measurement[]> = { kubeocean: [], "kubeocean-full": [], "client-node": [] };
    const floors: Awaited<ReturnType<typeof runFloor>>[] = [];
    const args = (r: number) => [cluster.kubeconfig, ns, String(objects), String(updates), String(r)];
    for (const pass of [1, 2]) {
      // The order alternates between passes: neither side always runs on a fresher API server.
      const order = ["client-node", "kubeocean", "kubeocean-full"];
      for (const impl of pass === 1 ? order : [...order].reverse()) {
        round++;
        const r = round;
        const m = await runWorker(
          impl,
          args(r),
          () =>
            pool(
              names.slice(0, updates),
              64,
              (name) => cms.patch(name, { data: { round: String(r) } }, { type: "merge" }),
            ),
        );
        log(
          `pass ${pass} ${impl}: synced in ${m.syncMs} ms (rss ${mb(m.syncRss)}, heap ${mb(m.syncHeap)}), ` +
            `${updates} updates seen in ${m.updateMs} ms (rss ${mb(m.rss)}, heap ${mb(m.heap)})`,
        );
        results[impl].push(m);
      }
      const floor = await runFloor(args(0));
      log(
        `pass ${pass} floor: first request ${floor.firstRequestMs} ms, then one unpaged list ${floor.listMs} ms ` +
          `(rss before it ${mb(floor.idleRss)})`,
      );
      floors.push(floor);
    }
    client.close();
    const best = (impl: string) => ({
      syncMs: Math.min(...results[impl].map((m) => m.syncMs)),
      updateMs: Math.min(...results[impl].map((m) => m.updateMs)),
      rss: Math.min(...results[impl].map((m) => m.rss)),
      heap: Math.min(...results[impl].map((m) => m.heap)),
      syncRss: Math.min(...results[impl].map((m) => m.syncRss)),
      syncHeap: Math.min(...results[impl].map((m) => m.syncHeap)),
    });
    const theirs = best("client-node");
    const floorList = Math.min(...floors.map((f) => f.listMs));
    const floorFirst = Math.min(...floors.map((f) => f.firstRequestMs));
    const floorRss = Math.min(...floors.map((f) => f.idleRss));
    console.log(`objects: ${objects} ConfigMaps of ~1 KiB; updates: ${updates}`);
    for (
      const [label, impl] of [
        ["defaults (ours drops managedFields)", "kubeocean"],
        ["same data (both keep managedFields)", "kubeocean-full"],
      ] as const
    ) {
      const ours = best(impl);
      console.log(`${label}:`);
      console.log(`  time to synced: kubeocean ${ours.syncMs} ms, client-node ${theirs.syncMs} ms`);
      console.log(
        `  update throughput: kubeocean ${Math.round(updates / (ours.updateMs / 1000))}/s, client-node ${
          Math.round(updates / (theirs.updateMs / 1000))
        }/s (bounded by the writer)`,
      );
      console.log(
        `  once synced: rss kubeocean ${mb(ours.syncRss)}, client-node ${
          mb(theirs.syncRss)
        }; heap kubeocean ${mb(ours.syncHeap)}, client-node ${mb(theirs.syncHeap)}`,
      );
      console.log(
        `  after updates: rss kubeocean ${mb(ours.rss)}, client-node ${mb(theirs.rss)}; heap kubeocean ${
          mb(ours.heap)
        }, client-node ${mb(theirs.heap)}`,
      );
      console.log(
        `  ratios: time ${(ours.syncMs / theirs.syncMs).toFixed(2)}, rss ${
          (ours.rss / theirs.rss).toFixed(2)
        }`,
      );
    }
    const floorRatio = (floorFirst + floorList) / theirs.syncMs;
    console.log(
      `floor (same runtime, no store): config + first request ${floorFirst} ms + one unpaged list with JSON.parse ${floorList} ms ` +
        `= ${floorRatio.toFixed(2)} of client-node's time; ` +
        `rss before listing ${mb(floorRss)} = ${(floorRss / theirs.rss).toFixed(2)} of client-node's rss`,
    );
    const same = best("kubeocean-full");
    console.log(
      `informer: time ratio ${(same.syncMs / theirs.syncMs).toFixed(2)}, rss ratio ${
        (same.rss / theirs.rss).toFixed(2)
      }, floor ratio ${floorRatio.toFixed(2)}`,
    );
  } finally {
    await env.stop();
  }
}
