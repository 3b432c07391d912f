/**
 * An in-memory Kubernetes API server behind the client's {@linkcode Transport}, **for unit tests
 * only**: reconcilers run against it in milliseconds, without control-plane binaries. It follows
 * the API server's REST conventions closely enough for controllers (resourceVersions, conflicts,
 * watches with 410 Gone, finalizers, status subresources, the patch types), but it has no
 * schemas, validation, defaulting, admission, garbage collector, kubelet or controllers. Proof
 * that code works against Kubernetes comes from the end-to-end tests against real API servers
 * (`toolkit/envtest`), never from this module.
 *
 * ```ts
 * const server = new MemoryApiServer();
 * const core = new CoreV1Api(new KubeClient(server.transport()));
 * await core.configmaps("default").create({ metadata: { name: "a" }, data: { x: "1" } });
 * server.failNext({ method: "PUT", status: 409 });
 * assert.equal(server.writes.length, 1);
 * ```
 *
 * Approximations (differences from a real API server):
 * - Any path under `/api/{version}` or `/apis/{group}/{version}` is a resource: unknown resources
 *   are served too, objects are stored per group, version and resource (no conversion between
 *   versions), and whether a resource is namespaced comes from the request path (or from
 *   {@linkcode MemoryApiServerOptions.resources}). Namespaces need not exist.
 * - Server-side apply (`application/apply-patch+yaml`) creates a missing object, else works as a
 *   JSON merge patch: no field ownership, no apply conflicts, no removal of fields a manager
 *   stopped applying. Strategic merge patch knows no schema: see {@linkcode strategicMergePatch}.
 * - Field selectors accept any dotted path; the real server accepts only the fields each
 *   resource declares.
 * - Deletes ignore `propagationPolicy` (there is no garbage collector); only pods (with
 *   `podsNeedKubelet`) delete gracefully. A delete that removes the object answers with a
 *   `Status` (a real server returns the object for pods and custom resources).
 * - Status updates (`/status`) change only `status`, for every resource; creating a resource
 *   with a status subresource drops its `status` (pods get `phase: Pending`, namespaces
 *   `phase: Active`, nodes keep theirs).
 * - The transport never retries: an injected 429 or 5xx reaches the caller at once.
 * - No PodDisruptionBudgets (eviction always succeeds), no `log`/`exec` subresources, no
 *   discovery beyond `/version`.
 *
 * @module
 */

import type { ClientConfig } from "../client/config.ts";
import { ApiError, type Status } from "../client/errors.ts";
import type { KubeObject, ObjectMeta, ResourceDescriptor } from "../client/resource.ts";
import type { HttpMethod, QueryValue, RequestOptions, Transport } from "../client/transport.ts";
import { INITIAL_EVENTS_END_ANNOTATION } from "../client/watch.ts";
import {
  cloneJson,
  isJsonObject,
  jsonEqual,
  jsonPatch,
  mergePatch,
  PatchError,
  strategicMergePatch,
} from "./patch.ts";
import { type Matcher, parseFieldSelector, parseLabelSelector, SelectorError } from "./selectors.ts";

export { jsonPatch, mergePatch, strategicMergePatch } from "./patch.ts";
export { parseFieldSelector, parseLabelSelector } from "./selectors.ts";

/** Identifies a resource: API group (`""` for core), version and plural name. */
export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
}

/** What a request does, as Kubernetes' authorization names it. */
export type Verb =
  | "get"
  | "list"
  | "watch"
  | "create"
  | "update"
  | "patch"
  | "delete"
  | "deletecollection"
  | "nonresource";

/** One request the server received (see {@linkcode MemoryApiServer.requests}). */
export interface RecordedRequest {
  method: HttpMethod;
  /** The path without query, e.g. `/api/v1/namespaces/default/pods/web`. */
  path: string;
  /** Query parameters as strings, as they would be sent (`undefined` ones left out). */
  query: Record<string, string | string[]>;
  /** Content type of the body, when there is one (patches carry their patch type). */
  contentType?: string;
  /** The parsed body (a copy). */
  body?: unknown;
  verb: Verb;
  resource?: ResourceRef;
  namespace?: string;
  name?: string;
  subresource?: string;
  /** HTTP status code of the answer, once answered (200 for an opened watch). */
  code?: number;
}

/** An injected failure (see {@linkcode MemoryApiServer.failNext}); unset fields match anything. */
export interface FailureRule {
  method?: HttpMethod;
  verb?: Verb;
  /** A RegExp tested against the path, or the exact path. */
  path?: RegExp | string;
  /** How many matching requests fail (default 1). */
  times?: number;
  /** The answer: an HTTP status code (the reason follows from it) or a full `Status`. Default 500. */
  status?: number | Status;
  /** Throw this error instead of an {@linkcode ApiError} (e.g. to mimic a connection failure). */
  error?: Error;
}

/** Options of {@linkcode MemoryApiServer}. */
export interface MemoryApiServerOptions {
  /** Default namespace of the transport's configuration (default `default`). */
  namespace?: string;
  /**
   * The clock for timestamps (creation, deletion, token expiry). Default: the wall clock.
   * {@linkcode MemoryApiServer.advanceClock} moves either forward.
   */
  now?: () => Date | number;
  /**
   * Whether deleting a pod bound to a node (`spec.nodeName`) only marks it (`deletionTimestamp`
   * in `gracePeriodSeconds`, default `spec.terminationGracePeriodSeconds` or 30), as a real
   * cluster does until the kubelet deletes it again with `gracePeriodSeconds: 0`. Default true.
   */
  podsNeedKubelet?: boolean;
  /**
   * Resources with a `status` subresource: `plural` for the core group, `plural.group`, or
   * `*.group` for a whole group. Default {@linkcode DEFAULT_STATUS_SUBRESOURCES}. Descriptors in
   * `resources` that list their subresources take precedence.
   */
  statusSubresources?: readonly string[];
  /**
   * Descriptors of resources the server should know (kind, plural, scope, subresources), e.g.
   * the generated `PodResource`. Unknown resources work too; their kinds are learned from the
   * objects written and guessed from the plural when seeding.
   */
  resources?: readonly ResourceDescriptor[];
  /** How many watch events are kept for watches that resume from a resourceVersion (default 10 000). */
  historyLimit?: number;
  /**
   * Whether a resource is a custom resource, which refuses strategic merge patches with 415 like
   * a real server. Default: any group not served by kube-apiserver itself.
   */
  isCustomResource?: (resource: ResourceRef) => boolean;
}

/** Resources with a `status` subresource, in the format of {@linkcode MemoryApiServerOptions.statusSubresources}. */
export const DEFAULT_STATUS_SUBRESOURCES: readonly string[] = [
  "pods",
  "nodes",
  "namespaces",
  "services",
  "persistentvolumeclaims",
  "persistentvolumes",
  "replicationcontrollers",
  "resourcequotas",
  "deployments.apps",
  "replicasets.apps",
  "statefulsets.apps",
  "daemonsets.apps",
  "jobs.batch",
  "cronjobs.batch",
  "horizontalpodautoscalers.autoscaling",
  "poddisruptionbudgets.policy",
  "*.kubeocean.io",
];

/** Groups served by kube-apiserver itself (everything else is a custom resource). */
const BUILTIN_GROUPS = new Set([
  "",
  "admissionregistration.k8s.io",
  "apiextensions.k8s.io",
  "apiregistration.k8s.io",
  "apps",
  "authentication.k8s.io",
  "authorization.k8s.io",
  "autoscaling",
  "batch",
  "certificates.k8s.io",
  "coordination.k8s.io",
  "discovery.k8s.io",
  "events.k8s.io",
  "flowcontrol.apiserver.k8s.io",
  "internal.apiserver.k8s.io",
  "networking.k8s.io",
  "node.k8s.io",
  "policy",
  "rbac.authorization.k8s.io",
  "resource.k8s.io",
  "scheduling.k8s.io",
  "storage.k8s.io",
  "storagemigration.k8s.io",
]);

