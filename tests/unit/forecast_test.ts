/**
 * The forecast's pure parts: instants and their limits, flags refused by name, the node
 * controller's rules applied per instant, and the table.
 */

import assert from "node:assert/strict";
import type { Node, Pod } from "../../apis/core/v1/mod.ts";
import type { ResourceLeasingPolicy } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { forecast, forecastInstants, forecastTable } from "../../controllers/forecast/forecast.ts";
import { parseInstant, parsePolicies, parseStep, withPreview } from "../../controllers/forecast/run.ts";

const now = new Date("2026-12-02T12:00:00Z");

Deno.test("forecast flags: times need an offset, steps a unit, ranges a limit", () => {
  assert.equal(parseInstant("--at", "now", now), now);
  assert.equal(
    parseInstant("--at", "2026-12-05T10:00:00+08:00", now).toISOString(),
    "2026-12-05T02:00:00.000Z",
  );
  assert.throws(() => parseInstant("--at", "2026-12-05T10:00:00", now), /^Error: --at: .*with an offset/);
  assert.throws(() => parseInstant("--from", "2026-02-30T10:00:00Z", now), /^Error: --from: /);
  assert.equal(parseStep("90m"), 5_400_000);
  assert.throws(() => parseStep("1w"), /^Error: --step: /);
  const week = forecastInstants(
    new Date("2026-12-07T00:00:00Z"),
    new Date("2026-12-14T00:00:00Z"),
    3_600_000,
  );
  assert.equal(week.length, 169);
  assert.throws(
    () => forecastInstants(now, new Date("2028-01-01T00:00:00Z"), 86_400_000),
    /^Error: --to: .*366 days/,
  );
  assert.throws(
    () => forecastInstants(now, new Date("2026-12-30T00:00:00Z"), 60_000),
    /^Error: --step: .*10000/,
  );
  assert.throws(
    () => forecastInstants(now, new Date("2026-12-01T00:00:00Z"), 60_000),
    /^Error: --to: .*before/,
  );
});

Deno.test("forecast: the node controller's rules at each instant, totals over the nodes that lend", () => {
  const node = (name: string, pool: string): Node => ({
    metadata: { name, labels: { pool } },
    status: { allocatable: { cpu: "8", memory: "32Gi", pods: "110", "nvidia.com/gpu": "2" } },
  });
  const pods: Pod[] = [
    {
      metadata: { name: "db" },
      spec: { nodeName: "n1", containers: [{ name: "c", resources: { requests: { cpu: "2" } } }] },
    },
    // A twin takes nothing from the lease (it runs on it).
    {
      metadata: { name: "twin", labels: { "kubeocean.io/managed-by": "kubeocean" } },
      spec: { nodeName: "n1", containers: [{ name: "c", resources: { requests: { cpu: "4" } } }] },
    },
  ];
  const policy: ResourceLeasingPolicy = {
    metadata: { name: "office", creationTimestamp: "2026-01-01T00:00:00Z" },
    spec: {
      cluster: "w",
      nodeSelector: {
        nodeSelectorTerms: [{ matchExpressions: [{ key: "pool", operator: "In", values: ["spare"] }] }],
      },
      resourceLimits: [{ resource: "cpu", percent: 50 }],
      timeWindows: [{ start: "09:00", end: "18:00" }],
      exceptions: [{ date: "2026-12-25", lend: false, reason: "Christmas" }],
    },
  };
  const steps = forecast(
    { nodes: [node("n1", "spare"), node("n2", "spare"), node("n3", "busy")], pods, policies: [policy] },
    [{ name: "w" }],
    [new Date("2026-12-24T10:00:00Z"), new Date("2026-12-25T10:00:00Z")],
  );
  const [open, holiday] = steps.map((s) => s.clusters[0]);
  assert.deepEqual(open.nodes.map((n) => [n.node, n.lent, n.resources.cpu]), [["n1", true, "3"], [
    "n2",
    true,
    "4",
  ]]);
  assert.equal(open.total.cpu, "7");
  assert.equal(open.total["nvidia.com/gpu"], "4");
  assert.equal(open.total.pods, "219"); // n1 runs one pod of its own
  assert.equal(open.nodes[0].state, "lent (inside window 09:00-18:00)");
  assert.equal(holiday.lentNodes, 0);
  assert.equal(holiday.nodes[0].state, "closed (calendar exception 2026-12-25 (Christmas))");
  const table = forecastTable(steps).split("\n");
  assert.match(table[0], /^TIME\s+CLUSTER\s+NODE\s+POLICY\s+STATE\s+CPU\s+MEMORY\s+PODS\s+NVIDIA\.COM\/GPU$/);
  assert.match(table[3], /^2026-12-24T10:00:00Z\s+w\s+\(total\)\s+2\/2 nodes lent\s+7\s+64Gi\s+219\s+4$/);
  assert.equal(table.length, 1 + 2 * 3);
});

Deno.test("forecast --policy: a previewed policy replaces its namesake; bad files are refused by field", () => {
  const [previewed] = parsePolicies(
    `apiVersion: kubeocean.io/v1beta1\nkind: ResourceLeasingPolicy\nmetadata: {name: office}\nspec:\n  cluster: w\n  timeWindows: [{start: "08:00", end: "20:00"}]\n`,
    "good.yaml",
  );
  const applied: ResourceLeasingPolicy = {
    metadata: { name: "office", creationTimestamp: "2026-01-01T00:00:00Z" },
    spec: { cluster: "w" },
  };
  const merged = withPreview([applied], [previewed], now);
  assert.equal(merged.length, 1);
  assert.equal(merged[0].spec!.timeWindows![0].start, "08:00");
  assert.equal(merged[0].metadata!.creationTimestamp, "2026-01-01T00:00:00Z");
  assert.throws(
    () =>
      parsePolicies(
        `kind: ResourceLeasingPolicy\nmetadata: {name: office}\nspec:\n  cluster: w\n  exceptions: [{date: "2026-13-01", lend: false}]\n`,
        "bad.yaml",
      ),
    /--policy bad\.yaml: office: spec\.exceptions\[0\]\.date: /,
  );
  assert.throws(
    () => parsePolicies("kind: ConfigMap\nmetadata: {name: x}\n", "cm.yaml"),
    /document 1 is not a ResourceLeasingPolicy/,
  );
});
