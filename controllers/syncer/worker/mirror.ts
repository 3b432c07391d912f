/**
 * ConfigMaps and Secrets of the computing cluster, copied into the worker's mount namespace for
 * the twins that use them.
 *
 * A copy is named by {@linkcode mirroredName}, carries `kubeocean.io/virtual-name`/`-namespace`,
 * the original's resourceVersion, `kubeocean.io/managed-by` and the binding label; its original is
 * labelled `kubeocean.io/synced-by-<clusterID>` and held by the finalizer
 * `kubeocean.io/finalizer-<clusterID>` while the copy exists, so that a deleted original is noticed
 * before it disappears. Releasing deletes the copy, then removes label and finalizer from the
 * original.
 *
 * ConfigMap originals are watched (a label selector on their cache). Secret originals are only ever
 * read by name: the syncer holds no permission to list or watch the computing cluster's Secrets, so
 * their copies are refreshed by polling ({@linkcode SECRET_POLL_MS}).
 *
 * @module
 */

import type { ConfigMap, Secret } from "../../../apis/core/v1/mod.ts";
import { isNotFound } from "../../../toolkit/client/errors.ts";
import type { JsonPatchOperation, ResourceClient } from "../../../toolkit/client/resource_client.ts";
import type { Store } from "../../../toolkit/runtime/store.ts";
import { SingleFlight } from "../../../toolkit/util/mod.ts";
import {
  ANNOTATION_VIRTUAL_NAME,
  ANNOTATION_VIRTUAL_NAMESPACE,
  FIELD_MANAGER,
  LABEL_CLUSTER_BINDING,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
  syncedByLabel,
  syncedFinalizer,
} from "../../common/names.ts";
import type { SyncerContext } from "../context.ts";
import { mirroredName } from "./naming.ts";
import { LABEL_SA_TOKEN } from "./tokens.ts";

/** The kinds mirrored as they are. */
export type MirroredKind = "ConfigMap" | "Secret";

/** A ConfigMap or a Secret. */
export type MirroredObject = ConfigMap | Secret;

/** Annotation on a copy: the resourceVersion of the original it copies. */
export const ANNOTATION_ORIGINAL_VERSION = "kubeocean.io/original-resource-version";

/** Index of copies by their original (`Kind/namespace/name`). */
export const BY_ORIGINAL = "byOriginal";

/** How often Secret copies are compared with their originals (read by name, never watched). */
export const SECRET_POLL_MS = 30_000;

/** The `Kind/namespace/name` of the original a copy was made from. */
export function originalKeyOf(kind: MirroredKind, copy: MirroredObject): string | undefined {
  const namespace = copy.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAMESPACE];
  const name = copy.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAME];
  return namespace && name ? `${kind}/${namespace}/${name}` : undefined;
}

/** Copies ConfigMaps and Secrets into the mount namespace and releases them. */
export class ObjectMirror {
  readonly #inflight = new SingleFlight<string | undefined>();

  constructor(readonly ctx: SyncerContext) {}

  /** The computing cluster's client of `kind` (every namespace, or `namespace`). */
  virtualClient(kind: MirroredKind, namespace?: string): ResourceClient<MirroredObject> {
    const core = this.ctx.virtual.core;
    return kind === "ConfigMap" ? core.configmaps(namespace) : core.secrets(namespace);
  }

  /** The worker's client of `kind` in the mount namespace. */
  physicalClient(kind: MirroredKind): ResourceClient<MirroredObject> {
    const core = this.ctx.physical.core;
    const ns = this.ctx.config.mountNamespace;
    return kind === "ConfigMap" ? core.configmaps(ns) : core.secrets(ns);
  }

  /** The label selector of originals mirrored for this worker. */
  get originalsSelector(): string {
    return `${syncedByLabel(this.ctx.config.clusterID)}=true`;
  }

  /** The watched cache of ConfigMap originals labelled for this worker. */
  configMapOriginals(): Store<ConfigMap> {
    return this.ctx.manager.cache(this.ctx.virtual.core.configmaps(), {
      labelSelector: this.originalsSelector,
    })
      .store;
  }

  /** The cache of this binding's copies of `kind`, indexed by original. */
  copies(kind: MirroredKind): Store<MirroredObject> {
    return this.ctx.manager.cache(this.physicalClient(kind), {
      labelSelector: this.copiesSelector(kind),
      indexers: { [BY_ORIGINAL]: (copy: MirroredObject) => [originalKeyOf(kind, copy) ?? ""] },
    }).store;
  }

  /** The label selector of this binding's copies of `kind` (token Secrets have their own controller). */
  copiesSelector(kind: MirroredKind): string {
    const selector =
      `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE},${LABEL_CLUSTER_BINDING}=${this.ctx.config.bindingName}`;
    return kind === "Secret" ? `${selector},!${LABEL_SA_TOKEN}` : selector;
  }

