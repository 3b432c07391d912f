/**
 * Patch semantics for the in-memory API server of unit tests ({@linkcode MemoryApiServer}): JSON
 * merge patch (RFC 7386), JSON patch (RFC 6902) and an approximation of Kubernetes' strategic merge
 * patch. Every function returns a new value and leaves its inputs untouched.
 *
 * @module
 */

/** A JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A patch that cannot be applied; the server answers 422 Invalid (JSON patch) or 400. */
export class PatchError extends Error {
  override readonly name = "PatchError";
}

/** Whether `value` is a JSON object (not an array, not null). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A deep copy of a JSON value (`undefined` members are dropped, as serialisation would). */
export function cloneJson<T>(value: T): T {
  return value === undefined ? value : JSON.parse(JSON.stringify(value));
}

/** Structural equality of two JSON values (object key order does not matter). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]));
  }
  if (isJsonObject(a) && isJsonObject(b)) {
    const keysA = Object.keys(a).filter((k) => a[k] !== undefined);
    const keysB = Object.keys(b).filter((k) => b[k] !== undefined);
    return keysA.length === keysB.length && keysA.every((k) => jsonEqual(a[k], b[k]));
  }
  return false;
}

/** Applies a JSON merge patch (RFC 7386): objects merge recursively, `null` deletes, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isJsonObject(patch)) return cloneJson(patch);
  const result: Record<string, unknown> = isJsonObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/**
 * Merge keys of the lists of built-in types that strategic merge patch merges item by item
 * (`patchMergeKey` in the Kubernetes API types). `ports` is keyed by `containerPort` in containers
 * and by `port` in services; see {@linkcode strategicMergePatch}.
 */
export const STRATEGIC_MERGE_KEYS: Readonly<Record<string, string>> = {
  containers: "name",
  initContainers: "name",
  ephemeralContainers: "name",
  volumes: "name",
  env: "name",
  volumeMounts: "mountPath",
  volumeDevices: "devicePath",
  ports: "containerPort",
  conditions: "type",
  ownerReferences: "uid",
  imagePullSecrets: "name",
  hostAliases: "ip",
  resourceClaims: "name",
  readinessGates: "conditionType",
};

/** Lists of strings that strategic merge patch merges as sets (`patchStrategy: merge` on a primitive list). */
export const STRATEGIC_SET_LISTS: ReadonlySet<string> = new Set(["finalizers"]);

const DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER = "$setElementOrder/";

/**
 * Applies a strategic merge patch, approximated without the OpenAPI schema: a JSON merge patch,
 * except that lists named in {@linkcode STRATEGIC_SET_LISTS} (`finalizers`) merge as sets, lists
 * named in {@linkcode STRATEGIC_MERGE_KEYS} merge item by item on their key, and the directives
 * `$patch: replace | delete`, `$retainKeys`, `$deleteFromPrimitiveList/<list>` and
 * `$setElementOrder/<list>` (ignored: order is kept) are honoured. Other lists are replaced.
 */
export function strategicMergePatch(target: unknown, patch: unknown): unknown {
  return smpValue(target, patch, undefined);
}

function smpValue(target: unknown, patch: unknown, field: string | undefined): unknown {
  if (Array.isArray(patch)) return smpList(Array.isArray(target) ? target : undefined, patch, field);
  if (!isJsonObject(patch)) return cloneJson(patch);
  return smpObject(isJsonObject(target) ? target : undefined, patch);
}

