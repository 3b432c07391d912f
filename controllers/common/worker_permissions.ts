/**
 * What the syncer and proxier may do in a worker cluster — the single source for the worker RBAC
 * that `bind` applies (and `deploy/worker/rbac.yaml` shows), and for the manager's check of the
 * worker credentials.
 *
 * Least privilege: cluster-wide the syncer reads (nodes, pods, CSINodes, storage classes,
 * persistent volumes, policies) and writes two things: the status of ResourceLeasingPolicies, which
 * is how users of the worker cluster see what is leased and when, and copies of PersistentVolumes,
 * which an admission policy confines to Kubeocean's own. Every other write stays inside the mount
 * namespace, whose Pod Security level the worker's API server enforces on every twin. Nodes are
 * never patched, Secrets outside the mount namespace are never touched, the `kubeocean-default`
 * PriorityClass is created once by `bind` (with the worker admin's credentials). The proxier's
 * streams (pods/log, exec, attach, portforward) go through the worker API server on twins in the
 * mount namespace only, never `nodes/proxy` (which would reach every pod of a node).
 *
 * @module
 */

import type { KubeObject } from "../../toolkit/client/resource.ts";
import { DEFAULT_PRIORITY_CLASS, WORKER_SERVICE_ACCOUNT, WORKER_TOKEN_SECRET } from "./names.ts";
import {
  POD_SECURITY_ENFORCE_LABEL,
  POD_SECURITY_VERSION_LABEL,
  type PodSecurityLevel,
} from "./pod_security.ts";

/**
 * One permission: verbs on a resource (optionally a subresource), cluster-wide, in the mount
 * namespace, or on the mount namespace object itself.
 */
export interface Permission {
  group: string;
  resource: string;
  subresource?: string;
  verbs: string[];
  scope: "cluster" | "mount-namespace" | "mount-namespace-object";
  /** Why the syncer needs it (shown in the docs and in the missing-permission condition). */
  reason: string;
}

/** Every permission the syncer and proxier need in a worker cluster. */
export const WORKER_PERMISSIONS: readonly Permission[] = [
  {
    group: "",
    resource: "nodes",
    verbs: ["get", "list", "watch"],
    scope: "cluster",
    reason: "physical nodes become virtual nodes",
  },
  {
    group: "",
    resource: "pods",
    verbs: ["get", "list", "watch"],
    scope: "cluster",
    reason: "requests of other pods on a node are subtracted from its leasable capacity",
  },
  {
    group: "storage.k8s.io",
    resource: "csinodes",
    verbs: ["get", "list", "watch"],
    scope: "cluster",
    reason: "CSINodes are mirrored onto virtual nodes",
  },
  {
    group: "storage.k8s.io",
    resource: "storageclasses",
    verbs: ["get", "list", "watch"],
    scope: "cluster",
    reason: "volumes of mirrored claims",
  },
  {
    group: "",
    resource: "persistentvolumes",
    verbs: ["get", "list", "watch", "create", "delete"],
    scope: "cluster",
    reason:
      "a mirrored claim binds to a volume, which is cluster-scoped: the syncer creates copies (reclaim Retain, pre-bound to a claim in the mount namespace, labelled as Kubeocean's) and deletes only those; the admission policy kubeocean-syncer-persistentvolumes refuses any other write, and hostPath or local volumes",
  },
  {
    group: "",
    resource: "namespaces",
    verbs: ["get", "list", "watch"],
    scope: "mount-namespace-object",
    reason:
      "the Pod Security level the worker enforces on the mount namespace, checked before a twin is created (this one namespace only)",
  },
  {
    group: "kubeocean.io",
    resource: "resourceleasingpolicies",
    verbs: ["get", "list", "watch"],
    scope: "cluster",
    reason: "policies decide what is leased",
  },
  {
    group: "kubeocean.io",
    resource: "resourceleasingpolicies",
    subresource: "status",
    verbs: ["get", "update", "patch"],
    scope: "cluster",
    reason: "policy status shows users what is leased and when (the one cluster-wide write)",
  },
  {
    group: "scheduling.k8s.io",
    resource: "priorityclasses",
    verbs: ["get", "list", "watch"],
    scope: "cluster",
    reason: "worker pods use the binding's PriorityClass",
  },
  {
    group: "",
    resource: "pods",
    verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
    scope: "mount-namespace",
    reason: "worker twins of virtual pods",
  },
  {
    group: "",
    resource: "configmaps",
    verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
    scope: "mount-namespace",
    reason: "ConfigMaps used by pods",
  },
  {
    group: "",
    resource: "secrets",
    verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
    scope: "mount-namespace",
    reason: "Secrets and service-account tokens used by pods",
  },
  {
    group: "",
    resource: "persistentvolumeclaims",
    verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
    scope: "mount-namespace",
    reason: "claims used by pods",
  },
  {
    group: "",
    resource: "pods",
    subresource: "log",
    verbs: ["get"],
    scope: "mount-namespace",
    reason: "the proxier serves kubectl logs of virtual pods from their twins",
  },
  {
    group: "",
    resource: "pods",
    subresource: "exec",
    verbs: ["get", "create"],
    scope: "mount-namespace",
    reason:
      "the proxier serves kubectl exec in twins (a WebSocket upgrade is a GET; the API server also checks create)",
  },
  {
    group: "",
    resource: "pods",
    subresource: "attach",
    verbs: ["get", "create"],
    scope: "mount-namespace",
    reason: "the proxier serves kubectl attach to twins (get for the WebSocket upgrade, create as above)",
  },
  {
    group: "",
    resource: "pods",
    subresource: "portforward",
    verbs: ["get", "create"],
    scope: "mount-namespace",
    reason:
      "the proxier serves kubectl port-forward to twins (get for the WebSocket upgrade, create as above)",
  },
  {
    group: "metrics.k8s.io",
    resource: "pods",
    verbs: ["get", "list"],
    scope: "mount-namespace",
    reason:
      "the twins' CPU and memory usage (what kubectl top reads in the worker) becomes the virtual nodes' resource metrics, for kubectl top and autoscalers in the computing cluster",
  },
  {
    group: "",
    resource: "events",
    verbs: ["get", "list", "watch"],
    scope: "mount-namespace",
    reason: "events of worker pods are shown on virtual pods",
  },
];

