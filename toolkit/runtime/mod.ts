/**
 * The controller runtime: watcher → reflector/store → controller as composable async streams,
 * with a work queue, leader election, events, metrics, health probes and structured logs.
 *
 * @module
 */

export {
  type Backoff,
  defaultBackoff,
  ExponentialBackoff,
  ResetTimerBackoff,
  withBackoff,
} from "./backoff.ts";
export { Channel, merge } from "./channel.ts";
export { type Clock, systemClock, TestClock } from "./clock.ts";
export {
  Action,
  Controller,
  ControllerBuilder,
  type ControllerOptions,
  defaultErrorPolicy,
  type ErrorPolicy,
  type MapFunc,
  type ReconcileContext,
  type ReconcileOutcome,
  type Reconciler,
  type RequiredCache,
  type Runnable,
} from "./controller.ts";
export {
  EVENT_DESCRIPTOR,
  type EventInput,
  EventRecorder,
  type EventRecorderOptions,
  type ObjectReference,
  referenceTo,
} from "./events.ts";
export {
  addFinalizer,
  type FinalizerHandlers,
  hasFinalizer,
  removeFinalizer,
  withFinalizer,
} from "./finalizer.ts";
export { type HealthCheck, HealthChecks } from "./health.ts";
export {
  Informer,
  InformerFactory,
  type InformerFactoryOptions,
  type InformerOptions,
  stripManagedFields,
} from "./informer.ts";
export {
  type LeaderElectionOptions,
  LeaderElector,
  type Lease,
  LEASE_DESCRIPTOR,
} from "./leader_election.ts";
export { type LogFormat, Logger, type LoggerOptions, type LogLevel, silentLogger } from "./log.ts";
export { type ListenAddress, Manager, type ManagerLeaderElection, type ManagerOptions } from "./manager.ts";
export { Registry, RuntimeMetrics, serveMetrics } from "./metrics.ts";
export { PendingWrites } from "./pending_writes.ts";
export {
  and,
  annotationsChanged,
  type ChangeEvent,
  generationChanged,
  hasLabels,
  labelsChanged,
  not,
  or,
  type Predicate,
  resourceVersionChanged,
} from "./predicates.ts";
export {
  BucketRateLimiter,
  defaultRateLimiter,
  ItemExponentialRateLimiter,
  MaxOfRateLimiter,
  type QueueObserver,
  type RateLimiter,
  WorkQueue,
} from "./queue.ts";
export {
  type IndexFunc,
  LABEL_INDEX,
  NAMESPACE_INDEX,
  OWNER_INDEX,
  type ReadStore,
  type ReflectedEvent,
  reflector,
  Store,
} from "./store.ts";
export {
  backoffWatcher,
  isWatcherError,
  watcher,
  type WatcherEvent,
  type WatcherOptions,
} from "./watcher.ts";
