/**
 * The generic resource client: every REST verb for any group/version/kind given a
 * {@linkcode ResourceDescriptor}, plus the common subresources. Generated typed clients wrap it.
 *
 * The second type parameter names the subresources the resource serves; a subresource method only
 * type-checks on a client that has its subresource (`evict` needs `"eviction"`, `patchStatus` needs
 * `"status"`, …). Generated clients fill it in from the API schema; name it yourself for a descriptor
 * of your own:
 *
 * ```ts
 * const pods = new ResourceClient<Pod, "eviction" | "status">(transport, podDescriptor).namespace("default");
 * const pod = await pods.get("web-0");
 * await pods.patch("web-0", { metadata: { labels: { tier: "web", canary: null } } }, { type: "merge" });
 * await pods.evict("web-0");
 * for await (const event of pods.watch({ resourceVersion: list.metadata.resourceVersion })) { … }
 * ```
 *
 * @module
 */

import type { Status } from "./errors.ts";
import {
  apiVersionOf,
  collectionPath,
  type KubeObject,
  type ObjectList,
  objectPath,
  type ResourceDescriptor,
} from "./resource.ts";
import type { QueryValue, Transport } from "./transport.ts";
import { type WatchEvent, watchEvents } from "./watch.ts";

/** Options shared by list and watch. */
export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  /** Page size. */
  limit?: number;
  /** Continue token from a previous page. */
  continue?: string;
  resourceVersion?: string;
  resourceVersionMatch?: "NotOlderThan" | "Exact";
  timeoutSeconds?: number;
  signal?: AbortSignal;
}

/** Options of {@linkcode ResourceClient.watch}. */
export interface WatchOptions extends Omit<ListOptions, "limit" | "continue"> {
  allowWatchBookmarks?: boolean;
  /** Streaming list: initial state as ADDED events, ended by a bookmark (server support needed). */
  sendInitialEvents?: boolean;
}

/** Options of writes. */
export interface WriteOptions {
  /** Server-side dry run: validated and defaulted, not persisted. */
  dryRun?: boolean;
  fieldManager?: string;
  /** `Strict` rejects unknown or duplicate fields; `Warn` (server default) and `Ignore`. */
  fieldValidation?: "Strict" | "Warn" | "Ignore";
  signal?: AbortSignal;
}

/** Patch types: JSON patch (RFC 6902), JSON merge patch, strategic merge patch, server-side apply. */
export type PatchType = "json" | "merge" | "strategic" | "apply";

/** Options of {@linkcode ResourceClient.patch}. */
export interface PatchOptions extends WriteOptions {
  type: PatchType;
  /** Server-side apply only: take ownership of conflicting fields. */
  force?: boolean;
}

/**
 * A JSON merge patch (RFC 7396) of a `T`: every property optional, objects patched recursively,
 * `null` deletes a property, and arrays are replaced whole (so their elements are complete). Also
 * the shape of a strategic merge patch without directives and of a server-side apply configuration.
 *
 * ```ts
 * const patch: MergePatch<Node> = { metadata: { labels: { pool: null } }, spec: { unschedulable: true } };
 * ```
 */
export type MergePatch<T> = T extends readonly unknown[] ? T
  : T extends object ? { [K in keyof T]?: MergePatch<T[K]> | null }
  : T;

/** One JSON patch operation. */
export interface JsonPatchOperation {
  op: "add" | "remove" | "replace" | "move" | "copy" | "test";
  path: string;
  value?: unknown;
  from?: string;
}

/** Options of deletes. */
export interface DeleteOptions {
  propagationPolicy?: "Orphan" | "Background" | "Foreground";
  gracePeriodSeconds?: number;
  /** Delete only if the object still has this uid / resourceVersion. */
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: boolean;
  signal?: AbortSignal;
}

/** Options of pod log reads. */
export interface LogOptions {
  container?: string;
  follow?: boolean;
  previous?: boolean;
  timestamps?: boolean;
  sinceSeconds?: number;
  sinceTime?: string;
  tailLines?: number;
  limitBytes?: number;
  signal?: AbortSignal;
}

/** A `autoscaling/v1` Scale. */
export interface Scale extends KubeObject {
  spec?: { replicas?: number };
  status?: { replicas: number; selector?: string };
}

const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  json: "application/json-patch+json",
  merge: "application/merge-patch+json",
  strategic: "application/strategic-merge-patch+json",
  apply: "application/apply-patch+yaml",
};

