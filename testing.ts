/**
 * Test helpers of Kubeocean's toolkit: an envtest-like environment of real local clusters (etcd,
 * kube-apiserver, controller-manager, scheduler and kwok on loopback) for end-to-end tests, and an
 * in-memory API server behind the client's `Transport` for fast unit tests of reconcilers.
 *
 * @module
 */

export * from "./toolkit/envtest/mod.ts";
export * from "./toolkit/testing/mod.ts";
