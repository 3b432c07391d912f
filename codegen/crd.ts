/**
 * Builds the model of CustomResourceDefinitions (`apiextensions.k8s.io/v1`, every served version).
 * Nested object schemas get names derived from their path: `Widget` → `WidgetSpec` →
 * `WidgetSpecTemplate`; items of arrays of objects end in `Item`, values of maps of objects in
 * `Value`. `metadata` of the root is the shared `ObjectMeta`, and a `conditions` array whose items
 * have exactly the shape of `metav1.Condition` (see {@linkcode isMetaConditions}) is `Condition[]`
 * of the shared `meta/v1` types rather than an item interface of its own.
 *
 * @module
 */

import { parseAllDocuments } from "yaml";
import { declare, type Model, moduleAt } from "./model.ts";
import { moduleDir, pascalCase, typeName } from "./naming.ts";
import type { Schema } from "./schema.ts";

/** The reference used for `ObjectMeta`, resolved by the emitter to the meta/v1 module. */
export const OBJECT_META_REF = "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
/** The reference used for `Condition`, resolved by the emitter to the meta/v1 module. */
export const CONDITION_REF = "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Condition";

/** Property → accepted `type` of the fields of `metav1.Condition`; all but `observedGeneration` are required. */
const CONDITION_FIELDS: Record<string, Schema["type"][]> = {
  type: ["string"],
  status: ["string"],
  lastTransitionTime: ["string"],
  reason: ["string"],
  message: ["string"],
  observedGeneration: ["integer", "number"],
};
const CONDITION_REQUIRED = ["type", "status", "lastTransitionTime", "reason", "message"];

/**
 * Whether `schema` is an array of `metav1.Condition`: items with the string fields `type`,
 * `status`, `lastTransitionTime`, `reason` and `message` (all required) and optionally an integer
 * `observedGeneration` (not required), and nothing else. Validations (enums, lengths, patterns) may
 * be tighter than `Condition`'s; the shared type is used anyway.
 */
export function isMetaConditions(schema: Schema): boolean {
  const items = schema.items;
  if (schema.type !== "array" || !items || items.$ref || items.nullable) return false;
  if (items.type !== undefined && items.type !== "object") return false;
  if (items.additionalProperties || items["x-kubernetes-preserve-unknown-fields"]) return false;
  const properties = Object.entries(items.properties ?? {});
  const required = new Set(items.required ?? []);
  return CONDITION_REQUIRED.every((name) => required.has(name) && items.properties?.[name]) &&
    !required.has("observedGeneration") &&
    [...required].every((name) => Object.hasOwn(CONDITION_FIELDS, name)) &&
    properties.every(([name, prop]) =>
      Object.hasOwn(CONDITION_FIELDS, name) && CONDITION_FIELDS[name].includes(prop.type) && !prop.$ref &&
      !prop.nullable
    );
}

/** The fields of a CRD the generator reads. */
export interface CustomResourceDefinition {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string };
  spec: {
    group: string;
    names: { kind: string; plural: string; singular?: string; listKind?: string; shortNames?: string[] };
    scope: "Namespaced" | "Cluster";
    versions: {
      name: string;
      served?: boolean;
      storage?: boolean;
      schema?: { openAPIV3Schema?: Schema };
      subresources?: { status?: unknown; scale?: unknown };
    }[];
  };
}

/** Reads every CRD from YAML or JSON text (multi-document YAML allowed; other kinds ignored). */
export function parseCrds(text: string, source: string): CustomResourceDefinition[] {
  const crds: CustomResourceDefinition[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`${source}: invalid YAML: ${doc.errors[0].message}`);
    const value = doc.toJS() as CustomResourceDefinition | null;
    if (!value || value.kind !== "CustomResourceDefinition") continue;
    if (value.apiVersion !== "apiextensions.k8s.io/v1") {
      throw new Error(
        `${source}: CRD ${value.metadata?.name} is ${value.apiVersion}; only apiextensions.k8s.io/v1 is supported`,
      );
    }
    if (!value.spec?.group || !value.spec.names?.kind || !value.spec.names.plural) {
      throw new Error(
        `${source}: CRD ${value.metadata?.name ?? "(unnamed)"} lacks spec.group or spec.names.kind/plural`,
      );
    }
    crds.push(value);
  }
  return crds;
}

