/**
 * The manager against real clusters: `bind` → Ready in deployment mode with rendered, owned
 * objects; each way a binding can be wrong → Failed with a condition and an Event naming the
 * cause, then Ready once fixed; the API server's schema checks; Secret rotation rolling the
 * Deployment; deletion ordering; the worker ServiceAccount's effective rights.
 */

import { allocatePort } from "../../toolkit/envtest/ports.ts";
import { spawnManager } from "../fixtures/entrypoint.ts";
import assert from "node:assert/strict";
import type { ClusterBinding } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { AppsV1Api } from "../../apis/apps/v1/mod.ts";
import { RbacAuthorizationK8sIoV1Api } from "../../apis/rbac.authorization.k8s.io/v1/mod.ts";
import { bind, installCrd } from "../../controllers/bind/bind.ts";
import { clusterBindingController } from "../../controllers/manager/clusterbinding_controller.ts";
import { Manager } from "../../toolkit/runtime/manager.ts";
import { DeploymentRunner } from "../../controllers/manager/deployment_runner.ts";
import { ManagerMetrics } from "../../controllers/manager/metrics.ts";
import { ApiError, isNotFound } from "../../toolkit/client/errors.ts";
import { EventRecorder } from "../../toolkit/runtime/events.ts";
import { Logger } from "../../toolkit/runtime/log.ts";
import { connect, envTest, eventually, withSlowLists } from "../../toolkit/envtest/testing.ts";
import { startSyncer } from "../syncer/fixture.ts";
import { SyncerKubelet } from "../fixtures/syncer_kubelet.ts";
import { loadKubeconfigText } from "../../toolkit/client/kubeconfig.ts";
import { KubeClient as Client } from "../../toolkit/client/client.ts";

const SYSTEM = "kubeocean-system";
const quiet = () => new Logger({ level: Deno.env.get("KUBEOCEAN_TEST_VERBOSE") ? "debug" : "error" });

