/** Pure rules of the bottom-up syncer: capacity, time windows, node selectors, names. */

import assert from "node:assert/strict";
import type { Pod } from "../../apis/core/v1/mod.ts";
import {
  applyLimits,
  effectiveRequests,
  freeCapacity,
  toResourceList,
} from "../../controllers/syncer/bottomup/capacity.ts";
import { evaluateSchedule, windowActive } from "../../controllers/syncer/bottomup/time_windows.ts";
import { matchesNodeSelector } from "../../controllers/syncer/bottomup/node_selector.ts";
import { virtualNodeName } from "../../controllers/syncer/bottomup/vnode.ts";

const pod = (spec: Partial<Pod["spec"]>, phase = "Running"): Pod =>
  ({ metadata: { name: "p" }, spec: { containers: [], ...spec }, status: { phase } }) as Pod;
const req = (cpu: string, memory?: string) => ({
  resources: { requests: { cpu, ...(memory ? { memory } : {}) } },
});

Deno.test("effective request: max(init containers, sum of containers) plus overhead, plus one pod", () => {
  const p = pod({
    initContainers: [{ name: "i1", ...req("3") }, { name: "i2", ...req("500m", "4Gi") }],
    containers: [{ name: "a", ...req("1", "1Gi") }, { name: "b", ...req("1", "1Gi") }],
    overhead: { cpu: "100m" },
  });
  const r = toResourceList(effectiveRequests(p));
  assert.equal(r.cpu, "3100m");
  assert.equal(r.memory, "4Gi");
  assert.equal(r.pods, "1");
});

Deno.test("effective request: restartable init containers (sidecars) add to the steady state", () => {
  const p = pod({
    initContainers: [{ name: "sidecar", restartPolicy: "Always", ...req("1") }, {
      name: "init",
      ...req("2"),
    }],
    containers: [{ name: "a", ...req("1") }],
  });
  // steady: sidecar 1 + main 1 = 2; while init runs: sidecar 1 + init 2 = 3.
  assert.equal(toResourceList(effectiveRequests(p)).cpu, "3");
});

Deno.test("free capacity never goes below zero", () => {
  const free = freeCapacity({ cpu: "2", memory: "1Gi", pods: "110" }, [
    pod({ containers: [{ name: "a", ...req("3", "2Gi") }] }),
  ]);
  const r = toResourceList(free);
  assert.equal(r.cpu, "0");
  assert.equal(r.memory, "0");
  assert.equal(r.pods, "109");
});

Deno.test("limits: percent, quantity, both (the smaller wins), extended resources untouched unless limited", () => {
  const free = freeCapacity({ cpu: "5", memory: "30Gi", "nvidia.com/gpu": "4", pods: "110" }, []);
  assert.equal(toResourceList(applyLimits(free, [{ resource: "cpu", percent: 50 }])).cpu, "2500m");
  assert.equal(toResourceList(applyLimits(free, [{ resource: "memory", quantity: "8Gi" }])).memory, "8Gi");
  assert.equal(toResourceList(applyLimits(free, [{ resource: "cpu", percent: 50, quantity: "2" }])).cpu, "2");
  assert.equal(
    toResourceList(applyLimits(free, [{ resource: "cpu", percent: 90, quantity: "20" }])).cpu,
    "4500m",
  );
  assert.equal(
    toResourceList(applyLimits(free, [{ resource: "nvidia.com/gpu", percent: 50 }]))["nvidia.com/gpu"],
    "2",
  );
  assert.equal(toResourceList(applyLimits(free, []))["nvidia.com/gpu"], "4");
  // The policy only ever lowers what is free: a quantity above it leases what is free.
  const capped = toResourceList(applyLimits(free, [{ resource: "memory", quantity: "64Gi" }])).memory;
  assert.equal(capped, "30Gi");
});

Deno.test("time windows: [start, end), days name the day a window starts, midnight crossing", () => {
  const w = { start: "09:00", end: "17:00" };
  assert.equal(windowActive(w, new Date("2026-11-25T09:00:00Z"), "UTC"), true);
  assert.equal(windowActive(w, new Date("2026-11-25T16:59:59Z"), "UTC"), true);
  assert.equal(windowActive(w, new Date("2026-11-25T17:00:00Z"), "UTC"), false);
  const night = { start: "22:00", end: "06:00", days: ["friday"] };
  assert.equal(windowActive(night, new Date("2026-11-27T23:00:00Z"), "UTC"), true); // Friday night
  assert.equal(windowActive(night, new Date("2026-11-28T05:00:00Z"), "UTC"), true); // Saturday morning
  assert.equal(windowActive(night, new Date("2026-11-28T23:00:00Z"), "UTC"), false); // Saturday night
  assert.equal(windowActive(night, new Date("2026-11-27T05:00:00Z"), "UTC"), false); // Friday morning
});

Deno.test("time windows: time zones, including a DST change", () => {
  const sat = { start: "00:00", end: "23:59", days: ["saturday"] };
  assert.equal(windowActive(sat, new Date("2026-11-27T16:30:00Z"), "Asia/Shanghai"), true);
  assert.equal(windowActive(sat, new Date("2026-11-27T16:30:00Z"), "UTC"), false);
  // Europe/Berlin leaves summer time on 2026-10-25: 09:00 local is 07:00Z before, 08:00Z after.
  const w = { start: "09:00", end: "10:00" };
  assert.equal(windowActive(w, new Date("2026-10-24T07:30:00Z"), "Europe/Berlin"), true);
  assert.equal(windowActive(w, new Date("2026-10-26T07:30:00Z"), "Europe/Berlin"), false);
  assert.equal(windowActive(w, new Date("2026-10-26T08:30:00Z"), "Europe/Berlin"), true);
});

