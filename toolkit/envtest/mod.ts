/**
 * An envtest-like environment: real etcd, kube-apiserver, kube-controller-manager, kube-scheduler
 * and kwok processes on loopback, built once from the Go module proxy and cached.
 *
 * @module
 */

export {
  type BinaryVersions,
  cacheKey,
  type ControlPlaneBinaries,
  DEFAULT_VERSIONS,
  defaultCacheRoot,
  ensureBinaries,
  type EnsureBinariesOptions,
} from "./binaries.ts";
export {
  Cluster,
  type ClusterOptions,
  type ClusterPorts,
  type ClusterStartContext,
  type ClusterState,
  type KubeletBehaviour,
  type NodeTemplate,
} from "./cluster.ts";
export { Environment, type EnvironmentOptions, type EnvironmentState, readState } from "./environment.ts";
export type { ClusterPki, KeyPair } from "./pki.ts";
export type { ProcessRecord } from "./process.ts";
export { envTest, type EnvTestOptions, eventually, withSlowLists } from "./testing.ts";