/**
 * Generic client of one resource, optionally bound to a namespace.
 *
 * `T` is the object type; `S` the union of the subresources the resource serves (`never`, the
 * default, for none). The subresource methods declare the subresource they need on `this`, so
 * `configMaps.evict(name)` does not compile while `pods.evict(name)` does. A client with more
 * subresources is assignable to one with fewer (`ResourceClient<Pod, "status" | "eviction">` is a
 * `ResourceClient<Pod, "status">` and a `ResourceClient<Pod>`), never the other way round.
 * {@linkcode ResourceClient.getSubresource} and {@linkcode ResourceClient.createSubresource} address any
 * subresource by name.
 */
export class ResourceClient<T extends KubeObject, S extends string = never> {
  /**
   * Type-level only (never set): records `S` contravariantly, so a client lacking a subresource is
   * not assignable to a client type that has it.
   */
  declare readonly subresourceMarker?: (subresource: S) => void;

  constructor(
    readonly transport: Transport,
    readonly descriptor: ResourceDescriptor,
    readonly boundNamespace?: string,
  ) {}

  /** The same client bound to `namespace` (namespaced resources only). */
  namespace(namespace: string): ResourceClient<T, S> {
    if (!this.descriptor.namespaced) throw new Error(`${this.descriptor.kind} is cluster-scoped`);
    return new ResourceClient<T, S>(this.transport, this.descriptor, namespace);
  }

  /** The same client bound to `object`'s namespace when the resource is namespaced and the client is not bound. */
  namespaceOf(object: KubeObject): ResourceClient<T, S> {
    const ns = object.metadata?.namespace;
    if (!this.descriptor.namespaced || this.boundNamespace || !ns) return this;
    return this.namespace(ns);
  }

  /** `apiVersion` of this resource, e.g. `apps/v1`. */
  get apiVersion(): string {
    return apiVersionOf(this.descriptor);
  }