Deno.test("evaluateSchedule: a window starting in the hour clocks skip opens when it ends; a repeated hour counts twice", () => {
  // Europe/Berlin skips 02:00-03:00 on 2027-03-28: 02:30 does not exist, so 02:30-04:00 opens at 03:00 CEST.
  const spring = [{ start: "02:30", end: "04:00" }];
  const before = evaluateSchedule(
    { timeWindows: spring, timeZone: "Europe/Berlin" },
    new Date("2027-03-28T00:00:00Z"),
  );
  assert.equal(before.active, false);
  assert.equal(before.nextTransition?.toISOString(), "2027-03-28T01:00:00.000Z");
  const during = evaluateSchedule(
    { timeWindows: spring, timeZone: "Europe/Berlin" },
    new Date("2027-03-28T01:10:00Z"),
  );
  assert.equal(during.active, true);
  assert.equal(during.lastTransition?.toISOString(), "2027-03-28T01:00:00.000Z");
  assert.equal(during.nextTransition?.toISOString(), "2027-03-28T02:00:00.000Z"); // 04:00 CEST
  // It repeats 02:00-03:00 on 2026-10-25: 02:30-02:45 happens at 00:30Z (CEST) and again at 01:30Z (CET).
  const autumn = [{ start: "02:30", end: "02:45" }];
  const first = evaluateSchedule(
    { timeWindows: autumn, timeZone: "Europe/Berlin" },
    new Date("2026-10-25T00:00:00Z"),
  );
  assert.equal(first.nextTransition?.toISOString(), "2026-10-25T00:30:00.000Z");
  const between = evaluateSchedule(
    { timeWindows: autumn, timeZone: "Europe/Berlin" },
    new Date("2026-10-25T01:00:00Z"),
  );
  assert.equal(between.active, false);
  assert.equal(between.nextTransition?.toISOString(), "2026-10-25T01:30:00.000Z");
});

Deno.test("evaluateSchedule: next and last transitions, no windows means always active", () => {
  assert.deepEqual(evaluateSchedule({ timeWindows: undefined, timeZone: "UTC" }, new Date()), {
    active: true,
  });
  const state = evaluateSchedule(
    { timeWindows: [{ start: "09:00", end: "17:00" }], timeZone: "UTC" },
    new Date("2026-11-25T18:00:00Z"),
  );
  assert.equal(state.active, false);
  assert.equal(state.nextTransition?.toISOString(), "2026-11-26T09:00:00.000Z");
  assert.equal(state.lastTransition?.toISOString(), "2026-11-25T17:00:00.000Z");
  const weekend = evaluateSchedule(
    {
      timeWindows: [{ start: "08:00", end: "20:00", days: ["saturday", "sunday"] }],
      timeZone: "Asia/Shanghai",
    },
    new Date("2026-11-25T00:00:00Z"),
  );
  assert.equal(weekend.nextTransition?.toISOString(), "2026-11-28T00:00:00.000Z"); // Sat 08:00 +08:00
  assert.throws(
    () =>
      evaluateSchedule(
        { timeWindows: [{ start: "09:00", end: "10:00" }], timeZone: "Mars/Olympus" },
        new Date(),
      ),
    /time zone/,
  );
});

Deno.test("node selectors: terms are ORed, expressions ANDed; metadata.name fields", () => {
  const labels = { pool: "spare", zone: "a" };
  assert.equal(matchesNodeSelector(undefined, "n1", labels), true);
  assert.equal(
    matchesNodeSelector(
      {
        nodeSelectorTerms: [
          { matchExpressions: [{ key: "pool", operator: "In", values: ["x"] }] },
          {
            matchExpressions: [
              { key: "pool", operator: "In", values: ["spare"] },
              { key: "zone", operator: "NotIn", values: ["b"] },
            ],
          },
        ],
      },
      "n1",
      labels,
    ),
    true,
  );
  assert.equal(
    matchesNodeSelector(
      {
        nodeSelectorTerms: [{ matchExpressions: [{ key: "gpu", operator: "Exists" }] }],
      },
      "n1",
      labels,
    ),
    false,
  );
  assert.equal(
    matchesNodeSelector(
      {
        nodeSelectorTerms: [{ matchFields: [{ key: "metadata.name", operator: "In", values: ["n1"] }] }],
      },
      "n1",
      labels,
    ),
    true,
  );
});

Deno.test("virtual node names: deterministic, at most 63 characters, unique when shortened", () => {
  assert.equal(virtualNodeName("w1", "node-1"), "vnode-w1-node-1");
  const long = "ip-10-0-0-1.eu-central-1.compute.internal.example-long-suffix-here";
  const a = virtualNodeName("cluster-a", long);
  const b = virtualNodeName("cluster-a", long + "x");
  assert.ok(a.length <= 63 && b.length <= 63);
  assert.notEqual(a, b);
  assert.equal(a, virtualNodeName("cluster-a", long));
  assert.match(a, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
});
