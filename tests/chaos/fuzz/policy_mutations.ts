/**
 * Mutations of a ResourceLeasingPolicy whose base is valid: it belongs to the live binding and
 * selects only the `spare` worker node (the world's policy, older, keeps the `main` nodes), so a
 * valid fuzzed policy may lend the spare node but never touches the burst's nodes.
 *
 * @module
 */

import { POOL_LABEL } from "../burst.ts";
import { either, invalid, type Mutation, REMOVE, set, setWith, VALID } from "./mutation.ts";

/** A valid policy of `binding` for the spare node. */
export function basePolicy(
  name: string,
  binding: string,
  labels: Record<string, string>,
): Record<string, unknown> {
  return {
    apiVersion: "kubeocean.io/v1beta1",
    kind: "ResourceLeasingPolicy",
    metadata: { name, labels: { ...labels } },
    spec: {
      cluster: binding,
      nodeSelector: {
        nodeSelectorTerms: [{ matchExpressions: [{ key: POOL_LABEL, operator: "In", values: ["spare"] }] }],
      },
    },
  };
}

const limit = (entry: Record<string, unknown>) => [entry];

/** Every policy mutation. */
export const POLICY_MUTATIONS: readonly Mutation[] = [
  set("spec.cluster", "", "empty", invalid("cluster")),
  set("spec.cluster", 5, "wrong type", invalid("cluster")),
  set("spec.cluster", REMOVE, "required", invalid("cluster")),
  set("spec.cluster", "no-such-binding", "another binding's (nobody judges it)", VALID),
  set("spec.timeZone", "Mars/Olympus_Mons", "unknown zone", invalid("spec.timeZone")),
  set("spec.timeZone", "UTC+25", "bad offset", invalid("spec.timeZone")),
  set("spec.timeZone", "", "empty", invalid("timeZone")),
  set("spec.timeZone", 8, "wrong type", invalid("timeZone")),
  setWith(
    "spec.timeZone",
    ({ rng }) => rng.string(50_000),
    "a 50,000-character string",
    invalid("spec.timeZone", "timeZone"),
  ),
  set("spec.timeZone", "Asia/Shanghai", "valid", VALID),
  set("spec.timeWindows", [{ start: "25:00", end: "01:00" }], "hour out of range", invalid("timeWindows")),
  set("spec.timeWindows", [{ start: "9:00", end: "17:00" }], "bad format", invalid("timeWindows")),
  set("spec.timeWindows", [{ start: "09:00", end: "09:00" }], "empty window", invalid("timeWindows")),
  set("spec.timeWindows", [{ start: "22:00", end: "06:00", days: ["funday"] }], "bad enum", invalid("days")),
  set(
    "spec.timeWindows",
    [{ start: "22:00", end: "06:00", days: ["monday", "monday"] }],
    "duplicate day",
    invalid("days"),
  ),
  set(
    "spec.timeWindows",
    Array.from(
      { length: 33 },
      (_, i) => ({
        start: `${String(i % 24).padStart(2, "0")}:00`,
        end: `${String(i % 24).padStart(2, "0")}:30`,
      }),
    ),
    "too many",
    invalid("timeWindows"),
  ),
  set("spec.timeWindows", "always", "wrong type", invalid("timeWindows")),
  set("spec.timeWindows", [{ start: "09:00" }], "end missing", invalid("end")),
  set("spec.timeWindows", [{ start: "22:00", end: "06:00", days: ["friday"] }], "crosses midnight", VALID),
  set("spec.exceptions", [{ date: "2026-12-25", lend: false, reason: "Christmas" }], "a holiday", VALID),
  set(
    "spec.exceptions",
    [{ from: "2026-12-28T22:00", to: "2026-12-29T02:00", lend: false }],
    "maintenance",
    VALID,
  ),
  set("spec.exceptions", [{ date: "2026-13-01", lend: false }], "month 13", invalid("date")),
  set(
    "spec.exceptions",
    [{ date: "2026-02-30", lend: false }],
    "no such day",
    invalid("spec.exceptions[0].date"),
  ),
  set("spec.exceptions", [{ date: "2026-12-25T10:00Z", lend: false }], "a zone on a date", invalid("date")),
  set("spec.exceptions", [{ date: "2026-12-25" }], "lend missing", invalid("lend")),
  set("spec.exceptions", [{ from: "2026-12-28" }], "range without to", invalid("exceptions")),
  set(
    "spec.exceptions",
    [{ date: "2026-12-25", from: "2026-12-24", to: "2026-12-26", lend: false }],
    "both",
    invalid("exceptions"),
  ),
  set(
    "spec.exceptions",
    [{ from: "2026-12-29", to: "2026-12-28", lend: false }],
    "backwards range",
    invalid("exceptions"),
  ),
  set(
    "spec.exceptions",
    [{ from: "2026-12-20", to: "2026-12-31", lend: false }, { date: "2026-12-24", lend: true }],
    "contradictory overlap",
    invalid("spec.exceptions[1]"),
  ),
  set("spec.closingNoticeSeconds", -1, "negative notice", invalid("closingNoticeSeconds")),
  set(
    "spec.resourceLimits",
    limit({ resource: "cpu", quantity: "1.2.3" }),
    "bad quantity",
    invalid("quantity"),
  ),
  set(
    "spec.resourceLimits",
    limit({ resource: "cpu", quantity: "-1" }),
    "negative quantity",
    invalid("spec.resourceLimits[0].quantity"),
  ),
  set(
    "spec.resourceLimits",
    limit({ resource: "memory", quantity: "abc" }),
    "bad quantity",
    invalid("quantity"),
  ),
  set(
    "spec.resourceLimits",
    limit({ resource: "memory", quantity: "" }),
    "empty quantity",
    invalid("quantity"),
  ),
  set(
    "spec.resourceLimits",
    limit({ resource: "cpu", quantity: "1e400" }),
    "overflowing quantity",
    either("quantity"),
  ),
  set(
    "spec.resourceLimits",
    limit({ resource: "cpu", quantity: "9".repeat(60) }),
    "huge quantity",
    either("quantity"),
  ),
  set("spec.resourceLimits", limit({ resource: "cpu", percent: 150 }), "out of range", invalid("percent")),
  set("spec.resourceLimits", limit({ resource: "cpu", percent: -1 }), "out of range", invalid("percent")),
  set("spec.resourceLimits", limit({ resource: "cpu", percent: "50" }), "wrong type", invalid("percent")),
  set("spec.resourceLimits", limit({ resource: "cpu", percent: 2.5 }), "not an integer", invalid("percent")),
  set(
    "spec.resourceLimits",
    limit({ resource: "cpu" }),
    "neither quantity nor percent",
    invalid("resourceLimits"),
  ),
  set(
    "spec.resourceLimits",
    [{ resource: "cpu", percent: 50 }, { resource: "cpu", percent: 20 }],
    "duplicate resource",
    invalid("resourceLimits"),
  ),
  set("spec.resourceLimits", limit({ resource: "", percent: 10 }), "empty resource", invalid("resource")),
  set("spec.resourceLimits", { cpu: "1" }, "wrong type", invalid("resourceLimits")),
  set("spec.resourceLimits", limit({ resource: "memory", quantity: "16Gi", percent: 50 }), "valid", VALID),
  set("spec.resourceLimits", limit({ resource: "cpu", quantity: 8 }), "integer quantity", VALID),
  set("spec.forceReclaim", "yes", "wrong type", invalid("forceReclaim")),
  set("spec.gracefulReclaimPeriodSeconds", -1, "out of range", invalid("gracefulReclaimPeriodSeconds")),
  set("spec.gracefulReclaimPeriodSeconds", 1e15, "huge", either("gracefulReclaimPeriodSeconds")),
  set(
    "spec.nodeSelector",
    { nodeSelectorTerms: [{ matchExpressions: [{ key: POOL_LABEL, operator: "Like", values: ["spare"] }] }] },
    "bad enum",
    invalid("operator"),
  ),
  set(
    "spec.nodeSelector",
    { nodeSelectorTerms: [{ matchExpressions: [{ key: "capacity", operator: "Gt", values: ["abc"] }] }] },
    "Gt of a non-number",
    either("nodeSelector"),
  ),
  set("spec.nodeSelector", {}, "nodeSelectorTerms missing", invalid("nodeSelectorTerms")),
  set("spec", REMOVE, "required", invalid("spec")),
  set("spec.surprise", "pruned", "unknown field", VALID),
  set("metadata.labels.chaos-note", "plain", "harmless", VALID),
];
