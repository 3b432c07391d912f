/**
 * The toolkit's Kubernetes client: configuration (kubeconfig, exec plugins, in-cluster), the
 * `fetch` transport, typed errors, the generic resource client and raw watches. Generated API modules
 * (`apis/`) import this module only, not the package root.
 *
 * @module
 */

export { KubeClient } from "./client.ts";
export { loadKubeconfigText, UntrustedKubeconfigError } from "./kubeconfig.ts";
export {
  type ExecClusterInfo,
  type ExecConfig,
  ExecCredentials,
  StaticCredentials,
  TokenFileCredentials,
} from "./credentials.ts";
export {
  type ClientConfig,
  ConfigError,
  type Credentials,
  type CredentialSource,
  loadConfig,
  type LoadConfigOptions,
  loadInClusterConfig,
  loadKubeconfig,
} from "./config.ts";
export {
  ApiError,
  ignoreNotFound,
  isAlreadyExists,
  isConflict,
  isForbidden,
  isGone,
  isInvalid,
  isNotFound,
  isTransient,
  isUnauthorized,
  type Status,
  TerminalError,
} from "./errors.ts";
export {
  apiVersionOf,
  collectionPath,
  groupVersionPath,
  type KubeObject,
  type ListMeta,
  objectKey,
  type ObjectList,
  type ObjectMeta,
  objectPath,
  type ObjectRef,
  type OwnerReference,
  parseObjectKey,
  refOf,
  type ResourceDescriptor,
} from "./resource.ts";
export {
  type DeleteOptions,
  type JsonPatchOperation,
  type ListOptions,
  type LogOptions,
  type MergePatch,
  type PatchOptions,
  type PatchType,
  ResourceClient,
  type Scale,
  type TokenRequest,
  type WatchOptions,
  type WriteOptions,
} from "./resource_client.ts";
export {
  type ExecOptions,
  type ExecResult,
  PodClient,
  type PortForwardStream,
  type RemoteCommandOptions,
  type RemoteCommandSession,
} from "./pod_client.ts";
export { TokenBucket } from "./rate_limiter.ts";
export {
  type HttpMethod,
  HttpTransport,
  type QueryValue,
  type RequestObserver,
  type RequestOptions,
  type Transport,
  type TransportOptions,
} from "./transport.ts";
export { INITIAL_EVENTS_END_ANNOTATION, type WatchEvent, watchEvents, type WatchEventType } from "./watch.ts";
