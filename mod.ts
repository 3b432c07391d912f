/**
 * Kubeocean's public toolkit API: a Deno-native Kubernetes client, the controller runtime
 * (informers, controllers, a Manager, leader election, events, metrics) and API machinery values.
 * Test helpers — real local clusters and an in-memory API server — are in `testing.ts`, so that
 * production code never loads them.
 *
 * @module
 */

export * from "./toolkit/client/mod.ts";
export * from "./toolkit/runtime/mod.ts";
export * from "./toolkit/apimachinery/mod.ts";
export { sha256Hex, SingleFlight, sleep } from "./toolkit/util/mod.ts";
