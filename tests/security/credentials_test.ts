/**
 * A kubeconfig in a binding's Secret is data, not code: exec plugins, token files, certificate and
 * key paths and proxies are refused with a condition naming the field, and nothing is run or read.
 * The Secret must live in the manager's namespace, and a binding's mount namespace cannot change.
 */

import assert from "node:assert/strict";
import { stringify } from "yaml";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { type ClusterBinding, KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { installCrd } from "../../controllers/bind/bind.ts";
import { clusterBindingController } from "../../controllers/manager/clusterbinding_controller.ts";
import { EmbeddedRunner } from "../../controllers/manager/embedded_runner.ts";
import { ManagerMetrics } from "../../controllers/manager/metrics.ts";
import { ApiError } from "../../toolkit/client/errors.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";
import { EventRecorder } from "../../toolkit/runtime/events.ts";
import { silentLogger } from "../../toolkit/runtime/log.ts";
import { Manager } from "../../toolkit/runtime/manager.ts";

const SYSTEM = "kubeocean-system";

envTest("security: kubeconfig Secrets are data, not code", {
  clusters: [{ name: "computing" }, { name: "worker" }],
}, async (env, t) => {
  const computing = await connect(env.cluster("computing"));
  const worker = env.cluster("worker");
  const core = new CoreV1Api(computing);
  const bindings = new KubeoceanIoV1beta1Api(computing).clusterbindings();
  const dir = await Deno.makeTempDir({ prefix: "kubeocean-credentials-test-" });
  const marker = `${dir}/the-plugin-ran`;
  const metrics = new ManagerMetrics();
  const runner = new EmbeddedRunner({
    virtual: computing,
    log: silentLogger,
    registry: metrics.runtime.registry,
  });
  const manager = new Manager({ name: "manager", metrics: metrics.runtime });
  clusterBindingController(manager, {
    client: computing,
    runner,
    recorder: new EventRecorder(computing.transport, { controller: "kubeocean.io/manager" }),
    metrics,
    namespace: SYSTEM,
  });
  const stop = new AbortController();
  let running: Promise<void> | undefined;

  /** A kubeconfig for the worker whose user (and cluster) entries carry `user` (and `cluster`). */
  const kubeconfig = (user: Record<string, unknown>, cluster: Record<string, unknown> = {}) =>
    stringify({
      apiVersion: "v1",
      kind: "Config",
      "current-context": "worker",
      clusters: [{
        name: "worker",
        cluster: {
          server: worker.server,
          "certificate-authority-data": btoa(worker.pki.ca.certPem),
          ...cluster,
        },
      }],
      users: [{ name: "user", user }],
      contexts: [{ name: "worker", context: { cluster: "worker", user: "user" } }],
    });
  const bindWith = async (name: string, text: string, secretNamespace = SYSTEM) => {
    await core.secrets(secretNamespace).create({
      metadata: { name: `${name}-kubeconfig` },
      stringData: { kubeconfig: text },
    });
    await bindings.create({
      metadata: { name },
      spec: {
        clusterID: name,
        mountNamespace: "kubeocean-worker",
        secretRef: { name: `${name}-kubeconfig`, namespace: secretNamespace },
      },
    });
  };
  const failed = (name: string, type: string) =>
    eventually(`${name} Failed`, async () => {
      const binding: ClusterBinding = await bindings.get(name);
      const condition = binding.status?.conditions?.find((c) => c.type === type && c.status === "False");
      return binding.status?.phase === "Failed" && condition ? condition : undefined;
    }, { timeoutMs: 30_000 });

  try {
    await installCrd(computing, "kubeocean.io_clusterbindings.yaml");
    await core.namespaces().create({ metadata: { name: SYSTEM } });
    await core.namespaces().create({ metadata: { name: "elsewhere" } });
    running = manager.run(stop.signal);

    await t.step("an exec plugin is refused, naming the field, and never runs", async () => {
      await bindWith(
        "exec",
        kubeconfig({
          exec: {
            apiVersion: "client.authentication.k8s.io/v1",
            command: "/bin/sh",
            args: ["-c", `touch ${marker}; echo '{"kind":"ExecCredential","status":{"token":"x"}}'`],
          },
        }),
      );
      const condition = await failed("exec", "Connected");
      assert.equal(condition.reason, "KubeconfigRefused");
      assert.match(condition.message, /user "user"\): exec is not allowed in a kubeconfig from a Secret/);
      assert.equal(await Deno.stat(marker).then(() => true, () => false), false, "the plugin never ran");
    });

    await t.step(
      "a token file, certificate and key paths and a proxy are refused, naming the field",
      async () => {
        const cases: [string, string, RegExp][] = [
          ["token-file", kubeconfig({ tokenFile: "/etc/hostname" }), /tokenFile is not allowed/],
          [
            "key-path",
            kubeconfig({ "client-certificate": `${dir}/cert.pem`, "client-key": `${dir}/key.pem` }),
            /client-certificate is not allowed/,
          ],
          [
            "ca-path",
            kubeconfig({ token: "x" }, { "certificate-authority": "/etc/ssl/certs/ca.pem" }),
            /certificate-authority/,
          ],
          [
            "proxy",
            kubeconfig({ token: "x" }, { "proxy-url": "http://127.0.0.1:3128" }),
            /proxy-url is not allowed/,
          ],
        ];
        for (const [name, text] of cases) await bindWith(name, text);
        for (const [name, , message] of cases) {
          const condition = await failed(name, "Connected");
          assert.equal(condition.reason, "KubeconfigRefused", name);
          assert.match(condition.message, message, name);
        }
      },
    );

    await t.step("a Secret outside the manager's namespace is refused, naming the field", async () => {
      await bindWith("elsewhere", kubeconfig({ token: "x" }), "elsewhere");
      const condition = await failed("elsewhere", "Validated");
      assert.equal(condition.reason, "SecretNamespaceNotAllowed");
      assert.match(
        condition.message,
        /spec\.secretRef\.namespace: "elsewhere" is not the manager's namespace/,
      );
    });

    await t.step("the API server refuses a change of mountNamespace", async () => {
      const binding = await bindings.get("exec");
      await assert.rejects(
        bindings.replace({ ...binding, spec: { ...binding.spec!, mountNamespace: "other" } }),
        (err) => {
          assert.ok(err instanceof ApiError);
          assert.equal(err.code, 422);
          assert.match(err.message, /mountNamespace is immutable/);
          return true;
        },
      );
    });
  } finally {
    stop.abort();
    await running?.catch(() => {});
    await runner.stop();
    computing.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
