/**
 * Virtual pod → worker twin.
 *
 * The twin runs in the mount namespace, pinned to the physical node behind the virtual node
 * (required node affinity on `metadata.name`, or `spec.nodeName` with direct scheduling), with
 * the binding's PriorityClass, the worker scheduler, and every ConfigMap and Secret reference
 * mapped to its mirrored copy. The virtual ServiceAccount's token is mounted from a mirrored
 * token Secret, and `KUBERNETES_SERVICE_HOST/PORT` point at the computing cluster when the binding
 * says where it is. Downward-API references to `spec.nodeName` read the virtual node's name.
 * Only allowlisted annotations cross ({@linkcode DEFAULT_ALLOWED_ANNOTATIONS} and the binding's
 * `allowedAnnotations`). What cannot cross clusters is dropped and reported.
 *
 * @module
 */

import type { EnvVar, Pod, PodSpec, Volume } from "../../../apis/core/v1/mod.ts";
import type { ClusterBindingSpec } from "../../../apis/kubeocean.io/v1beta1/mod.ts";
import {
  ANNOTATION_VIRTUAL_NODE_NAME,
  ANNOTATION_VIRTUAL_POD_NAME,
  ANNOTATION_VIRTUAL_POD_NAMESPACE,
  ANNOTATION_VIRTUAL_POD_UID,
  DEFAULT_PRIORITY_CLASS,
  LABEL_CLUSTER_BINDING,
  LABEL_MANAGED_BY,
  LABEL_VIRTUAL_NAMESPACE,
  MANAGED_BY_VALUE,
} from "../../common/names.ts";

/** Everything the transformation needs besides the pod. */
export interface TwinContext {
  twinName: string;
  mountNamespace: string;
  bindingName: string;
  binding: ClusterBindingSpec;
  vnodeName: string;
  physicalNode: string;
  /** Virtual name → mirrored name. */
  configMaps: Map<string, string>;
  secrets: Map<string, string>;
  /** Mirrored token Secret of the pod's ServiceAccount (absent when the pod mounts no token). */
  tokenSecret?: string;
  /** Virtual claim name → mirrored claim name. */
  claims?: Map<string, string>;
}

/** The twin and what was dropped on the way (each reported as an Event). */
export interface TwinResult {
  pod: Pod;
  dropped: string[];
}

function isServiceAccountVolume(v: Volume): boolean {
  return v.name.startsWith("kube-api-access-") && !!v.projected?.sources?.some((s) => s.serviceAccountToken);
}