const SCALE_RESOURCES = [
  "deployments.apps",
  "replicasets.apps",
  "statefulsets.apps",
  "replicationcontrollers",
];

/** Subresources of the core `namespaces` resource (so `/api/v1/namespaces/x/status` is not a collection). */
const NAMESPACE_SUBRESOURCES = new Set(["status", "finalize"]);

const CONTENT = {
  json: "application/json",
  jsonPatch: "application/json-patch+json",
  merge: "application/merge-patch+json",
  strategic: "application/strategic-merge-patch+json",
  apply: "application/apply-patch+yaml",
};

const GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";

type StoredObject = KubeObject & Record<string, unknown> & { metadata: ObjectMeta };

interface Table {
  ref: ResourceRef;
  id: string;
  kind?: string;
  namespaced?: boolean;
  /** Stored objects by `namespace/name` (or `name`); never mutated, only replaced. */
  objects: Map<string, StoredObject>;
}

type EventType = "ADDED" | "MODIFIED" | "DELETED";

interface HistoryEvent {
  rv: number;
  table: string;
  type: EventType;
  object: StoredObject;
  previous?: StoredObject;
}

interface ParsedPath {
  ref: ResourceRef;
  namespace?: string;
  name?: string;
  subresource?: string;
  watch: boolean;
}

interface Answer {
  code: number;
  body: unknown;
}

interface DeleteOptionsBody {
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
  propagationPolicy?: string;
}

/** A failure answer inside the server; the transport turns it into an {@linkcode ApiError}. */
class Failure extends Error {
  constructor(readonly status: Status) {
    super(status.message);
  }
}

const REASONS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  409: "Conflict",
  410: "Expired",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

function failureStatus(
  code: number,
  reason: string | undefined,
  message: string,
  details?: Status["details"],
): Status {
  const status: Status = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason: reason ?? REASONS[code] ?? (code >= 500 ? "InternalError" : "Unknown"),
    code,
  };
  if (details) status.details = details;
  return status;
}

function qualified(ref: ResourceRef): string {
  return ref.group ? `${ref.plural}.${ref.group}` : ref.plural;
}

function resourceDetails(ref: ResourceRef, name?: string): Status["details"] {
  const details: NonNullable<Status["details"]> = { kind: ref.plural };
  if (name !== undefined) details.name = name;
  if (ref.group) details.group = ref.group;
  return details;
}

