import assert from "node:assert/strict";
import { KubeClient } from "../../toolkit/client/client.ts";
import { ConfigError } from "../../toolkit/client/config.ts";
import { isForbidden, TerminalError } from "../../toolkit/client/errors.ts";
import type { KubeObject, ResourceDescriptor } from "../../toolkit/client/resource.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";
import { Action, ControllerBuilder } from "../../toolkit/runtime/controller.ts";
import { EventRecorder } from "../../toolkit/runtime/events.ts";
import { withFinalizer } from "../../toolkit/runtime/finalizer.ts";
import { HealthChecks } from "../../toolkit/runtime/health.ts";
import { Informer } from "../../toolkit/runtime/informer.ts";
import { Logger } from "../../toolkit/runtime/log.ts";
import { RuntimeMetrics, serveMetrics } from "../../toolkit/runtime/metrics.ts";
import { generationChanged } from "../../toolkit/runtime/predicates.ts";

const CONFIGMAPS: ResourceDescriptor = {
  group: "",
  version: "v1",
  kind: "ConfigMap",
  plural: "configmaps",
  namespaced: true,
};
const SECRETS: ResourceDescriptor = {
  group: "",
  version: "v1",
  kind: "Secret",
  plural: "secrets",
  namespaced: true,
};
const NAMESPACES: ResourceDescriptor = {
  group: "",
  version: "v1",
  kind: "Namespace",
  plural: "namespaces",
  namespaced: false,
};
const CORE_EVENTS: ResourceDescriptor = {
  group: "",
  version: "v1",
  kind: "Event",
  plural: "events",
  namespaced: true,
};
const ROLES: ResourceDescriptor = {
  group: "rbac.authorization.k8s.io",
  version: "v1",
  kind: "Role",
  plural: "roles",
  namespaced: true,
};
const ROLEBINDINGS: ResourceDescriptor = {
  group: "rbac.authorization.k8s.io",
  version: "v1",
  kind: "RoleBinding",
  plural: "rolebindings",
  namespaced: true,
};

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

