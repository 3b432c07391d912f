/**
 * ConfigMaps and Secrets of the computing cluster, copied into the worker's mount namespace for
 * the twins that use them.
 *
 * A copy is named by {@linkcode mirroredName}, carries `kubeocean.io/virtual-name`/`-namespace`,
 * `kubeocean.io/managed-by` and the binding label; its original is labelled
 * `kubeocean.io/synced-by-<clusterID>` and held by the finalizer `kubeocean.io/finalizer-<clusterID>`
 * while the copy exists, so that a deleted original is noticed before it disappears. Releasing
 * deletes the copy, then removes label and finalizer from the original.
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

/** The kinds mirrored as they are. */
export type MirroredKind = "ConfigMap" | "Secret";

/** A ConfigMap or a Secret. */
export type MirroredObject = ConfigMap | Secret;

/** Copies ConfigMaps and Secrets into the mount namespace and releases them. */
export class ObjectMirror {
  /** `Kind/ns/name` → resourceVersion of the original last copied. */
  readonly #copied = new Map<string, string>();
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

  /** The cache of originals labelled for this worker (the mirror controller's primary cache). */
  originals(kind: MirroredKind): Store<MirroredObject> {
    return this.ctx.manager.cache(this.virtualClient(kind), { labelSelector: this.originalsSelector }).store;
  }

  /** Copies a virtual ConfigMap or Secret into the mount namespace; undefined when it does not exist. */
  async mirror(kind: MirroredKind, namespace: string, name: string): Promise<string | undefined> {
    const key = `${kind}/${namespace}/${name}`;
    const cached = this.originals(kind).get({ namespace, name });
    if (
      cached && !cached.metadata?.deletionTimestamp &&
      cached.metadata?.finalizers?.includes(syncedFinalizer(this.ctx.config.clusterID)) &&
      this.#copied.get(key) === cached.metadata?.resourceVersion
    ) {
      return await mirroredName(kind, namespace, name); // already copied, and kept current
    }
    return await this.#inflight.do(key, () => this.#mirrorNow(kind, namespace, name));
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
    const mirrored = await mirroredName(kind, namespace, name);
    await this.writeCopy(kind, source, mirrored);
    return mirrored;
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
    this.#copied.set(
      `${kind}/${source.metadata!.namespace}/${source.metadata!.name}`,
      source.metadata!.resourceVersion ?? "",
    );
  }

  /** Deletes the copy, then removes label and finalizer from the virtual original. */
  async release(kind: MirroredKind, namespace: string, name: string, source?: MirroredObject): Promise<void> {
    const mirrored = await mirroredName(kind, namespace, name);
    this.#copied.delete(`${kind}/${namespace}/${name}`);
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
