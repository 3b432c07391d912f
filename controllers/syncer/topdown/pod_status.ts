/**
 * A virtual pod's status from its twin's: what flows back, what counts as a change, and the
 * status of a pod whose twin is gone. Pure functions.
 *
 * @module
 */

import type { Pod, PodStatus } from "../../../apis/core/v1/mod.ts";

export { isTerminal } from "../pod_phase.ts";

/**
 * The status a virtual pod should show for its twin's `source` status, or undefined when the twin
 * has nothing to say yet (no phase, or a freshly created Pending twin without conditions). The
 * host IP is the virtual node's address (the proxier), since the physical host is not reachable
 * from the computing cluster; the QoS class is kept when the twin has none.
 */
export function statusFromTwin(
  source: PodStatus | undefined,
  current: PodStatus | undefined,
  hostIP: string,
): PodStatus | undefined {
  if (!source?.phase) return undefined;
  if (
    source.phase === "Pending" && !source.conditions?.length && !source.containerStatuses?.length &&
    !source.initContainerStatuses?.length && !source.message && !source.reason
  ) return undefined;
  return {
    phase: source.phase,
    conditions: source.conditions,
    message: source.message,
    reason: source.reason,
    containerStatuses: source.containerStatuses,
    initContainerStatuses: source.initContainerStatuses,
    podIP: source.podIP,
    podIPs: source.podIPs,
    hostIP,
    hostIPs: [{ ip: hostIP }],
    startTime: source.startTime,
    qosClass: source.qosClass ?? current?.qosClass,
  };
}

/**
 * A text that changes exactly when a status write would change what users see (condition
 * heartbeat times excluded), to skip writes that change nothing.
 */
export function comparableStatus(status: PodStatus): string {
  return JSON.stringify([
    status.phase,
    status.conditions?.map((c) => [c.type, c.status, c.reason]),
    status.containerStatuses,
    status.initContainerStatuses,
    status.podIP,
    status.startTime,
    status.message,
    status.reason,
  ]);
}

/** The status of a pod that failed for `reason`: phase Failed, Ready and ContainersReady False. */
export function failedStatus(pod: Pod, reason: string, message: string): PodStatus {
  return {
    phase: "Failed",
    reason,
    message,
    conditions: (pod.status?.conditions ?? []).map((c) =>
      c.type === "Ready" || c.type === "ContainersReady" ? { ...c, status: "False", reason, message } : c
    ),
  };
}

/** When the twin became Running (its Ready transition, else its start time). */
export function runningSince(status: PodStatus | undefined): string | undefined {
  return status?.conditions?.find((c) => c.type === "Ready" && c.status === "True")?.lastTransitionTime ??
    status?.startTime;
}

/** Whether a DaemonSet controls the pod. */
export function isDaemonSetPod(pod: Pod): boolean {
  return pod.metadata?.ownerReferences?.some((r) => r.kind === "DaemonSet" && r.controller) ?? false;
}
