/**
 * An envtest-like environment: real etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
 * kwok and (on request) metrics-server processes on loopback, built once from the Go module proxy
 * and cached.
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
  ensureGoTool,
  ensureMetricsServer,
  type GoTool,
  goToolCacheKey,
  metricsServerCacheKey,
  metricsServerTool,
} from "./binaries.ts";
export {
  Cluster,
  type ClusterOptions,
  type ClusterPorts,
  type ClusterStartContext,
  type ClusterState,
  type KubeletBehaviour,
  kwokMetricsDocuments,
  METRICS_SERVER_RESOLUTION,
  METRICS_SERVER_SERVICE,
  type NodeTemplate,
  RESOURCE_METRICS_PATH_ANNOTATION,
  USAGE_CPU_ANNOTATION,
  USAGE_MEMORY_ANNOTATION,
} from "./cluster.ts";
export { Environment, type EnvironmentOptions, type EnvironmentState, readState } from "./environment.ts";
export type { AggregationPki, ClusterPki, KeyPair } from "./pki.ts";
export type { ProcessRecord } from "./process.ts";
export { envTest, type EnvTestOptions, eventually, withSlowLists } from "./testing.ts";
