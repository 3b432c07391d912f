// Type tests: these assignments must (or, with @ts-expect-error, must not) type-check.
// `deno test` type-checks this file, so a wrong generated type fails the test run.
import assert from "node:assert/strict";
import type { Pod, ResourceRequirements } from "../../apis/core/v1/mod.ts";
import type { Deployment } from "../../apis/apps/v1/mod.ts";
import type { Lease } from "../../apis/coordination.k8s.io/v1/mod.ts";
import type { Gadget, GadgetSpec } from "./golden/fixture.kubeocean.io/v1/mod.ts";
import type { Widget } from "./golden/fixture.kubeocean.io/v1alpha1/mod.ts";

const pod: Pod = {
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name: "p", labels: { app: "x" } },
  spec: {
    restartPolicy: "Always",
    containers: [{ name: "c", image: "i", resources: { requests: { cpu: "100m", memory: "1Gi" } } }],
  },
};

// @ts-expect-error restartPolicy is an enum
const badEnum: Pod = { spec: { restartPolicy: "Sometimes", containers: [] } };
// @ts-expect-error containers is required
const missingRequired: Pod = { spec: {} };
// @ts-expect-error unknown field in an object literal
const unknownField: Pod = { metadata: { name: "p" }, colour: "blue" };
// @ts-expect-error name must be a string
const wrongType: Pod = { metadata: { name: 42 } };
// @ts-expect-error containerPort is a number
const wrongPort: Pod = { spec: { containers: [{ name: "c", ports: [{ containerPort: "80" }] }] } };

// int-or-string accepts both, quantities accept strings and numbers.
const deployment: Deployment = {
  spec: {
    selector: {},
    template: {},
    strategy: { rollingUpdate: { maxSurge: "25%", maxUnavailable: 1 } },
  },
};
const requirements: ResourceRequirements = { limits: { cpu: 2, memory: "512Mi" } };
const badIntOrString: Deployment = {
  // @ts-expect-error maxSurge is int-or-string, not boolean
  spec: { selector: {}, template: {}, strategy: { rollingUpdate: { maxSurge: true } } },
};

const lease: Lease = {
  spec: { holderIdentity: "me", leaseDurationSeconds: 15, renewTime: "2026-01-01T00:00:00.000000Z" },
};

// Fixture types: keyword and non-identifier property names, unions, cycles, embedded resources.
const gadget: Gadget = {
  spec: {
    mode: "Fast",
    level: 2,
    parts: [{ name: "a", children: [{ name: "b" }] }],
    default: "kw",
    "x-custom-field": "ok",
    "3d": true,
    choice: false,
    anything: [1, "two", { three: null }],
    template: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "t" }, data: { free: "form" } },
  },
};
// @ts-expect-error level is 1 | 2 | 3
const badLevel: GadgetSpec = { mode: "Fast", parts: [], level: 4 };
// @ts-expect-error parts is required
const noParts: GadgetSpec = { mode: "Slow" };
const widget: Widget = {
  spec: { size: 1, colour: "red", ports: [{ name: "http" }], class: "c", "dns-name": null },
};
// @ts-expect-error colour is red | blue
const badColour: Widget = { spec: { size: 1, colour: "green" } };
// @ts-expect-error size is required in spec
const noSize: Widget = { spec: {} };

Deno.test("codegen: generated types accept valid objects (and reject invalid ones at type-check time)", () => {
  const all = [pod, deployment, requirements, lease, gadget, widget];
  const rejected = [
    badEnum,
    missingRequired,
    unknownField,
    wrongType,
    wrongPort,
    badIntOrString,
    badLevel,
    noParts,
    badColour,
    noSize,
  ];
  assert.equal(all.length, 6);
  assert.equal(rejected.length, 10);
});