envTest("manager: bind, failures and recovery, schema, rotation, deletion, least privilege", {
  clusters: [
    // kwok nodes in the computing cluster run the rendered syncer and proxier Deployments.
    { name: "computing", nodes: 1 },
    { name: "worker", nodes: 1 },
  ],
}, async (env, t) => {
  const computing = await connect(env.cluster("computing"));
  const worker = await connect(env.cluster("worker"));
  const bindings = new KubeoceanIoV1beta1Api(computing).clusterbindings();
  const vcore = new CoreV1Api(computing);
  const deployments = new AppsV1Api(computing).deployments(SYSTEM);
  const log = quiet();
  const metrics = new ManagerMetrics();
  let runner = new DeploymentRunner({ client: computing, namespace: SYSTEM, image: "kubeocean:test", log });
  const recorder = new EventRecorder(computing.transport, { controller: "kubeocean.io/manager", log });
  let stop = new AbortController();
  let managerRun: Promise<void> | undefined;
  /** Runs the ClusterBinding controller in a toolkit Manager, as `deno task run manager` does. */
  const runManager = () => {
    const manager = new Manager({ name: "manager", logger: log, metrics: metrics.runtime });
    clusterBindingController(manager, { client: computing, runner, recorder, metrics, namespace: SYSTEM });
    return manager.run(stop.signal);
  };
  const get = (name: string) => bindings.get(name);
  const condition = (b: ClusterBinding, type: string) => b.status?.conditions?.find((c) => c.type === type);
  const phaseIs = (name: string, phase: string) =>
    eventually(`${name} ${phase}`, async () => {
      const b = await get(name);
      return b.status?.phase === phase ? b : undefined;
    }, { timeoutMs: 60_000 });
  const eventsOf = async (name: string) =>
    (await vcore.events().list({
      fieldSelector: `involvedObject.kind=ClusterBinding,involvedObject.name=${name}`,
    }))
      .items;
  let goodKubeconfig = "";
  // Runs the rendered syncer Deployments as processes: SyncerReady comes from their heartbeats.
  const kubelet = new SyncerKubelet(computing, {
    namespace: SYSTEM,
    kubeconfig: env.cluster("computing").kubeconfig,
  });

  try {
    await installCrd(computing, "kubeocean.io_clusterbindings.yaml");
    await vcore.namespaces().create({ metadata: { name: SYSTEM } }).catch(() => {});
    // What deploy/manager/rbac.yaml ships: the ServiceAccount rendered syncers run as.
    await vcore.serviceaccounts(SYSTEM).create({ metadata: { name: "kubeocean-syncer" } });
    managerRun = runManager();
    kubelet.start();

    await t.step(
      "bind → Ready; deployment mode renders Deployments, ServiceAccount and RBAC owned by the binding",
      async () => {
        const lines: string[] = [];
        const binding = await bind({
          computing,
          worker,
          name: "worker",
          clusterID: "w1",
          mountNamespace: "kubeocean-worker",
          waitMs: 90_000,
          log: (line) => lines.push(line),
        });
        assert.equal(binding.status?.phase, "Ready", lines.join("\n"));
        assert.match(lines.at(-1)!, /phase=Ready/);
        for (const type of ["Validated", "Connected", "Authorized", "SyncerReady"]) {
          assert.equal(condition(binding, type)?.status, "True", type);
        }
        const owner = (o: { metadata?: { ownerReferences?: { uid: string; kind: string }[] } }) =>
          o.metadata?.ownerReferences?.find((r) => r.kind === "ClusterBinding")?.uid;
        const syncer = await deployments.get("kubeocean-syncer-w1");
        assert.equal(owner(syncer), binding.metadata!.uid);
        assert.equal(owner(await deployments.get("kubeocean-proxier-w1")), binding.metadata!.uid);
        // Syncers run as the shipped ServiceAccount: the manager grants nothing at run time.
        assert.equal(syncer.spec!.template!.spec!.serviceAccountName, "kubeocean-syncer");
        const granted = await new RbacAuthorizationK8sIoV1Api(computing).clusterrolebindings().list();
        assert.equal(granted.items.filter((b) => owner(b) === binding.metadata!.uid).length, 0);
        assert.deepEqual(syncer.spec!.template!.spec!.containers[0].args?.slice(0, 2), [
          "syncer",
          "--cluster-binding=worker",
        ]);
        const reasons = (await eventsOf("worker")).map((e) => e.reason);
        assert.ok(reasons.includes("PhaseReady"), `events: ${reasons}`);
        const secret = await vcore.secrets(SYSTEM).get("worker-kubeconfig");
        goodKubeconfig = new TextDecoder().decode(
          Uint8Array.from(atob(secret.data!.kubeconfig), (c) => c.charCodeAt(0)),
        );
      },
    );

    await t.step(
      "the API server rejects an invalid clusterID, a clusterID change, end 25:00 and percent 150",
      async () => {
        const invalid = async (body: () => Promise<unknown>, field: RegExp) => {
          await assert.rejects(body(), (err) => {
            assert.ok(err instanceof ApiError, String(err));
            assert.equal(err.code, 422);
            assert.match(err.message, field);
            return true;
          });
        };
        const spec = { secretRef: { name: "x", namespace: SYSTEM }, mountNamespace: "ns" };
        await invalid(
          () => bindings.create({ metadata: { name: "bad-id" }, spec: { ...spec, clusterID: "Bad_ID" } }),
          /spec\.clusterID/,
        );
        await invalid(
          () =>
            bindings.create({ metadata: { name: "long-id" }, spec: { ...spec, clusterID: "a".repeat(25) } }),
          /spec\.clusterID/,
        );
        await invalid(
          () => bindings.patch("worker", { spec: { clusterID: "w9" } }, { type: "merge" }),
          /clusterID.*immutable|immutable.*clusterID/i,
        );
        const policies = new KubeoceanIoV1beta1Api(worker).resourceleasingpolicies();
        await invalid(
          () =>
            policies.create({
              metadata: { name: "late" },
              spec: { cluster: "worker", timeWindows: [{ start: "09:00", end: "25:00" }] },
            }),
          /spec\.timeWindows\[0\]\.end/,
        );
        await invalid(
          () =>
            policies.create({
              metadata: { name: "greedy" },
              spec: { cluster: "worker", resourceLimits: [{ resource: "cpu", percent: 150 }] },
            }),
          /spec\.resourceLimits\[0\]\.percent/,
        );
        await invalid(
          () =>
            policies.create({
              metadata: { name: "empty-window" },
              spec: { cluster: "worker", timeWindows: [{ start: "09:00", end: "09:00" }] },
            }),
          /spec\.timeWindows\[0\]/,
        );
      },
    );

    const brokenSpec = {
      clusterID: "w2",
      mountNamespace: "kubeocean-worker",
      secretRef: { name: "broken-kubeconfig", namespace: SYSTEM },
    };
    const secrets = vcore.secrets(SYSTEM);
    const expectFailed = async (reason: string, message: RegExp) => {
      const b = await eventually(`Failed with ${reason}`, async () => {
        const b = await get("broken");
        const failing = b.status?.conditions?.find((c) => c.status === "False" && c.reason === reason);
        return b.status?.phase === "Failed" && failing ? b : undefined;
      }, { timeoutMs: 60_000 });
      const failing = b.status!.conditions!.find((c) => c.reason === reason)!;
      assert.match(failing.message!, message);
      await eventually(
        `a Warning event for ${reason}`,
        async () => (await eventsOf("broken")).some((e) => e.type === "Warning" && e.message?.match(message)),
      );
    };

    await t.step("missing Secret → Failed, naming the Secret", async () => {
      await bindings.create({ metadata: { name: "broken" }, spec: brokenSpec });
      await expectFailed("SecretNotFound", /kubeocean-system\/broken-kubeconfig/);
    });

    await t.step("Secret without the kubeconfig key → Failed, naming the key", async () => {
      await secrets.create({ metadata: { name: "broken-kubeconfig" }, stringData: { config: "nope" } });
      await expectFailed("KubeconfigMissing", /"kubeconfig"/);
    });

    await t.step("unreachable server → Failed, naming the server", async () => {
      const unreachable = goodKubeconfig.replace(/server: .*/, "server: https://127.0.0.1:9");
      await secrets.replace({
        ...(await secrets.get("broken-kubeconfig")),
        data: { kubeconfig: btoa(unreachable) },
      });
      await expectFailed("ServerUnreachable", /127\.0\.0\.1:9/);
    });

    await t.step("missing permissions → Failed, listing the missing verbs", async () => {
      // A worker ServiceAccount that may only read nodes.
      const wcore = new CoreV1Api(worker);
      await wcore.serviceaccounts("default").create({ metadata: { name: "reader" } });
      const rbac = new RbacAuthorizationK8sIoV1Api(worker);
      await rbac.clusterroles().create({
        metadata: { name: "node-reader" },
        rules: [{ apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] }],
      });
      await rbac.clusterrolebindings().create({
        metadata: { name: "reader-nodes" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "node-reader" },
        subjects: [{ kind: "ServiceAccount", name: "reader", namespace: "default" }],
      });
      const token = await wcore.serviceaccounts("default").createToken("reader", { expirationSeconds: 3600 });
      const limited = goodKubeconfig.replace(/token: .*/, `token: ${token.status!.token}`);
      await secrets.replace({
        ...(await secrets.get("broken-kubeconfig")),
        data: { kubeconfig: btoa(limited) },
      });
      await expectFailed("MissingPermissions", /create pods in namespace kubeocean-worker/);
    });

    await t.step("fixing the cause turns it Ready, with nothing restarted", async () => {
      await secrets.replace({
        ...(await secrets.get("broken-kubeconfig")),
        data: { kubeconfig: btoa(goodKubeconfig) },
      });
      const ready = await phaseIs("broken", "Ready");
      assert.equal(condition(ready, "Authorized")?.status, "True");
      await bindings.delete("broken");
      await eventually("broken gone", async () => {
        try {
          await get("broken");
          return false;
        } catch (err) {
          return isNotFound(err);
        }
      }, { timeoutMs: 30_000 });
    });

    await t.step("kubeconfig Secret rotated → the syncer Deployment rolls", async () => {
      const before = await deployments.get("kubeocean-syncer-w1");
      const hashBefore = before.spec!.template!.metadata!.annotations!["kubeocean.io/kubeconfig-hash"];
      assert.match(hashBefore, /^[0-9a-f]{16,}$/);
      const secret = await secrets.get("worker-kubeconfig");
      // A freshly minted equivalent kubeconfig (here: the same one, re-serialised).
      const rotated = `# rotated ${new Date().toISOString()}\n${goodKubeconfig}`;
      await secrets.replace({ ...secret, data: { kubeconfig: btoa(rotated) } });
      const after = await eventually("new pod template", async () => {
        const d = await deployments.get("kubeocean-syncer-w1");
        const hash = d.spec!.template!.metadata!.annotations!["kubeocean.io/kubeconfig-hash"];
        return hash !== hashBefore ? d : undefined;
      });
      assert.ok(after.metadata!.generation! > before.metadata!.generation!);
      await phaseIs("worker", "Ready");
    });

    await t.step(
      "manager restarted while its Deployment cache lists slowly → the Ready binding stays Ready",
      async () => {
        await phaseIs("worker", "Ready");
        stop.abort();
        await managerRun;
        await runner.stop();
        const phases: string[] = [];
        const watching = new AbortController();
        const watched = (async () => {
          for await (
            const e of bindings.watch({
              fieldSelector: "metadata.name=worker",
              resourceVersion: (await get("worker")).metadata!.resourceVersion,
              signal: watching.signal,
            })
          ) phases.push(e.object.status?.phase ?? "");
        })().catch(() => {});
        const syncs = async () => (await metrics.syncTotal.get()).values[0]?.value ?? 0;
        const before = await syncs();
        // A reconcile before the Deployments are listed would see no syncer and report Pending.
        runner = new DeploymentRunner({
          client: withSlowLists(computing, "deployments", 3_000),
          namespace: SYSTEM,
          image: "kubeocean:test",
          log,
        });
        stop = new AbortController();
        managerRun = runManager();
        await eventually("the restarted manager reconciled the binding", async () => await syncs() > before, {
          timeoutMs: 30_000,
        });
        await new Promise((r) => setTimeout(r, 1_000));
        watching.abort();
        await watched;
        assert.deepEqual(phases.filter((p) => p !== "Ready"), [], `phases seen: ${phases.join(", ")}`);
        assert.equal((await get("worker")).status?.phase, "Ready");
      },
    );

    await t.step(
      "`kubectl auth can-i --list` as the worker ServiceAccount: no write outside the mount namespace but policy status and volume copies",
      async () => {
        const as = ["--as", "system:serviceaccount:kubeocean-worker:kubeocean-syncer"];
        const outside = await env.cluster("worker").kubectl([
          "auth",
          "can-i",
          "--list",
          "-n",
          "default",
          ...as,
        ]);
        const writes = /\b(create|update|patch|delete|deletecollection|\*)\b/;
        const writable = outside.stdout.split("\n").filter((line) => {
          const verbs = line.match(/\[([^\]]*)\]\s*$/)?.[1] ?? "";
          return writes.test(verbs);
        }).map((line) => line.trim().split(/\s+/)[0]);
        const allowed = new Set([
          "resourceleasingpolicies.kubeocean.io/status", // documented: policy status
          "persistentvolumes", // documented: copies of the volumes of mirrored claims (cluster-scoped)
          "selfsubjectreviews.authentication.k8s.io", // every authenticated user
          "selfsubjectaccessreviews.authorization.k8s.io",
          "selfsubjectrulesreviews.authorization.k8s.io",
        ]);
        assert.deepEqual(writable.filter((r) => !allowed.has(r)), [], outside.stdout);
        const inside = await env.cluster("worker").kubectl([
          "auth",
          "can-i",
          "--list",
          "-n",
          "kubeocean-worker",
          ...as,
        ]);
        assert.match(inside.stdout, /^pods\s.*\[.*create.*\]/m);
        assert.match(inside.stdout, /^secrets\s.*\[.*create.*\]/m);
        const nodes = await env.cluster("worker").kubectl(["auth", "can-i", "patch", "nodes", ...as], {
          check: false,
        });
        assert.equal(nodes.stdout.trim(), "no");
      },
    );

    await t.step(
      "deleted → waits for the syncer's finalizer, then removes what it rendered and its own",
      async () => {
        // Play the syncer the rendered Deployment would run: it adds its finalizer and cleans up.
        await kubelet.stop();
        const secret = await secrets.get("worker-kubeconfig");
        const text = new TextDecoder().decode(
          Uint8Array.from(atob(secret.data!.kubeconfig), (c) => c.charCodeAt(0)),
        );
        const workerAsSyncer = Client.fromConfig(await loadKubeconfigText(text, { source: "test" }));
        const binding = await get("worker");
        const bound = { binding, workerAsSyncer, close: () => workerAsSyncer.close() };
        let syncer = startSyncer(computing, bound, { topDown: false });
        await eventually(
          "syncer finalizer",
          async () =>
            (await get("worker")).metadata?.finalizers?.includes("kubeocean.io/clusterbinding-syncer"),
        );
        await syncer.stop();
        await bindings.delete("worker");
        await new Promise((r) => setTimeout(r, 3_000));
        const waiting = await get("worker");
        assert.ok(waiting.metadata!.deletionTimestamp);
        assert.ok(waiting.metadata!.finalizers!.includes("kubeocean.io/clusterbinding-manager"));
        await deployments.get("kubeocean-syncer-w1"); // still there: the syncer has not finished
        syncer = startSyncer(computing, bound, { topDown: false });
        await eventually("binding gone", async () => {
          try {
            await get("worker");
            return false;
          } catch (err) {
            return isNotFound(err);
          }
        }, { timeoutMs: 60_000 });
        await syncer.stop();
        bound.close();
        await eventually("rendered objects gone", async () => {
          const left = await deployments.list({ labelSelector: "kubeocean.io/cluster-binding=worker" });
          const alive = left.items.filter((d) => !d.metadata?.deletionTimestamp);
          return alive.length === 0;
        });
        await assert.rejects(
          new RbacAuthorizationK8sIoV1Api(computing).clusterrolebindings().get("kubeocean:syncer:w1"),
          (err) => isNotFound(err),
        );
      },
    );
  } finally {
    await kubelet.stop();
    stop.abort();
    await managerRun?.catch(() => {});
    await runner.stop();
    await recorder.flush().catch(() => {});
    computing.close();
    worker.close();
  }
});