  /** Copies a virtual ConfigMap or Secret into the mount namespace; undefined when it does not exist. */
  async mirror(kind: MirroredKind, namespace: string, name: string): Promise<string | undefined> {
    const key = `${kind}/${namespace}/${name}`;
    const [copy] = this.copies(kind).byIndex(BY_ORIGINAL, key);
    if (copy && this.#current(kind, namespace, name, copy)) return copy.metadata!.name!; // kept current by the mirror controller
    return await this.#inflight.do(key, () => this.#mirrorNow(kind, namespace, name));
  }

  /**
   * Whether a copy can be used as it is: for ConfigMaps, when the watched original is the version
   * copied; for Secrets (never watched), when it exists (the poll keeps it current).
   */
  #current(kind: MirroredKind, namespace: string, name: string, copy: MirroredObject): boolean {
    if (kind === "Secret") return true;
    const original = this.configMapOriginals().get({ namespace, name });
    return !!original && !original.metadata?.deletionTimestamp &&
      !!original.metadata?.finalizers?.includes(syncedFinalizer(this.ctx.config.clusterID)) &&
      copy.metadata?.annotations?.[ANNOTATION_ORIGINAL_VERSION] === original.metadata?.resourceVersion;
  }

  async #mirrorNow(kind: MirroredKind, namespace: string, name: string): Promise<string | undefined> {
    const virtual = this.virtualClient(kind, namespace);
    let source: MirroredObject;
    try {
      source = await virtual.get(name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    if (source.metadata?.deletionTimestamp) return undefined;
    const label = syncedByLabel(this.ctx.config.clusterID);
    const finalizer = syncedFinalizer(this.ctx.config.clusterID);
    if (source.metadata?.labels?.[label] !== "true" || !source.metadata?.finalizers?.includes(finalizer)) {
      source = await virtual.patch(name, [
        { op: "test", path: "/metadata/resourceVersion", value: source.metadata!.resourceVersion },
        ...(source.metadata?.labels ? [] : [{ op: "add" as const, path: "/metadata/labels", value: {} }]),
        { op: "add", path: `/metadata/labels/${escapePointer(label)}`, value: "true" },
        ...(source.metadata?.finalizers?.includes(finalizer)
          ? []
          : source.metadata?.finalizers
          ? [{ op: "add" as const, path: "/metadata/finalizers/-", value: finalizer }]
          : [{ op: "add" as const, path: "/metadata/finalizers", value: [finalizer] }]),
      ], { type: "json" });
    }
    const mirrored = await mirroredName(this.ctx.config.bindingName, kind, namespace, name);
    await this.writeCopy(kind, source, mirrored);
    return mirrored;
  }

  /** Whether `copy` already holds this version of `source`. */
  static holds(copy: MirroredObject | undefined, source: MirroredObject): boolean {
    return copy?.metadata?.annotations?.[ANNOTATION_ORIGINAL_VERSION] === source.metadata?.resourceVersion;
  }

  /** Writes (creates or updates) the copy of `source`. */
  async writeCopy(kind: MirroredKind, source: MirroredObject, mirrored: string): Promise<void> {
    const metadata = {
      name: mirrored,
      namespace: this.ctx.config.mountNamespace,
      labels: { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE, [LABEL_CLUSTER_BINDING]: this.ctx.config.bindingName },
      annotations: {
        [ANNOTATION_VIRTUAL_NAME]: source.metadata!.name!,
        [ANNOTATION_VIRTUAL_NAMESPACE]: source.metadata!.namespace!,
        [ANNOTATION_ORIGINAL_VERSION]: source.metadata!.resourceVersion ?? "",
      },
    };
    const immutable = source.immutable ? { immutable: true } : {};
    const data = source.data ?? {};
    const body: MirroredObject = kind === "Secret"
      ? { apiVersion: "v1", kind: "Secret", metadata, data, type: secretType(source), ...immutable }
      : {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata,
        data,
        binaryData: binaryDataOf(source),
        ...immutable,
      };
    const physical = this.physicalClient(kind);
    try {
      await physical.apply(body, { fieldManager: FIELD_MANAGER, force: true });
    } catch (err) {
      // An immutable copy (or a changed Secret type) cannot be updated: replace it.
      if ((err as { code?: number }).code === 422) {
        await physical.delete(mirrored).catch(() => {});
        await physical.create(body);
      } else {
        throw err;
      }
    }
  }

  /** Deletes the copy, then removes label and finalizer from the virtual original. */
  async release(kind: MirroredKind, namespace: string, name: string, source?: MirroredObject): Promise<void> {
    const mirrored = await mirroredName(this.ctx.config.bindingName, kind, namespace, name);
    try {
      await this.physicalClient(kind).delete(mirrored);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    const virtual = this.virtualClient(kind, namespace);
    const current = source ??
      await virtual.get(name).catch((err) => isNotFound(err) ? undefined : Promise.reject(err));
    if (!current) return;
    const label = syncedByLabel(this.ctx.config.clusterID);
    const index = current.metadata?.finalizers?.indexOf(syncedFinalizer(this.ctx.config.clusterID)) ?? -1;
    const ops: JsonPatchOperation[] = [{
      op: "test",
      path: "/metadata/resourceVersion",
      value: current.metadata!.resourceVersion,
    }];
    if (index >= 0) ops.push({ op: "remove", path: `/metadata/finalizers/${index}` });
    if (current.metadata?.labels?.[label] !== undefined) {
      ops.push({ op: "remove", path: `/metadata/labels/${escapePointer(label)}` });
    }
    if (ops.length === 1) return;
    try {
      await virtual.patch(name, ops, { type: "json" });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}

function binaryDataOf(source: MirroredObject): Record<string, string> {
  return "binaryData" in source ? source.binaryData ?? {} : {};
}

function secretType(source: MirroredObject): string {
  return "type" in source && source.type ? source.type : "Opaque";
}

/** Escapes a key for a JSON pointer (RFC 6901). */
function escapePointer(key: string): string {
  return key.replaceAll("~", "~0").replaceAll("/", "~1");
}
