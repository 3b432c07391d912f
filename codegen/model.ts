/**
 * The intermediate model: one module per group/version with its named types and resources.
 *
 * @module
 */

import type { Schema } from "./schema.ts";

/** A named type to declare in a module. */
export interface TypeDecl {
  name: string;
  schema: Schema;
}

/** A REST resource served in a group/version. */
export interface ResourceInfo {
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  subresources: string[];
  verbs: string[];
  /** Type name of the kind in its module (may differ from `kind` when escaped). */
  typeName: string;
}

/** One generated module: `apis/<group|core>/<version>/`. */
export interface ModuleModel {
  /** `core/v1`, `apps/v1`, `kubeocean.io/v1beta1`, `meta/v1`. */
  dir: string;
  group: string;
  version: string;
  /** Where the definitions came from, for the generated header. */
  sources: string[];
  types: Map<string, TypeDecl>;
  resources: ResourceInfo[];
}

/** Where a referenced schema is declared. */
export interface TypeLocation {
  dir: string;
  name: string;
}

/** All modules plus the global `$ref` → location map. */
export interface Model {
  modules: Map<string, ModuleModel>;
  refs: Map<string, TypeLocation>;
}

/** An empty model. */
export function emptyModel(): Model {
  return { modules: new Map(), refs: new Map() };
}

/** The module at `dir`, created on first use. */
export function moduleAt(model: Model, dir: string, group: string, version: string): ModuleModel {
  let module = model.modules.get(dir);
  if (!module) {
    module = { dir, group, version, sources: [], types: new Map(), resources: [] };
    model.modules.set(dir, module);
  }
  return module;
}

/** Declares `name` in `module` and registers `ref` to point at it; a clash of different schemas is an error. */
export function declare(model: Model, module: ModuleModel, name: string, schema: Schema, ref?: string): void {
  const existing = module.types.get(name);
  if (existing && JSON.stringify(existing.schema) !== JSON.stringify(schema)) {
    throw new Error(`type ${name} is declared twice in ${module.dir} with different schemas`);
  }
  module.types.set(name, { name, schema });
  if (ref) model.refs.set(ref, { dir: module.dir, name });
}