/** Merges a map; returns `undefined` when the patch says `$patch: delete`. */
function smpObject(target: Record<string, unknown> | undefined, patch: Record<string, unknown>): unknown {
  const directive = patch.$patch;
  if (directive === "delete") return undefined;
  if (directive === "replace") return withoutDirectives(patch);
  if (directive !== undefined) throw new PatchError(`unknown $patch directive ${JSON.stringify(directive)}`);
  const result: Record<string, unknown> = target ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith(SET_ELEMENT_ORDER) || key === "$retainKeys") continue;
    if (key.startsWith(DELETE_FROM_PRIMITIVE_LIST)) {
      const list = key.slice(DELETE_FROM_PRIMITIVE_LIST.length);
      if (!Array.isArray(value)) throw new PatchError(`${key} must be a list`);
      const current = result[list];
      if (Array.isArray(current)) {
        result[list] = current.filter((item) => !value.some((v) => jsonEqual(v, item)));
      }
      continue;
    }
    if (value === null) {
      delete result[key];
      continue;
    }
    const merged = smpValue(result[key], value, key);
    if (merged === undefined) delete result[key];
    else result[key] = merged;
  }
  const retain = patch.$retainKeys;
  if (Array.isArray(retain)) {
    for (const key of Object.keys(result)) if (!retain.includes(key)) delete result[key];
  }
  return result;
}

function smpList(target: unknown[] | undefined, patch: unknown[], field: string | undefined): unknown[] {
  if (patch.some((item) => isJsonObject(item) && item.$patch === "replace")) {
    return patch.filter((item) => !(isJsonObject(item) && item.$patch === "replace")).map(withoutDirectives);
  }
  if (field && STRATEGIC_SET_LISTS.has(field)) {
    const result = [...(target ?? [])];
    for (const item of patch) if (!result.some((r) => jsonEqual(r, item))) result.push(cloneJson(item));
    return result;
  }
  let key = field ? STRATEGIC_MERGE_KEYS[field] : undefined;
  if (
    field === "ports" && ![...(target ?? []), ...patch].some((p) => isJsonObject(p) && "containerPort" in p)
  ) {
    key = "port"; // a Service's ports
  }
  if (!key || !patch.every(isJsonObject)) return patch.map(withoutDirectives);
  const result = (target ?? []).map((item) => item);
  for (const item of patch as Record<string, unknown>[]) {
    const index = result.findIndex((r) => isJsonObject(r) && jsonEqual(r[key], item[key]));
    if (item.$patch === "delete") {
      if (index >= 0) result.splice(index, 1);
      continue;
    }
    const merged = smpObject(index >= 0 ? result[index] as Record<string, unknown> : undefined, item);
    if (index >= 0) result[index] = merged;
    else result.push(merged);
  }
  return result;
}

function withoutDirectives(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutDirectives);
  if (!isJsonObject(value)) return cloneJson(value);
  const result: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (key.startsWith("$")) continue;
    result[key] = withoutDirectives(item);
  }
  return result;
}

/** One RFC 6902 operation. */
export interface JsonPatchOp {
  op: string;
  path: string;
  value?: unknown;
  from?: string;
}

/** Splits a JSON pointer (RFC 6901) into unescaped tokens (`~1` is `/`, `~0` is `~`). */
export function parseJsonPointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) {
    throw new PatchError(`JSON pointer ${JSON.stringify(pointer)} must start with /`);
  }
  return pointer.slice(1).split("/").map((t) => t.replaceAll("~1", "/").replaceAll("~0", "~"));
}

/**
 * Applies a JSON patch (RFC 6902: `add`, `remove`, `replace`, `move`, `copy`, `test`). Throws
 * {@linkcode PatchError} when a `test` fails or a path does not exist; messages follow the Go
 * library the API server uses (github.com/evanphx/json-patch).
 */
