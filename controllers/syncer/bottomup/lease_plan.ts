/**
 * What one physical node lends, as a pure function of the node, its pods and the policies: the
 * rules the node controller applies, shared with `forecast` so that a forecast is what the syncer
 * would do.
 *
 * @module
 */

import type { Node, Pod } from "../../../apis/core/v1/mod.ts";
import type { ResourceLeasingPolicy } from "../../../apis/kubeocean.io/v1beta1/mod.ts";
import type { Quantity } from "../../../toolkit/apimachinery/quantity.ts";
import { LABEL_MANAGED_BY, MANAGED_BY_VALUE } from "../../common/names.ts";
import { applyLimits, freeCapacity, isNonTerminal } from "./capacity.ts";
import { matchesNodeSelector, type NodeSelectorLike } from "./node_selector.ts";
import { selectPolicy } from "./policy_selection.ts";
import { evaluateSchedule, type WindowState } from "./time_windows.ts";

/**
 * Whether a physical node may be leased at all: it exists, is not being deleted, is no virtual
 * node of any kind (virtual-kubelet, another Kubeocean), and the binding's selector selects it.
 */
export function leasableNode(node: Node | undefined, bindingSelector: NodeSelectorLike | undefined): boolean {
  return !!node && !node.metadata?.deletionTimestamp && node.metadata?.labels?.type !== "virtual-kubelet" &&
    node.metadata?.labels?.["node.kubernetes.io/instance-type"] !== "vnode" &&
    matchesNodeSelector(bindingSelector, node.metadata!.name!, node.metadata?.labels);
}

/** Whether a pod takes capacity away from a node's lease: it holds resources and is no twin. */
export function takesFromLease(pod: Pod): boolean {
  return isNonTerminal(pod) && pod.metadata?.labels?.[LABEL_MANAGED_BY] !== MANAGED_BY_VALUE;
}

/** The capacity `policy` leases of `node`, given the node's pods that take from it. */
export function leasedCapacity(
  node: Node,
  ownPods: Pod[],
  policy: ResourceLeasingPolicy,
): { allocatable: Record<string, string>; leased: Record<string, Quantity> } {
  const allocatable: Record<string, string> = {};
  for (const [name, value] of Object.entries(node.status?.allocatable ?? {})) {
    allocatable[name] = String(value);
  }
  const free = freeCapacity(allocatable, ownPods);
  return { allocatable, leased: applyLimits(free, policy.spec?.resourceLimits) };
}

/** One node's lending at one instant. */
export interface NodeLending {
  node: string;
  /** The policy that applies, absent when none does (nothing is lent). */
  policy?: string;
  /** Whether capacity is lent at that instant (a policy applies and its schedule is active). */
  lent: boolean;
  /** The schedule's state (absent without a policy). */
  schedule?: WindowState;
  /** What the virtual node offers (its capacity, also while the schedule keeps it closed). */
  leased: Record<string, Quantity>;
}

/** What `node` lends at `at` for binding `bindingName` (the node controller's rules). */
export function nodeLending(
  node: Node,
  pods: Pod[],
  policies: readonly ResourceLeasingPolicy[],
  bindingName: string,
  bindingSelector: NodeSelectorLike | undefined,
  at: Date,
): NodeLending {
  const name = node.metadata!.name!;
  const policy = leasableNode(node, bindingSelector) ? selectPolicy(policies, bindingName, node) : undefined;
  if (!policy) return { node: name, lent: false, leased: {} };
  const schedule = evaluateSchedule(policy.spec!, at);
  const { leased } = leasedCapacity(node, pods.filter(takesFromLease), policy);
  return { node: name, policy: policy.metadata!.name!, lent: schedule.active, schedule, leased };
}