/** Builds the worker twin of `pod`. */
export function buildTwin(pod: Pod, ctx: TwinContext): TwinResult {
  const dropped: string[] = [];
  const spec: PodSpec = structuredClone(pod.spec!);
  const meta = pod.metadata!;

  // Volumes: map names; replace the service-account token volume by the mirrored token Secret.
  const tokenVolumes = new Set<string>();
  spec.volumes = (spec.volumes ?? []).flatMap((v): Volume[] => {
    if (isServiceAccountVolume(v)) {
      tokenVolumes.add(v.name);
      if (!ctx.tokenSecret) return [];
      return [{
        name: v.name,
        secret: { secretName: ctx.tokenSecret, defaultMode: v.projected?.defaultMode },
      }];
    }
    if (v.configMap?.name) v.configMap.name = ctx.configMaps.get(v.configMap.name) ?? v.configMap.name;
    if (v.secret?.secretName) {
      v.secret.secretName = ctx.secrets.get(v.secret.secretName) ?? v.secret.secretName;
    }
    if (v.projected?.sources) {
      const kept = v.projected.sources.filter((s) => {
        if (s.serviceAccountToken || s.clusterTrustBundle || s.podCertificate) {
          dropped.push(`projected ${Object.keys(s)[0]} in volume ${v.name}`);
          return false;
        }
        return true;
      });
      for (const s of kept) {
        if (s.configMap?.name && s.configMap.name !== "kube-root-ca.crt") {
          s.configMap.name = ctx.configMaps.get(s.configMap.name) ?? s.configMap.name;
        }
        if (s.secret?.name) s.secret.name = ctx.secrets.get(s.secret.name) ?? s.secret.name;
        for (const item of s.downwardAPI?.items ?? []) rewriteFieldRef(item.fieldRef);
      }
      v.projected.sources = kept;
    }
    for (const item of v.downwardAPI?.items ?? []) rewriteFieldRef(item.fieldRef);
    if (v.persistentVolumeClaim) {
      const copy = ctx.claims?.get(v.persistentVolumeClaim.claimName);
      if (copy) {
        v.persistentVolumeClaim.claimName = copy;
        return [v];
      }
      // The pod controller never gets here without the copy; this only guards other callers.
      dropped.push(`persistentVolumeClaim volume ${v.name} (its claim was not mirrored)`);
      return [];
    }
    if (v.ephemeral) dropped.push(`ephemeral volume ${v.name}`);
    return v.ephemeral ? [] : [v];
  });

  // Containers: env references, downward API, token mount, API server endpoint.
  const endpoint = ctx.binding.kubernetesEndpoint;
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    c.env = (c.env ?? []).map((e) => rewriteEnv(e, ctx));
    if (endpoint) {
      c.env = c.env.filter((e) =>
        e.name !== "KUBERNETES_SERVICE_HOST" && e.name !== "KUBERNETES_SERVICE_PORT"
      );
      c.env.push({ name: "KUBERNETES_SERVICE_HOST", value: endpoint.host }, {
        name: "KUBERNETES_SERVICE_PORT",
        value: String(endpoint.port),
      });
    }
    for (const f of c.envFrom ?? []) {
      if (f.configMapRef?.name) {
        f.configMapRef.name = ctx.configMaps.get(f.configMapRef.name) ?? f.configMapRef.name;
      }
      if (f.secretRef?.name) f.secretRef.name = ctx.secrets.get(f.secretRef.name) ?? f.secretRef.name;
    }
    c.volumeMounts = (c.volumeMounts ?? []).filter((m) => !tokenVolumes.has(m.name) || ctx.tokenSecret);
    if (c.volumeMounts.length === 0) delete c.volumeMounts;
  }
  if (spec.ephemeralContainers?.length) {
    dropped.push("ephemeral containers");
    delete spec.ephemeralContainers;
  }
  if (spec.resourceClaims?.length) {
    dropped.push("resource claims (dynamic resource allocation)");
    delete spec.resourceClaims;
  }
  spec.imagePullSecrets = spec.imagePullSecrets?.map((s) => ({
    name: ctx.secrets.get(s.name ?? "") ?? s.name,
  }));

  // Placement and identity in the worker.
  delete spec.nodeName;
  delete spec.priority;
  delete spec.preemptionPolicy; // derived from the PriorityClass by the worker's admission
  spec.schedulerName = "default-scheduler";
  spec.priorityClassName = ctx.binding.podPriorityClassName || DEFAULT_PRIORITY_CLASS;
  spec.serviceAccountName = "default";
  delete spec.serviceAccount;
  spec.automountServiceAccountToken = false;
  spec.enableServiceLinks = false;
  if (ctx.binding.directScheduling) {
    spec.nodeName = ctx.physicalNode;
  } else {
    spec.affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{
            matchFields: [{ key: "metadata.name", operator: "In", values: [ctx.physicalNode] }],
          }],
        },
      },
    };
  }
  // The computing cluster's scheduler already placed the pod: its node selector, affinities and
  // spread constraints were evaluated against virtual nodes (one per physical node) and would
  // only fail or mislead against the worker's labels. The twin carries the pin alone.
  delete spec.nodeSelector;
  delete spec.topologySpreadConstraints;
  if (ctx.binding.directScheduling) delete spec.affinity;

  const labels = { ...meta.labels };
  labels[LABEL_MANAGED_BY] = MANAGED_BY_VALUE;
  labels[LABEL_CLUSTER_BINDING] = ctx.bindingName;
  labels[LABEL_VIRTUAL_NAMESPACE] = meta.namespace!;
  const twin: Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: ctx.twinName,
      namespace: ctx.mountNamespace,
      labels,
      annotations: {
        ...allowedAnnotations(meta.annotations, ctx.binding.allowedAnnotations),
        [ANNOTATION_VIRTUAL_POD_NAMESPACE]: meta.namespace!,
        [ANNOTATION_VIRTUAL_POD_NAME]: meta.name!,
        [ANNOTATION_VIRTUAL_POD_UID]: meta.uid!,
        [ANNOTATION_VIRTUAL_NODE_NAME]: ctx.vnodeName,
      },
    },
    spec,
  };
  return { pod: twin, dropped };
}

function rewriteFieldRef(ref: { fieldPath: string } | undefined): void {
  if (ref?.fieldPath === "spec.nodeName") {
    ref.fieldPath = `metadata.annotations['${ANNOTATION_VIRTUAL_NODE_NAME}']`;
  }
}

function rewriteEnv(e: EnvVar, ctx: TwinContext): EnvVar {
  if (e.valueFrom?.fieldRef?.fieldPath === "spec.nodeName") return { name: e.name, value: ctx.vnodeName };
  if (e.valueFrom?.configMapKeyRef?.name) {
    e.valueFrom.configMapKeyRef.name = ctx.configMaps.get(e.valueFrom.configMapKeyRef.name) ??
      e.valueFrom.configMapKeyRef.name;
  }
  if (e.valueFrom?.secretKeyRef?.name) {
    e.valueFrom.secretKeyRef.name = ctx.secrets.get(e.valueFrom.secretKeyRef.name) ??
      e.valueFrom.secretKeyRef.name;
  }
  return e;
}

/**
 * Annotations that cross to the worker unless the binding allows more: a tenant's annotations
 * could otherwise steer the worker's own controllers, admission and runtime (AppArmor, seccomp,
 * scheduling hints). An entry ending in `*` is a prefix.
 */
export const DEFAULT_ALLOWED_ANNOTATIONS: readonly string[] = [
  "kubectl.kubernetes.io/default-container",
  "kubectl.kubernetes.io/default-logs-container",
  "prometheus.io/*",
];

/** The annotations of `annotations` the allowlist (defaults and the binding's) lets through. */
export function allowedAnnotations(
  annotations: Record<string, string> | undefined,
  extra: readonly string[] = [],
): Record<string, string> {
  const allowlist = [...DEFAULT_ALLOWED_ANNOTATIONS, ...extra];
  const allowed = (key: string) =>
    !key.startsWith("kubeocean.io/") &&
    allowlist.some((entry) => entry.endsWith("*") ? key.startsWith(entry.slice(0, -1)) : key === entry);
  return Object.fromEntries(Object.entries(annotations ?? {}).filter(([key]) => allowed(key)));
}