async function syncCount(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(text.match(/^kubeocean_manager_sync_total (\d+)/m)?.[1] ?? "0");
}

envTest("manager: two managers with leader election — only the leader reconciles, the other takes over", {
  clusters: [{ name: "computing", controlPlane: true }, { name: "worker", nodes: 1 }],
}, async (env, t) => {
  const computing = await connect(env.cluster("computing"));
  const worker = await connect(env.cluster("worker"));
  const leases = (await import("../../apis/coordination.k8s.io/v1/mod.ts")).CoordinationK8sIoV1Api;
  const lease = () => new leases(computing).leases(SYSTEM).get("kubeocean-manager");
  // Ports the kernel just handed out (a random range could hit one an API server already uses).
  const ports = [allocatePort(), allocatePort()];
  const managers: (Deno.ChildProcess | undefined)[] = [];
  try {
    await installCrd(computing, "kubeocean.io_clusterbindings.yaml");
    await new CoreV1Api(computing).namespaces().create({ metadata: { name: SYSTEM } }).catch(() => {});
    // The leader serves the kubelet API with a kubelet-serving certificate it requests (CSR mode).
    const kubeletApiPort = allocatePort();
    for (const port of ports) {
      managers.push(
        spawnManager(env.cluster("computing").kubeconfig, port, allocatePort(), [
          `--proxier-port=${kubeletApiPort}`,
          `--proxier-client-ca-file=${env.cluster("computing").pki.ca.certFile}`,
        ]),
      );
    }
    const holder = await eventually("a leader", async () => (await lease()).spec?.holderIdentity, {
      timeoutMs: 60_000,
    });

    await t.step("only the leader reconciles", async () => {
      const binding = await bind({
        computing,
        worker,
        name: "worker",
        clusterID: "w1",
        mountNamespace: "kubeocean-worker",
        waitMs: 60_000,
        log: () => {},
      });
      assert.equal(binding.status?.phase, "Ready");
      const counts = await Promise.all(ports.map((p) => syncCount(p)));
      const leaderIndex = counts.findIndex((c) => c > 0);
      assert.ok(leaderIndex >= 0, `sync counts ${counts}`);
      assert.equal(counts[1 - leaderIndex], 0, `the follower reconciled: ${counts}`);
    });

    await t.step("the leader dies → the other takes over and reconciles", async () => {
      const before = await Promise.all(ports.map((p) => syncCount(p)));
      const leaderIndex = before[0] > 0 ? 0 : 1;
      managers[leaderIndex]!.kill("SIGKILL");
      await managers[leaderIndex]!.status;
      managers[leaderIndex] = undefined;
      await eventually("a new holder", async () => {
        const h = (await lease()).spec?.holderIdentity;
        return h && h !== holder;
      }, { timeoutMs: 60_000, intervalMs: 500 });
      const follower = ports[1 - leaderIndex];
      await new KubeoceanIoV1beta1Api(computing).clusterbindings().patch("worker", {
        metadata: { labels: { touched: "yes" } },
      }, { type: "merge" });
      await eventually("the new leader reconciles", async () => await syncCount(follower) > 0, {
        timeoutMs: 30_000,
      });
    });
  } finally {
    for (const m of managers) {
      if (!m) continue;
      m.kill("SIGTERM");
      await m.status;
    }
    computing.close();
    worker.close();
  }
});
