/**
 * What the syncer and proxier may do in a worker cluster — the single source for the worker RBAC
 * that `bind` applies (and `deploy/worker/rbac.yaml` shows), and for the manager's check of the
 * worker credentials.
 *
 * Least privilege: cluster-wide the syncer only reads (nodes, pods, CSINodes, storage classes,
 * persistent volumes, policies). Its only cluster-wide write is the status of
 * ResourceLeasingPolicies, which is how users of the worker cluster see what is leased and when.
 * Every other write stays inside the mount namespace. Nodes are never patched, Secrets outside the
 * mount namespace are never touched, and the `kubeocean-default` PriorityClass is created once by
 * `bind` (with the worker admin's credentials), not by the syncer.
 *
 * @module
 */

import type { KubeObject } from "../../toolkit/client/resource.ts";
import { DEFAULT_PRIORITY_CLASS, WORKER_SERVICE_ACCOUNT, WORKER_TOKEN_SECRET } from "./names.ts";

/** One permission: verbs on a resource (optionally a subresource), cluster-wide or in the mount namespace. */
export interface Permission {
  group: string;
  resource: string;
  subresource?: string;
  verbs: string[];
  scope: "cluster" | "mount-namespace";
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
      "a mirrored claim binds to a volume, which is cluster-scoped: the syncer creates copies (reclaim Retain, pre-bound to a claim in the mount namespace, labelled with the binding) and deletes only those",
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
    resource: "pods",
    subresource: "log",
    verbs: ["get"],
    scope: "mount-namespace",
    reason: "kubectl logs",
  },
  {
    group: "",
    resource: "pods",
    subresource: "exec",
    verbs: ["get", "create"],
    scope: "mount-namespace",
    reason: "kubectl exec",
  },
  {
    group: "",
    resource: "pods",
    subresource: "attach",
    verbs: ["get", "create"],
    scope: "mount-namespace",
    reason: "kubectl attach",
  },
  {
    group: "",
    resource: "pods",
    subresource: "portforward",
    verbs: ["get", "create"],
    scope: "mount-namespace",
    reason: "kubectl port-forward",
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
    resource: "events",
    verbs: ["get", "list", "watch"],
    scope: "mount-namespace",
    reason: "events of worker pods are shown on virtual pods",
  },
];

/** The worker objects `bind` applies for a mount namespace, in apply order. */
export function workerRbacObjects(mountNamespace: string): KubeObject[] {
  const clusterRules = WORKER_PERMISSIONS.filter((p) => p.scope === "cluster");
  const namespaceRules = WORKER_PERMISSIONS.filter((p) => p.scope === "mount-namespace");
  const rule = (p: Permission) => ({
    apiGroups: [p.group],
    resources: [p.subresource ? `${p.resource}/${p.subresource}` : p.resource],
    verbs: p.verbs,
  });
  const labels = { "app.kubernetes.io/part-of": "kubeocean", "app.kubernetes.io/component": "worker-rbac" };
  return [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: mountNamespace, labels } },
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
      rules: clusterRules.map(rule),
    } as KubeObject,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: `kubeocean:syncer:${mountNamespace}`, labels },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "kubeocean:syncer" },
      subjects: [{ kind: "ServiceAccount", name: WORKER_SERVICE_ACCOUNT, namespace: mountNamespace }],
    } as KubeObject,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "kubeocean:syncer", namespace: mountNamespace, labels },
      rules: namespaceRules.map(rule),
    } as KubeObject,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "kubeocean:syncer", namespace: mountNamespace, labels },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "kubeocean:syncer" },
      subjects: [{ kind: "ServiceAccount", name: WORKER_SERVICE_ACCOUNT, namespace: mountNamespace }],
    } as KubeObject,
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
}
