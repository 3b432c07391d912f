/**
 * The seam between a virtual pod's lifecycle and what runs it (virtual-kubelet's provider idea).
 *
 * The pod lifecycle controller (`topdown/`) owns everything about the virtual pod: whether it is
 * ours, the finalizer, fencing by UID, marking it with its twin, status flowing back, terminal
 * phases, deletion and completion, the audit. It knows the thing that runs the pod only through
 * this interface: a {@linkcode PodProvider} creates, reads and deletes *twins*, reports their
 * changes and events, cleans up after the binding, opens the streams the kubelet API proxy
 * serves (logs, exec, attach, port-forward) and measures the twins' resource usage. `worker/` implements it for a worker cluster; a test
 * implements it in memory.
 *
 * @module
 */

import type { Node, Pod, PodStatus } from "../../apis/core/v1/mod.ts";
import type { ObjectRef } from "../../toolkit/client/resource.ts";
import type {
  PortForwardStream,
  RemoteCommandOptions,
  RemoteCommandSession,
} from "../../toolkit/client/pod_client.ts";
import type { LogOptions } from "../../toolkit/client/resource_client.ts";
import type { RequiredCache } from "../../toolkit/runtime/controller.ts";

/** Identity of a pod: where it is and which incarnation (UID). */
export interface PodIdentity {
  namespace: string;
  name: string;
  uid: string;
}

/** A virtual pod's twin, as its provider sees it. */
export interface Twin {
  /** Where the twin runs (for a worker cluster: its namespace, name and UID there). */
  ref: PodIdentity;
  /** The virtual pod it runs for; a twin whose owner UID differs from the pod's is stale. */
  owner: PodIdentity;
  /** Its status as last observed. */
  status?: PodStatus;
  /** Whether its deletion has started. */
  deleting: boolean;
}

/** The result of {@linkcode PodProvider.createTwin}. */
export type CreateTwinResult =
  | {
    /** The twin exists now. */
    kind: "created";
    twin: Twin;
    /** Parts of the pod that could not be carried over, each reported as an Event. */
    dropped: string[];
  }
  | {
    /**
     * The backend will not run this pod as it is (e.g. the worker's Pod Security level): nothing
     * was created, and trying again without a change to the pod would not help.
     */
    kind: "refused";
    /** CamelCase reason, e.g. `PodSecurity`. */
    reason: string;
    /** What was refused and why, naming the fields. */
    message: string;
  }
  | {
    /** The pod must wait (like a kubelet waiting for a volume); nothing was created. */
    kind: "waiting";
    /** CamelCase reason of the Warning Event, e.g. `WaitingForVolume`. */
    reason: string;
    note: string;
    retryAfterMs: number;
  };

/** Something the backend reported about a twin. */
export interface TwinEvent {
  /** The virtual pod the twin runs for. */
  owner: PodIdentity;
  type: "Normal" | "Warning";
  reason: string;
  message: string;
  /** The part of the pod concerned, e.g. `spec.containers{app}`. */
  fieldPath?: string;
}

/**
 * A stream was asked of a twin that does not exist (any more), or that is not the twin of the
 * virtual pod that names it.
 */
export class TwinUnavailableError extends Error {
  override readonly name = "TwinUnavailableError";
}

/**
 * Streams of a twin, as the kubelet API serves them. Implementations check that the twin is the
 * one of `twin.owner` before they open anything (the proxier learns twins from annotations the
 * virtual pod's owner can edit), and throw {@linkcode TwinUnavailableError} otherwise.
 */
export interface TwinStreams {
  /** A container's log (follow, tail, since, timestamps, limits as in `LogOptions`). */
  containerLogs(twin: Twin, container: string, options: LogOptions): Promise<ReadableStream<Uint8Array>>;
  /** Runs a command in a container. */
  exec(
    twin: Twin,
    request: RemoteCommandOptions & { command: string[] },
    signal?: AbortSignal,
  ): Promise<RemoteCommandSession>;
  /** Attaches to a container's main process. */
  attach(twin: Twin, request: RemoteCommandOptions, signal?: AbortSignal): Promise<RemoteCommandSession>;
  /** Connects to a port of the twin. */
  portForward(twin: Twin, port: number, signal?: AbortSignal): Promise<PortForwardStream>;
}

/** One container's resource usage, as a kubelet's resource metrics report it. */
export interface ContainerUsage {
  name: string;
  /** When the container started, if known. */
  startTime?: Date;
  /** CPU core-seconds used since it started: a counter, it never decreases. */
  cpuSeconds: number;
  /** CPU cores in use over the last measurement window. */
  cpuCores: number;
  memoryWorkingSetBytes: number;
}

/** A virtual pod's resource usage, measured on its twin. */
export interface PodUsage {
  /** The virtual pod (not the twin). */
  pod: PodIdentity;
  startTime?: Date;
  /** When the backend measured it. */
  timestamp: Date;
  containers: ContainerUsage[];
}

/** The resource usage of one virtual node's pods. */
export interface NodeUsage {
  node: string;
  /** Pods with a measurement; a twin without one is left out rather than reported as idle. */
  pods: PodUsage[];
  /** CPU core-seconds used by the node's pods, ended ones included: a counter. */
  cpuSeconds: number;
  /** When the newest measurement was taken (undefined without any). */
  timestamp?: Date;
  /** Why usage is missing, when the backend could not be asked (e.g. no metrics API). */
  error?: string;
}

/** Resource usage of twins, for the kubelet's resource metrics (`kubectl top`, autoscalers). */
export interface TwinUsage {
  /** The usage of the pods on virtual node `vnode`, recent to the backend's resolution. */
  usageOn(vnode: string): Promise<NodeUsage>;
}

/** Runs the twins of one binding's virtual pods. */
export interface PodProvider extends TwinStreams, TwinUsage {
  /** Caches the provider answers from: the lifecycle controller starts once they have listed. */
  readonly caches: readonly RequiredCache[];
  /** Where twins run, for messages (e.g. `cluster w1`). */
  readonly location: string;

  /** Twins of the virtual pod `namespace/name`, of any UID (stale ones included), as cached. */
  twinsOf(podKey: string): Twin[];
  /** Every twin of the binding, as cached (for the audit and the gauges). */
  listTwins(): Twin[];
  /** Reads a twin from the backend, past any cache; undefined once it is gone. */
  getTwin(ref: PodIdentity): Promise<Twin | undefined>;
  /**
   * Creates the twin of `pod`, bound to the virtual node `node` (idempotent: an existing twin of
   * the same incarnation is returned), or says what the pod waits for.
   */
  createTwin(pod: Pod, node: Node): Promise<CreateTwinResult>;
  /**
   * Deletes a twin, fenced by its UID, with the virtual pod's grace period (idempotent). A deletion
   * nobody will finish (its node is gone) is finished.
   */
  deleteTwin(twin: Twin, gracePeriodSeconds?: number): Promise<void>;
  /** Virtual pods (`namespace/name`) whose twins changed, until the iteration is ended. */
  changes(): AsyncIterable<ObjectRef>;
  /** Events about twins, from now on, until `signal` aborts. */
  events(signal: AbortSignal): AsyncIterable<TwinEvent>;
  /**
   * The binding is being deleted: removes every twin and everything created for them; resolves to
   * true once nothing is left.
   */
  cleanup(): Promise<boolean>;
}
