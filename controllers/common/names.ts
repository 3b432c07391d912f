/**
 * Label, annotation, finalizer and taint keys, and fixed object names. One place, so that every
 * component and test agrees.
 *
 * @module
 */

export const LABEL_MANAGED_BY = "kubeocean.io/managed-by";
export const MANAGED_BY_VALUE = "kubeocean";
export const LABEL_CLUSTER_BINDING = "kubeocean.io/cluster-binding";
export const LABEL_PHYSICAL_CLUSTER_ID = "kubeocean.io/physical-cluster-id";
export const LABEL_PHYSICAL_NODE_NAME = "kubeocean.io/physical-node-name";
export const LABEL_PHYSICAL_NODE_UID = "kubeocean.io/physical-node-uid";
export const LABEL_VIRTUAL_NAMESPACE = "kubeocean.io/virtual-namespace";

export const ANNOTATION_EXPECTED_METADATA = "kubeocean.io/expected-metadata";
export const ANNOTATION_KUBECONFIG_HASH = "kubeocean.io/kubeconfig-hash";
export const ANNOTATION_VIRTUAL_POD_NAMESPACE = "kubeocean.io/virtual-pod-namespace";
export const ANNOTATION_VIRTUAL_POD_NAME = "kubeocean.io/virtual-pod-name";
export const ANNOTATION_VIRTUAL_POD_UID = "kubeocean.io/virtual-pod-uid";
export const ANNOTATION_PHYSICAL_POD_NAMESPACE = "kubeocean.io/physical-pod-namespace";
export const ANNOTATION_PHYSICAL_POD_NAME = "kubeocean.io/physical-pod-name";
export const ANNOTATION_PHYSICAL_POD_UID = "kubeocean.io/physical-pod-uid";
export const ANNOTATION_VIRTUAL_NODE_NAME = "kubeocean.io/virtual-node-name";
/** Where metrics-server scrapes a node's resource metrics (a kubelet path, honoured since metrics-server 0.6). */
export const ANNOTATION_RESOURCE_METRICS_PATH = "metrics.k8s.io/resource-metrics-path";

/** The proxier's resource metrics path of virtual node `vnode` (node-scoped kubelet paths name no node). */
export function resourceMetricsPath(vnode: string): string {
  return `/metrics/nodes/${vnode}/metrics/resource`;
}

/** The proxier's stats summary path of virtual node `vnode`. */
export function statsSummaryPath(vnode: string): string {
  return `/stats/nodes/${vnode}/summary`;
}
export const ANNOTATION_VIRTUAL_NAME = "kubeocean.io/virtual-name";
export const ANNOTATION_VIRTUAL_NAMESPACE = "kubeocean.io/virtual-namespace";
export const ANNOTATION_RUNNING_DAEMONSET = "kubeocean.io/running-daemonset";
/** On a virtual node: the physical node behind it (label values may be shortened, this is whole). */
export const ANNOTATION_PHYSICAL_NODE = "kubeocean.io/physical-node-name";
/** On a virtual node: the ResourceLeasingPolicy its capacity comes from. */
export const ANNOTATION_POLICY = "kubeocean.io/policy";
/** On a virtual node: its policy's `forceReclaim` (`"true"`/`"false"`), kept for when the policy is gone. */
export const ANNOTATION_FORCE_RECLAIM = "kubeocean.io/force-reclaim";
/** On a virtual node: its policy's `gracefulReclaimPeriodSeconds`, kept for when the policy is gone. */
export const ANNOTATION_GRACEFUL_RECLAIM_PERIOD = "kubeocean.io/graceful-reclaim-period-seconds";
/** On a virtual node that is no longer leased: when it started draining (RFC 3339). */
export const ANNOTATION_DRAINING_SINCE = "kubeocean.io/draining-since";

/** Pod condition on a virtual pod the worker refuses to run as it is (e.g. its Pod Security level). */
export const CONDITION_WORKER_ADMITTED = "kubeocean.io/WorkerAdmitted";

