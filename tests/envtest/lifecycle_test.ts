import assert from "node:assert/strict";
import { ensureBinaries } from "../../toolkit/envtest/binaries.ts";
import { Environment } from "../../toolkit/envtest/environment.ts";
import { isPortFree } from "../../toolkit/envtest/ports.ts";
import { isRecordAlive } from "../../toolkit/envtest/process.ts";

const sanitizers = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "envtest: stop() ends exactly the processes it started and frees their ports",
  ...sanitizers,
  async fn() {
    const env = await Environment.start({ clusters: [{ name: "solo", nodes: 1 }] });
    const cluster = env.cluster("solo");
    const records = cluster.processes;
    assert.deepEqual(records.map((r) => r.name).sort(), [
      "etcd",
      "kube-apiserver",
      "kube-controller-manager",
      "kube-scheduler",
      "kwok",
    ]);
    assert.ok(records.every(isRecordAlive));
    const ports = Object.values(cluster.state.ports).filter((p) => p > 0);
    const dir = env.dir;
    await env.stop();
    assert.ok(records.every((r) => !isRecordAlive(r)), "every started process is gone");
    assert.ok(ports.every(isPortFree), `ports ${ports.join(",")} are free`);
    await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
  },
});

Deno.test({
  name: "envtest: the CLI's up/status/down cycle leaves nothing behind",
  ...sanitizers,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kubeocean-cli-" });
    const cli = new URL("../../toolkit/envtest/cli.ts", import.meta.url).pathname;
    const run = async (...args: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-all", cli, ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
      return {
        code: out.code,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: new TextDecoder().decode(out.stderr),
      };
    };
    try {
      const up = await run("up", "--clusters", "computing,worker1", "--nodes", "worker1=2", "--dir", dir);
      assert.equal(up.code, 0, up.stderr);
      const summary = JSON.parse(up.stdout);
      assert.equal(summary.clusters.worker1.kubeconfig, `${dir}/worker1/kubeconfig`);
      assert.deepEqual(summary.clusters.worker1.nodes, ["worker1-node-1", "worker1-node-2"]);
      assert.match(summary.clusters.computing.server, /^https:\/\/127\.0\.0\.1:\d+$/);
      await Deno.stat(`${dir}/computing/kubeconfig`);
      await Deno.stat(`${dir}/kubeconfig`);

      // The clusters outlive the `up` process.
      const status = await run("status", "--dir", dir);
      assert.equal(status.code, 0, status.stdout + status.stderr);
      const state = JSON.parse(await Deno.readTextFile(`${dir}/envtest.json`));
      const records = state.clusters.flatMap((c: { processes: unknown[] }) => c.processes);
      const ports = state.clusters.flatMap((c: { ports: Record<string, number> }) => Object.values(c.ports))
        .filter((p: number) => p > 0);
      assert.equal(records.length, 4 + 5);
      assert.ok(records.every(isRecordAlive));

      // `up` again on the same directory is refused while it runs.
      const again = await run("up", "--clusters", "computing", "--dir", dir);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /already holds a running environment/);

      const down = await run("down", "--dir", dir);
      assert.equal(down.code, 0, down.stderr);
      assert.ok(records.every((r: never) => !isRecordAlive(r)));
      assert.ok(ports.every(isPortFree));
      const after = await run("status", "--dir", dir);
      assert.equal(after.code, 1);
      assert.match(after.stderr, /no environment/);
    } finally {
      await run("down", "--dir", dir);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "envtest: a taken port fails fast and names the port",
  ...sanitizers,
  async fn() {
    const blocker = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (blocker.addr as Deno.NetAddr).port;
    try {
      const started = Date.now();
      await assert.rejects(
        Environment.start({ clusters: [{ name: "clash", ports: { apiserver: port } }] }),
        (err: Error) => {
          assert.match(
            err.message,
            new RegExp(`port ${port} for apiserver of cluster clash is already in use`),
          );
          return true;
        },
      );
      assert.ok(Date.now() - started < 5_000, "fails fast");
    } finally {
      blocker.close();
    }
  },
});

Deno.test({
  name: "envtest: a missing binary fails fast and names the binary",
  ...sanitizers,
  async fn() {
    const binaries = await ensureBinaries({ allowBuild: false });
    const broken = { ...binaries, kubeApiserver: "/nonexistent/kube-apiserver" };
    await assert.rejects(
      Environment.start({ clusters: [{ name: "nobin" }], binaries: broken }),
      /kube-apiserver binary not found or not executable at \/nonexistent\/kube-apiserver/,
    );
  },
});

Deno.test({
  name: "envtest: without binaries and without Go the error says what to install",
  ...sanitizers,
  async fn() {
    const empty = await Deno.makeTempDir();
    const path = Deno.env.get("PATH") ?? "";
    try {
      Deno.env.set("PATH", "/nonexistent");
      await assert.rejects(
        ensureBinaries({ assetsDir: empty, cacheRoot: empty, log: () => {} }),
        /Go is not installed[\s\S]*KUBEBUILDER_ASSETS/,
      );
    } finally {
      Deno.env.set("PATH", path);
      await Deno.remove(empty, { recursive: true });
    }
  },
});