/** Adds the types and resources of `crds` to `model`. */
export function addCrds(model: Model, crds: CustomResourceDefinition[], source: string): void {
  for (const crd of crds) {
    for (const version of crd.spec.versions) {
      if (version.served === false) continue;
      const root = version.schema?.openAPIV3Schema;
      if (!root) {
        throw new Error(
          `${source}: CRD ${crd.metadata?.name} version ${version.name} has no openAPIV3Schema`,
        );
      }
      const dir = moduleDir(crd.spec.group, version.name);
      const module = moduleAt(model, dir, crd.spec.group, version.name);
      if (!module.sources.includes(source)) module.sources.push(source);
      const kindName = typeName(crd.spec.names.kind);
      const rootSchema: Schema = {
        ...root,
        properties: {
          apiVersion: {
            type: "string",
            description: "APIVersion of this object, e.g. " + `"${crd.spec.group}/${version.name}".`,
          },
          kind: { type: "string", description: `Kind of this object: "${crd.spec.names.kind}".` },
          metadata: { $ref: OBJECT_META_REF, description: "Standard object metadata." },
          ...Object.fromEntries(
            Object.entries(root.properties ?? {}).filter(([k]) =>
              !["apiVersion", "kind", "metadata"].includes(k)
            ),
          ),
        },
      };
      declareNamed(model, module, kindName, rootSchema);
      module.resources.push({
        group: crd.spec.group,
        version: version.name,
        kind: crd.spec.names.kind,
        plural: crd.spec.names.plural,
        namespaced: crd.spec.scope === "Namespaced",
        subresources: Object.keys(version.subresources ?? {}).sort(),
        verbs: ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        typeName: kindName,
      });
      module.resources.sort((a, b) => a.plural.localeCompare(b.plural));
    }
  }
}

function localRef(dir: string, name: string): string {
  return `#local/${dir}/${name}`;
}

function isNamedObject(schema: Schema): boolean {
  return (schema.type === "object" || schema.type === undefined) &&
    Object.keys(schema.properties ?? {}).length > 0;
}

/** Declares `name` with nested objects hoisted into their own named declarations. */
function declareNamed(model: Model, module: ReturnType<typeof moduleAt>, name: string, schema: Schema): void {
  const hoist = (child: Schema, childName: string): Schema => {
    if (!isNamedObject(child)) return nested(child, childName);
    const uniqueName = unique(module.types, typeName(childName));
    declareNamed(model, module, uniqueName, child);
    const ref: Schema = { $ref: localRef(module.dir, uniqueName) };
    for (
      const key of [
        "description",
        "nullable",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
      ] as const
    ) {
      if (child[key] !== undefined) (ref as Record<string, unknown>)[key] = child[key];
    }
    return ref;
  };
  const nested = (child: Schema, childName: string): Schema => {
    const out: Schema = { ...child };
    if (child.items) out.items = hoist(child.items, `${childName}Item`);
    if (child.additionalProperties && typeof child.additionalProperties === "object") {
      out.additionalProperties = hoist(child.additionalProperties, `${childName}Value`);
    }
    return out;
  };
  const declared: Schema = { ...nested(schema, name) };
  if (schema.properties) {
    declared.properties = Object.fromEntries(
      Object.entries(schema.properties).map(([key, prop]) => {
        if (prop.$ref) return [key, prop];
        if (key === "conditions" && isMetaConditions(prop)) {
          return [key, { ...prop, items: { $ref: CONDITION_REF } }];
        }
        return [key, hoist(prop, `${name}${pascalCase(key)}`)];
      }),
    );
  }
  // Reserve the name before recursing into children would be ideal; children use longer names, so clashes are rare.
  declare(model, module, name, declared, localRef(module.dir, name));
}

function unique(existing: Map<string, unknown>, name: string): string {
  if (!existing.has(name)) return name;
  for (let i = 2;; i++) if (!existing.has(`${name}${i}`)) return `${name}${i}`;
}
