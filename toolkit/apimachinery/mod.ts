/**
 * API machinery values the typed APIs use: resource quantities (`"500m"`, `"16Gi"`), the text
 * forms of `Time` and `MicroTime`, and JSON value types.
 *
 * @module
 */

export { parseQuantity, Quantity, type QuantityFormat, sumQuantities } from "./quantity.ts";
export { microTime, rfc3339 } from "./time.ts";
export type { JsonObject, JsonValue } from "./json.ts";