envTest("controller runtime against a real API server", { clusters: [{ name: "ctl" }] }, async (env, t) => {
  const cluster = env.cluster("ctl");
  const client = await connect(cluster, { qps: 500, burst: 500 });
  const ns = "ctl";
  await client.resource<KubeObject>(NAMESPACES).create({ metadata: { name: ns } });
  const cms = client.resource<ConfigMap>(CONFIGMAPS, ns);
  try {
    await t.step("a key is never reconciled concurrently and bursts coalesce", async () => {
      await cms.create({ metadata: { name: "hot" }, data: { n: "0" } });
      let running = 0;
      let maxRunning = 0;
      let reconciles = 0;
      let lastSeen = "";
      const stop = new AbortController();
      const controller = new ControllerBuilder(cms, { name: "slow", concurrency: 4 }).build(
        async (_ref, ctx) => {
          running++;
          maxRunning = Math.max(maxRunning, running);
          reconciles++;
          await new Promise((r) => setTimeout(r, 150));
          lastSeen = ctx.object?.data?.n ?? "";
          running--;
          return Action.done();
        },
      );
      const run = controller.run(stop.signal);
      await eventually("first reconcile", () => reconciles >= 1);
      for (let i = 1; i <= 60; i++) await cms.patch("hot", { data: { n: String(i) } }, { type: "merge" });
      await eventually("last update reconciled", () => lastSeen === "60" && running === 0, {
        timeoutMs: 20_000,
      });
      stop.abort();
      await run;
      assert.equal(maxRunning, 1, "one key ran at most once at a time");
      assert.ok(reconciles < 20, `60 updates coalesced into ${reconciles} reconciles`);
    });

    await t.step("owned objects, predicates, requeue and the error policy", async () => {
      const secrets = client.resource<KubeObject & { data?: Record<string, string> }>(SECRETS, ns);
      const owner = await cms.create({ metadata: { name: "owner" }, data: { want: "1" } });
      const reconciled: string[] = [];
      let failuresLeft = 2;
      const stop = new AbortController();
      const controller = new ControllerBuilder(cms, { name: "owner", fieldSelector: "metadata.name=owner" })
        .withPredicate(generationChanged)
        .owns(secrets)
        .build(async (ref, ctx) => {
          reconciled.push(`${ref.name}:${ctx.retries}`);
          if (failuresLeft-- > 0) throw new Error("transient");
          const secret = await secrets.get("owned").catch(() => undefined);
          if (!secret) {
            await secrets.create({
              metadata: {
                name: "owned",
                ownerReferences: [{
                  apiVersion: "v1",
                  kind: "ConfigMap",
                  name: "owner",
                  uid: owner.metadata!.uid!,
                  controller: true,
                }],
              },
            });
          }
          return Action.done();
        });
      const run = controller.run(stop.signal);
      await eventually(
        "owned secret created after two retried failures",
        () => secrets.get("owned").then(() => true),
      );
      assert.deepEqual(reconciled.slice(0, 3), ["owner:0", "owner:1", "owner:2"]);
      const before = reconciled.length;
      await secrets.delete("owned");
      await eventually("owner reconciled after its owned object changed", () => reconciled.length > before);
      await eventually("secret re-created", () => secrets.get("owned").then(() => true));
      stop.abort();
      await run;
    });

    await t.step(
      "a TerminalError is not retried; requeueAfter reconciles again without changes",
      async () => {
        let terminal = 0;
        let periodic = 0;
        const stop = new AbortController();
        await cms.create({ metadata: { name: "terminal" } });
        await cms.create({ metadata: { name: "periodic" } });
        const controller = new ControllerBuilder(cms, { name: "policies" }).build((ref) => {
          if (ref.name === "terminal") {
            terminal++;
            return Promise.reject(new TerminalError("bad spec"));
          }
          if (ref.name === "periodic") {
            periodic++;
            return Promise.resolve(Action.requeueAfter(200));
          }
          return Promise.resolve(Action.done());
        });
        const run = controller.run(stop.signal);
        await eventually("periodic requeues", () => periodic >= 4, { timeoutMs: 5_000 });
        assert.equal(terminal, 1);
        stop.abort();
        await run;
      },
    );

    await t.step("finalizer helper: added while alive, cleanup before deletion completes", async () => {
      const cleaned: string[] = [];
      const stop = new AbortController();
      const controller = new ControllerBuilder(cms, { name: "finalizer", labelSelector: "finalize=yes" })
        .build(async (_ref, ctx) => {
          if (!ctx.object) return;
          return await withFinalizer(cms, ctx.object, "example.kubeocean.io/cleanup", {
            apply: () => Promise.resolve(Action.done()),
            cleanup: (cm) => {
              cleaned.push(cm.metadata!.name!);
              return Promise.resolve(Action.done());
            },
          });
        });
      const run = controller.run(stop.signal);
      await cms.create({ metadata: { name: "fin", labels: { finalize: "yes" } } });
      await eventually(
        "finalizer added",
        async () => (await cms.get("fin")).metadata?.finalizers?.length === 1,
      );
      await cms.delete("fin");
      await eventually("object gone after cleanup", () => cms.get("fin").then(() => false, () => true));
      assert.deepEqual(cleaned, ["fin"]);
      stop.abort();
      await run;
    });

    await t.step("a 403 leaves the controller running, retrying, until access is granted", async () => {
      const { kubeconfig } = await cluster.addUser("limited");
      const limited = await KubeClient.load({ kubeconfig });
      const lines: string[] = [];
      const log = new Logger({ level: "debug", format: "json", sink: (l) => lines.push(l) });
      const health = new HealthChecks();
      let reconciled = 0;
      const stop = new AbortController();
      const controller = new ControllerBuilder(limited.resource<ConfigMap>(CONFIGMAPS, ns), {
        name: "limited",
        logger: log,
        backoff: { next: () => 100, reset: () => {} },
      }).build(() => {
        reconciled++;
        return Promise.resolve(Action.done());
      });
      health.addReadyz(
        "caches",
        () => controller.queue !== undefined && reconciled > 0 ? true : "caches not synced",
      );
      const run = controller.run(stop.signal);
      await eventually(
        "forbidden watch errors logged",
        () => lines.some((l) => l.includes("cannot list resource")),
      );
      assert.equal((await health.run("readyz")).ok, false);
      await assert.rejects(limited.resource<ConfigMap>(CONFIGMAPS, ns).list(), (e) => isForbidden(e));
      // Grant read access: the same controller, never restarted, syncs.
      await client.resource<KubeObject>(ROLES, ns).create({
        metadata: { name: "configmap-reader" },
        rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "watch"] }],
      } as KubeObject);
      await client.resource<KubeObject>(ROLEBINDINGS, ns).create({
        metadata: { name: "limited-view" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "configmap-reader" },
        subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "limited" }],
      } as KubeObject);
      await eventually("reconciles after the grant", () => reconciled > 0, { timeoutMs: 20_000 });
      assert.equal((await health.run("readyz")).ok, true);
      const record = JSON.parse(lines.find((l) => l.includes("cannot list resource"))!);
      assert.equal(record.controller, "limited");
      assert.equal(record.level, "warn");
      stop.abort();
      await run;
      limited.close();
    });

    await t.step("workers wait for the caches a controller requires, and then drop no key", async () => {
      const { kubeconfig } = await cluster.addUser("gated");
      const gated = await KubeClient.load({ kubeconfig });
      const grant = async (name: string, resource: string) => {
        await client.resource<KubeObject>(ROLES, ns).create({
          metadata: { name },
          rules: [{ apiGroups: [""], resources: [resource], verbs: ["get", "list", "watch"] }],
        } as KubeObject);
        await client.resource<KubeObject>(ROLEBINDINGS, ns).create({
          metadata: { name },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
          subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "gated" }],
        } as KubeObject);
      };
      await grant("gated-configmaps", "configmaps");
      await cms.create({ metadata: { name: "waits-for-settings" } });
      // The required cache (Secrets) cannot list until access is granted.
      const settings = new Informer(gated.resource<KubeObject>(SECRETS, ns), {
        backoff: { next: () => 100, reset: () => {} },
      });
      const seen: { key: string; settingsListed: boolean }[] = [];
      const stop = new AbortController();
      const controller = new ControllerBuilder(gated.resource<ConfigMap>(CONFIGMAPS, ns), { name: "gated" })
        .requires(settings)
        .build((ref) => {
          seen.push({ key: `${ref.namespace}/${ref.name}`, settingsListed: settings.store.isReady });
          return Promise.resolve(Action.done());
        });
      const run = controller.run(stop.signal);
      await eventually("the required cache is refused", () => settings.lastError !== undefined);
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal(seen.length, 0, "no reconcile before the required cache listed");
      await grant("gated-secrets", "secrets");
      await eventually("reconciled once the required cache listed", () => seen.length > 0, {
        timeoutMs: 20_000,
      });
      assert.ok(seen.some((s) => s.key === `${ns}/waits-for-settings`), "the key queued meanwhile is kept");
      assert.ok(seen.every((s) => s.settingsListed), "every reconcile saw the required cache listed");
      stop.abort();
      await run;
      await settings.stop();
      gated.close();
    });

    await t.step(
      "clear errors for a malformed kubeconfig, an unknown context and an unreachable server",
      async () => {
        const dir = await Deno.makeTempDir();
        await Deno.writeTextFile(`${dir}/bad.yaml`, "clusters: [oops");
        await assert.rejects(KubeClient.load({ kubeconfig: `${dir}/bad.yaml` }), (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.match(e.message, new RegExp(`${dir}/bad.yaml is not valid YAML`));
          return true;
        });
        await assert.rejects(
          KubeClient.load({ kubeconfig: cluster.kubeconfig, context: "nope" }),
          (e: unknown) => {
            assert.ok(e instanceof ConfigError);
            assert.match(e.message, /context "nope" not found \(available: ctl\)/);
            return true;
          },
        );
        const blocker = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        const port = (blocker.addr as Deno.NetAddr).port;
        blocker.close();
        await Deno.writeTextFile(
          `${dir}/down.yaml`,
          (await Deno.readTextFile(cluster.kubeconfig)).replace(cluster.server, `https://127.0.0.1:${port}`),
        );
        const down = await KubeClient.load({ kubeconfig: `${dir}/down.yaml`, maxRetries: 1 });
        await assert.rejects(down.resource<ConfigMap>(CONFIGMAPS, ns).list(), (e: Error) => {
          assert.match(
            e.message,
            new RegExp(
              `GET /api/v1/namespaces/ctl/configmaps to https://127.0.0.1:${port} failed: .*(onnection refused|error trying to connect)`,
            ),
          );
          return true;
        });
        down.close();
        await Deno.remove(dir, { recursive: true });
      },
    );

    await t.step("metrics: work queue, reconcile and REST request series are exported", async () => {
      const metrics = new RuntimeMetrics();
      const observed = await connect(cluster, {
        observer: metrics.requestObserver(new URL(cluster.server).host),
      });
      const stop = new AbortController();
      let count = 0;
      const controller = new ControllerBuilder(observed.resource<ConfigMap>(CONFIGMAPS, ns), {
        name: "measured",
        metrics,
      })
        .build(() => {
          count++;
          return Promise.resolve(Action.done());
        });
      const run = controller.run(stop.signal);
      await eventually("reconciles", () => count > 3);
      const server = serveMetrics(metrics.registry, { hostname: "127.0.0.1", port: 0, signal: stop.signal });
      const text = await (await fetch(`http://127.0.0.1:${server.addr.port}/metrics`)).text();
      assert.match(text, /workqueue_adds_total\{name="measured"\} \d+/);
      assert.match(text, /controller_runtime_reconcile_total\{controller="measured",result="success"\} \d+/);
      assert.match(text, /rest_client_requests_total\{method="GET",code="200",host="127\.0\.0\.1:\d+"\} \d+/);
      assert.match(text, /workqueue_queue_duration_seconds_bucket/);
      stop.abort();
      await run;
      await server.finished;
      observed.close();
    });

    await t.step("health endpoints report named checks", async () => {
      const stop = new AbortController();
      let ready = false;
      const health = new HealthChecks().addHealthz("ping", () => true).addReadyz(
        "informers",
        () => ready || "not synced",
      );
      const server = health.serve({ hostname: "127.0.0.1", port: 0, signal: stop.signal });
      const base = `http://127.0.0.1:${server.addr.port}`;
      assert.equal((await fetch(`${base}/healthz`).then((r) => r.text())).trim(), "ok");
      const notReady = await fetch(`${base}/readyz`);
      assert.equal(notReady.status, 500);
      assert.match(await notReady.text(), /\[-\]informers failed: not synced/);
      ready = true;
      assert.equal((await fetch(`${base}/readyz`)).status, 200);
      stop.abort();
      await server.finished;
    });

    await t.step("events: repeats are aggregated into one Event with a series count", async () => {
      const recorder = new EventRecorder(client.transport, {
        controller: "kubeocean.io/test",
        seriesPatchIntervalMs: 100,
      });
      const target = await cms.get("owner");
      for (let i = 0; i < 5; i++) {
        await recorder.publish({
          regarding: target,
          type: "Warning",
          reason: "Flapping",
          action: "Reconcile",
          note: "same",
        });
      }
      await recorder.publish({
        regarding: target,
        type: "Normal",
        reason: "Synced",
        action: "Reconcile",
        note: "other",
      });
      await recorder.flush();
      const events = await client.resource<
        KubeObject & { reason?: string; count?: number; series?: { count: number } }
      >(
        CORE_EVENTS,
        ns,
      ).list({ fieldSelector: `involvedObject.uid=${target.metadata!.uid}` });
      const flapping = events.items.filter((e) => e.reason === "Flapping");
      assert.equal(flapping.length, 1);
      assert.equal(flapping[0].series?.count, 5);
      assert.equal(events.items.filter((e) => e.reason === "Synced").length, 1);
    });
  } finally {
    client.close();
  }
});
