/**
 * The shipped manifests as a user applies them: `deploy/worker/rbac.yaml` is what the renderer
 * produces; the Dockerfile compiles with exactly the permission flags of `deno task run`; and on
 * real clusters, `kubectl apply` of the CRDs and `deploy/manager/` and `deploy/worker/rbac.yaml`,
 * a ClusterBinding written by hand, and the entrypoint started with those permission flags, the
 * Deployment's own arguments and the manager ServiceAccount's identity bring the binding to Ready
 * with its syncer rendered, then stop cleanly on SIGTERM; the rendered proxier, run the same way
 * as the proxier ServiceAccount, obtains its serving certificate and serves the kubelet API.
 */

import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { AppsV1Api } from "../../apis/apps/v1/mod.ts";
import { renderWorkerRbac } from "../../deploy/render_worker_rbac.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";
import { allocatePort } from "../../toolkit/envtest/ports.ts";
import { runTaskFlags } from "../fixtures/entrypoint.ts";

const ROOT = new URL("../../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, ROOT));

/** The `deno run` permission flags of the `run` task in deno.json. */
Deno.test("deploy/worker/rbac.yaml is exactly what deploy/render_worker_rbac.ts renders", async () => {
  assert.equal(
    await read("deploy/worker/rbac.yaml"),
    renderWorkerRbac(),
    "re-render with: deno run --allow-read --allow-write deploy/render_worker_rbac.ts",
  );
});

Deno.test("the Dockerfile compiles with the permission flags of `deno task run`", async () => {
  const dockerfile = await read("deploy/Dockerfile");
  const compile = dockerfile.replace(/\\\n/g, " ").split("\n").find((l) => /^RUN deno compile/.test(l));
  assert.ok(compile, "a `deno compile` step");
  const flags = compile.split(/\s+/).filter((word) => word.startsWith("--allow-"));
  assert.deepEqual(flags, await runTaskFlags());
  assert.match(compile, /controllers\/main\.ts/);
  // bind reads the CRDs next to the code at run time.
  assert.match(compile, /--include deploy\/crds\//);
});

Deno.test("every manifest parses, names its object and belongs to Kubeocean", async () => {
  for (const dir of ["deploy/crds/", "deploy/manager/", "deploy/worker/"]) {
    for await (const entry of Deno.readDir(new URL(dir, ROOT))) {
      if (!entry.name.endsWith(".yaml")) continue;
      const docs = parseAllDocuments(await read(dir + entry.name));
      assert.ok(docs.length > 0, `${dir}${entry.name} is empty`);
      for (const doc of docs) {
        assert.deepEqual(doc.errors, [], `${dir}${entry.name}`);
        const object = doc.toJS();
        assert.ok(
          object.apiVersion && object.kind && object.metadata?.name,
          `${dir}${entry.name}: ${object.kind}`,
        );
      }
    }
  }
});

envTest(
  "deploy: kubectl apply the manifests, bind by hand, run the entrypoint as the manager ServiceAccount",
  {
    clusters: [
      // Both with a control plane: the worker's token controller fills the syncer's token Secret.
      { name: "computing", nodes: 1 },
      { name: "worker", nodes: 1 },
    ],
  },
  async (env, t) => {
    const computing = env.cluster("computing");
    const worker = env.cluster("worker");
    const kubectl = async (cluster: typeof computing, args: string[], stdin?: string) => {
      const result = await cluster.kubectl(args, { stdin, check: false });
      assert.equal(result.code, 0, `kubectl ${args.join(" ")}: ${result.stderr}`);
      return result.stdout;
    };
    const dir = await Deno.makeTempDir({ prefix: "kubeocean-deploy-test-" });
    /** A kubeconfig with the identity a token of ServiceAccount kubeocean-system/`name` gives. */
    const asServiceAccount = async (name: string) =>
      (await computing.addUser(`system:serviceaccount:kubeocean-system:${name}`, [
        "system:serviceaccounts",
        "system:serviceaccounts:kubeocean-system",
      ])).kubeconfig;
    let manager: Deno.ChildProcess | undefined;
    try {
      await t.step("kubectl apply: CRDs and deploy/manager in the computing cluster", async () => {
        await kubectl(computing, ["apply", "--server-side", "-f", new URL("deploy/crds/", ROOT).pathname]);
        for (const file of ["namespace", "rbac", "admission-policies", "service", "deployment"]) {
          await kubectl(computing, ["apply", "-f", new URL(`deploy/manager/${file}.yaml`, ROOT).pathname]);
        }
        await kubectl(computing, ["get", "clusterrole", "kubeocean:manager", "kubeocean:computing-syncer"]);
      });

      let workerKubeconfig = "";
      await t.step("kubectl apply: CRDs and deploy/worker/rbac.yaml in the worker; its token", async () => {
        await kubectl(worker, ["apply", "--server-side", "-f", new URL("deploy/crds/", ROOT).pathname]);
        await kubectl(worker, ["apply", "-f", new URL("deploy/worker/rbac.yaml", ROOT).pathname]);
        const token = await eventually("the syncer token Secret filled", async () => {
          const out = await worker.kubectl([
            "get",
            "secret",
            "-n",
            "kubeocean-worker",
            "kubeocean-syncer-token",
            "-o",
            "jsonpath={.data.token}",
          ], { check: false });
          return out.code === 0 && out.stdout ? atob(out.stdout) : undefined;
        }, { timeoutMs: 60_000 });
        workerKubeconfig = JSON.stringify({
          apiVersion: "v1",
          kind: "Config",
          "current-context": "worker",
          clusters: [{
            name: "worker",
            cluster: { server: worker.server, "certificate-authority-data": btoa(worker.pki.ca.certPem) },
          }],
          users: [{ name: "kubeocean-syncer", user: { token } }],
          contexts: [{ name: "worker", context: { cluster: "worker", user: "kubeocean-syncer" } }],
        });
      });

      await t.step("a ClusterBinding and its kubeconfig Secret written by hand", async () => {
        await kubectl(computing, [
          "create",
          "secret",
          "generic",
          "worker-kubeconfig",
          "-n",
          "kubeocean-system",
          "--from-literal=kubeconfig=" + workerKubeconfig,
        ]);
        await kubectl(
          computing,
          ["apply", "-f", "-"],
          `
apiVersion: kubeocean.io/v1beta1
kind: ClusterBinding
metadata:
  name: worker
spec:
  clusterID: w1
  mountNamespace: kubeocean-worker
  secretRef: { name: worker-kubeconfig, namespace: kubeocean-system }
`,
        );
      });

      await t.step(
        "the entrypoint with the run task's permission flags, the Deployment's arguments and the ServiceAccount's identity: Ready",
        async () => {
          const deployment = parseAllDocuments(await read("deploy/manager/deployment.yaml"))
            .map((d) => d.toJS())
            .find((o) => o.kind === "Deployment");
          const container = deployment.spec.template.spec.containers[0];
          const kubeconfig = await asServiceAccount("kubeocean-manager");
          const health = allocatePort();
          manager = new Deno.Command(Deno.execPath(), {
            args: [
              "run",
              ...await runTaskFlags(),
              new URL("controllers/main.ts", ROOT).pathname,
              ...container.args,
              // Only what a pod gets from its environment differs: credentials and free ports.
              `--kubeconfig=${kubeconfig}`,
              "--metrics-bind-address=127.0.0.1:0",
              `--health-probe-bind-address=127.0.0.1:${health}`,
            ],
            env: { POD_NAMESPACE: "kubeocean-system", POD_NAME: "kubeocean-manager-test" },
            stdout: "piped",
            stderr: "piped",
          }).spawn();
          const bindings = new KubeoceanIoV1beta1Api(await connect(computing)).clusterbindings();
          // The kubelet's part: run the rendered syncer Deployment's container as its ServiceAccount.
          const renderedSyncer = await eventually("the syncer Deployment rendered", async () => {
            const admin = await connect(computing);
            try {
              const list = await new AppsV1Api(admin).deployments("kubeocean-system").list({
                labelSelector: "app.kubernetes.io/name=kubeocean-syncer",
              });
              return list.items[0];
            } finally {
              admin.close();
            }
          }, { timeoutMs: 90_000 });
          const syncerContainer = renderedSyncer.spec!.template.spec!.containers[0];
          const syncerProcess = new Deno.Command(Deno.execPath(), {
            args: [
              "run",
              ...await runTaskFlags(),
              new URL("controllers/main.ts", ROOT).pathname,
              ...syncerContainer.args!,
              `--kubeconfig=${await asServiceAccount("kubeocean-syncer")}`,
              "--metrics-bind-address=127.0.0.1:0",
              `--health-probe-bind-address=127.0.0.1:${allocatePort()}`,
            ],
            env: { POD_NAMESPACE: "kubeocean-system", POD_NAME: "kubeocean-syncer-test" },
            stdout: "null",
            stderr: "piped",
          }).spawn();
          const syncerStderr = new Response(syncerProcess.stderr).text();
          try {
            await eventually("binding Ready (from the syncer's heartbeat)", async () => {
              const binding = await bindings.get("worker");
              return binding.status?.phase === "Ready";
            }, { timeoutMs: 90_000 });
            const ready = (await bindings.get("worker")).status!.conditions!.find((c) =>
              c.type === "SyncerReady"
            )!;
            assert.match(ready.message!, /kubeocean-syncer-test: caches synced/);
          } finally {
            syncerProcess.kill("SIGTERM");
            const status = await syncerProcess.status;
            const text = await syncerStderr;
            assert.equal(status.code, 0, text.slice(-2000));
            assert.doesNotMatch(text, /NotCapable|Requires .* access|PermissionDenied|forbidden/i);
          }
          const admin = await connect(computing);
          const rendered = await new AppsV1Api(admin).deployments("kubeocean-system").list({
            labelSelector: "kubeocean.io/cluster-binding=worker",
          });
          assert.ok(
            rendered.items.some((d) => d.metadata?.name?.includes("syncer")),
            "syncer Deployment rendered",
          );
          // The syncer's identity and its bindings are shipped, not granted by the manager at run time.
          assert.ok(
            rendered.items.filter((d) => d.metadata?.name?.includes("syncer"))
              .every((d) => d.spec?.template?.spec?.serviceAccountName === "kubeocean-syncer"),
            "rendered syncers run as the shipped ServiceAccount",
          );
          const crb = await kubectl(computing, [
            "get",
            "clusterrolebinding",
            "kubeocean:syncer",
            "-o",
            "name",
          ]);
          assert.match(crb, /kubeocean:syncer/);
          const ready = await fetch(`http://127.0.0.1:${health}/readyz`);
          assert.equal(ready.status, 200, await ready.text());
          const events = await new CoreV1Api(admin).events("default").list({
            fieldSelector: "involvedObject.kind=ClusterBinding,involvedObject.name=worker",
          });
          assert.ok(events.items.length > 0, "the manager records Events about the binding");
          admin.close();
        },
      );

      await t.step(
        "the rendered proxier: its arguments, the run task's permission flags and the proxier ServiceAccount serve the kubelet API",
        async () => {
          const admin = await connect(computing);
          const deployments = await new AppsV1Api(admin).deployments("kubeocean-system").list({
            labelSelector: "kubeocean.io/cluster-binding=worker",
          });
          admin.close();
          const syncer = deployments.items.find((d) => d.metadata?.name?.includes("syncer"))!;
          assert.ok(
            syncer.spec!.template.spec!.containers[0].args!.includes(
              "--proxier-pods-namespace=kubeocean-system",
            ),
            "virtual nodes advertise a proxier pod's IP",
          );
          const rendered = deployments.items.find((d) => d.metadata?.name?.includes("proxier"));
          assert.ok(rendered, "proxier Deployment rendered");
          const spec = rendered.spec!.template.spec!;
          assert.equal(spec.serviceAccountName, "kubeocean-proxier");
          const kubeconfig = await asServiceAccount("kubeocean-proxier");
          const listen = allocatePort();
          const health = allocatePort();
          const proxier = new Deno.Command(Deno.execPath(), {
            args: [
              "run",
              ...await runTaskFlags(),
              new URL("controllers/main.ts", ROOT).pathname,
              // $(POD_IP) is expanded by the kubelet from the pod's environment.
              ...spec.containers[0].args!.map((arg) => arg.replace("$(POD_IP)", "127.0.0.1")),
              `--kubeconfig=${kubeconfig}`,
              "--listen-address=127.0.0.1",
              `--listen-port=${listen}`,
              "--metrics-bind-address=127.0.0.1:0",
              `--health-probe-bind-address=127.0.0.1:${health}`,
            ],
            env: { POD_NAMESPACE: "kubeocean-system", POD_IP: "127.0.0.1" },
            stdout: "null",
            stderr: "piped",
          }).spawn();
          const stderr = new Response(proxier.stderr).text();
          try {
            await eventually("the proxier ready", async () => {
              const response = await fetch(`http://127.0.0.1:${health}/readyz`).catch(() => undefined);
              await response?.body?.cancel();
              return response?.ok;
            }, { timeoutMs: 90_000, intervalMs: 500 });
            // Its serving certificate came from a kubelet-serving CSR: the cluster CA verifies it for the IP.
            const client = Deno.createHttpClient({ caCerts: [computing.pki.ca.certPem] });
            try {
              const healthz = await fetch(`https://127.0.0.1:${listen}/healthz`, { client });
              assert.equal(await healthz.text(), "ok");
              const anonymous = await fetch(`https://127.0.0.1:${listen}/containerLogs/default/p/c`, {
                client,
              });
              assert.equal(anonymous.status, 401, await anonymous.text());
            } finally {
              client.close();
            }
          } finally {
            proxier.kill("SIGTERM");
            const status = await proxier.status;
            const text = await stderr;
            assert.equal(status.code, 0, text.slice(-2000));
            assert.doesNotMatch(text, /NotCapable|Requires .* access|PermissionDenied|forbidden/i);
          }
        },
      );

      await t.step("SIGTERM: the manager stops cleanly (exit 0)", async () => {
        manager!.kill("SIGTERM");
        const [status, stderr] = await Promise.all([
          manager!.status,
          new Response(manager!.stderr).text(),
          new Response(manager!.stdout).text(),
        ]);
        manager = undefined;
        assert.equal(status.code, 0, stderr.slice(-2000));
        assert.doesNotMatch(stderr, /NotCapable|Requires .* access|PermissionDenied/);
      });
    } finally {
      if (manager) {
        manager.kill("SIGKILL");
        await manager.status;
        await manager.stdout.cancel().catch(() => {});
        await manager.stderr.cancel().catch(() => {});
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);