  #ns(object?: KubeObject): string | undefined {
    if (!this.descriptor.namespaced) return undefined;
    return this.boundNamespace ?? object?.metadata?.namespace;
  }

  #item(name: string, object?: KubeObject, subresource?: string): string {
    return objectPath(this.descriptor, name, this.#ns(object), subresource);
  }

  #nameOf(object: KubeObject): string {
    const name = object.metadata?.name;
    if (!name) throw new Error(`${this.descriptor.kind}: metadata.name is required`);
    return name;
  }

  /** Reads one object. */
  async get(name: string, options: { resourceVersion?: string; signal?: AbortSignal } = {}): Promise<T> {
    return await this.transport.request<T>({
      method: "GET",
      path: this.#item(name),
      query: { resourceVersion: options.resourceVersion },
      signal: options.signal,
    });
  }

  /** Lists one page (all namespaces when the client is not bound to one). */
  async list(options: ListOptions = {}): Promise<ObjectList<T>> {
    const list = await this.transport.request<ObjectList<T>>({
      method: "GET",
      path: collectionPath(this.descriptor, this.boundNamespace),
      query: listQuery(options),
      signal: options.signal,
      timeoutMs: options.timeoutSeconds ? options.timeoutSeconds * 1000 + 5_000 : 60_000,
    });
    // List items carry no apiVersion/kind; fill them in so objects are self-describing.
    for (const item of list.items ?? []) {
      item.apiVersion ??= this.apiVersion;
      item.kind ??= this.descriptor.kind;
    }
    list.items ??= [];
    return list;
  }

  /** Yields every page, following `continue` tokens, `limit` objects at a time (default 500). */
  async *listPages(options: ListOptions = {}): AsyncGenerator<ObjectList<T>, void, undefined> {
    let token = options.continue;
    do {
      const page = await this.list({ ...options, limit: options.limit ?? 500, continue: token });
      yield page;
      token = page.metadata?.continue || undefined;
    } while (token);
  }

  /** Lists everything (paged) and returns the items plus the list's resourceVersion. */
  async listAll(options: ListOptions = {}): Promise<{ items: T[]; resourceVersion: string }> {
    const items: T[] = [];
    let resourceVersion = "";
    for await (const page of this.listPages(options)) {
      items.push(...page.items);
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    }
    return { items, resourceVersion };
  }

  /** Creates `object` (in the bound namespace, else in `object.metadata.namespace`). */
  async create(object: T, options: WriteOptions = {}): Promise<T> {
    return await this.transport.request<T>({
      method: "POST",
      path: collectionPath(this.descriptor, this.#requireNs(object)),
      query: writeQuery(options),
      body: this.#withTypeMeta(object),
      signal: options.signal,
    });
  }

  /** Replaces `object` (PUT); include `metadata.resourceVersion` for optimistic concurrency. */
  async replace(object: T, options: WriteOptions = {}): Promise<T> {
    return await this.transport.request<T>({
      method: "PUT",
      path: this.#item(this.#nameOf(object), object),
      query: writeQuery(options),
      body: this.#withTypeMeta(object),
      signal: options.signal,
      idempotent: Boolean(object.metadata?.resourceVersion),
    });
  }

  /**
   * Patches `name`: a JSON patch (array of operations), a JSON merge patch (`null` deletes a
   * field), a strategic merge patch or a server-side apply configuration (`type: "apply"`, needs
   * `fieldManager`).
   */
  // Patch bodies are `NoInfer`: `T` of a client passed to a generic `(c: ResourceClient<T>)` is
  // inferred from the object type alone, not from the (wider) patch type.
  async patch(
    name: string,
    patch: JsonPatchOperation[] | MergePatch<NoInfer<T>>,
    options: PatchOptions,
    subresource?: string,
  ): Promise<T> {
    return await this.#patch(name, patch, options, subresource);
  }

  /**
   * Server-side apply of a (partial) object: creates it or merges the fields `fieldManager` owns.
   * `metadata.name` is required.
   */
  async apply(
    object: NoInfer<T> | (MergePatch<NoInfer<T>> & KubeObject),
    options: WriteOptions & { fieldManager: string; force?: boolean },
    subresource?: string,
  ): Promise<T> {
    const body = this.#withTypeMeta(object);
    return await this.#patch(this.#nameOf(body), body, { ...options, type: "apply" }, subresource);
  }

  async #patch(name: string, patch: unknown, options: PatchOptions, subresource?: string): Promise<T> {
    if (options.type === "apply" && !options.fieldManager) {
      throw new Error("server-side apply needs a fieldManager");
    }
    if (options.type === "json" && !Array.isArray(patch)) {
      throw new Error("a JSON patch is an array of operations");
    }
    return await this.transport.request<T>({
      method: "PATCH",
      path: this.#item(name, metadataOf(patch), subresource),
      query: { ...writeQuery(options), force: options.type === "apply" ? options.force : undefined },
      body: JSON.stringify(patch),
      contentType: PATCH_CONTENT_TYPES[options.type],
      signal: options.signal,
    });
  }

  /** Deletes `name`; returns the object (when deletion is pending, e.g. finalizers) or a Status. */
  async delete(name: string, options: DeleteOptions = {}): Promise<T | Status> {
    return await this.transport.request<T | Status>({
      method: "DELETE",
      path: this.#item(name),
      body: deleteBody(options),
      query: { dryRun: options.dryRun ? "All" : undefined },
      signal: options.signal,
      idempotent: true,
    });
  }

  /** Deletes every object matching the selectors (in the bound namespace). */
  async deleteCollection(
    options: DeleteOptions & Pick<ListOptions, "labelSelector" | "fieldSelector"> = {},
  ): Promise<Status> {
    return await this.transport.request<Status>({
      method: "DELETE",
      path: collectionPath(this.descriptor, this.boundNamespace),
      query: {
        labelSelector: options.labelSelector,
        fieldSelector: options.fieldSelector,
        dryRun: options.dryRun ? "All" : undefined,
      },
      body: deleteBody(options),
      signal: options.signal,
      idempotent: true,
    });
  }

  /** One watch request from `resourceVersion`; see the runtime's `watcher()` for list-then-watch with recovery. */
  watch(options: WatchOptions = {}): AsyncGenerator<WatchEvent<T>, void, undefined> {
    return watchEvents<T>(this.transport, {
      path: collectionPath(this.descriptor, this.boundNamespace),
      query: {
        labelSelector: options.labelSelector,
        fieldSelector: options.fieldSelector,
        resourceVersion: options.resourceVersion,
        resourceVersionMatch: options.resourceVersionMatch,
        timeoutSeconds: options.timeoutSeconds,
        allowWatchBookmarks: options.allowWatchBookmarks ?? true,
        sendInitialEvents: options.sendInitialEvents,
      },
      signal: options.signal,
    });
  }

  // --- subresources -------------------------------------------------------------------------
  // Each method requires its subresource in `S` through its `this` parameter.

  /** Reads the `status` subresource. */
  async getStatus(
    this: ResourceClient<T, "status">,
    name: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<T> {
    return await this.transport.request<T>({
      method: "GET",
      path: this.#item(name, undefined, "status"),
      signal: options.signal,
    });
  }

  /** Replaces the `status` subresource (only status changes are kept by the server). */
  async replaceStatus(this: ResourceClient<T, "status">, object: T, options: WriteOptions = {}): Promise<T> {
    return await this.transport.request<T>({
      method: "PUT",
      path: this.#item(this.#nameOf(object), object, "status"),
      query: writeQuery(options),
      body: this.#withTypeMeta(object),
      signal: options.signal,
      idempotent: Boolean(object.metadata?.resourceVersion),
    });
  }

  /** Patches the `status` subresource, e.g. `patchStatus(name, { status }, { type: "merge" })`. */
  async patchStatus(
    this: ResourceClient<T, "status">,
    name: string,
    patch: JsonPatchOperation[] | MergePatch<NoInfer<T>>,
    options: PatchOptions,
  ): Promise<T> {
    return await this.patch(name, patch, options, "status");
  }

  /** Reads the `scale` subresource. */
  async getScale(this: ResourceClient<T, "scale">, name: string): Promise<Scale> {
    return await this.transport.request<Scale>({ method: "GET", path: this.#item(name, undefined, "scale") });
  }

  /** Sets `spec.replicas` through the `scale` subresource. */
  async scale(
    this: ResourceClient<T, "scale">,
    name: string,
    replicas: number,
    options: WriteOptions = {},
  ): Promise<Scale> {
    return await this.transport.request<Scale>({
      method: "PATCH",
      path: this.#item(name, undefined, "scale"),
      query: writeQuery(options),
      body: JSON.stringify({ spec: { replicas } }),
      contentType: PATCH_CONTENT_TYPES.merge,
      signal: options.signal,
    });
  }

  /** Evicts a pod (policy/v1 Eviction), honouring PodDisruptionBudgets. */
  async evict(
    this: ResourceClient<T, "eviction">,
    name: string,
    options: DeleteOptions = {},
  ): Promise<Status> {
    return await this.transport.request<Status>({
      method: "POST",
      path: this.#item(name, undefined, "eviction"),
      body: {
        apiVersion: "policy/v1",
        kind: "Eviction",
        metadata: { name, namespace: this.boundNamespace },
        deleteOptions: deleteBody(options),
      },
      signal: options.signal,
    });
  }

  /** Binds a pod to a node (the scheduler's `binding` subresource). */
  async bind(
    this: ResourceClient<T, "binding">,
    name: string,
    nodeName: string,
    options: WriteOptions = {},
  ): Promise<Status> {
    return await this.transport.request<Status>({
      method: "POST",
      path: this.#item(name, undefined, "binding"),
      query: writeQuery(options),
      body: {
        apiVersion: "v1",
        kind: "Binding",
        metadata: { name, namespace: this.boundNamespace },
        target: { apiVersion: "v1", kind: "Node", name: nodeName },
      },
      signal: options.signal,
    });
  }

  /** Requests a token for a ServiceAccount (`token` subresource, authentication.k8s.io/v1 TokenRequest). */
  async createToken<R extends KubeObject = TokenRequest>(
    this: ResourceClient<T, "token">,
    name: string,
    request: { audiences?: string[]; expirationSeconds?: number; boundObjectRef?: Record<string, string> } =
      {},
    options: WriteOptions = {},
  ): Promise<R> {
    return await this.transport.request<R>({
      method: "POST",
      path: this.#item(name, undefined, "token"),
      query: writeQuery(options),
      body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: request },
      signal: options.signal,
    });
  }

  /** Reads a pod's log as text. */
  async logs(this: ResourceClient<T, "log">, name: string, options: LogOptions = {}): Promise<string> {
    const response = await this.transport.stream({
      method: "GET",
      path: this.#item(name, undefined, "log"),
      query: logQuery({ ...options, follow: false }),
      accept: "*/*",
      signal: options.signal,
    });
    return await response.text();
  }

  /**
   * A pod's log as a byte stream, exactly as the API server sends it (use `follow: true` to keep
   * reading; cancel the stream to stop). Timestamps, tail, since and limits as in `options`.
   */
  async logStream(
    this: ResourceClient<T, "log">,
    name: string,
    options: LogOptions = {},
  ): Promise<ReadableStream<Uint8Array>> {
    const response = await this.transport.stream({
      method: "GET",
      path: this.#item(name, undefined, "log"),
      query: logQuery(options),
      accept: "*/*",
      signal: options.signal,
      timeoutMs: 30_000,
    });
    return response.body ?? new ReadableStream({ start: (controller) => controller.close() });
  }

  /** Streams a pod's log line by line (use `follow: true` to keep reading). */
  async *logLines(
    this: ResourceClient<T, "log">,
    name: string,
    options: LogOptions = {},
  ): AsyncGenerator<string, void, undefined> {
    const body = await this.logStream(name, options);
    let buffered = "";
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        buffered += value;
        let newline: number;
        while ((newline = buffered.indexOf("\n")) >= 0) {
          yield buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
        }
      }
      if (buffered) yield buffered;
    } finally {
      await reader.cancel().catch(() => {});
    }
  }

  /** Generic subresource read (e.g. `ephemeralcontainers`, `resize`); not checked against `S`. */
  async getSubresource<R = unknown>(name: string, subresource: string): Promise<R> {
    return await this.transport.request<R>({ method: "GET", path: this.#item(name, undefined, subresource) });
  }

  /** Generic subresource create (POST), e.g. a custom subresource; not checked against `S`. */
  async createSubresource<R = unknown>(
    name: string,
    subresource: string,
    body: unknown,
    options: WriteOptions = {},
  ): Promise<R> {
    return await this.transport.request<R>({
      method: "POST",
      path: this.#item(name, undefined, subresource),
      query: writeQuery(options),
      body,
      signal: options.signal,
    });
  }

  #requireNs(object: KubeObject): string | undefined {
    const ns = this.#ns(object);
    if (this.descriptor.namespaced && !ns) {
      throw new Error(
        `${this.descriptor.kind} is namespaced: bind the client to a namespace or set metadata.namespace`,
      );
    }
    return ns;
  }

  #withTypeMeta<O extends KubeObject>(object: O): O {
    return {
      ...object,
      apiVersion: object.apiVersion ?? this.apiVersion,
      kind: object.kind ?? this.descriptor.kind,
    };
  }
}

