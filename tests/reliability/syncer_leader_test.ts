/**
 * No zombie syncer: a binding's syncer runs as two leader-electing processes (as its rendered
 * Deployment does) and the manager reads SyncerReady from the leader's heartbeat. When the
 * leading work fails (its kubeconfig Secret deleted) the leader says why, releases the lease and
 * exits non-zero, and the standby leads within the lease duration; a leader frozen in place loses
 * the lease to the standby, and steps down and exits when it wakes.
 */

import assert from "node:assert/strict";
import { CoordinationK8sIoV1Api } from "../../apis/coordination.k8s.io/v1/mod.ts";
import { CoreV1Api, type Secret } from "../../apis/core/v1/mod.ts";
import { type ClusterBinding, KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { bind, installCrd } from "../../controllers/bind/bind.ts";
import { clusterBindingController } from "../../controllers/manager/clusterbinding_controller.ts";
import { DeploymentRunner } from "../../controllers/manager/deployment_runner.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";
import { EventRecorder } from "../../toolkit/runtime/events.ts";
import { Logger } from "../../toolkit/runtime/log.ts";
import { Manager } from "../../toolkit/runtime/manager.ts";
import { spawnSyncer } from "../fixtures/entrypoint.ts";
import { applyPolicy } from "../syncer/fixture.ts";

const SYSTEM = "kubeocean-system";
/** The syncer process's leader-election lease duration (the toolkit Manager's default). */
const LEASE_DURATION_MS = 15_000;

envTest("syncer: leading work fails or freezes → the standby leads, the binding says why", {
  clusters: [{ name: "computing", controlPlane: true }, { name: "worker", nodes: 2 }],
}, async (env, t) => {
  const computing = await connect(env.cluster("computing"));
  const worker = await connect(env.cluster("worker"));
  const log = new Logger({ level: Deno.env.get("KUBEOCEAN_TEST_VERBOSE") ? "debug" : "error" });
  const bindings = new KubeoceanIoV1beta1Api(computing).clusterbindings();
  const secrets = new CoreV1Api(computing).secrets(SYSTEM);
  const election = () => new CoordinationK8sIoV1Api(computing).leases(SYSTEM).get("kubeocean-syncer-worker");
  const condition = (b: ClusterBinding, type: string) => b.status?.conditions?.find((c) => c.type === type);
  const stop = new AbortController();
  const runner = new DeploymentRunner({ client: computing, namespace: SYSTEM, image: "kubeocean:test", log });
  const replicas = new Map<string, Deno.ChildProcess>();
  const startReplica = (identity: string) => {
    replicas.set(
      identity,
      spawnSyncer(env.cluster("computing").kubeconfig, "worker", {
        args: ["--leader-elect", `--namespace=${SYSTEM}`],
        env: { POD_NAME: identity, POD_NAMESPACE: SYSTEM },
        stderr: Deno.env.get("KUBEOCEAN_TEST_VERBOSE") ? "inherit" : "null",
      }),
    );
  };
  const exitOf = async (identity: string, withinMs: number) => {
    const process = replicas.get(identity)!;
    const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), withinMs));
    const status = await Promise.race([process.status, timeout]);
    assert.ok(status, `${identity} still running after ${withinMs} ms`);
    replicas.delete(identity);
    return status;
  };
  let managerRun: Promise<void> | undefined;
  let secret: Secret | undefined;
  try {
    await installCrd(computing, "kubeocean.io_clusterbindings.yaml");
    await new CoreV1Api(computing).namespaces().create({ metadata: { name: SYSTEM } }).catch(() => {});
    const manager = new Manager({ name: "manager", logger: log });
    clusterBindingController(manager, {
      client: computing,
      runner,
      recorder: new EventRecorder(computing.transport, { controller: "kubeocean.io/manager", log }),
      namespace: SYSTEM,
    });
    managerRun = manager.run(stop.signal);
    await bind({
      computing,
      worker,
      name: "worker",
      clusterID: "w1",
      mountNamespace: "kubeocean-worker",
      waitMs: 0,
      log: () => {},
    });
    await applyPolicy(worker, "all", { cluster: "worker" });
    secret = await secrets.get("worker-kubeconfig");

    let leader = "";
    await t.step("two replicas: one leads, and the binding is Ready from its heartbeat", async () => {
      startReplica("syncer-a");
      startReplica("syncer-b");
      let seen: ClusterBinding | undefined;
      const ready = await eventually("Ready", async () => {
        seen = await bindings.get("worker");
        return seen.status?.phase === "Ready" ? seen : undefined;
      }, { timeoutMs: 90_000 }).catch((err) => {
        throw new Error(`${err.message}; conditions: ${JSON.stringify(seen?.status?.conditions)}`);
      });
      leader = (await election()).spec!.holderIdentity!;
      assert.ok(["syncer-a", "syncer-b"].includes(leader), leader);
      assert.match(condition(ready, "SyncerReady")!.message!, new RegExp(`${leader}: caches synced`));
      const nodes = await new CoreV1Api(computing).nodes().list({
        labelSelector: "kubeocean.io/cluster-binding=worker",
      });
      assert.equal(nodes.items.length, 2);
    });

    await t.step(
      "kubeconfig Secret deleted → the leader exits non-zero, the standby leads within the lease duration, the binding says why",
      async () => {
        const standby = leader === "syncer-a" ? "syncer-b" : "syncer-a";
        // Every holder the Lease names, as it happens: the standby may lead for only a moment (it
        // fails the same way), too short for polling to see.
        const holders: { holder: string; at: number }[] = [];
        const watching = new AbortController();
        const leases = new CoordinationK8sIoV1Api(computing).leases(SYSTEM);
        const watched = (async () => {
          for await (
            const event of leases.watch({
              fieldSelector: "metadata.name=kubeocean-syncer-worker",
              resourceVersion: (await election()).metadata!.resourceVersion,
              signal: watching.signal,
            })
          ) {
            const holder = event.object.spec?.holderIdentity;
            if (holder) holders.push({ holder, at: Date.now() });
          }
        })().catch(() => {});
        await secrets.delete("worker-kubeconfig");
        const status = await exitOf(leader, 30_000);
        const exitedAt = Date.now();
        assert.notEqual(status.code, 0, "the failed leader exits non-zero");
        const takeover = await eventually("the standby holds the lease", () => {
          const seen = holders.find((h) => h.holder === standby);
          return seen ? { ms: seen.at - exitedAt } : undefined;
        }, { timeoutMs: LEASE_DURATION_MS + 5_000, intervalMs: 100 });
        watching.abort();
        await watched;
        assert.ok(takeover.ms <= LEASE_DURATION_MS, `took over ${takeover.ms} ms after the exit`);
        const failing = await eventually("the binding says why", async () => {
          const b = await bindings.get("worker");
          return b.status?.conditions?.find((c) =>
            c.status === "False" && /worker-kubeconfig/.test(c.message ?? "")
          );
        }, { timeoutMs: 30_000 });
        assert.notEqual((await bindings.get("worker")).status?.phase, "Ready", failing.message);
        // The standby cannot work without the Secret either: it fails the same way (a Deployment restarts it).
        assert.notEqual((await exitOf(standby, 30_000)).code, 0);
      },
    );

    await t.step("Secret restored, replicas restarted → Ready again", async () => {
      await secrets.create({ metadata: { name: "worker-kubeconfig" }, data: secret!.data });
      startReplica("syncer-c");
      startReplica("syncer-d");
      await eventually("Ready", async () => (await bindings.get("worker")).status?.phase === "Ready", {
        timeoutMs: 90_000,
      });
      leader = (await election()).spec!.holderIdentity!;
    });

    await t.step(
      "leader frozen (SIGSTOP) → the standby leads within the lease duration; woken, the old leader steps down and exits",
      async () => {
        const frozen = leader;
        const standby = frozen === "syncer-c" ? "syncer-d" : "syncer-c";
        const process = replicas.get(frozen)!;
        Deno.kill(process.pid, "SIGSTOP");
        const frozenAt = Date.now();
        await eventually(
          "the standby holds the lease",
          async () => (await election()).spec?.holderIdentity === standby,
          {
            timeoutMs: 2 * LEASE_DURATION_MS,
            intervalMs: 250,
          },
        );
        // The lease was last renewed up to one retry period before the freeze.
        assert.ok(
          Date.now() - frozenAt <= LEASE_DURATION_MS + 3_000,
          `took over after ${Date.now() - frozenAt} ms`,
        );
        await eventually("Ready from the new leader's heartbeat", async () => {
          const b = await bindings.get("worker");
          return b.status?.phase === "Ready" &&
            condition(b, "SyncerReady")?.message?.startsWith(`${standby}:`);
        }, { timeoutMs: 60_000 });
        Deno.kill(process.pid, "SIGCONT");
        const status = await exitOf(frozen, 30_000);
        assert.notEqual(status.code, 0, "a leader that lost its lease exits non-zero");
        assert.equal((await election()).spec?.holderIdentity, standby);
      },
    );
  } finally {
    for (const process of replicas.values()) {
      try {
        Deno.kill(process.pid, "SIGCONT");
        process.kill("SIGTERM");
      } catch {
        // gone
      }
      await process.status;
    }
    stop.abort();
    await managerRun?.catch(() => {});
    await runner.stop();
    computing.close();
    worker.close();
  }
});
