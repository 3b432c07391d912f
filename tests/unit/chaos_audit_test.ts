/**
 * The chaos suite's pure parts: the audit's counts, the fuzz judge's verdicts and the mutation
 * helpers (the suite itself runs on real clusters: `deno task chaos`).
 */

import assert from "node:assert/strict";
import type { Pod, Secret } from "../../apis/core/v1/mod.ts";
import { audit, type AuditInput } from "../chaos/audit.ts";
import { judgeBinding, judgePolicy } from "../chaos/fuzz/judge.ts";
import { invalid, REMOVE, setPath, VALID } from "../chaos/fuzz/mutation.ts";
import { Prng } from "../chaos/fuzz/prng.ts";

const pod = (name: string, uid: string, extra: Partial<Pod> = {}): Pod => ({
  metadata: { name, namespace: "chaos", uid, ...extra.metadata },
  status: { phase: "Running", ...extra.status },
});
const twin = (name: string, uid: string): Pod => ({
  metadata: { name, namespace: "ns", annotations: { "kubeocean.io/virtual-pod-uid": uid } },
});
const empty: AuditInput = {
  expected: new Map(),
  namespace: "chaos",
  virtualPods: [],
  virtualConfigMaps: [],
  virtualSecrets: [],
  twins: [],
  copiedConfigMaps: [],
  copiedSecrets: [],
};

Deno.test("chaos audit: lost, duplicates and orphans", () => {
  const result = audit({
    ...empty,
    expected: new Map([["a", "1"], ["b", "2"], ["c", "3"], ["d", "4"], ["e", "5"]]),
    virtualPods: [
      pod("a", "1"),
      pod("b", "2", { status: { phase: "Failed" } }),
      pod("c", "other"), // re-created under the name: the expected one is gone
      pod("d", "4", {
        metadata: { deletionTimestamp: "2026-01-01T00:00:00Z", finalizers: ["kubeocean.io/twin-w1"] },
      }),
    ],
    twins: [twin("t-a1", "1"), twin("t-a2", "1"), twin("t-x", "gone")],
    virtualConfigMaps: [{ metadata: { name: "cm", namespace: "chaos" } }],
    copiedConfigMaps: [
      {
        metadata: {
          name: "copy-cm",
          annotations: { "kubeocean.io/virtual-namespace": "chaos", "kubeocean.io/virtual-name": "cm" },
        },
      },
      {
        metadata: {
          name: "copy-old",
          annotations: { "kubeocean.io/virtual-namespace": "chaos", "kubeocean.io/virtual-name": "old" },
        },
      },
    ],
    copiedSecrets: [
      {
        metadata: {
          name: "kubeocean-sa-1",
          labels: { "kubeocean.io/service-account-token": "true" },
          annotations: { "kubeocean.io/virtual-pod-uid": "1" },
        },
      } satisfies Secret,
    ],
  });
  // b Failed, c replaced, d being deleted, e never there.
  assert.equal(result.lost, 4);
  assert.equal(result.duplicates, 1);
  // the twin of a vanished pod, the copy of a deleted ConfigMap, d stuck on its finalizer.
  assert.equal(result.orphans, 3);
  assert.ok(
    result.examples.some((e) => e.startsWith("duplicates: 1 → t-a1 + t-a2")),
    result.examples.join("\n"),
  );
});

Deno.test("chaos audit: a clean world counts nothing", () => {
  assert.deepEqual(audit(empty), { lost: 0, duplicates: 0, orphans: 0, examples: [] });
});

Deno.test("chaos fuzz judge: bindings and policies", () => {
  const failed = {
    metadata: { generation: 1 },
    spec: { clusterID: "x", mountNamespace: "m", secretRef: { name: "s", namespace: "n" } },
    status: {
      phase: "Failed" as const,
      observedGeneration: 1,
      conditions: [{
        type: "Validated",
        status: "False",
        reason: "R",
        message: "spec.secretRef.namespace: no",
        lastTransitionTime: "",
      }],
    },
  };
  assert.deepEqual(judgeBinding(failed, invalid("secretRef.namespace")), { ok: true });
  assert.equal(judgeBinding(failed, invalid("clusterID")), undefined, "undecided until the message names it");
  assert.equal(judgeBinding(failed, VALID)?.ok, false);
  const pending = { ...failed, status: { ...failed.status, phase: "Pending" as const, conditions: [] } };
  assert.equal(judgeBinding(pending, invalid("x"))?.ok, false);
  assert.deepEqual(judgeBinding(pending, VALID), { ok: true });
  assert.equal(
    judgeBinding({ ...pending, metadata: { generation: 2 } }, VALID),
    undefined,
    "not reconciled yet",
  );

  const policy = {
    metadata: { generation: 3 },
    spec: { cluster: "worker" },
    status: {
      conditions: [{
        type: "Valid",
        status: "True",
        reason: "Valid",
        message: "ok",
        observedGeneration: 3,
        lastTransitionTime: "",
      }],
    },
  };
  assert.equal(judgePolicy(policy, invalid("quantity"), "worker")?.ok, false);
  assert.deepEqual(judgePolicy(policy, VALID, "worker"), { ok: true });
  assert.deepEqual(judgePolicy({ ...policy, spec: { cluster: "other" } }, invalid("x"), "worker"), {
    ok: true,
  });
});

Deno.test("chaos fuzz: setPath and the seeded generator", () => {
  const object: Record<string, unknown> = { spec: { list: [{ a: 1 }] } };
  setPath(object, "spec.list.0.a", 2);
  setPath(object, "spec.new.deep", "x");
  setPath(object, "spec.gone", 1);
  setPath(object, "spec.gone", REMOVE);
  assert.deepEqual(object, { spec: { list: [{ a: 2 }], new: { deep: "x" } } });
  const a = new Prng(42);
  const b = new Prng(42);
  assert.deepEqual(
    Array.from({ length: 5 }, () => a.int(0, 1000)),
    Array.from({ length: 5 }, () => b.int(0, 1000)),
  );
});
