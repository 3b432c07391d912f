/**
 * PersistentVolumeClaims of the computing cluster, mirrored with their volumes for the twins that
 * mount them.
 *
 * A bound claim is copied into the mount namespace, and its PersistentVolume (cluster-scoped in
 * the worker) with reclaim policy Retain — deleting the copy never touches the storage — pre-bound
 * to the claim's copy; both use the empty storage class, so the worker neither provisions nor
 * re-binds them. CSI Secrets the volume names are mirrored like any Secret. An unbound claim keeps
 * the pod waiting; a hostPath or local volume is refused (the worker's admission policy would
 * refuse it too).
 *
 * @module
 */

import type {
  PersistentVolume,
  PersistentVolumeClaim,
  PersistentVolumeSpec,
} from "../../../apis/core/v1/mod.ts";
import { ignoreNotFound, isAlreadyExists } from "../../../toolkit/client/errors.ts";
import {
  ANNOTATION_VIRTUAL_NAME,
  ANNOTATION_VIRTUAL_NAMESPACE,
  LABEL_CLUSTER_BINDING,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
} from "../../common/names.ts";
import type { SyncerContext } from "../context.ts";
import type { ObjectMirror } from "./mirror.ts";
import { mirroredName, mirroredVolumeName } from "./naming.ts";

/** Annotation on a mirrored volume: the virtual PersistentVolume it copies. */
export const ANNOTATION_VIRTUAL_VOLUME = "kubeocean.io/virtual-volume";

const CSI_SECRET_FIELDS = [
  "nodePublishSecretRef",
  "nodeStageSecretRef",
  "nodeExpandSecretRef",
  "controllerPublishSecretRef",
  "controllerExpandSecretRef",
] as const;

/** The outcome of mirroring one claim. */
export type ClaimMirrorResult =
  /** The copy's name, and the Secrets it made the twin depend on (`Secret/ns/name`). */
  | { copy: string; secretKeys: string[] }
  /** Something the claim needs does not exist (yet). */
  | { missing: string }
  /** The claim is not bound to a volume yet. */
  | { unbound: string }
  /** The volume may not be mounted in the worker (hostPath or local: the worker's own disks). */
  | { refused: string };

/** Mirrors claims with their volumes and releases them. */
export class ClaimMirror {
  constructor(readonly ctx: SyncerContext, readonly objects: ObjectMirror) {}

  /** The label selector of this binding's copies. */
  get selector(): string {
    return `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE},${LABEL_CLUSTER_BINDING}=${this.ctx.config.bindingName}`;
  }

  /** Mirrors the virtual claim `namespace/claimName` and its volume. */
  async mirror(namespace: string, claimName: string): Promise<ClaimMirrorResult> {
    const { virtual, physical, config } = this.ctx;
    const claim = await virtual.core.persistentvolumeclaims(namespace).get(claimName).catch(ignoreNotFound);
    if (!claim || claim.metadata?.deletionTimestamp) {
      return { missing: `PersistentVolumeClaim ${namespace}/${claimName}` };
    }
    const volumeName = claim.spec?.volumeName;
    if (claim.status?.phase !== "Bound" || !volumeName) {
      return {
        unbound: `PersistentVolumeClaim ${namespace}/${claimName} is ${
          claim.status?.phase ?? "Pending"
        }, not bound to a volume yet`,
      };
    }
    const volume = await virtual.core.persistentvolumes().get(volumeName).catch(ignoreNotFound);
    if (!volume) return { missing: `PersistentVolume ${volumeName} (of claim ${namespace}/${claimName})` };
    const hostVolume = volume.spec?.hostPath ? "hostPath" : volume.spec?.local ? "local" : undefined;
    if (hostVolume) {
      return {
        refused:
          `PersistentVolume ${volumeName} (of claim ${namespace}/${claimName}) is a ${hostVolume} volume (spec.${hostVolume}): a worker never mounts a computing cluster's view of its nodes' disks`,
      };
    }
    const claimCopy = await mirroredName(config.bindingName, "PersistentVolumeClaim", namespace, claimName);
    const volumeCopy = await mirroredVolumeName(config.mountNamespace, volumeName);
    const spec: PersistentVolumeSpec = structuredClone(volume.spec ?? {});
    const secretKeys: string[] = [];
    // CSI secrets: mirrored like any Secret the pod uses, and referenced in the mount namespace.
    for (const field of CSI_SECRET_FIELDS) {
      const ref = spec.csi?.[field];
      if (!spec.csi || !ref?.name) continue;
      const secretNamespace = ref.namespace ?? namespace;
      const copy = await this.objects.mirror("Secret", secretNamespace, ref.name);
      if (!copy) {
        return {
          missing: `Secret ${secretNamespace}/${ref.name} (${field} of PersistentVolume ${volumeName})`,
        };
      }
      spec.csi[field] = { name: copy, namespace: config.mountNamespace };
      secretKeys.push(`Secret/${secretNamespace}/${ref.name}`);
    }
    const labels = { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE, [LABEL_CLUSTER_BINDING]: config.bindingName };
    const annotations = { [ANNOTATION_VIRTUAL_NAMESPACE]: namespace, [ANNOTATION_VIRTUAL_NAME]: claimName };
    const volumes = physical.core.persistentvolumes();
    if (!(await volumes.get(volumeCopy).catch(ignoreNotFound))) {
      const copy: PersistentVolume = {
        metadata: {
          name: volumeCopy,
          labels,
          annotations: { ...annotations, [ANNOTATION_VIRTUAL_VOLUME]: volumeName },
        },
        spec: {
          ...spec,
          storageClassName: "",
          persistentVolumeReclaimPolicy: "Retain",
          claimRef: {
            apiVersion: "v1",
            kind: "PersistentVolumeClaim",
            namespace: config.mountNamespace,
            name: claimCopy,
          },
        },
      };
      await volumes.create(copy).catch((err) => isAlreadyExists(err) ? undefined : Promise.reject(err));
    }
    const claims = physical.core.persistentvolumeclaims(config.mountNamespace);
    if (!(await claims.get(claimCopy).catch(ignoreNotFound))) {
      const copy: PersistentVolumeClaim = {
        metadata: { name: claimCopy, labels, annotations },
        spec: {
          accessModes: claim.spec?.accessModes ?? volume.spec?.accessModes,
          volumeMode: claim.spec?.volumeMode,
          resources: {
            requests: { storage: volume.spec?.capacity?.storage ?? claim.status?.capacity?.storage ?? "1" },
          },
          storageClassName: "",
          volumeName: volumeCopy,
        },
      };
      await claims.create(copy).catch((err) => isAlreadyExists(err) ? undefined : Promise.reject(err));
    }
    return { copy: claimCopy, secretKeys };
  }

  /**
   * Deletes a claim copy, then its volume copy if this binding created it (Retain: the storage
   * itself is never touched).
   */
  async release(copy: PersistentVolumeClaim): Promise<void> {
    const { physical, config } = this.ctx;
    await physical.core.persistentvolumeclaims(config.mountNamespace).delete(copy.metadata!.name!, {
      preconditions: { uid: copy.metadata!.uid },
    }).catch(ignoreNotFound);
    const volumeCopy = copy.spec?.volumeName;
    if (!volumeCopy) return;
    const volumes = physical.core.persistentvolumes();
    const volume = await volumes.get(volumeCopy).catch(ignoreNotFound);
    if (volume?.metadata?.labels?.[LABEL_CLUSTER_BINDING] !== config.bindingName) return;
    await volumes.delete(volumeCopy, { preconditions: { uid: volume.metadata!.uid } }).catch(ignoreNotFound);
  }
}