export function jsonPatch(document: unknown, operations: unknown): unknown {
  if (!Array.isArray(operations)) throw new PatchError("a JSON patch must be a list of operations");
  let doc = cloneJson(document);
  for (const raw of operations) {
    if (!isJsonObject(raw) || typeof raw.op !== "string" || typeof raw.path !== "string") {
      throw new PatchError(`malformed JSON patch operation ${JSON.stringify(raw)}`);
    }
    const op = raw as unknown as JsonPatchOp;
    switch (op.op) {
      case "add":
        doc = addAt(doc, op.path, cloneJson(op.value ?? null), "add");
        break;
      case "remove":
        doc = removeAt(doc, op.path).doc;
        break;
      case "replace":
        doc = replaceAt(doc, op.path, cloneJson(op.value ?? null));
        break;
      case "move": {
        if (typeof op.from !== "string") throw new PatchError("move operation needs from");
        const removed = removeAt(doc, op.from);
        doc = addAt(removed.doc, op.path, removed.value, "move");
        break;
      }
      case "copy": {
        if (typeof op.from !== "string") throw new PatchError("copy operation needs from");
        const found = lookup(doc, parseJsonPointer(op.from));
        if (!found.exists) {
          throw new PatchError(`copy operation does not apply: doc is missing from path: ${op.from}`);
        }
        doc = addAt(doc, op.path, cloneJson(found.value), "copy");
        break;
      }
      case "test": {
        const found = lookup(doc, parseJsonPointer(op.path));
        const actual = found.exists ? found.value : null;
        if (!jsonEqual(actual, op.value ?? null)) {
          throw new PatchError(`testing value ${op.path} failed: test failed`);
        }
        break;
      }
      default:
        throw new PatchError(`Unexpected kind: ${op.op}`);
    }
  }
  return doc;
}

function lookup(doc: unknown, tokens: string[]): { exists: boolean; value?: unknown } {
  let current = doc;
  for (const token of tokens) {
    if (Array.isArray(current)) {
      const index = arrayIndex(token, current.length - 1);
      if (index === undefined) return { exists: false };
      current = current[index];
    } else if (isJsonObject(current) && Object.hasOwn(current, token)) {
      current = current[token];
    } else {
      return { exists: false };
    }
  }
  return { exists: true, value: current };
}

function arrayIndex(token: string, max: number): number | undefined {
  if (!/^(0|[1-9][0-9]*)$/.test(token)) return undefined;
  const index = Number(token);
  return index <= max ? index : undefined;
}

/** The container of the last token of `path`, which must exist. */
function parentOf(doc: unknown, path: string, verb: string): { parent: unknown; last: string } {
  const tokens = parseJsonPointer(path);
  const last = tokens.pop()!;
  const found = lookup(doc, tokens);
  if (!found.exists || (!Array.isArray(found.value) && !isJsonObject(found.value))) {
    throw new PatchError(`${verb} operation does not apply: doc is missing path: ${JSON.stringify(path)}`);
  }
  return { parent: found.value, last };
}

function addAt(doc: unknown, path: string, value: unknown, verb: string): unknown {
  if (path === "") return value;
  const { parent, last } = parentOf(doc, path, verb);
  if (Array.isArray(parent)) {
    const index = last === "-" ? parent.length : arrayIndex(last, parent.length);
    if (index === undefined) {
      throw new PatchError(`${verb} operation does not apply: index out of bounds: ${path}`);
    }
    parent.splice(index, 0, value);
  } else {
    (parent as Record<string, unknown>)[last] = value;
  }
  return doc;
}

function removeAt(doc: unknown, path: string): { doc: unknown; value: unknown } {
  if (path === "") return { doc: null, value: doc };
  const { parent, last } = parentOf(doc, path, "remove");
  if (Array.isArray(parent)) {
    const index = arrayIndex(last, parent.length - 1);
    if (index === undefined) {
      throw new PatchError(`remove operation does not apply: index out of bounds: ${path}`);
    }
    return { doc, value: parent.splice(index, 1)[0] };
  }
  const object = parent as Record<string, unknown>;
  if (!Object.hasOwn(object, last)) {
    throw new PatchError(`remove operation does not apply: doc is missing path: ${JSON.stringify(path)}`);
  }
  const value = object[last];
  delete object[last];
  return { doc, value };
}

function replaceAt(doc: unknown, path: string, value: unknown): unknown {
  if (path === "") return value;
  const { parent, last } = parentOf(doc, path, "replace");
  if (Array.isArray(parent)) {
    const index = arrayIndex(last, parent.length - 1);
    if (index === undefined) {
      throw new PatchError(`replace operation does not apply: index out of bounds: ${path}`);
    }
    parent[index] = value;
  } else {
    const object = parent as Record<string, unknown>;
    if (!Object.hasOwn(object, last)) {
      throw new PatchError(`replace operation does not apply: doc is missing key: ${path}`);
    }
    object[last] = value;
  }
  return doc;
}
