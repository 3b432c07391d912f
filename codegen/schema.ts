/**
 * The subset of OpenAPI v3 / CRD structural schema that the generator understands.
 *
 * @module
 */

/** One schema (OpenAPI v3 / `JSONSchemaProps`). */
export interface Schema {
  $ref?: string;
  type?: "object" | "array" | "string" | "integer" | "number" | "boolean";
  format?: string;
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: Schema | boolean;
  items?: Schema;
  enum?: unknown[];
  nullable?: boolean;
  allOf?: Schema[];
  oneOf?: Schema[];
  anyOf?: Schema[];
  default?: unknown;
  "x-kubernetes-int-or-string"?: boolean;
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  "x-kubernetes-embedded-resource"?: boolean;
  "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  "x-kubernetes-list-map-keys"?: string[];
  "x-kubernetes-map-type"?: "atomic" | "granular";
  "x-kubernetes-group-version-kind"?: GroupVersionKind[];
  [extension: `x-${string}`]: unknown;
}

/** A group/version/kind triple. */
export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

/** An OpenAPI v3 operation (the fields used to find resources). */
export interface Operation {
  "x-kubernetes-action"?: string;
  "x-kubernetes-group-version-kind"?: GroupVersionKind;
  responses?: Record<string, { content?: Record<string, { schema?: Schema }> }>;
}

/** An OpenAPI v3 document as served at `/openapi/v3/<group-version>`. */
export interface OpenApiDocument {
  openapi?: string;
  paths?: Record<string, Record<string, Operation | unknown>>;
  components?: { schemas?: Record<string, Schema> };
}
