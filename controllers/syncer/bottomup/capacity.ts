/**
 * Leasable capacity of a physical node.
 *
 * For every resource in the node's allocatable (cpu, memory, pods, ephemeral-storage, extended
 * resources such as nvidia.com/gpu):
 *
 * 1. free = allocatable − the requests of the node's pods that are not terminal (phase not
 *    Succeeded/Failed) and not Kubeocean's own, each pod counted the way the scheduler counts it:
 *    max(sum of containers + sidecars, largest init container + sidecars started before it) +
 *    pod overhead (for `pods`, each pod counts 1); never below zero;
 * 2. leased = free, capped by the policy's limit for that resource: `quantity`, `percent` of free,
 *    or the smaller of the two when both are set. Percentages truncate toward zero to millicores
 *    for cpu and to whole units for every other resource.
 *
 * All arithmetic is exact ({@linkcode Quantity}).
 *
 * @module
 */

import type { Container, Pod } from "../../../apis/core/v1/mod.ts";
import { Quantity } from "../../../toolkit/apimachinery/quantity.ts";

/** A policy's cap for one resource. */
export interface ResourceLimit {
  resource: string;
  quantity?: number | string;
  percent?: number;
}

type ResourceMap = Record<string, Quantity>;

function parse(value: string | number | undefined): Quantity | undefined {
  if (value === undefined || value === null) return undefined;
  return Quantity.parse(String(value));
}

function requestsOf(container: Container): ResourceMap {
  const out: ResourceMap = {};
  for (const [name, value] of Object.entries(container.resources?.requests ?? {})) out[name] = parse(value)!;
  return out;
}

function addInto(target: ResourceMap, source: Readonly<ResourceMap>): void {
  for (const [name, q] of Object.entries(source)) target[name] = target[name] ? target[name].add(q) : q;
}

function maxInto(target: ResourceMap, source: ResourceMap): void {
  for (const [name, q] of Object.entries(source)) {
    target[name] = target[name] ? Quantity.max(target[name], q) : q;
  }
}

/**
 * Computed requests by pod spec object. Cached pods keep their spec object across updates that
 * leave it unchanged (the store shares unchanged parts), so a node's usage is summed without
 * parsing every pod's quantities again on each reconcile.
 */
const requestsBySpec = new WeakMap<NonNullable<Pod["spec"]>, Readonly<ResourceMap>>();

/** The scheduler's effective request of a pod (sidecar-aware), plus overhead and `pods: 1`. */
export function effectiveRequests(pod: Pod): Readonly<ResourceMap> {
  const spec = pod.spec;
  if (!spec) return computeRequests(spec);
  let requests = requestsBySpec.get(spec);
  if (!requests) requestsBySpec.set(spec, requests = Object.freeze(computeRequests(spec)));
  return requests;
}

function computeRequests(spec: Pod["spec"]): ResourceMap {
  const total: ResourceMap = {};
  for (const c of spec?.containers ?? []) addInto(total, requestsOf(c));
  const sidecarsSoFar: ResourceMap = {};
  const initPeak: ResourceMap = {};
  for (const init of spec?.initContainers ?? []) {
    const requests = requestsOf(init);
    if (init.restartPolicy === "Always") {
      // A sidecar keeps running: it adds to the steady state and to later init containers.
      addInto(sidecarsSoFar, requests);
      addInto(total, requests);
      const withSidecars: ResourceMap = { ...sidecarsSoFar };
      maxInto(initPeak, withSidecars);
    } else {
      const during: ResourceMap = { ...sidecarsSoFar };
      addInto(during, requests);
      maxInto(initPeak, during);
    }
  }
  maxInto(total, initPeak);
  for (const [name, value] of Object.entries(spec?.overhead ?? {})) {
    const q = parse(value)!;
    total[name] = total[name] ? total[name].add(q) : q;
  }
  total.pods = Quantity.parse("1");
  return total;
}

/** Whether a pod still holds node resources. */
export function isNonTerminal(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return phase !== "Succeeded" && phase !== "Failed";
}

/** Free capacity: allocatable minus the effective requests of `pods` (never negative). */
export function freeCapacity(allocatable: Record<string, string | number>, pods: Pod[]): ResourceMap {
  const used: ResourceMap = {};
  for (const pod of pods) addInto(used, effectiveRequests(pod));
  const free: ResourceMap = {};
  for (const [name, value] of Object.entries(allocatable)) {
    const total = parse(value)!;
    const remaining = used[name] ? total.sub(used[name]) : total;
    free[name] = remaining.sign < 0 ? Quantity.zero(total.format) : remaining;
  }
  return free;
}

/** Applies a policy's limits to free capacity (see the module documentation for the rule). */
export function applyLimits(free: ResourceMap, limits: readonly ResourceLimit[] = []): ResourceMap {
  const leased: ResourceMap = { ...free };
  for (const limit of limits) {
    const available = free[limit.resource];
    if (!available) continue;
    let cap: Quantity | undefined;
    const quantity = parse(limit.quantity);
    if (quantity) cap = quantity;
    if (limit.percent !== undefined) {
      const share = available.mulPercent(limit.percent, limit.resource === "cpu" ? "milli" : "unit");
      cap = cap ? Quantity.min(cap, share) : share;
    }
    if (cap) leased[limit.resource] = Quantity.min(available, cap.sign < 0 ? Quantity.zero() : cap);
  }
  return leased;
}

/** Renders a resource map as the string map a Node's capacity takes. */
export function toResourceList(resources: ResourceMap): Record<string, string> {
  return Object.fromEntries(
    Object.entries(resources).sort(([a], [b]) => a.localeCompare(b)).map(([k, q]) => [k, q.toString()]),
  );
}
