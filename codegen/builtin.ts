/**
 * Builds the model of Kubernetes' built-in API groups from the OpenAPI v3 documents the API server
 * serves at `/openapi/v3/<group-version>` (pinned under `codegen/openapi/<version>/`).
 *
 * Schemas are placed by package: `io.k8s.apimachinery.*` → `meta/v1`; `io.k8s.api.<pkg>.<v>.*`
 * (and the apiextensions / aggregator packages) → the group their kinds declare, e.g.
 * `io.k8s.api.coordination.v1.Lease` → `coordination.k8s.io/v1`.
 *
 * @module
 */

import { declare, type Model, moduleAt, type ResourceInfo } from "./model.ts";
import { moduleDir, typeName } from "./naming.ts";
import type { OpenApiDocument, Operation, Schema } from "./schema.ts";

const REF_PREFIX = "#/components/schemas/";

/** Package of a schema id: `io.k8s.api.core.v1.Pod` → `io.k8s.api.core.v1`. */
function packageOf(id: string): string {
  return id.slice(0, id.lastIndexOf("."));
}

/** Adds every schema and resource of `documents` (file name → document) to `model`. */
export function addBuiltinDocuments(model: Model, documents: Map<string, OpenApiDocument>): void {
  const schemas = new Map<string, Schema>();
  const sourceOf = new Map<string, string>();
  for (const [file, doc] of [...documents].sort(([a], [b]) => a.localeCompare(b))) {
    for (const [id, schema] of Object.entries(doc.components?.schemas ?? {})) {
      if (!schemas.has(id)) {
        schemas.set(id, schema);
        sourceOf.set(id, file);
      }
    }
  }
  // Group of each package, from the kinds it declares.
  const groupOfPackage = new Map<string, { group: string; version: string }>();
  for (const [id, schema] of schemas) {
    const pkg = packageOf(id);
    if (pkg.startsWith("io.k8s.apimachinery.")) continue;
    for (const gvk of schema["x-kubernetes-group-version-kind"] ?? []) {
      if (!groupOfPackage.has(pkg)) groupOfPackage.set(pkg, { group: gvk.group, version: gvk.version });
    }
  }
  for (const [id, schema] of [...schemas].sort(([a], [b]) => a.localeCompare(b))) {
    const pkg = packageOf(id);
    const location = pkg.startsWith("io.k8s.apimachinery.")
      ? { group: "meta", version: "v1", dir: "meta/v1" }
      : (() => {
        const gv = groupOfPackage.get(pkg);
        if (!gv) throw new Error(`cannot tell the API group of schema package ${pkg} (${id})`);
        return { ...gv, dir: moduleDir(gv.group, gv.version) };
      })();
    const module = moduleAt(model, location.dir, location.group, location.version);
    const source = sourceOf.get(id)!;
    if (!module.sources.includes(source)) module.sources.push(source);
    const name = typeName(id.slice(id.lastIndexOf(".") + 1));
    declare(model, module, name, schema, `${REF_PREFIX}${id}`);
  }
  for (const doc of documents.values()) addResources(model, doc);
  for (const module of model.modules.values()) {
    module.sources.sort();
    module.resources.sort((a, b) => a.plural.localeCompare(b.plural));
  }
}

const ACTION_VERBS: Record<string, string> = {
  get: "get",
  list: "list",
  watch: "watch",
  watchlist: "watch",
  post: "create",
  put: "update",
  patch: "patch",
  delete: "delete",
  deletecollection: "deletecollection",
};

/** Finds the resources of one document from its paths' `x-kubernetes-*` extensions. */
function addResources(model: Model, doc: OpenApiDocument): void {
  const found = new Map<string, ResourceInfo & { kindRef?: string }>();
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    const match = /^\/(?:api\/(v[^/]+)|apis\/([^/]+)\/([^/]+))\/(.+)$/.exec(path);
    if (!match) continue;
    const group = match[2] ?? "";
    const version = match[1] ?? match[3];
    let tokens = match[4].split("/");
    if (tokens[0] === "watch") tokens = tokens.slice(1);
    let namespaced = false;
    if (tokens[0] === "namespaces" && tokens[1] === "{namespace}" && tokens.length > 2) {
      namespaced = true;
      tokens = tokens.slice(2);
    }
    const plural = tokens[0];
    const subresource = tokens[1] === "{name}" && tokens[2] ? tokens[2] : undefined;
    for (const [method, value] of Object.entries(item)) {
      if (method === "parameters") continue;
      const op = value as Operation;
      const action = op["x-kubernetes-action"];
      const gvk = op["x-kubernetes-group-version-kind"];
      if (!action || !gvk) continue;
      const key = `${group}/${version}/${plural}`;
      let resource = found.get(key);
      if (!resource) {
        resource = {
          group,
          version,
          kind: "",
          plural,
          namespaced,
          subresources: [],
          verbs: [],
          typeName: "",
        };
        found.set(key, resource);
      }
      resource.namespaced ||= namespaced;
      if (subresource) {
        if (!resource.subresources.includes(subresource)) resource.subresources.push(subresource);
        continue;
      }
      resource.kind ||= gvk.kind;
      const verb = ACTION_VERBS[action];
      if (verb && !resource.verbs.includes(verb)) resource.verbs.push(verb);
    }
  }
  for (const resource of found.values()) {
    if (!resource.kind || resource.verbs.length === 0) continue; // subresource-only paths
    const dir = moduleDir(resource.group, resource.version);
    const module = model.modules.get(dir);
    if (!module) continue;
    const name = typeName(resource.kind);
    if (!module.types.has(name)) continue;
    if (module.resources.some((r) => r.plural === resource.plural)) continue;
    resource.typeName = name;
    resource.subresources.sort();
    resource.verbs.sort();
    module.resources.push(resource);
  }
}
