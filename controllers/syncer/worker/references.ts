/**
 * What a pod references in its namespace: ConfigMaps, Secrets, PersistentVolumeClaims and its
 * ServiceAccount's token, as sets and as the `Kind/namespace/name` keys recorded on twins (and
 * used as cache indexes). Pure functions.
 *
 * @module
 */

import type { Container, Pod, PodSpec } from "../../../apis/core/v1/mod.ts";

/** ConfigMaps and Secrets a pod references. */
export interface References {
  configMaps: Set<string>;
  secrets: Set<string>;
  /** PersistentVolumeClaims of the pod's volumes. */
  claims: Set<string>;
}

/** The environment part every kind of container shares. */
type ContainerEnvironment = Pick<Container, "env" | "envFrom">;

function allContainers(spec: PodSpec | undefined): ContainerEnvironment[] {
  return [...(spec?.initContainers ?? []), ...(spec?.containers ?? []), ...(spec?.ephemeralContainers ?? [])];
}

/** Every ConfigMap and Secret `pod` references (volumes, projected volumes, env, envFrom, image pull secrets). */
export function collectReferences(pod: Pod): References {
  const refs: References = { configMaps: new Set(), secrets: new Set(), claims: new Set() };
  const spec = pod.spec;
  for (const v of spec?.volumes ?? []) {
    if (v.configMap?.name) refs.configMaps.add(v.configMap.name);
    if (v.secret?.secretName) refs.secrets.add(v.secret.secretName);
    if (v.persistentVolumeClaim?.claimName) refs.claims.add(v.persistentVolumeClaim.claimName);
    for (const source of v.projected?.sources ?? []) {
      if (source.configMap?.name && source.configMap.name !== "kube-root-ca.crt") {
        refs.configMaps.add(source.configMap.name);
      }
      if (source.secret?.name) refs.secrets.add(source.secret.name);
    }
  }
  for (const c of allContainers(spec)) {
    for (const e of c.env ?? []) {
      if (e.valueFrom?.configMapKeyRef?.name) refs.configMaps.add(e.valueFrom.configMapKeyRef.name);
      if (e.valueFrom?.secretKeyRef?.name) refs.secrets.add(e.valueFrom.secretKeyRef.name);
    }
    for (const f of c.envFrom ?? []) {
      if (f.configMapRef?.name) refs.configMaps.add(f.configMapRef.name);
      if (f.secretRef?.name) refs.secrets.add(f.secretRef.name);
    }
  }
  for (const s of spec?.imagePullSecrets ?? []) if (s.name) refs.secrets.add(s.name);
  return refs;
}

/**
 * The virtual objects a pod depends on, as `ConfigMap/ns/name`, `Secret/ns/name` and
 * `Token/ns/pod` keys (the keys recorded on twins; also an informer index).
 */
export function dependencyKeys(pod: Pod): string[] {
  const ns = pod.metadata?.namespace ?? "";
  const refs = collectReferences(pod);
  const keys = [
    ...[...refs.configMaps].map((name) => `ConfigMap/${ns}/${name}`),
    ...[...refs.secrets].map((name) => `Secret/${ns}/${name}`),
  ];
  if (pod.spec?.volumes?.some((v) => v.name.startsWith("kube-api-access-"))) {
    keys.push(`Token/${ns}/${pod.metadata?.name ?? ""}`);
  }
  for (const name of refs.claims) keys.push(`PersistentVolumeClaim/${ns}/${name}`);
  return keys;
}

/** Whether the pod mounts its ServiceAccount's token (the `kube-api-access-*` projected volume). */
export function mountsServiceAccountToken(pod: Pod): boolean {
  return pod.spec?.volumes?.some((v) =>
    v.name.startsWith("kube-api-access-") && !!v.projected?.sources?.some((s) => s.serviceAccountToken)
  ) ?? false;
}
