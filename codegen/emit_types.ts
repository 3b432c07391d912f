/**
 * Schema → TypeScript type expressions and declarations.
 *
 * Rules: `$ref` → the referenced type (imported from its module); a lone `allOf: [$ref]` is the
 * reference itself; `oneOf`/`anyOf` → a union; int-or-string (`x-kubernetes-int-or-string` or
 * `format: int-or-string`) → `number | string`; `enum` → a union of literals; arrays → `T[]`;
 * `additionalProperties` → `Record<string, T>`; objects with properties → inline object types
 * (CRDs name them first, see crd.ts); `x-kubernetes-preserve-unknown-fields` without properties →
 * JSON values; `x-kubernetes-embedded-resource` → adds apiVersion/kind/metadata; `nullable` → `| null`.
 * Required properties are non-optional. Descriptions become JSDoc, with list/map semantics noted.
 *
 * @module
 */

import { jsdoc, propertyKey } from "./naming.ts";
import type { Schema } from "./schema.ts";

/** Resolves a `$ref` to a type name usable in the current module (recording imports as needed). */
export type RefResolver = (ref: string) => string;

/** What the emitter needs from its surroundings. */
export interface EmitContext {
  resolveRef: RefResolver;
  /** Type name of `ObjectMeta` in the current module (for embedded resources). */
  objectMeta: () => string;
  /** Type name of the JSON value type in the current module. */
  jsonValue: () => string;
}

function literal(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}

function wrap(type: string): string {
  return /[|&]/.test(type) && !/^\{[\s\S]*\}$/.test(type) ? `(${type})` : type;
}

function isIntOrString(schema: Schema): boolean {
  return schema["x-kubernetes-int-or-string"] === true || schema.format === "int-or-string";
}

/** The TS type of `schema`, indented for nesting at `indent`. */
export function typeOf(schema: Schema, ctx: EmitContext, indent = ""): string {
  const base = baseTypeOf(schema, ctx, indent);
  return schema.nullable && base !== "null" ? `${base} | null` : base;
}

function baseTypeOf(schema: Schema, ctx: EmitContext, indent: string): string {
  if (schema.$ref) return ctx.resolveRef(schema.$ref);
  if (schema.allOf?.length === 1 && !schema.properties) return typeOf(schema.allOf[0], ctx, indent);
  if (isIntOrString(schema)) return "number | string";
  if (schema.enum?.length) {
    const values = schema.enum.filter((v) => v !== null);
    const union = values.map(literal).join(" | ") || "never";
    return schema.enum.includes(null) ? `${union} | null` : union;
  }
  const variants = schema.oneOf ?? schema.anyOf;
  if (variants?.length && !schema.properties && !schema.type) {
    const members = [...new Set(variants.map((v) => typeOf(v, ctx, indent)))];
    return members.join(" | ");
  }
  switch (schema.type) {
    case "string":
      return "string";
    case "integer":
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "array":
      return `${wrap(schema.items ? typeOf(schema.items, ctx, indent) : ctx.jsonValue())}[]`;
    case "object":
    case undefined:
      return objectTypeOf(schema, ctx, indent);
  }
  return ctx.jsonValue();
}

function objectTypeOf(schema: Schema, ctx: EmitContext, indent: string): string {
  const props = schema.properties ?? {};
  const hasProps = Object.keys(props).length > 0;
  const embedded = schema["x-kubernetes-embedded-resource"] === true;
  if (!hasProps && !embedded) {
    if (schema.additionalProperties && typeof schema.additionalProperties === "object") {
      return `Record<string, ${typeOf(schema.additionalProperties, ctx, indent)}>`;
    }
    if (schema.type === undefined && !schema["x-kubernetes-preserve-unknown-fields"]) return ctx.jsonValue();
    if (schema.type === undefined) return ctx.jsonValue();
    return `Record<string, ${ctx.jsonValue()}>`;
  }
  return `{\n${propertiesOf(schema, ctx, `${indent}  `)}${indent}}`;
}

/** The property lines of an object schema (used for interfaces and inline object types). */
export function propertiesOf(schema: Schema, ctx: EmitContext, indent: string): string {
  const required = new Set(schema.required ?? []);
  const props = { ...schema.properties };
  let out = "";
  if (schema["x-kubernetes-embedded-resource"]) {
    props.apiVersion ??= { type: "string", description: "APIVersion of the embedded resource." };
    props.kind ??= { type: "string", description: "Kind of the embedded resource." };
    props.metadata ??= { description: "Metadata of the embedded resource.", $ref: "#embedded-object-meta" };
  }
  for (const [name, prop] of Object.entries(props)) {
    const type = prop.$ref === "#embedded-object-meta" ? ctx.objectMeta() : typeOf(prop, ctx, indent);
    out += jsdoc(prop.description, indent, annotations(prop));
    out += `${indent}${propertyKey(name)}${required.has(name) ? "" : "?"}: ${type};\n`;
  }
  if (schema.additionalProperties && Object.keys(props).length > 0) {
    // Declared properties plus free-form ones: the index signature must admit every property type.
    out += `${indent}[key: string]: unknown;\n`;
  } else if (schema["x-kubernetes-preserve-unknown-fields"] && Object.keys(props).length > 0) {
    out +=
      `${indent}/** Fields the schema does not declare are kept (x-kubernetes-preserve-unknown-fields). */\n`;
    out += `${indent}[key: string]: unknown;\n`;
  }
  return out;
}

/** JSDoc tags describing Kubernetes list/map semantics and formats. */
export function annotations(schema: Schema): string[] {
  const tags: string[] = [];
  const listType = schema["x-kubernetes-list-type"];
  if (listType) tags.push(`@listType ${listType}`);
  const keys = schema["x-kubernetes-list-map-keys"];
  if (keys?.length) tags.push(`@listMapKeys ${keys.join(", ")}`);
  const mapType = schema["x-kubernetes-map-type"];
  if (mapType) tags.push(`@mapType ${mapType}`);
  if (schema.format && !["int32", "int64", "int-or-string"].includes(schema.format)) {
    tags.push(`@format ${schema.format}`);
  }
  if (schema.default !== undefined && typeof schema.default !== "object") {
    tags.push(`@default ${JSON.stringify(schema.default)}`);
  }
  return tags;
}

/** A declaration for a named schema: an interface for objects with properties, else a type alias. */
export function declaration(name: string, schema: Schema, ctx: EmitContext): string {
  const doc = jsdoc(schema.description, "", annotations(schema));
  const isObject = (schema.type === "object" || (!schema.type && schema.properties)) &&
    (Object.keys(schema.properties ?? {}).length > 0 || schema["x-kubernetes-embedded-resource"]);
  if (isObject && !schema.nullable) {
    return `${doc}export interface ${name} {\n${propertiesOf(schema, ctx, "  ")}}\n`;
  }
  return `${doc}export type ${name} = ${typeOf(schema, ctx)};\n`;
}