export const FINALIZER_MANAGER = "kubeocean.io/clusterbinding-manager";
export const FINALIZER_SYNCER = "kubeocean.io/clusterbinding-syncer";

export const TAINT_VNODE = "kubeocean.io/vnode";
export const TAINT_OUT_OF_TIME_WINDOWS = "kubeocean.io/out-of-time-windows";
export const TAINT_VNODE_DELETING = "kubeocean.io/vnode-deleting";

/** Namespace of the manager, rendered syncers and kubeconfig Secrets in the computing cluster. */
export const SYSTEM_NAMESPACE = "kubeocean-system";
/** Key of the kubeconfig in a ClusterBinding's Secret. */
export const KUBECONFIG_KEY = "kubeconfig";
/** ServiceAccount of the syncer in a worker cluster's mount namespace. */
export const WORKER_SERVICE_ACCOUNT = "kubeocean-syncer";
/** Secret holding the worker ServiceAccount's token. */
export const WORKER_TOKEN_SECRET = "kubeocean-syncer-token";
/** PriorityClass of worker pods unless the binding names another. */
export const DEFAULT_PRIORITY_CLASS = "kubeocean-default";
/** Field manager of server-side apply writes. */
export const FIELD_MANAGER = "kubeocean";

/** Finalizer on virtual pods that have (or may have) a twin in the worker `clusterID`. */
export function twinFinalizer(clusterID: string): string {
  return `kubeocean.io/twin-${clusterID}`;
}

/** `kubeocean.io/finalizer-<clusterID>` style per-cluster finalizer on mirrored virtual objects. */
export function syncedFinalizer(clusterID: string): string {
  return `kubeocean.io/finalizer-${clusterID}`;
}

/** `kubeocean.io/synced-by-<clusterID>` label on mirrored virtual objects. */
export function syncedByLabel(clusterID: string): string {
  return `kubeocean.io/synced-by-${clusterID}`;
}

/** Annotation on a twin listing the virtual objects it uses: `ConfigMap/ns/name`, `Secret/ns/name`, `Token/ns/sa`. */
export const ANNOTATION_DEPENDENCIES = "kubeocean.io/dependencies";

/** On a syncer's heartbeat Lease: what the syncer reports (JSON of a `SyncerHealth`). */
export const ANNOTATION_SYNCER_HEALTH = "kubeocean.io/syncer-health";
/** Label of syncer heartbeat Leases (the manager caches only these). */
export const LABEL_HEARTBEAT = "kubeocean.io/heartbeat";

/**
 * Namespace of the computing cluster holding host-port placeholders (one pod per virtual node
 * whose physical node has host ports in use by the worker's own pods). Shipped in
 * deploy/manager/namespace.yaml and created by `bind`; only Kubeocean creates pods there.
 */
export const PLACEHOLDER_NAMESPACE = "kubeocean-reserved";
/** Label (value `"true"`) of a host-port placeholder pod. */
export const LABEL_HOST_PORT_PLACEHOLDER = "kubeocean.io/host-port-placeholder";
/** Label of a host-port placeholder pod: the virtual node it reserves host ports on. */
export const LABEL_VIRTUAL_NODE = "kubeocean.io/virtual-node";

/**
 * Whether `pod` is a host-port placeholder: in {@linkcode PLACEHOLDER_NAMESPACE}, labelled as one
 * and as Kubeocean's. Such a pod never gets a twin and does not keep a draining node alive. The
 * namespace is what makes this trustworthy: tenants cannot create pods there (RBAC, and the
 * admission policy kubeocean-reserved-pods), so a tenant's pod labelled the same anywhere else
 * is an ordinary pod.
 */
export function isHostPortPlaceholder(
  pod: { metadata?: { namespace?: string; labels?: Record<string, string> } },
): boolean {
  const labels = pod.metadata?.labels;
  return pod.metadata?.namespace === PLACEHOLDER_NAMESPACE &&
    labels?.[LABEL_HOST_PORT_PLACEHOLDER] === "true" &&
    labels?.[LABEL_MANAGED_BY] === MANAGED_BY_VALUE;
}
