/**
 * Helpers for unit tests: {@linkcode MemoryApiServer}, an in-memory Kubernetes API server behind
 * the client's `Transport`. End-to-end tests use real API servers from `toolkit/envtest`.
 *
 * @module
 */

export * from "./memory_transport.ts";
export { PatchError } from "./patch.ts";
export { SelectorError } from "./selectors.ts";