const fail = {
  badRequest: (message: string) => new Failure(failureStatus(400, "BadRequest", message)),
  notFound: (ref: ResourceRef, name: string) =>
    new Failure(
      failureStatus(404, "NotFound", `${qualified(ref)} "${name}" not found`, resourceDetails(ref, name)),
    ),
  noRoute: () =>
    new Failure(failureStatus(404, "NotFound", "the server could not find the requested resource")),
  alreadyExists: (ref: ResourceRef, name: string) =>
    new Failure(
      failureStatus(
        409,
        "AlreadyExists",
        `${qualified(ref)} "${name}" already exists`,
        resourceDetails(ref, name),
      ),
    ),
  conflict: (ref: ResourceRef, name: string, why: string) =>
    new Failure(
      failureStatus(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${qualified(ref)} "${name}": ${why}`,
        resourceDetails(ref, name),
      ),
    ),
  /** `errors.NewInvalid`: `Kind.group "name" is invalid: field: message`. */
  invalid: (kind: string, ref: ResourceRef, name: string, field: string, message: string) => {
    const qualifiedKind = ref.group ? `${kind}.${ref.group}` : kind;
    const details: NonNullable<Status["details"]> = {
      name,
      kind,
      causes: [{ reason: "FieldValueInvalid", message, field }],
    };
    if (ref.group) details.group = ref.group;
    return new Failure(
      failureStatus(422, "Invalid", `${qualifiedKind} "${name}" is invalid: ${field}: ${message}`, details),
    );
  },
  gone: (message: string) => new Failure(failureStatus(410, "Expired", message)),
  methodNotAllowed: () =>
    new Failure(
      failureStatus(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
      ),
    ),
  unsupportedMediaType: (contentType: string) =>
    new Failure(
      failureStatus(
        415,
        "UnsupportedMediaType",
        `the body of the request was in an unknown format (${contentType}) - accepted media types include: ` +
          `${CONTENT.jsonPatch}, ${CONTENT.merge}, ${CONTENT.apply}`,
      ),
    ),
};

const OPTIMISTIC_LOCK =
  "the object has been modified; please apply your changes to the latest version and try again";

function successStatus(code?: number, details?: Status["details"]): Status {
  const status: Status = { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success" };
  if (details) status.details = details;
  if (code !== undefined) status.code = code;
  return status;
}

function objectKeyOf(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

function compareKeys(a: StoredObject, b: StoredObject): number {
  const ka = objectKeyOf(a.metadata.namespace, a.metadata.name ?? "");
  const kb = objectKeyOf(b.metadata.namespace, b.metadata.name ?? "");
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** RFC 3339 with second precision, as Kubernetes writes `metav1.Time`. */
function timestamp(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function normalizeQuery(query: Record<string, QueryValue> | undefined): Record<string, string | string[]> {
  const result: Record<string, string | string[]> = {};
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined) continue;
    result[key] = Array.isArray(value) ? [...value] : String(value);
  }
  return result;
}

function single(query: Record<string, string | string[]>, key: string): string | undefined {
  const value = query[key];
  return Array.isArray(value) ? value[0] : value;
}

/** `kubectl`'s guess of a resource name from a kind (`Pod` → `pods`, `NetworkPolicy` → `networkpolicies`). */
function guessPlural(kind: string): string {
  const singular = kind.toLowerCase();
  if (singular === "endpoints") return singular;
  if (singular.endsWith("s")) return `${singular}es`;
  if (singular.endsWith("y")) return `${singular.slice(0, -1)}ies`;
  return `${singular}s`;
}

/** A guess of the kind from a plural, used only for list kinds of resources never written. */
function guessKind(plural: string): string {
  const singular = plural.endsWith("ies")
    ? `${plural.slice(0, -3)}y`
    : /(ses|xes|ches|shes)$/.test(plural)
    ? plural.slice(0, -2)
    : plural.replace(/s$/, "");
  return singular.charAt(0).toUpperCase() + singular.slice(1);
}

function matchesResourceName(entry: string, ref: ResourceRef): boolean {
  const dot = entry.indexOf(".");
  const plural = dot < 0 ? entry : entry.slice(0, dot);
  const group = dot < 0 ? "" : entry.slice(dot + 1);
  return (plural === "*" || plural === ref.plural) && group === ref.group;
}

/** Parses an API path into resource, namespace, name and subresource; `undefined` for other paths. */
function parsePath(path: string): ParsedPath | undefined {
  const segments = path.split("?")[0].split("/").filter(Boolean).map(decodeURIComponent);
  let group: string;
  let version: string;
  let rest: string[];
  if (segments[0] === "api" && segments.length >= 2) {
    [group, version, rest] = ["", segments[1], segments.slice(2)];
  } else if (segments[0] === "apis" && segments.length >= 3) {
    [group, version, rest] = [segments[1], segments[2], segments.slice(3)];
  } else {
    return undefined;
  }
  let watch = false;
  if (rest[0] === "watch") {
    watch = true;
    rest = rest.slice(1);
  }
  if (rest.length === 0) return undefined;
  let namespace: string | undefined;
  if (
    rest[0] === "namespaces" && rest.length >= 3 &&
    !(group === "" && rest.length === 3 && NAMESPACE_SUBRESOURCES.has(rest[2]))
  ) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  if (rest.length > 3) return undefined;
  const [plural, name, subresource] = rest;
  return { ref: { group, version, plural }, namespace, name, subresource, watch };
}

function verbOf(method: HttpMethod, parsed: ParsedPath | undefined, watch: boolean): Verb {
  if (!parsed) return "nonresource";
  switch (method) {
    case "GET":
      return parsed.name ? "get" : watch ? "watch" : "list";
    case "POST":
      return "create";
    case "PUT":
      return "update";
    case "PATCH":
      return "patch";
    case "DELETE":
      return parsed.name ? "delete" : "deletecollection";
  }
}

/** A fake JWT: readable claims, no valid signature. */
function fakeToken(claims: Record<string, unknown>): string {
  const encode = (value: unknown) =>
    btoa(JSON.stringify(value)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  return `${encode({ alg: "none", typ: "JWT" })}.${encode(claims)}.${encode("memory-api-server")}`;
}

const encoder = new TextEncoder();

/** One open watch: a byte stream of newline-delimited JSON events. */
class WatchStream {
  readonly response: Response;
  #controller!: ReadableByteStreamController;
  #closed = false;
  #timer?: ReturnType<typeof setTimeout>;
  readonly #signal?: AbortSignal;
  readonly #onAbort = () => this.fail(this.#signal?.reason ?? new DOMException("aborted", "AbortError"));

  constructor(
    readonly table: string,
    readonly namespace: string | undefined,
    readonly matches: Matcher,
    readonly owner: MemoryTransport,
    readonly onClose: (watch: WatchStream) => void,
    signal: AbortSignal | undefined,
    timeoutSeconds: number | undefined,
  ) {
    const body = new ReadableStream({
      type: "bytes",
      start: (controller) => {
        this.#controller = controller;
      },
      cancel: () => {
        this.#finish();
      },
    });
    this.response = new Response(body, { status: 200, headers: { "content-type": CONTENT.json } });
    this.#signal = signal;
    signal?.addEventListener("abort", this.#onAbort, { once: true });
    if (timeoutSeconds && timeoutSeconds > 0) {
      this.#timer = setTimeout(() => this.close(), timeoutSeconds * 1000);
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(event: { type: string; object: unknown }): void {
    if (this.#closed) return;
    this.#controller.enqueue(encoder.encode(JSON.stringify(event) + "\n"));
  }

  /** Ends the stream as the server does after `timeoutSeconds`. */
  close(): void {
    if (this.#finish()) {
      try {
        this.#controller.close();
        // A reader waiting with its own buffer (BYOB) is released only by an empty response.
        this.#controller.byobRequest?.respond(0);
      } catch {
        // already closed
      }
    }
  }

  /** Ends the stream with an error, as an aborted fetch body does. */
  fail(reason: unknown): void {
    if (this.#finish()) {
      try {
        this.#controller.error(reason);
      } catch {
        // already closed
      }
    }
  }

  #finish(): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.onClose(this);
    return true;
  }
}

type Serve = (options: RequestOptions, streaming: boolean, owner: MemoryTransport) => Promise<unknown>;

/**
 * The {@linkcode Transport} of a {@linkcode MemoryApiServer}: requests are answered in memory,
 * failures throw {@linkcode ApiError} as the HTTP transport does (without its retries). Get one
 * with {@linkcode MemoryApiServer.transport}.
 */
export class MemoryTransport implements Transport {
  readonly #serve: Serve;
  readonly #onClose: (transport: MemoryTransport) => void;
  #closed = false;

  /** Made by {@linkcode MemoryApiServer.transport}. */
  constructor(readonly config: ClientConfig, serve: Serve, onClose: (transport: MemoryTransport) => void) {
    this.#serve = serve;
    this.#onClose = onClose;
  }

  /** Whether {@linkcode close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Answers a request; throws {@linkcode ApiError} for error statuses. Watches need {@linkcode stream}. */
  async request<T = unknown>(options: RequestOptions): Promise<T> {
    this.#check(options);
    return await this.#serve(options, false, this) as T;
  }

  /** Answers a request with a streaming `Response`: watches stream their events, anything else its JSON. */
  async stream(options: RequestOptions): Promise<Response> {
    this.#check(options);
    return await this.#serve(options, true, this) as Response;
  }

  /** Ends the watches opened through this transport; later requests fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose(this);
  }

  #check(options: RequestOptions): void {
    if (this.#closed) throw new Error(`${options.method} ${options.path}: client is closed`);
    options.signal?.throwIfAborted();
  }
}

/**
 * An in-memory Kubernetes API server for unit tests. See the module documentation for what it
 * models and what it approximates.
 */
export class MemoryApiServer {
  readonly #options: MemoryApiServerOptions;
  readonly #tables = new Map<string, Table>();
  readonly #descriptors: ResourceDescriptor[];
  /** `group/Kind` → table id, learned from written objects. */
  readonly #kinds = new Map<string, string>();
  #rv = 1;
  #compactedRv = 1;
  #history: HistoryEvent[] = [];
  readonly #watches = new Set<WatchStream>();
  readonly #continues = new Map<string, { items: StoredObject[]; rv: string; table: string }>();
  #failures: (FailureRule & { remaining: number })[] = [];
  readonly #requests: RecordedRequest[] = [];
  #clockOffsetMs = 0;
  #transport?: MemoryTransport;

  constructor(options: MemoryApiServerOptions = {}) {
    this.#options = options;
    this.#descriptors = [...options.resources ?? []];
  }

  // --- test controls -------------------------------------------------------------------------

  /**
   * The transport of this server, usable as `new KubeClient(server.transport())`. The same
   * instance is returned until it is closed (an `InformerFactory` insists on one transport).
   */
  transport(): MemoryTransport {
    if (this.#transport && !this.#transport.closed) return this.#transport;
    const config: ClientConfig = {
      server: "https://memory.invalid",
      tls: {},
      credentials: { get: () => Promise.resolve({}), invalidate: () => {} },
      namespace: this.#options.namespace ?? "default",
      source: "in-memory API server (unit tests)",
    };
    this.#transport = new MemoryTransport(
      config,
      (options, streaming, owner) => this.#serve(options, streaming, owner),
      (owner) => {
        for (const watch of [...this.#watches]) if (watch.owner === owner) watch.close();
      },
    );
    return this.#transport;
  }

  /** Every request received so far, oldest first. */
  get requests(): readonly RecordedRequest[] {
    return this.#requests;
  }

  /** The requests that write (create, update, patch, delete, deletecollection, and subresource POSTs). */
  get writes(): RecordedRequest[] {
    return this.#requests.filter((r) => r.method !== "GET");
  }

  /** Forgets the recorded requests. */
  clearRequests(): void {
    this.#requests.length = 0;
  }

  /**
   * Makes the next `times` (default 1) requests matching `rule` fail with `rule.status` (an
   * {@linkcode ApiError} built as the HTTP transport builds it) or throw `rule.error`. Rules are
   * checked in the order they were added; a watch request fails when its stream is opened.
   */
  failNext(rule: FailureRule): void {
    this.#failures.push({ ...rule, remaining: rule.times ?? 1 });
  }

  /** The current time of the server's clock. */
  now(): Date {
    const base = this.#options.now?.() ?? Date.now();
    return new Date((typeof base === "number" ? base : base.getTime()) + this.#clockOffsetMs);
  }

  /** Moves the server's clock forward by `ms` (timestamps only: nothing runs on its own). */
  advanceClock(ms: number): void {
    this.#clockOffsetMs += ms;
  }

  /** The latest resourceVersion (one counter for every resource, as etcd's revision). */
  get resourceVersion(): string {
    return String(this.#rv);
  }

  /**
   * Forgets the watch history, like an etcd compaction: a watch from any resourceVersion older
   * than the current one gets 410 Gone (`Expired`) and must re-list.
   */
  compact(): void {
    this.#history = [];
    this.#compactedRv = this.#rv;
  }

  /** How many watches are open. */
  get openWatches(): number {
    return this.#watches.size;
  }

  /** Ends every open watch (as the server closing them) and every transport. */
  close(): void {
    for (const watch of [...this.#watches]) watch.close();
    this.#transport?.close();
  }

  /**
   * Stores objects as they are (status, finalizers and deletionTimestamp included), replacing
   * objects of the same name, and sends the watch events. `apiVersion` and `kind` are required;
   * the resource comes from `options.resources`, from objects written before, or is guessed from
   * the kind (`NetworkPolicy` → `networkpolicies`). uid, resourceVersion, creationTimestamp and
   * generation are filled in when missing. Returns copies of the stored objects.
   */
  seed<T extends KubeObject>(objects: readonly T[]): T[] {
    return objects.map((input) => {
      if (!input.apiVersion || !input.kind) throw new Error("seed: objects need apiVersion and kind");
      if (!input.metadata?.name) throw new Error(`seed: a ${input.kind} needs metadata.name`);
      const table = this.#tableForKind(input.apiVersion, input.kind);
      const object = cloneJson(input) as unknown as StoredObject;
      const meta = object.metadata;
      if (table.namespaced === true && !meta.namespace) meta.namespace = this.#options.namespace ?? "default";
      if (table.namespaced === false) delete meta.namespace;
      table.namespaced ??= Boolean(meta.namespace);
      const key = objectKeyOf(meta.namespace, meta.name!);
      const previous = table.objects.get(key);
      meta.uid ??= previous?.metadata.uid ?? crypto.randomUUID();
      meta.creationTimestamp ??= previous?.metadata.creationTimestamp ?? timestamp(this.now().getTime());
      meta.generation ??= 1;
      this.#commit(table, key, object, previous ? "MODIFIED" : "ADDED", previous);
      return cloneJson(object) as unknown as T;
    });
  }

  /**
   * One stored object (a copy), or `undefined`. `resource` is a {@linkcode ResourceRef}, a
   * resource name (`pods`, `deployments.apps`: any version) or a whole object path
   * (`/api/v1/namespaces/default/pods/web`, then without `name`).
   */
  get<T extends KubeObject = KubeObject>(
    resource: ResourceRef | string,
    name?: string,
    namespace?: string,
  ): T | undefined {
    if (typeof resource === "string" && resource.startsWith("/")) {
      const parsed = parsePath(resource);
      if (!parsed?.name || parsed.subresource) throw new Error(`get: ${resource} is not an object path`);
      [resource, name, namespace] = [parsed.ref, parsed.name, parsed.namespace];
    }
    if (!name) throw new Error("get: a name is required");
    for (const table of this.#tablesOf(resource)) {
      const found = table.objects.get(objectKeyOf(namespace, name));
      if (found) return cloneJson(found) as unknown as T;
    }
    return undefined;
  }

  /**
   * Stored objects (copies) sorted by namespace and name, in `namespace` when given. `resource`
   * as for {@linkcode get}, or a collection path (`/apis/apps/v1/namespaces/x/deployments`).
   */
  list<T extends KubeObject = KubeObject>(
    resource: ResourceRef | string,
    namespace?: string,
    selectors: { labelSelector?: string; fieldSelector?: string } = {},
  ): T[] {
    if (typeof resource === "string" && resource.startsWith("/")) {
      const parsed = parsePath(resource);
      if (!parsed || parsed.name) throw new Error(`list: ${resource} is not a collection path`);
      [resource, namespace] = [parsed.ref, parsed.namespace ?? namespace];
    }
    const labels = parseLabelSelector(selectors.labelSelector);
    const fields = parseFieldSelector(selectors.fieldSelector);
    return this.#tablesOf(resource)
      .flatMap((table) => [...table.objects.values()])
      .filter((o) =>
        (namespace === undefined || o.metadata.namespace === namespace) && labels(o) && fields(o)
      )
      .sort(compareKeys)
      .map((o) => cloneJson(o) as unknown as T);
  }

  // --- request handling ----------------------------------------------------------------------

  async #serve(options: RequestOptions, streaming: boolean, owner: MemoryTransport): Promise<unknown> {
    await Promise.resolve(); // answer asynchronously, as a network would
    options.signal?.throwIfAborted();
    const query = normalizeQuery(options.query);
    const path = options.path.split("?")[0];
    const parsed = parsePath(path);
    const watch = Boolean(parsed?.watch) || ["true", "1"].includes(single(query, "watch") ?? "");
    const verb = verbOf(options.method, parsed, watch);
    const describe = `${options.method} ${options.path}`;
    const record: RecordedRequest = { method: options.method, path, query, verb };
    if (options.body !== undefined) record.contentType = options.contentType ?? CONTENT.json;
    if (parsed) {
      record.resource = parsed.ref;
      if (parsed.namespace !== undefined) record.namespace = parsed.namespace;
      if (parsed.name !== undefined) record.name = parsed.name;
      if (parsed.subresource !== undefined) record.subresource = parsed.subresource;
    }
    this.#requests.push(record);
    try {
      const body = await parseBody(options.body, record.contentType);
      if (body !== undefined) record.body = cloneJson(body);
      this.#injectFailure(record);
      if (watch) {
        if (!streaming) throw new Error(`${describe}: a watch needs Transport.stream()`);
        if (!parsed || options.method !== "GET" || parsed.name) throw fail.methodNotAllowed();
        const response = this.#watch(parsed, query, options.signal, owner);
        record.code = 200;
        return response;
      }
      const answer = this.#dispatch(options.method, path, parsed, query, body, record.contentType);
      record.code = answer.code;
      const json = cloneJson(answer.body);
      if (!streaming) return json;
      return new Response(JSON.stringify(json), {
        status: answer.code,
        headers: { "content-type": CONTENT.json },
      });
    } catch (err) {
      if (err instanceof Failure) {
        record.code = err.status.code;
        throw new ApiError(err.status.code ?? 500, cloneJson(err.status), describe);
      }
      if (err instanceof SelectorError) {
        record.code = 400;
        throw new ApiError(400, failureStatus(400, "BadRequest", err.message), describe);
      }
      throw err;
    }
  }

  #injectFailure(record: RecordedRequest): void {
    const index = this.#failures.findIndex((rule) =>
      (rule.method === undefined || rule.method === record.method) &&
      (rule.verb === undefined || rule.verb === record.verb) &&
      (rule.path === undefined ||
        (typeof rule.path === "string" ? rule.path === record.path : rule.path.test(record.path)))
    );
    if (index < 0) return;
    const rule = this.#failures[index];
    if (--rule.remaining <= 0) this.#failures.splice(index, 1);
    if (rule.error) throw rule.error;
    const status = typeof rule.status === "object"
      ? { ...rule.status, code: rule.status.code ?? 500 }
      : failureStatus(rule.status ?? 500, undefined, `injected failure of ${record.method} ${record.path}`);
    throw new Failure(status);
  }

  #dispatch(
    method: HttpMethod,
    path: string,
    parsed: ParsedPath | undefined,
    query: Record<string, string | string[]>,
    body: unknown,
    contentType: string | undefined,
  ): Answer {
    if (!parsed) {
      if (method === "GET" && (path === "/version" || path === "/version/")) {
        return {
          code: 200,
          body: { major: "1", minor: "36", gitVersion: "v1.36.0-memory", platform: "memory/memory" },
        };
      }
      throw fail.noRoute();
    }
    const table = this.#table(parsed.ref);
    const dryRun = single(query, "dryRun") === "All";
    const { name, subresource } = parsed;
    this.#checkScope(table, parsed, method);
    if (!name) {
      switch (method) {
        case "GET":
          return this.#list(table, parsed.namespace, query);
        case "POST":
          return this.#create(table, parsed.namespace, body, dryRun);
        case "DELETE":
          return this.#deleteCollection(table, parsed.namespace, query, body, dryRun);
        default:
          throw fail.methodNotAllowed();
      }
    }
    const key = objectKeyOf(parsed.namespace, name);
    if (subresource === undefined) {
      switch (method) {
        case "GET":
          return { code: 200, body: this.#existing(table, key, name) };
        case "PUT":
          return this.#replace(table, key, name, parsed.namespace, body, false, dryRun);
        case "PATCH":
          return this.#patch(table, key, parsed, body, contentType, dryRun);
        case "DELETE":
          return this.#deleteOne(table, key, name, body, dryRun);
        default:
          throw fail.methodNotAllowed();
      }
    }
    if (subresource === "status" && this.#hasStatus(table)) {
      switch (method) {
        case "GET":
          return { code: 200, body: this.#existing(table, key, name) };
        case "PUT":
          return this.#replace(table, key, name, parsed.namespace, body, true, dryRun);
        case "PATCH":
          return this.#patch(table, key, parsed, body, contentType, dryRun);
        default:
          throw fail.methodNotAllowed();
      }
    }
    if (subresource === "scale" && this.#hasScale(table)) {
      return this.#scale(table, key, name, method, body, contentType, dryRun);
    }
    const core = table.ref.group === "";
    if (core && table.ref.plural === "pods" && subresource === "eviction") {
      if (method !== "POST") throw fail.methodNotAllowed();
      return this.#evict(table, key, name, body, dryRun);
    }
    if (core && table.ref.plural === "pods" && subresource === "binding") {
      if (method !== "POST") throw fail.methodNotAllowed();
      return this.#bind(table, key, name, body, dryRun);
    }
    if (core && table.ref.plural === "serviceaccounts" && subresource === "token") {
      if (method !== "POST") throw fail.methodNotAllowed();
      return this.#token(table, key, name, parsed.namespace, body);
    }
    throw fail.noRoute();
  }

  /** Requests must address a resource in the scope it was first seen with. */
  #checkScope(table: Table, parsed: ParsedPath, method: HttpMethod): void {
    const namespacedPath = parsed.namespace !== undefined;
    const addressesScope = parsed.name !== undefined || method === "POST" || namespacedPath;
    if (!addressesScope) return; // a list or watch across namespaces
    if (table.ref.group === "" && table.ref.plural === "namespaces" && namespacedPath) throw fail.noRoute();
    if (table.namespaced === undefined) table.namespaced = namespacedPath;
    else if (table.namespaced !== namespacedPath) throw fail.noRoute();
  }

  // --- reads ---------------------------------------------------------------------------------

  #existing(table: Table, key: string, name: string): StoredObject {
    const found = table.objects.get(key);
    if (!found) throw fail.notFound(table.ref, name);
    return found;
  }

  #list(table: Table, namespace: string | undefined, query: Record<string, string | string[]>): Answer {
    const token = single(query, "continue");
    let items: StoredObject[];
    let rv: string;
    if (token) {
      const snapshot = this.#continues.get(token);
      if (!snapshot || snapshot.table !== table.id) {
        throw fail.gone("The provided continue parameter is too old to display a consistent list result.");
      }
      this.#continues.delete(token);
      ({ items, rv } = snapshot);
    } else {
      const labels = parseLabelSelector(single(query, "labelSelector"));
      const fields = parseFieldSelector(single(query, "fieldSelector"));
      items = [...table.objects.values()]
        .filter((o) =>
          (namespace === undefined || o.metadata.namespace === namespace) && labels(o) && fields(o)
        )
        .sort(compareKeys);
      rv = String(this.#rv);
    }
    const metadata: Record<string, unknown> = { resourceVersion: rv };
    const limit = Number(single(query, "limit") ?? 0);
    if (limit > 0 && items.length > limit) {
      const next = crypto.randomUUID();
      this.#continues.set(next, { items: items.slice(limit), rv, table: table.id });
      if (this.#continues.size > 100) this.#continues.delete(this.#continues.keys().next().value!);
      metadata.continue = next;
      metadata.remainingItemCount = items.length - limit;
      items = items.slice(0, limit);
    }
    return {
      code: 200,
      body: { kind: `${this.#kindOf(table)}List`, apiVersion: apiVersionOf(table.ref), metadata, items },
    };
  }

  #watch(
    parsed: ParsedPath,
    query: Record<string, string | string[]>,
    signal: AbortSignal | undefined,
    owner: MemoryTransport,
  ): Response {
    const table = this.#table(parsed.ref);
    const labels = parseLabelSelector(single(query, "labelSelector"));
    const fields = parseFieldSelector(single(query, "fieldSelector"));
    const matches: Matcher = (o) => labels(o) && fields(o);
    const from = single(query, "resourceVersion");
    const sendInitialEvents = single(query, "sendInitialEvents") === "true";
    if (from && from !== "0" && !/^\d+$/.test(from)) {
      throw fail.badRequest(`invalid resource version "${from}"`);
    }
    const timeout = Number(single(query, "timeoutSeconds") ?? 0) || undefined;
    const watch = new WatchStream(
      table.id,
      parsed.namespace,
      matches,
      owner,
      (w) => this.#watches.delete(w),
      signal,
      timeout,
    );
    if (sendInitialEvents || !from || from === "0") {
      // Start at the current state: synthetic ADDED events (then, for a streaming list, a bookmark).
      const current = [...table.objects.values()]
        .filter((o) =>
          (parsed.namespace === undefined || o.metadata.namespace === parsed.namespace) && matches(o)
        )
        .sort(compareKeys);
      for (const object of current) watch.send({ type: "ADDED", object });
      if (sendInitialEvents) {
        watch.send({
          type: "BOOKMARK",
          object: {
            apiVersion: apiVersionOf(table.ref),
            kind: this.#kindOf(table),
            metadata: {
              resourceVersion: String(this.#rv),
              annotations: { [INITIAL_EVENTS_END_ANNOTATION]: "true" },
            },
          },
        });
      }
    } else {
      const since = Number(from);
      if (since < this.#compactedRv) {
        // As kube-apiserver: the watch opens (200), then one ERROR event carries the 410.
        watch.send({
          type: "ERROR",
          object: failureStatus(410, "Expired", `too old resource version: ${since} (${this.#compactedRv})`),
        });
        watch.close();
        return watch.response;
      }
      for (const event of this.#history) {
        if (event.rv <= since) continue;
        const translated = translate(watch, event);
        if (translated) watch.send(translated);
      }
    }
    if (!watch.closed) this.#watches.add(watch);
    return watch.response;
  }

  // --- writes --------------------------------------------------------------------------------

  #create(table: Table, namespace: string | undefined, body: unknown, dryRun: boolean): Answer {
    const object = requireObject(body);
    this.#learnKind(table, object);
    const meta = object.metadata;
    if (namespace !== undefined) {
      if (meta.namespace && meta.namespace !== namespace) {
        throw fail.badRequest(
          "the namespace of the provided object does not match the namespace sent on the request",
        );
      }
      meta.namespace = namespace;
    } else {
      delete meta.namespace;
    }
    const kind = object.kind ?? this.#kindOf(table);
    if (!meta.name) {
      if (!meta.generateName) {
        throw fail.invalid(
          kind,
          table.ref,
          "",
          "metadata.name",
          "Required value: name or generateName is required",
        );
      }
      for (let attempt = 0; attempt < 10; attempt++) {
        let suffix = "";
        for (let i = 0; i < 5; i++) {
          suffix += GENERATE_NAME_ALPHABET[Math.floor(Math.random() * GENERATE_NAME_ALPHABET.length)];
        }
        meta.name = meta.generateName + suffix;
        if (!table.objects.has(objectKeyOf(namespace, meta.name))) break;
      }
    }
    const name = meta.name!;
    const key = objectKeyOf(namespace, name);
    if (table.objects.has(key)) throw fail.alreadyExists(table.ref, name);
    object.apiVersion ??= apiVersionOf(table.ref);
    object.kind = kind;
    delete meta.resourceVersion;
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    delete (meta as Record<string, unknown>).selfLink;
    meta.uid = crypto.randomUUID();
    meta.creationTimestamp = timestamp(this.now().getTime());
    meta.generation = 1;
    if (this.#hasStatus(table)) resetStatus(table.ref, object);
    if (dryRun) return { code: 201, body: object };
    this.#commit(table, key, object, "ADDED");
    return { code: 201, body: object };
  }

  /** PUT of the object or of its status. */
  #replace(
    table: Table,
    key: string,
    name: string,
    namespace: string | undefined,
    body: unknown,
    status: boolean,
    dryRun: boolean,
  ): Answer {
    const current = this.#existing(table, key, name);
    const next = requireObject(body);
    const meta = next.metadata;
    if (meta.name && meta.name !== name) {
      throw fail.badRequest(
        `the name of the object (${meta.name}) does not match the name on the URL (${name})`,
      );
    }
    if (namespace !== undefined && meta.namespace && meta.namespace !== namespace) {
      throw fail.badRequest(
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    }
    if (meta.resourceVersion && meta.resourceVersion !== current.metadata.resourceVersion) {
      throw fail.conflict(table.ref, name, OPTIMISTIC_LOCK);
    }
    // An update carrying a uid makes it a storage precondition: a mismatch is a 409 Conflict.
    if (meta.uid && meta.uid !== current.metadata.uid) {
      throw fail.conflict(
        table.ref,
        name,
        `Precondition failed: UID in precondition: ${meta.uid}, UID in object meta: ${current.metadata.uid}`,
      );
    }
    return this.#update(table, key, current, next, { status, dryRun });
  }

  #patch(
    table: Table,
    key: string,
    parsed: ParsedPath,
    body: unknown,
    contentType: string | undefined,
    dryRun: boolean,
  ): Answer {
    const name = parsed.name!;
    const type = (contentType ?? "").split(";")[0].trim();
    const current = table.objects.get(key);
    if (!current) {
      // Server-side apply creates what is missing (approximation: no field ownership).
      if (type === CONTENT.apply && !parsed.subresource) {
        const object = requireObject(body);
        if (object.metadata.name && object.metadata.name !== name) {
          throw fail.badRequest(
            `the name of the object (${object.metadata.name}) does not match the name on the URL (${name})`,
          );
        }
        object.metadata.name = name;
        return this.#create(table, parsed.namespace, object, dryRun);
      }
      throw fail.notFound(table.ref, name);
    }
    const patched = this.#applyPatch(table, current, type, body);
    return this.#updatePatched(table, key, current, patched, parsed.subresource === "status", dryRun);
  }

  /** The patched object; the patch types as kube-apiserver's patch handler treats them. */
  #applyPatch(table: Table, current: StoredObject, type: string, body: unknown): unknown {
    switch (type) {
      case CONTENT.merge:
        return mergePatch(cloneJson(current), requirePatchObject(body));
      case CONTENT.strategic:
        if (this.#isCustom(table)) throw fail.unsupportedMediaType(type);
        try {
          return strategicMergePatch(cloneJson(current), requirePatchObject(body));
        } catch (err) {
          if (err instanceof PatchError) throw fail.badRequest(err.message);
          throw err;
        }
      case CONTENT.apply:
        // Approximation of server-side apply: a merge patch, without field ownership or conflicts.
        return mergePatch(cloneJson(current), requirePatchObject(body));
      case CONTENT.jsonPatch:
        if (!Array.isArray(body)) throw fail.badRequest("a JSON patch must be a list of operations");
        try {
          return jsonPatch(current, body);
        } catch (err) {
          if (!(err instanceof PatchError)) throw err;
          // kube-apiserver (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go,
          // jsonPatcher.applyJSPatch): a patch that fails to apply, a failed `test` included, is
          // errors.NewGenericServerResponse(http.StatusUnprocessableEntity, …): 422, reason Invalid.
          throw new Failure(
            failureStatus(422, "Invalid", "the server rejected our request due to an error in our request", {
              causes: [{ reason: "UnexpectedServerResponse", message: err.message }],
            }),
          );
        }
      default:
        throw fail.unsupportedMediaType(type || "(none)");
    }
  }

  /** The checks the update path applies to a patched object, then the update. */
  #updatePatched(
    table: Table,
    key: string,
    current: StoredObject,
    patched: unknown,
    status: boolean,
    dryRun: boolean,
  ): Answer {
    if (!isJsonObject(patched)) throw fail.badRequest("the patched object is not a JSON object");
    const next = patched as StoredObject;
    if (!isJsonObject(next.metadata)) next.metadata = {};
    const name = current.metadata.name!;
    const meta = next.metadata;
    if (meta.name !== name) {
      throw fail.badRequest(
        `the name of the object (${meta.name ?? ""}) does not match the name on the URL (${name})`,
      );
    }
    // A resourceVersion in the patch (or left by it) is checked as in an update: 409 Conflict.
    if (meta.resourceVersion && meta.resourceVersion !== current.metadata.resourceVersion) {
      throw fail.conflict(table.ref, name, OPTIMISTIC_LOCK);
    }
    // A different uid in a patch is no storage precondition: the update's metadata validation
    // rejects it (rest.BeforeUpdate → ValidateObjectMetaUpdate, "field is immutable"): 422 Invalid.
    if (meta.uid && meta.uid !== current.metadata.uid) {
      throw fail.invalid(
        current.kind ?? this.#kindOf(table),
        table.ref,
        name,
        "metadata.uid",
        `Invalid value: "${meta.uid}": field is immutable`,
      );
    }
    return this.#update(table, key, current, next, { status, dryRun });
  }

  /**
   * The common update: the object's system metadata is kept, `status` goes only through the
   * status subresource (when the resource has one), the generation follows the spec, an
   * unchanged object is not written, and an object being deleted goes once its finalizers are gone.
   */
  #update(
    table: Table,
    key: string,
    current: StoredObject,
    input: StoredObject,
    { status, dryRun }: { status: boolean; dryRun: boolean },
  ): Answer {
    let next: StoredObject;
    const name = current.metadata.name!;
    if (status) {
      next = cloneJson(current);
      if (input.status === undefined) delete next.status;
      else next.status = cloneJson(input.status);
    } else {
      next = cloneJson(input);
      if (this.#hasStatus(table)) {
        if (current.status === undefined) delete next.status;
        else next.status = cloneJson(current.status);
      }
      next.apiVersion ??= current.apiVersion;
      next.kind ??= current.kind;
      const meta = next.metadata;
      const old = current.metadata;
      meta.name = old.name;
      if (old.namespace) meta.namespace = old.namespace;
      else delete meta.namespace;
      meta.uid = old.uid;
      meta.creationTimestamp = old.creationTimestamp;
      setOrDelete(meta, "deletionTimestamp", old.deletionTimestamp);
      if (old.deletionGracePeriodSeconds !== undefined) {
        meta.deletionGracePeriodSeconds = old.deletionGracePeriodSeconds;
      } else delete meta.deletionGracePeriodSeconds;
      setOrDelete(meta, "generation", old.generation);
      if (old.deletionTimestamp) {
        const added = (meta.finalizers ?? []).filter((f) => !(old.finalizers ?? []).includes(f));
        if (added.length > 0) {
          throw fail.invalid(
            next.kind ?? this.#kindOf(table),
            table.ref,
            name,
            "metadata.finalizers",
            `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${
              JSON.stringify(added)
            }`,
          );
        }
      }
      if (meta.finalizers?.length === 0) delete meta.finalizers;
      if (!jsonEqual(this.#specOf(table, next), this.#specOf(table, current))) {
        meta.generation = (old.generation ?? 0) + 1;
      }
    }
    next.metadata.resourceVersion = current.metadata.resourceVersion;
    if (jsonEqual(next, current)) return { code: 200, body: current }; // no-op: no write, no event
    const meta = next.metadata;
    const finished = meta.deletionTimestamp && !meta.finalizers?.length && !meta.deletionGracePeriodSeconds;
    if (dryRun) return { code: 200, body: next };
    if (finished) return { code: 200, body: this.#remove(table, key, next) };
    this.#commit(table, key, next, "MODIFIED", current);
    return { code: 200, body: next };
  }

  /** What a generation change is measured on: everything but metadata (and status, when it is a subresource). */
  #specOf(table: Table, object: StoredObject): Record<string, unknown> {
    const { metadata: _metadata, ...rest } = object;
    if (this.#hasStatus(table)) delete rest.status;
    return rest;
  }

  #deleteOne(table: Table, key: string, name: string, body: unknown, dryRun: boolean): Answer {
    const current = this.#existing(table, key, name);
    const options = (isJsonObject(body) ? body : {}) as DeleteOptionsBody;
    this.#checkPreconditions(table, current, options.preconditions);
    return this.#delete(table, key, current, options, dryRun);
  }

  #checkPreconditions(
    table: Table,
    current: StoredObject,
    preconditions: DeleteOptionsBody["preconditions"],
  ): void {
    const name = current.metadata.name!;
    if (preconditions?.uid && preconditions.uid !== current.metadata.uid) {
      throw fail.conflict(
        table.ref,
        name,
        `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${current.metadata.uid}`,
      );
    }
    if (
      preconditions?.resourceVersion && preconditions.resourceVersion !== current.metadata.resourceVersion
    ) {
      throw fail.conflict(
        table.ref,
        name,
        `Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ` +
          `ResourceVersion in object meta: ${current.metadata.resourceVersion}`,
      );
    }
  }

  /** Grace period of a delete: only pods bound to a node wait (for a kubelet). */
  #gracePeriod(table: Table, object: StoredObject, requested: number | undefined): number {
    if (!(this.#options.podsNeedKubelet ?? true)) return 0;
    if (table.ref.group !== "" || table.ref.plural !== "pods") return 0;
    const spec = (object.spec ?? {}) as { nodeName?: string; terminationGracePeriodSeconds?: number };
    const phase = (object.status as { phase?: string } | undefined)?.phase;
    if (!spec.nodeName || phase === "Succeeded" || phase === "Failed") return 0;
    return Math.max(0, requested ?? spec.terminationGracePeriodSeconds ?? 30);
  }

  #delete(
    table: Table,
    key: string,
    current: StoredObject,
    options: DeleteOptionsBody,
    dryRun: boolean,
  ): Answer {
    const grace = this.#gracePeriod(table, current, options.gracePeriodSeconds);
    const meta = current.metadata;
    const hasFinalizers = (meta.finalizers?.length ?? 0) > 0;
    const deletedStatus = () =>
      successStatus(undefined, { ...resourceDetails(table.ref, meta.name), uid: meta.uid ?? "" });
    const now = this.now().getTime();
    if (meta.deletionTimestamp) {
      // Already being deleted: only a shorter grace period changes anything.
      if (grace >= (meta.deletionGracePeriodSeconds ?? 0)) return { code: 200, body: current };
      const next = cloneJson(current);
      next.metadata.deletionGracePeriodSeconds = grace;
      next.metadata.deletionTimestamp = timestamp(now + grace * 1000);
      if (grace === 0 && !hasFinalizers) {
        if (!dryRun) this.#remove(table, key, next);
        return { code: 200, body: deletedStatus() };
      }
      if (!dryRun) this.#commit(table, key, next, "MODIFIED", current);
      return { code: 200, body: next };
    }
    if (grace === 0 && !hasFinalizers) {
      if (!dryRun) this.#remove(table, key, current);
      return { code: 200, body: deletedStatus() };
    }
    const next = cloneJson(current);
    next.metadata.deletionTimestamp = timestamp(now + grace * 1000);
    next.metadata.deletionGracePeriodSeconds = grace;
    if (next.metadata.generation !== undefined) next.metadata.generation++;
    if (!dryRun) this.#commit(table, key, next, "MODIFIED", current);
    return { code: grace > 0 ? 202 : 200, body: next };
  }

  #deleteCollection(
    table: Table,
    namespace: string | undefined,
    query: Record<string, string | string[]>,
    body: unknown,
    dryRun: boolean,
  ): Answer {
    const labels = parseLabelSelector(single(query, "labelSelector"));
    const fields = parseFieldSelector(single(query, "fieldSelector"));
    const options = (isJsonObject(body) ? body : {}) as DeleteOptionsBody;
    const victims = [...table.objects.entries()]
      .filter(([, o]) =>
        (namespace === undefined || o.metadata.namespace === namespace) && labels(o) && fields(o)
      );
    for (const [key, object] of victims) {
      this.#delete(table, key, object, { ...options, preconditions: undefined }, dryRun);
    }
    return { code: 200, body: successStatus() };
  }

  // --- subresources --------------------------------------------------------------------------

  #evict(table: Table, key: string, name: string, body: unknown, dryRun: boolean): Answer {
    const current = this.#existing(table, key, name);
    const eviction = isJsonObject(body) ? body : {};
    const options = (isJsonObject(eviction.deleteOptions) ? eviction.deleteOptions : {}) as DeleteOptionsBody;
    this.#checkPreconditions(table, current, options.preconditions);
    if (!current.metadata.deletionTimestamp) this.#delete(table, key, current, options, dryRun);
    return { code: 201, body: successStatus(201) };
  }

  #bind(table: Table, key: string, name: string, body: unknown, dryRun: boolean): Answer {
    const current = this.#existing(table, key, name);
    const target = isJsonObject(body) && isJsonObject(body.target) ? body.target : {};
    const node = typeof target.name === "string" ? target.name : "";
    if (!node) throw fail.badRequest("a Binding needs target.name");
    const spec = (current.spec ?? {}) as { nodeName?: string };
    if (spec.nodeName) {
      throw fail.conflict(
        { ...table.ref, plural: "pods/binding" },
        name,
        `pod ${name} is already assigned to node "${spec.nodeName}"`,
      );
    }
    if (current.metadata.deletionTimestamp) {
      throw fail.conflict(
        { ...table.ref, plural: "pods/binding" },
        name,
        `pod ${name} is being deleted, cannot be assigned to a host`,
      );
    }
    const next = cloneJson(current);
    next.spec = { ...(next.spec as Record<string, unknown> ?? {}), nodeName: node };
    const status = (isJsonObject(next.status) ? next.status : {}) as {
      conditions?: Record<string, unknown>[];
    };
    const conditions = (status.conditions ?? []).filter((c) => c.type !== "PodScheduled");
    conditions.push({
      type: "PodScheduled",
      status: "True",
      lastProbeTime: null,
      lastTransitionTime: timestamp(this.now().getTime()),
    });
    next.status = { ...status, conditions };
    if (!dryRun) this.#commit(table, key, next, "MODIFIED", current);
    return { code: 201, body: successStatus(201) };
  }

  #token(table: Table, key: string, name: string, namespace: string | undefined, body: unknown): Answer {
    const account = this.#existing(table, key, name);
    const request = isJsonObject(body) ? body : {};
    const spec = (isJsonObject(request.spec) ? request.spec : {}) as {
      audiences?: string[];
      expirationSeconds?: number;
      boundObjectRef?: Record<string, string>;
    };
    const expirationSeconds = spec.expirationSeconds ?? 3600;
    const now = this.now().getTime();
    const audiences = spec.audiences?.length ? spec.audiences : ["https://memory.invalid"];
    const token = fakeToken({
      iss: "https://memory.invalid",
      sub: `system:serviceaccount:${namespace}:${name}`,
      aud: audiences,
      iat: Math.floor(now / 1000),
      exp: Math.floor(now / 1000) + expirationSeconds,
      "kubernetes.io": { namespace, serviceaccount: { name, uid: account.metadata.uid } },
    });
    return {
      code: 201,
      body: {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        metadata: { name, namespace, creationTimestamp: timestamp(now) },
        spec: { ...spec, audiences, expirationSeconds },
        status: { token, expirationTimestamp: timestamp(now + expirationSeconds * 1000) },
      },
    };
  }

  #scale(
    table: Table,
    key: string,
    name: string,
    method: HttpMethod,
    body: unknown,
    contentType: string | undefined,
    dryRun: boolean,
  ): Answer {
    const current = this.#existing(table, key, name);
    const scaleOf = (object: StoredObject) => {
      const spec = (object.spec ?? {}) as {
        replicas?: number;
        selector?: { matchLabels?: Record<string, string> };
      };
      const status = (object.status ?? {}) as { replicas?: number };
      const selector = Object.entries(spec.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(
        ",",
      );
      return {
        apiVersion: "autoscaling/v1",
        kind: "Scale",
        metadata: {
          name: object.metadata.name,
          namespace: object.metadata.namespace,
          uid: object.metadata.uid,
          resourceVersion: object.metadata.resourceVersion,
          creationTimestamp: object.metadata.creationTimestamp,
        },
        spec: { replicas: spec.replicas ?? 0 },
        status: { replicas: status.replicas ?? 0, ...(selector ? { selector } : {}) },
      };
    };
    if (method === "GET") return { code: 200, body: scaleOf(current) };
    let scale: unknown;
    if (method === "PUT") scale = requireObject(body);
    else if (method === "PATCH") {
      scale = this.#applyPatch(
        table,
        scaleOf(current) as unknown as StoredObject,
        (contentType ?? "").split(";")[0],
        body,
      );
    } else throw fail.methodNotAllowed();
    const requested = scale as { metadata?: ObjectMeta; spec?: { replicas?: number } };
    if (
      requested.metadata?.resourceVersion &&
      requested.metadata.resourceVersion !== current.metadata.resourceVersion
    ) {
      throw fail.conflict(table.ref, name, OPTIMISTIC_LOCK);
    }
    const next = cloneJson(current);
    next.spec = { ...(next.spec as Record<string, unknown> ?? {}), replicas: requested.spec?.replicas ?? 0 };
    const answer = this.#update(table, key, current, next, { status: false, dryRun });
    return { code: 200, body: scaleOf(answer.body as StoredObject) };
  }

  // --- storage -------------------------------------------------------------------------------

  /** Stores `object` under a new resourceVersion and sends the watch event. */
  #commit(table: Table, key: string, object: StoredObject, type: EventType, previous?: StoredObject): void {
    object.metadata.resourceVersion = String(++this.#rv);
    table.objects.set(key, object);
    this.#learnKind(table, object);
    this.#record({ rv: this.#rv, table: table.id, type, object, previous });
  }

  /** Removes the object; the DELETED event carries it with the deletion's resourceVersion. */
  #remove(table: Table, key: string, current: StoredObject): StoredObject {
    const last = cloneJson(current);
    last.metadata.resourceVersion = String(++this.#rv);
    table.objects.delete(key);
    this.#record({ rv: this.#rv, table: table.id, type: "DELETED", object: last, previous: current });
    return last;
  }

  #record(event: HistoryEvent): void {
    this.#history.push(event);
    const limit = Math.max(1, this.#options.historyLimit ?? 10_000);
    while (this.#history.length > limit) this.#compactedRv = this.#history.shift()!.rv;
    for (const watch of this.#watches) {
      const translated = translate(watch, event);
      if (translated) watch.send(translated);
    }
  }

  #table(ref: ResourceRef): Table {
    const id = `${ref.group}/${ref.version}/${ref.plural}`;
    let table = this.#tables.get(id);
    if (!table) {
      table = { ref: { ...ref }, id, objects: new Map() };
      const descriptor = this.#descriptor(ref);
      if (descriptor) {
        table.kind = descriptor.kind;
        table.namespaced = descriptor.namespaced;
      } else if (ref.group === "" && ref.plural === "namespaces") {
        table.namespaced = false;
      }
      this.#tables.set(id, table);
    }
    return table;
  }

  #tablesOf(resource: ResourceRef | string): Table[] {
    if (typeof resource !== "string") {
      const table = this.#tables.get(`${resource.group}/${resource.version}/${resource.plural}`);
      return table ? [table] : [];
    }
    return [...this.#tables.values()].filter((t) => matchesResourceName(resource, t.ref));
  }

  #tableForKind(apiVersion: string, kind: string): Table {
    const slash = apiVersion.indexOf("/");
    const group = slash < 0 ? "" : apiVersion.slice(0, slash);
    const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
    const descriptor = this.#descriptors.find((d) =>
      d.group === group && d.version === version && d.kind === kind
    );
    const learned = this.#kinds.get(`${apiVersion}/${kind}`);
    if (learned) return this.#tables.get(learned)!;
    return this.#table({ group, version, plural: descriptor?.plural ?? guessPlural(kind) });
  }

  #descriptor(ref: ResourceRef): ResourceDescriptor | undefined {
    return this.#descriptors.find((d) =>
      d.group === ref.group && d.version === ref.version && d.plural === ref.plural
    );
  }

  #learnKind(table: Table, object: KubeObject): void {
    if (!object.kind) return;
    table.kind ??= object.kind;
    this.#kinds.set(`${apiVersionOf(table.ref)}/${object.kind}`, table.id);
  }

  #kindOf(table: Table): string {
    return table.kind ?? guessKind(table.ref.plural);
  }

  #hasStatus(table: Table): boolean {
    const subresources = this.#descriptor(table.ref)?.subresources;
    if (subresources) return subresources.includes("status");
    const list = this.#options.statusSubresources ?? DEFAULT_STATUS_SUBRESOURCES;
    return list.some((entry) => matchesResourceName(entry, table.ref));
  }

  #hasScale(table: Table): boolean {
    const subresources = this.#descriptor(table.ref)?.subresources;
    if (subresources) return subresources.includes("scale");
    return SCALE_RESOURCES.some((entry) => matchesResourceName(entry, table.ref));
  }

  #isCustom(table: Table): boolean {
    return this.#options.isCustomResource?.(table.ref) ?? !BUILTIN_GROUPS.has(table.ref.group);
  }
}

