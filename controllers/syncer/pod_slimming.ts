/**
 * Cache transforms that keep the syncer's pod caches in proportion to its own work, not to the
 * clusters' size: a syncer watches every pod of both clusters, but reads whole specs only of its
 * own pods (virtual pods on its virtual nodes or holding its finalizer, and Kubeocean's twins in
 * the worker). Every other pod is cached with what capacity accounting and routing read: identity,
 * labels, owner, finalizers, node, phase and the containers' resources and host ports.
 *
 * @module
 */

import type { Container, Pod } from "../../apis/core/v1/mod.ts";
import type { KubeObject } from "../../toolkit/client/resource.ts";
import { stripManagedFields } from "../../toolkit/runtime/informer.ts";
import { LABEL_MANAGED_BY, MANAGED_BY_VALUE, twinFinalizer } from "../common/names.ts";

/** What is kept of a pod the syncer does not run: enough to count its requests on its node. */
export function slimPod(pod: Pod): Pod {
  const meta = pod.metadata ?? {};
  const spec = pod.spec;
  return {
    apiVersion: pod.apiVersion,
    kind: pod.kind,
    metadata: {
      name: meta.name,
      namespace: meta.namespace,
      uid: meta.uid,
      resourceVersion: meta.resourceVersion,
      creationTimestamp: meta.creationTimestamp,
      deletionTimestamp: meta.deletionTimestamp,
      labels: meta.labels,
      ownerReferences: meta.ownerReferences,
      finalizers: meta.finalizers,
    },
    spec: spec && {
      nodeName: spec.nodeName,
      containers: spec.containers.map((c) => ({ name: c.name, resources: c.resources, ...hostPortsOf(c) })),
      initContainers: spec.initContainers?.map((c) => ({
        name: c.name,
        resources: c.resources,
        restartPolicy: c.restartPolicy,
        ...hostPortsOf(c),
      })),
      overhead: spec.overhead,
    },
    status: pod.status && { phase: pod.status.phase },
  };
}

/** A container's ports that take a host port (bottomup/host_ports.ts reserves them), if any. */
function hostPortsOf(container: Container): Pick<Container, "ports"> {
  const ports = container.ports?.filter((p) => (p.hostPort ?? 0) > 0);
  return ports?.length ? { ports } : {};
}

/**
 * The computing cluster's pod cache transform of the syncer of `clusterID`: its own virtual pods
 * (bound to one of its virtual nodes, or still holding its finalizer) whole, every other slim.
 */
export function virtualPodTransform(clusterID: string): (object: KubeObject) => KubeObject {
  const ourNodes = `vnode-${clusterID}-`;
  const finalizer = twinFinalizer(clusterID);
  return (object) => {
    const pod: Pod = stripManagedFields(object);
    const ours = pod.spec?.nodeName?.startsWith(ourNodes) || pod.metadata?.finalizers?.includes(finalizer);
    return ours ? pod : slimPod(pod);
  };
}

/** The worker's pod cache transform: Kubeocean's twins whole, every other pod slim. */
export function physicalPodTransform(object: KubeObject): KubeObject {
  const pod: Pod = stripManagedFields(object);
  return pod.metadata?.labels?.[LABEL_MANAGED_BY] === MANAGED_BY_VALUE ? pod : slimPod(pod);
}
