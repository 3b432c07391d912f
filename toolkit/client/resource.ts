/**
 * Resource descriptors and the minimal object shapes the generic client relies on. Generated API
 * modules (in `apis/`) provide full types that are structurally compatible with these.
 *
 * @module
 */

/** Identifies a REST resource: where it lives and how it behaves. */
export interface ResourceDescriptor {
  /** API group; `""` for the core group. */
  group: string;
  version: string;
  kind: string;
  /** Plural resource name used in URLs, e.g. `pods`. */
  plural: string;
  namespaced: boolean;
  /** Subresources the resource serves, e.g. `status`, `scale`, `log`. */
  subresources?: readonly string[];
  /** Verbs the resource supports, e.g. `get`, `list`, `watch`, `create`. */
  verbs?: readonly string[];
  /** Kind of the list type, default `${kind}List`. */
  listKind?: string;
}

/** An owner reference. */
export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** The object metadata fields the runtime reads. */
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
}

/** Any Kubernetes object. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

/** List metadata. */
export interface ListMeta {
  resourceVersion?: string;
  continue?: string;
  remainingItemCount?: number;
}

/** A list response. */
export interface ObjectList<T> {
  apiVersion?: string;
  kind?: string;
  metadata: ListMeta;
  items: T[];
}

/** A namespace/name pair; `namespace` is absent for cluster-scoped objects. */
export interface ObjectRef {
  namespace?: string;
  name: string;
}

/** `apiVersion` of a descriptor, e.g. `v1` or `apps/v1`. */
export function apiVersionOf(descriptor: ResourceDescriptor): string {
  return descriptor.group ? `${descriptor.group}/${descriptor.version}` : descriptor.version;
}

/** Base path of a group/version, e.g. `/api/v1` or `/apis/apps/v1`. */
export function groupVersionPath(descriptor: ResourceDescriptor): string {
  return descriptor.group ? `/apis/${descriptor.group}/${descriptor.version}` : `/api/${descriptor.version}`;
}

/** Path of the collection, in `namespace` when given and the resource is namespaced. */
export function collectionPath(descriptor: ResourceDescriptor, namespace?: string): string {
  const base = groupVersionPath(descriptor);
  if (descriptor.namespaced && namespace) {
    return `${base}/namespaces/${encodeURIComponent(namespace)}/${descriptor.plural}`;
  }
  return `${base}/${descriptor.plural}`;
}

/** Path of one object, optionally a subresource of it. */
export function objectPath(
  descriptor: ResourceDescriptor,
  name: string,
  namespace?: string,
  subresource?: string,
): string {
  if (!name) throw new Error(`a name is required to address a ${descriptor.kind}`);
  if (descriptor.namespaced && !namespace) {
    throw new Error(`${descriptor.kind} "${name}" is namespaced: a namespace is required`);
  }
  const path = `${collectionPath(descriptor, namespace)}/${encodeURIComponent(name)}`;
  return subresource ? `${path}/${subresource}` : path;
}

/** The cache key of an object: `namespace/name`, or `name` when cluster-scoped. */
export function objectKey(ref: ObjectRef | KubeObject): string {
  const meta = "metadata" in ref || !("name" in ref) ? (ref as KubeObject).metadata ?? {} : ref as ObjectRef;
  return meta.namespace ? `${meta.namespace}/${meta.name}` : `${meta.name}`;
}

/** Parses a cache key made by {@linkcode objectKey}. */
export function parseObjectKey(key: string): ObjectRef {
  const slash = key.indexOf("/");
  return slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/** The namespace/name reference of an object. */
export function refOf(object: KubeObject): ObjectRef {
  const meta = object.metadata ?? {};
  return meta.namespace ? { namespace: meta.namespace, name: meta.name ?? "" } : { name: meta.name ?? "" };
}