function apiVersionOf(ref: ResourceRef): string {
  return ref.group ? `${ref.group}/${ref.version}` : ref.version;
}

function setOrDelete<K extends keyof ObjectMeta>(meta: ObjectMeta, key: K, value: ObjectMeta[K]): void {
  if (value === undefined) delete meta[key];
  else meta[key] = value;
}

/** What kube-apiserver leaves of `status` when such an object is created. */
function resetStatus(ref: ResourceRef, object: StoredObject): void {
  if (ref.group === "" && ref.plural === "nodes") return; // kubelets create nodes with their status
  if (ref.group === "" && ref.plural === "pods") object.status = { phase: "Pending" };
  else if (ref.group === "" && ref.plural === "namespaces") object.status = { phase: "Active" };
  else delete object.status;
}

/** The event a watch sees for a change, given its namespace and selectors. */
function translate(
  watch: WatchStream,
  event: HistoryEvent,
): { type: EventType; object: StoredObject } | undefined {
  if (event.table !== watch.table) return undefined;
  if (watch.namespace !== undefined && event.object.metadata.namespace !== watch.namespace) return undefined;
  const now = watch.matches(event.object);
  const before = event.previous ? watch.matches(event.previous) : false;
  switch (event.type) {
    case "ADDED":
      return now ? { type: "ADDED", object: event.object } : undefined;
    case "DELETED":
      return now || before ? { type: "DELETED", object: event.object } : undefined;
    case "MODIFIED":
      if (now) return { type: before ? "MODIFIED" : "ADDED", object: event.object };
      return before ? { type: "DELETED", object: event.object } : undefined;
  }
}

async function parseBody(body: unknown, contentType: string | undefined): Promise<unknown> {
  if (body === undefined) return undefined;
  let text: string;
  if (typeof body === "string") text = body;
  else if (body instanceof Uint8Array) text = new TextDecoder().decode(body);
  else return cloneJson(body);
  try {
    return JSON.parse(text);
  } catch (err) {
    if (contentType?.startsWith(CONTENT.apply)) {
      const { parse } = await import("yaml");
      return parse(text);
    }
    throw fail.badRequest(`the request body is not JSON: ${(err as Error).message}`);
  }
}

function requireObject(body: unknown): StoredObject {
  if (!isJsonObject(body)) throw fail.badRequest("the request body must be an object");
  const object = cloneJson(body) as StoredObject;
  if (!isJsonObject(object.metadata)) object.metadata = {};
  return object;
}

function requirePatchObject(body: unknown): Record<string, unknown> {
  if (!isJsonObject(body)) throw fail.badRequest("a merge patch must be a JSON object");
  return body;
}