/** An `authentication.k8s.io/v1` TokenRequest response (the fields the client reads). */
export interface TokenRequest extends KubeObject {
  status?: { token: string; expirationTimestamp: string };
}

/** The namespace a patch body names in `metadata.namespace`, as an object for `#ns`. */
function metadataOf(patch: unknown): KubeObject | undefined {
  if (typeof patch !== "object" || patch === null || !("metadata" in patch)) return undefined;
  const metadata = patch.metadata;
  if (typeof metadata !== "object" || metadata === null || !("namespace" in metadata)) return undefined;
  const namespace = metadata.namespace;
  return typeof namespace === "string" ? { metadata: { namespace } } : undefined;
}

function listQuery(options: ListOptions): Record<string, QueryValue> {
  return {
    labelSelector: options.labelSelector,
    fieldSelector: options.fieldSelector,
    limit: options.limit,
    continue: options.continue,
    resourceVersion: options.resourceVersion,
    resourceVersionMatch: options.resourceVersionMatch,
    timeoutSeconds: options.timeoutSeconds,
  };
}

function writeQuery(options: WriteOptions): Record<string, QueryValue> {
  return {
    dryRun: options.dryRun ? "All" : undefined,
    fieldManager: options.fieldManager,
    fieldValidation: options.fieldValidation,
  };
}

function logQuery(options: LogOptions): Record<string, QueryValue> {
  return {
    container: options.container,
    follow: options.follow || undefined,
    previous: options.previous || undefined,
    timestamps: options.timestamps || undefined,
    sinceSeconds: options.sinceSeconds,
    sinceTime: options.sinceTime,
    tailLines: options.tailLines,
    limitBytes: options.limitBytes,
  };
}

function deleteBody(options: DeleteOptions): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "DeleteOptions",
    propagationPolicy: options.propagationPolicy,
    gracePeriodSeconds: options.gracePeriodSeconds,
    preconditions: options.preconditions,
    dryRun: options.dryRun ? ["All"] : undefined,
  };
}
