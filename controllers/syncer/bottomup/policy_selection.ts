/**
 * Which ResourceLeasingPolicy applies to a physical node: among the binding's valid policies whose
 * node selector matches the node, the oldest (then the first by name). A node no valid policy
 * selects is not leased.
 *
 * @module
 */

import type { Node } from "../../../apis/core/v1/mod.ts";
import type { ResourceLeasingPolicy } from "../../../apis/kubeocean.io/v1beta1/mod.ts";
import { Quantity } from "../../../toolkit/apimachinery/quantity.ts";
import { matchesNodeSelector } from "./node_selector.ts";
import { validateTimeZone } from "./time_windows.ts";
import { exceptionSpans } from "./calendar_exceptions.ts";

/**
 * Why a policy is unusable, naming the field, or undefined when it is valid. It covers what the
 * CRD schema lets through but leasing cannot use: an unknown time zone, a resource listed twice,
 * and a quantity the schema's pattern accepts that is no Kubernetes quantity (e.g. `1e1.5`) or is
 * negative, and calendar exceptions that name no real date or overlap with the opposite `lend`.
 */
export function policyProblem(policy: ResourceLeasingPolicy): string | undefined {
  try {
    validateTimeZone(policy.spec?.timeZone ?? "UTC");
  } catch (err) {
    return `spec.timeZone: ${(err as Error).message}`;
  }
  const exceptions = exceptionSpans(policy.spec?.exceptions);
  if (exceptions.problem) return exceptions.problem;
  const seen = new Set<string>();
  for (const [i, limit] of (policy.spec?.resourceLimits ?? []).entries()) {
    if (seen.has(limit.resource)) {
      return `spec.resourceLimits[${i}].resource: "${limit.resource}" is listed twice`;
    }
    seen.add(limit.resource);
    if (limit.quantity !== undefined) {
      const quantity = parseQuantity(limit.quantity);
      if (!quantity) {
        return `spec.resourceLimits[${i}].quantity: "${limit.quantity}" is not a Kubernetes quantity (e.g. 8, 500m, 16Gi)`;
      }
      if (quantity.sign < 0) return `spec.resourceLimits[${i}].quantity: "${limit.quantity}" is negative`;
    }
  }
  return undefined;
}

function parseQuantity(value: string | number): Quantity | undefined {
  try {
    return Quantity.parse(String(value));
  } catch {
    return undefined;
  }
}

/** The policy that applies to `node` for binding `bindingName`, if any. */
export function selectPolicy(
  policies: readonly ResourceLeasingPolicy[],
  bindingName: string,
  node: Node,
): ResourceLeasingPolicy | undefined {
  return policies
    .filter((p) => p.spec?.cluster === bindingName && !p.metadata?.deletionTimestamp && !policyProblem(p))
    .filter((p) => matchesNodeSelector(p.spec?.nodeSelector, node.metadata!.name!, node.metadata?.labels))
    .sort((a, b) =>
      (a.metadata?.creationTimestamp ?? "").localeCompare(b.metadata?.creationTimestamp ?? "") ||
      (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? "")
    )[0];
}
