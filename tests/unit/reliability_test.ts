/**
 * Fast tier: the syncer heartbeat as the manager reads it, the worker reachability rule (short
 * blips change nothing; down only after the threshold; recovery resyncs), and the leftovers Event.
 */

import assert from "node:assert/strict";
import type { Lease } from "../../apis/coordination.k8s.io/v1/mod.ts";
import { ANNOTATION_SYNCER_HEALTH } from "../../controllers/common/names.ts";
import { readHeartbeat, type SyncerHealth } from "../../controllers/common/syncer_heartbeat.ts";
import { describeLeftovers } from "../../controllers/syncer/computing_release.ts";
import { MAX_MESSAGE, setConditions } from "../../controllers/common/conditions.ts";
import { policyProblem } from "../../controllers/syncer/bottomup/policy_selection.ts";
import { fitBytes } from "../../toolkit/runtime/events.ts";
import { WorkerReachability } from "../../controllers/syncer/worker/reachability.ts";
import { silentLogger } from "../../toolkit/runtime/log.ts";

const NOW = new Date("2026-12-02T12:00:00Z");

function lease(renewedSecondsAgo: number, health?: SyncerHealth | string): Lease {
  return {
    metadata: {
      name: "kubeocean-syncer-w-heartbeat",
      annotations: health === undefined
        ? {}
        : { [ANNOTATION_SYNCER_HEALTH]: typeof health === "string" ? health : JSON.stringify(health) },
    },
    spec: {
      holderIdentity: "syncer-a",
      leaseDurationSeconds: 30,
      renewTime: new Date(NOW.getTime() - renewedSecondsAgo * 1000).toISOString(),
    },
  };
}

const syncing: SyncerHealth = {
  ready: true,
  reason: "Syncing",
  message: "caches synced",
  workerReachable: true,
};

Deno.test("heartbeat: none, fresh, stale, unreadable", () => {
  assert.equal(readHeartbeat(undefined, "ns/l", NOW).reason, "NoHeartbeat");
  const fresh = readHeartbeat(lease(5, syncing), "ns/l", NOW);
  assert.equal(fresh.ready, true);
  assert.equal(fresh.message, "syncer-a: caches synced");
  assert.equal(fresh.staleAt?.toISOString(), "2026-12-02T12:00:25.000Z");
  const stale = readHeartbeat(lease(31, syncing), "ns/l", NOW);
  assert.equal(stale.ready, false);
  assert.equal(stale.reason, "HeartbeatStale");
  assert.match(stale.message, /no heartbeat from syncer-a for 31 s; it last reported Syncing/);
  assert.equal(stale.workerReachable, undefined, "a stale report says nothing about the worker");
  assert.equal(readHeartbeat(lease(1, "{not json"), "ns/l", NOW).reason, "HeartbeatUnreadable");
  assert.equal(readHeartbeat(lease(1, '{"ready":"yes"}'), "ns/l", NOW).reason, "HeartbeatUnreadable");
});

Deno.test("heartbeat: a fresh report of a silent worker", () => {
  const reading = readHeartbeat(
    lease(2, { ready: false, reason: "WorkerUnreachable", message: "no answer", workerReachable: false }),
    "ns/l",
    NOW,
  );
  assert.deepEqual([reading.ready, reading.reason, reading.workerReachable], [
    false,
    "WorkerUnreachable",
    false,
  ]);
});

Deno.test("reachability: blips change nothing; down after the threshold; recovery calls back", async () => {
  let now = NOW.getTime();
  let answering = false;
  const calls: string[] = [];
  const reachability = new WorkerReachability({
    probe: () => answering ? Promise.resolve() : Promise.reject(new Error("connection refused")),
    clock: { now: () => new Date(now) },
    log: silentLogger,
    downAfterMs: 40_000,
    onDown: () => calls.push("down"),
    onRecovered: () => calls.push("recovered"),
  });
  await reachability.probeOnce();
  assert.deepEqual(
    [reachability.state.answering, reachability.down, reachability.state.lastError],
    [false, false, "connection refused"],
  );
  now += 20_000;
  await reachability.probeOnce();
  assert.equal(reachability.down, false, "20 s of silence is a blip");
  answering = true;
  await reachability.probeOnce();
  assert.deepEqual([reachability.state.answering, reachability.down, calls], [true, false, []]);
  answering = false;
  await reachability.probeOnce();
  now += 40_001;
  await reachability.probeOnce();
  assert.equal(reachability.down, true);
  assert.equal(reachability.state.silentSince?.getTime(), now - 40_001);
  answering = true;
  await reachability.probeOnce();
  assert.deepEqual([reachability.down, calls], [false, ["down", "recovered"]]);
});

Deno.test("reachability: a probe that never answers counts as silent at its deadline", async () => {
  const reachability = new WorkerReachability({
    probe: (signal) =>
      new Promise((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason), { once: true })
      ),
    clock: { now: () => NOW },
    log: silentLogger,
    timeoutMs: 50,
    downAfterMs: 0,
  });
  await reachability.probeOnce();
  assert.equal(reachability.state.lastError, "no answer within the probe deadline");
  assert.equal(reachability.down, false, "down only after more than the threshold");
});

Deno.test("leftovers: counted, the first five named", () => {
  const pods = Array.from({ length: 7 }, (_, i) => `twin-${i}`);
  const text = describeLeftovers({ pods, objects: ["ConfigMap t/settings"], pending: 0 }, "kubeocean-worker");
  assert.match(text, /namespace kubeocean-worker of the worker: 7 pod\(s\) \(twin-0, .*twin-4, …\)/);
  assert.match(text, /copies of 1 object\(s\) \(ConfigMap t\/settings\)/);
  assert.match(describeLeftovers({ pods: [], objects: [], pending: 0 }, "ns"), /nothing of this binding/);
});

Deno.test("bad input: a negative quantity fails the policy naming the field; long messages are cut", () => {
  const problem = policyProblem({
    metadata: { name: "p" },
    spec: { cluster: "w", resourceLimits: [{ resource: "cpu", quantity: "-1" }] },
  });
  assert.equal(problem, 'spec.resourceLimits[0].quantity: "-1" is negative');
  const { conditions } = setConditions(undefined, [{
    type: "Valid",
    status: "False",
    reason: "InvalidSpec",
    message: `spec.timeZone: "${"x".repeat(50_000)}" is unknown`,
  }], NOW);
  assert.equal(conditions[0].message?.length, MAX_MESSAGE);
  assert.ok(conditions[0].message?.endsWith("…"));
  // As an Event note it must fit the API server's 1024 bytes of UTF-8 (the ellipsis takes 3).
  const note = fitBytes(conditions[0].message!, 1024);
  assert.ok(new TextEncoder().encode(note).length <= 1024);
  assert.equal(fitBytes("short", 1024), "short");
  assert.equal(fitBytes("ééé", 5), "é…");
});
