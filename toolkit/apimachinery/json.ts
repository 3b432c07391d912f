/**
 * JSON value types, used by generated code for free-form fields
 * (`x-kubernetes-preserve-unknown-fields`, `RawExtension`, `JSON`).
 *
 * @module
 */

/** Any JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };
