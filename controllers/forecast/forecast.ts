/**
 * Capacity forecast: what the policies of one worker cluster lend at given instants, per node and
 * in total, computed with the node controller's own rules (`lease_plan.ts`): the same policy
 * selection, capacity and schedule (time windows, calendar exceptions). Free capacity is taken
 * as it is now: the forecast assumes the worker's own pods stay as they are.
 *
 * @module
 */

import type { Node, Pod } from "../../apis/core/v1/mod.ts";
import type { ResourceLeasingPolicy } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import type { Quantity } from "../../toolkit/apimachinery/quantity.ts";
import { rfc3339 } from "../../toolkit/apimachinery/time.ts";
import { type NodeLending, nodeLending } from "../syncer/bottomup/lease_plan.ts";
import type { NodeSelectorLike } from "../syncer/bottomup/node_selector.ts";

/** The most instants one forecast computes. */
export const MAX_STEPS = 10_000;
/** The longest range one forecast covers, in days. */
export const MAX_RANGE_DAYS = 366;

/** A binding whose lending is forecast: its name and, when known, its node selector. */
export interface ForecastBinding {
  name: string;
  nodeSelector?: NodeSelectorLike;
}

/** The state of a worker cluster a forecast starts from. */
export interface WorkerState {
  nodes: readonly Node[];
  pods: readonly Pod[];
  policies: readonly ResourceLeasingPolicy[];
}

/** One node's line in a forecast. */
export interface NodeForecast {
  node: string;
  policy?: string;
  lent: boolean;
  /** Why: `lent (inside window 09:00-18:00)`, `closed (calendar exception 2026-12-25)`, `no policy`. */
  state: string;
  /** What is lent (empty when nothing is). */
  resources: Record<string, string>;
}

/** One binding at one instant. */
export interface BindingForecast {
  cluster: string;
  nodes: NodeForecast[];
  /** Sum over the nodes that lend. */
  total: Record<string, string>;
  lentNodes: number;
}

/** One instant. */
export interface ForecastStep {
  time: string;
  clusters: BindingForecast[];
}

/** The instants `from`, `from + step`, … up to `to` (inclusive); refuses too many or a bad range. */
export function forecastInstants(from: Date, to: Date, stepMs: number): Date[] {
  if (!(stepMs >= 60_000)) throw new Error("--step: at least 1m");
  if (to < from) throw new Error(`--to: ${rfc3339(to)} is before --from ${rfc3339(from)}`);
  if (to.getTime() - from.getTime() > MAX_RANGE_DAYS * 86_400_000) {
    throw new Error(`--to: the range is longer than ${MAX_RANGE_DAYS} days`);
  }
  const count = Math.floor((to.getTime() - from.getTime()) / stepMs) + 1;
  if (count > MAX_STEPS) {
    throw new Error(`--step: ${count} instants, more than ${MAX_STEPS}; use a longer step`);
  }
  return Array.from({ length: count }, (_, i) => new Date(from.getTime() + i * stepMs));
}

function stateText(lending: NodeLending): string {
  const s = lending.schedule;
  if (!lending.policy || !s) return "no policy";
  const why = s.exception
    ? `calendar exception ${s.exception}`
    : s.activeWindow
    ? `inside window ${s.activeWindow}`
    : s.active
    ? "always"
    : "outside every window";
  return `${lending.lent ? "lent" : "closed"} (${why})`;
}

function render(resources: Record<string, Quantity>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(resources).sort(([a], [b]) => a.localeCompare(b)).map(([k, q]) => [k, q.toString()]),
  );
}

/** Forecasts `bindings` over `instants` from `worker`'s state. */
export function forecast(
  worker: WorkerState,
  bindings: readonly ForecastBinding[],
  instants: readonly Date[],
): ForecastStep[] {
  const podsByNode = new Map<string, Pod[]>();
  for (const pod of worker.pods) {
    const node = pod.spec?.nodeName;
    if (node) podsByNode.set(node, [...(podsByNode.get(node) ?? []), pod]);
  }
  const nodes = [...worker.nodes].sort((a, b) => a.metadata!.name!.localeCompare(b.metadata!.name!));
  return instants.map((at) => ({
    time: rfc3339(at),
    clusters: bindings.map((binding) => {
      const total: Record<string, Quantity> = {};
      let lentNodes = 0;
      const lines = nodes.map((node): NodeForecast => {
        const lending = nodeLending(
          node,
          podsByNode.get(node.metadata!.name!) ?? [],
          worker.policies,
          binding.name,
          binding.nodeSelector,
          at,
        );
        if (lending.lent) {
          lentNodes++;
          for (const [name, q] of Object.entries(lending.leased)) total[name] = total[name]?.add(q) ?? q;
        }
        return {
          node: lending.node,
          policy: lending.policy,
          lent: lending.lent,
          state: stateText(lending),
          resources: lending.lent ? render(lending.leased) : {},
        };
      }).filter((line) => line.policy);
      return { cluster: binding.name, nodes: lines, total: render(total), lentNodes };
    }),
  }));
}

/** The resource columns of a table: cpu, memory, pods first, then the rest by name. */
function columnsOf(steps: readonly ForecastStep[]): string[] {
  const names = new Set<string>();
  for (const step of steps) {
    for (const c of step.clusters) for (const name of Object.keys(c.total)) names.add(name);
  }
  const first = ["cpu", "memory", "pods"];
  return [...first, ...[...names].filter((n) => !first.includes(n)).sort()];
}

/** Renders a forecast as an aligned table (one line per node and instant, then the binding's total). */
export function forecastTable(steps: readonly ForecastStep[]): string {
  const columns = columnsOf(steps);
  const rows: string[][] = [[
    "TIME",
    "CLUSTER",
    "NODE",
    "POLICY",
    "STATE",
    ...columns.map((c) => c.toUpperCase()),
  ]];
  for (const step of steps) {
    for (const c of step.clusters) {
      for (const n of c.nodes) {
        rows.push([
          step.time,
          c.cluster,
          n.node,
          n.policy ?? "",
          n.state,
          ...columns.map((r) => n.resources[r] ?? "-"),
        ]);
      }
      rows.push([
        step.time,
        c.cluster,
        "(total)",
        "",
        `${c.lentNodes}/${c.nodes.length} nodes lent`,
        ...columns.map((r) => c.total[r] ?? "0"),
      ]);
    }
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd()).join("\n");
}
