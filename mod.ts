/**
 * Kubeocean's public toolkit API: a Deno-native Kubernetes client, controller runtime, typed API
 * helpers and an envtest-like environment of real local clusters.
 *
 * @module
 */

export * from "./toolkit/client/mod.ts";
export * from "./toolkit/runtime/mod.ts";
export * from "./toolkit/envtest/mod.ts";