/** What the worker's owner chose when binding. */
export interface WorkerPolicy {
  /** The Pod Security level enforced on the mount namespace (default `baseline`). */
  podSecurity?: PodSecurityLevel;
  /** Let pods reach the link-local metadata address 169.254.169.254 (default: denied). */
  allowMetadataEgress?: boolean;
}

/** The link-local address cloud providers serve instance metadata (and credentials) on. */
export const METADATA_ADDRESS = "169.254.169.254/32";

/** The cluster-wide admission policy confining the syncers' PersistentVolume writes. */
export const PV_POLICY_NAME = "kubeocean-syncer-persistentvolumes";

/** The worker objects `bind` applies for a mount namespace, in apply order. */
export function workerRbacObjects(mountNamespace: string, policy: WorkerPolicy = {}): KubeObject[] {
  const rule = (p: Permission) => ({
    apiGroups: [p.group],
    resources: [p.subresource ? `${p.resource}/${p.subresource}` : p.resource],
    verbs: p.verbs,
    ...(p.scope === "mount-namespace-object" ? { resourceNames: [mountNamespace] } : {}),
  });
  const rules = (scope: Permission["scope"]) => WORKER_PERMISSIONS.filter((p) => p.scope === scope).map(rule);
  const labels = { "app.kubernetes.io/part-of": "kubeocean", "app.kubernetes.io/component": "worker-rbac" };
  const level = policy.podSecurity ?? "baseline";
  const subjects = [{ kind: "ServiceAccount", name: WORKER_SERVICE_ACCOUNT, namespace: mountNamespace }];
  const roleRef = (kind: string, name: string) => ({ apiGroup: "rbac.authorization.k8s.io", kind, name });
  const objects: KubeObject[] = [
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: {
        name: mountNamespace,
        // The worker's own API server refuses twins above this level, whatever a syncer does.
        labels: { ...labels, [POD_SECURITY_ENFORCE_LABEL]: level, [POD_SECURITY_VERSION_LABEL]: "latest" },
      },
    },
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: WORKER_SERVICE_ACCOUNT, namespace: mountNamespace, labels },
    },
    {
      apiVersion: "v1",
      kind: "Secret",
      type: "kubernetes.io/service-account-token",
      metadata: {
        name: WORKER_TOKEN_SECRET,
        namespace: mountNamespace,
        labels,
        annotations: { "kubernetes.io/service-account.name": WORKER_SERVICE_ACCOUNT },
      },
    } as KubeObject,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "kubeocean:syncer", labels },
      rules: rules("cluster"),
    } as KubeObject,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: `kubeocean:syncer:${mountNamespace}`, labels },
      roleRef: roleRef("ClusterRole", "kubeocean:syncer"),
      subjects,
    } as KubeObject,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: `kubeocean:syncer-namespace:${mountNamespace}`, labels },
      rules: rules("mount-namespace-object"),
    } as KubeObject,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: `kubeocean:syncer-namespace:${mountNamespace}`, labels },
      roleRef: roleRef("ClusterRole", `kubeocean:syncer-namespace:${mountNamespace}`),
      subjects,
    } as KubeObject,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "kubeocean:syncer", namespace: mountNamespace, labels },
      rules: rules("mount-namespace"),
    } as KubeObject,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "kubeocean:syncer", namespace: mountNamespace, labels },
      roleRef: roleRef("Role", "kubeocean:syncer"),
      subjects,
    } as KubeObject,
    ...persistentVolumePolicy(labels),
    {
      apiVersion: "scheduling.k8s.io/v1",
      kind: "PriorityClass",
      metadata: { name: DEFAULT_PRIORITY_CLASS, labels },
      value: -10000,
      globalDefault: false,
      preemptionPolicy: "Never",
      description: "Pods Kubeocean runs on leased capacity: they give way to the worker cluster's own pods.",
    } as KubeObject,
  ];
  if (!policy.allowMetadataEgress) {
    objects.push({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "kubeocean-deny-metadata", namespace: mountNamespace, labels },
      // Every destination but the instance metadata address (where a cloud hands out node credentials).
      spec: {
        podSelector: {},
        policyTypes: ["Egress"],
        egress: [{
          to: [{ ipBlock: { cidr: "0.0.0.0/0", except: [METADATA_ADDRESS] } }, { ipBlock: { cidr: "::/0" } }],
        }],
      },
    } as KubeObject);
  }
  return objects;
}

