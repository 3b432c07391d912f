/**
 * The toolkit Manager and leader election against an in-memory API server: controllers built
 * through the manager share its caches and report their outcomes; a failing runnable stops the
 * others and the run fails; leading work that fails or ends steps down and releases the lease
 * (no leader that renews while doing nothing).
 */

import assert from "node:assert/strict";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { CoordinationK8sIoV1Api } from "../../apis/coordination.k8s.io/v1/mod.ts";
import { KubeClient } from "../../toolkit/client/client.ts";
import { Action, type ReconcileOutcome } from "../../toolkit/runtime/controller.ts";
import { LeaderElector } from "../../toolkit/runtime/leader_election.ts";
import { Manager } from "../../toolkit/runtime/manager.ts";
import { RuntimeMetrics } from "../../toolkit/runtime/metrics.ts";
import { MemoryApiServer } from "../../toolkit/testing/mod.ts";

const quietMetrics = () => new RuntimeMetrics(undefined, { defaultMetrics: false });

Deno.test("manager: controllers share one cache per resource, see outcomes, and read other caches through it", async () => {
  const server = new MemoryApiServer();
  const client = new KubeClient(server.transport());
  const core = new CoreV1Api(client);
  await core.configmaps("default").create({
    metadata: { name: "a", labels: { app: "x" } },
    data: { k: "1" },
  });
  await core.secrets("default").create({ metadata: { name: "s" }, stringData: { k: "v" } });
  const manager = new Manager({ name: "test", client, metrics: quietMetrics() });
  const secrets = manager.cache(core.secrets());
  const seen: string[] = [];
  const first = manager.controller(core.configmaps(), { name: "first" })
    .requires(secrets)
    .build((ref) => {
      seen.push(`first ${ref.name} secrets=${secrets.store.size}`);
      return Promise.resolve(Action.done());
    });
  manager.controller(core.configmaps(), { name: "second" })
    .watches(
      core.secrets(),
      (_secret, _event, configMaps) =>
        configMaps.list().map((c) => ({ namespace: "default", name: c.metadata!.name! })),
    )
    .build((ref) => {
      seen.push(`second ${ref.name}`);
      return Promise.resolve(Action.done());
    });
  assert.equal(manager.runnables.length, 2, "built controllers are registered");
  assert.equal(manager.synced, false, "nothing listed before the run");
  const stop = new AbortController();
  const outcomes: ReconcileOutcome[] = [];
  const collecting = (async () => {
    for await (const outcome of first.outcomes(stop.signal)) outcomes.push(outcome);
  })();
  const running = manager.run(stop.signal);
  while (outcomes.length === 0) await new Promise((r) => setTimeout(r, 10));
  assert.equal(manager.synced, true);
  assert.deepEqual(outcomes.map((o) => [o.controller, o.key, o.result]), [["first", "default/a", "success"]]);
  assert.ok(seen.includes("first a secrets=1"), "the required cache had listed before the reconcile");
  const watches = server.requests.filter((r) => r.query.watch === "true" || r.query.watch === "1");
  const perResource = new Map<string, number>();
  for (const w of watches) {
    perResource.set(w.resource!.plural, (perResource.get(w.resource!.plural) ?? 0) + 1);
  }
  assert.deepEqual(Object.fromEntries(perResource), { configmaps: 1, secrets: 1 }, "one watch per resource");
  stop.abort();
  await running;
  await collecting;
  assert.ok(seen.includes("second a"));
});

/** A runnable that runs until stopped, and remembers that it was. */
function steady() {
  const runnable = {
    name: "steady",
    stopped: false,
    run: (signal: AbortSignal) =>
      new Promise<void>((resolve) =>
        signal.addEventListener("abort", () => {
          runnable.stopped = true;
          resolve();
        })
      ),
  };
  return runnable;
}

Deno.test("manager: a failing runnable stops the others and the run fails with its error", async () => {
  const manager = new Manager({ name: "test", metrics: quietMetrics() });
  const other = steady();
  manager.add(other).add({ name: "broken", run: () => Promise.reject(new Error("boom")) });
  await assert.rejects(manager.run(new AbortController().signal), /boom/);
  assert.equal(other.stopped, true);
});

Deno.test("manager: a runnable that returns on purpose ends the run cleanly", async () => {
  const manager = new Manager({ name: "test", metrics: quietMetrics() });
  const other = steady();
  manager.add(other).add({ name: "restart-me", run: () => Promise.resolve() });
  await manager.run(new AbortController().signal);
  assert.equal(other.stopped, true);
});

Deno.test("leader election: leading work that fails steps down, releases the lease and fails the run", async () => {
  const server = new MemoryApiServer();
  const client = new KubeClient(server.transport());
  const leases = new CoordinationK8sIoV1Api(client).leases("default");
  const elector = new LeaderElector({
    transport: client.transport,
    namespace: "default",
    name: "work",
    identity: "me",
    leaseDurationMs: 2_000,
    renewDeadlineMs: 1_500,
    retryPeriodMs: 50,
    onStartedLeading: async () => {
      await new Promise((r) => setTimeout(r, 200));
      throw new Error("leading work failed: its Secret is gone");
    },
  });
  await assert.rejects(elector.run(new AbortController().signal), /its Secret is gone/);
  assert.equal(elector.isLeader, false);
  const lease = await leases.get("work");
  assert.equal(lease.spec?.holderIdentity, "", "released at once, so a standby takes over");
});

Deno.test("manager: under leader election a failing runnable releases the lease too", async () => {
  const server = new MemoryApiServer();
  const client = new KubeClient(server.transport());
  const manager = new Manager({
    name: "test",
    client,
    metrics: quietMetrics(),
    leaderElection: { namespace: "default", name: "mgr", identity: "me", retryPeriodMs: 50 },
  });
  manager.add({
    name: "broken",
    run: () => new Promise((_, reject) => setTimeout(() => reject(new Error("boom")), 100)),
  });
  await assert.rejects(manager.run(new AbortController().signal), /boom/);
  const lease = await new CoordinationK8sIoV1Api(client).leases("default").get("mgr");
  assert.equal(lease.spec?.holderIdentity, "");
});
