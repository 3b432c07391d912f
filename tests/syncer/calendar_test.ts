/**
 * Leasing calendars end to end, on real API servers with an injected clock: a holiday closes
 * a weekday and the next transition is the next working morning in the policy's zone; pods hear
 * of the end of lending from the notice on, and not before; and `forecast` (the entrypoint with
 * the run task's flags) predicts, for a week at hourly steps, exactly what the syncer leases then.
 */

import assert from "node:assert/strict";
import type { Node, Pod } from "../../apis/core/v1/mod.ts";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { EventsK8sIoV1Api } from "../../apis/events.k8s.io/v1/mod.ts";
import { KubeoceanIoV1beta1Api, type ResourceLeasingPolicy } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import type { ForecastStep } from "../../controllers/forecast/forecast.ts";
import { virtualNodeName } from "../../controllers/syncer/bottomup/vnode.ts";
import type { Syncer } from "../../controllers/syncer/syncer.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";
import { runTaskFlags } from "../fixtures/entrypoint.ts";
import { applyPolicy, bindWorker, startSyncer, TestClock } from "./fixture.ts";

const NODES = 3;
const OUT_OF_WINDOWS = "kubeocean.io/out-of-time-windows";

envTest("leasing calendars: holidays, advance notice, and a forecast that matches the syncer", {
  clusters: [
    { name: "computing" },
    { name: "worker", nodes: NODES, nodeTemplate: { capacity: { cpu: "8", memory: "32Gi", pods: "110" } } },
  ],
}, async (env, t) => {
  const computing = await connect(env.cluster("computing"));
  const worker = await connect(env.cluster("worker"));
  const vcore = new CoreV1Api(computing);
  const pcore = new CoreV1Api(worker);
  const events = new EventsK8sIoV1Api(computing);
  const policies = new KubeoceanIoV1beta1Api(worker).resourceleasingpolicies();
  const clock = new TestClock();
  let syncer: Syncer | undefined;
  const bound = await bindWorker(computing, worker, { name: "worker", clusterID: "w1" });
  const vname = (n: string) => virtualNodeName("w1", n);
  const vnodes = async () =>
    (await vcore.nodes().list({ labelSelector: "kubeocean.io/cluster-binding=worker" })).items;
  const closed = (n: Node) => !!n.spec?.taints?.some((t) => t.key === OUT_OF_WINDOWS);
  const leaseEnding = (n: Node) => n.status?.conditions?.find((c) => c.type === "kubeocean.io/LeaseEnding");
  /** Moves the syncer's clock and has every controller look again. */
  const at = (instant: string) => {
    clock.set(instant);
    syncer!.resync();
  };
  const office: ResourceLeasingPolicy["spec"] = {
    cluster: "worker",
    timeZone: "Europe/Berlin",
    timeWindows: [{
      start: "09:00",
      end: "18:00",
      days: ["monday", "tuesday", "wednesday", "thursday", "friday"],
    }],
    exceptions: [{ date: "2025-12-25", lend: false, reason: "Christmas" }],
    resourceLimits: [{ resource: "cpu", percent: 50 }],
    forceReclaim: true,
    gracefulReclaimPeriodSeconds: 300,
  };

  try {
    // The worker's own load differs per node, so capacities differ.
    await pcore.pods("default").create({
      metadata: { name: "database" },
      spec: {
        nodeName: "worker-node-1",
        containers: [{ name: "db", image: "postgres", resources: { requests: { cpu: "2", memory: "4Gi" } } }],
      },
    } as Pod);
    clock.set("2025-12-22T08:00:00Z"); // Monday 09:00 in Berlin
    syncer = startSyncer(computing, bound, { clock });
    await applyPolicy(worker, "office", office);
    await eventually("3 vnodes, lent", async () => {
      const nodes = await vnodes();
      return nodes.length === NODES && nodes.every((n) => !closed(n));
    }, { timeoutMs: 60_000 });

    await t.step(
      "Thursday 25 Dec, a holiday: closed at 10:00; next opens Friday 09:00 in Berlin",
      async () => {
        at("2025-12-25T09:00:00Z");
        await eventually("every vnode closed", async () => (await vnodes()).every(closed));
        const policy = await eventually("policy Inactive", async () => {
          const p = await policies.get("office");
          return p.status?.phase === "Inactive" ? p : undefined;
        });
        assert.equal(policy.status!.nextTransitionTime, "2025-12-26T08:00:00Z");
        const active = policy.status!.conditions!.find((c) => c.type === "Active")!;
        assert.equal(active.reason, "CalendarException");
        assert.match(
          active.message!,
          /2025-12-25 \(Christmas\).*opens 2025-12-26T08:00:00Z, Fri 2025-12-26 09:00 \(Europe\/Berlin\)/,
        );
        at("2025-12-26T08:00:00Z");
        await eventually("lent again on Friday 09:00", async () => (await vnodes()).every((n) => !closed(n)));
      },
    );

    await t.step("the closing notice: pods hear of it 10 minutes before 18:00, and not before", async () => {
      const node = vname("worker-node-2");
      await vcore.pods("default").create({
        metadata: { name: "batch" },
        spec: {
          nodeName: node,
          tolerations: [{ operator: "Exists" }],
          containers: [{ name: "c", image: "busybox" }],
        },
      } as Pod);
      const noticesFor = async (name: string) =>
        (await events.events("default").list({})).items.filter((e) =>
          e.reason === "LeaseEnding" && e.regarding?.name === name
        );
      at("2025-12-26T16:49:59Z"); // 17:49:59 in Berlin
      await eventually("the condition says when lending ends, without notice yet", async () => {
        const c = leaseEnding(await vcore.nodes().get(node));
        return c?.status === "False" && /lent until 2025-12-26T17:00:00Z/.test(c.message ?? "");
      });
      assert.deepEqual(await noticesFor("batch"), [], "no notice before the lead time");
      at("2025-12-26T16:50:00Z");
      const [notice] = await eventually("the pod's notice", async () => {
        const found = await noticesFor("batch");
        return found.length ? found : undefined;
      });
      assert.equal(notice.type, "Warning");
      assert.match(
        notice.note!,
        /stops being lent at 2025-12-26T17:00:00Z \(Fri 2025-12-26 18:00 \(Europe\/Berlin\)\); pods will be evicted at 2025-12-26T17:05:00Z/,
      );
      const condition = leaseEnding(await vcore.nodes().get(node))!;
      assert.equal(condition.status, "True");
      assert.ok(!closed(await vcore.nodes().get(node)), "no taint before the window closes");
      // Another look during the notice tells nobody twice.
      at("2025-12-26T16:55:00Z");
      await eventually("still one notice after a resync", async () => {
        await new Promise((r) => setTimeout(r, 1_000));
        return (await noticesFor("batch")).length === 1 && (await noticesFor(node)).length === 1;
      });
      await vcore.pods("default").delete("batch", { gracePeriodSeconds: 0 });
    });

    await t.step("forecast for a week at hourly steps matches what the syncer leases then", async () => {
      const run = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          ...await runTaskFlags(),
          new URL("../../controllers/main.ts", import.meta.url).pathname,
          "forecast",
          `--worker-kubeconfig=${env.cluster("worker").kubeconfig}`,
          "--cluster=worker",
          "--from=2025-12-22T00:00:00Z",
          "--to=2025-12-29T00:00:00Z",
          "--step=1h",
          "-o",
          "json",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
      const steps: ForecastStep[] = JSON.parse(new TextDecoder().decode(run.stdout)).steps;
      assert.equal(steps.length, 169);
      const lentHours = steps.filter((s) => s.clusters[0].lentNodes > 0).length;
      assert.equal(
        lentHours,
        4 * 9,
        "Mon, Tue, Wed and Fri from 09:00 to 18:00 in Berlin (25 Dec is a holiday)",
      );
      for (const step of steps) {
        at(step.time);
        const expected = step.clusters[0].nodes;
        await eventually(`the syncer at ${step.time} leases what the forecast says`, async () => {
          const nodes = new Map(
            (await vnodes()).map((n) => [n.metadata!.annotations!["kubeocean.io/physical-node-name"], n]),
          );
          return expected.length === nodes.size && expected.every((line) => {
            const vnode = nodes.get(line.node);
            if (!vnode || closed(vnode) === line.lent) return false;
            if (!line.lent) return true;
            const allocatable = vnode.status?.allocatable ?? {};
            return Object.entries(line.resources).every(([name, value]) =>
              String(allocatable[name]) === value
            );
          });
        }, { timeoutMs: 20_000, intervalMs: 100 });
      }
      const lentOnMonday = steps.find((s) => s.time === "2025-12-22T10:00:00Z")!.clusters[0];
      assert.equal(lentOnMonday.total.cpu, "11", "4 + 4 + half of the 6 cores the database leaves");
    });
  } finally {
    await syncer?.stop();
    bound.close();
    computing.close();
    worker.close();
  }
});