/**
 * A ValidatingAdmissionPolicy (and its binding) that lets a syncer ServiceAccount
 * (`system:serviceaccount:<mount namespace>:kubeocean-syncer`) write only PersistentVolumes labelled
 * as Kubeocean's and claimed from its own mount namespace, never hostPath or local ones: RBAC cannot
 * narrow a cluster-scoped resource by label.
 */
function persistentVolumePolicy(labels: Record<string, string>): KubeObject[] {
  return [
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicy",
      metadata: { name: PV_POLICY_NAME, labels },
      spec: {
        failurePolicy: "Fail",
        matchConstraints: {
          resourceRules: [{
            apiGroups: [""],
            apiVersions: ["v1"],
            operations: ["CREATE", "UPDATE", "DELETE"],
            resources: ["persistentvolumes"],
          }],
        },
        matchConditions: [{
          name: "kubeocean-syncer",
          expression:
            `request.userInfo.username.startsWith('system:serviceaccount:') && request.userInfo.username.endsWith(':${WORKER_SERVICE_ACCOUNT}')`,
        }],
        variables: [
          { name: "mountNamespace", expression: "request.userInfo.username.split(':')[2]" },
          { name: "volume", expression: "request.operation == 'DELETE' ? oldObject : object" },
        ],
        validations: [
          {
            expression:
              "has(variables.volume.metadata.labels) && 'kubeocean.io/managed-by' in variables.volume.metadata.labels && variables.volume.metadata.labels['kubeocean.io/managed-by'] == 'kubeocean'",
            message:
              "the Kubeocean syncer writes only PersistentVolumes labelled kubeocean.io/managed-by=kubeocean",
          },
          {
            expression:
              "has(variables.volume.spec.claimRef) && variables.volume.spec.claimRef.namespace == variables.mountNamespace",
            message:
              "the Kubeocean syncer writes only PersistentVolumes claimed from its own mount namespace",
          },
          {
            expression: "!has(variables.volume.spec.hostPath) && !has(variables.volume.spec.local)",
            message: "the Kubeocean syncer never writes hostPath or local PersistentVolumes",
          },
        ],
      },
    } as KubeObject,
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicyBinding",
      metadata: { name: PV_POLICY_NAME, labels },
      spec: { policyName: PV_POLICY_NAME, validationActions: ["Deny"] },
    } as KubeObject,
  ];
}
