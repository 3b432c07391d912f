/**
 * What every syncer controller shares: the two clusters' clients and informers, the binding,
 * the clock, the logger, metrics and configuration.
 *
 * @module
 */

import { CoreV1Api, type Node, type Pod } from "../../apis/core/v1/mod.ts";
import {
  type ClusterBinding,
  KubeoceanIoV1beta1Api,
  type ResourceLeasingPolicy,
} from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { StorageK8sIoV1Api } from "../../apis/storage.k8s.io/v1/mod.ts";
import { CoordinationK8sIoV1Api } from "../../apis/coordination.k8s.io/v1/mod.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import type { KubeObject } from "../../toolkit/client/resource.ts";
import type { ResourceClient } from "../../toolkit/client/resource_client.ts";
import type { EventRecorder } from "../../toolkit/runtime/events.ts";
import { type Informer, InformerFactory } from "../../toolkit/runtime/informer.ts";
import type { Logger } from "../../toolkit/runtime/log.ts";
import type { RuntimeMetrics } from "../../toolkit/runtime/metrics.ts";
import type { Transport } from "../../toolkit/client/transport.ts";
import type { SyncerMetrics } from "./metrics.ts";
import {
  ANNOTATION_DEPENDENCIES,
  ANNOTATION_VIRTUAL_POD_NAME,
  ANNOTATION_VIRTUAL_POD_NAMESPACE,
} from "../common/names.ts";
import { dependencyKeys } from "./topdown/transform.ts";

/** A clock; tests inject one that can jump. */
export interface Clock {
  now(): Date;
}

/** The real clock. */
export const systemClock: Clock = { now: () => new Date() };

/** Where virtual nodes point the computing cluster for kubelet API calls (the proxier). */
export interface ProxierEndpoint {
  address: string;
  port: number;
}

/** Settings of a syncer. */
export interface SyncerConfig {
  bindingName: string;
  /** The binding's clusterID and mount namespace, fixed for the life of the syncer. */
  clusterID: string;
  mountNamespace: string;
  proxier: ProxierEndpoint;
  /** Full resync period (default 5 minutes). */
  resyncMs: number;
  /** Node lease duration in seconds (default 40) and renew interval in ms (default 10 s). */
  leaseDurationSeconds: number;
  leaseRenewMs: number;
}

/** Index of physical and virtual pods by `spec.nodeName`. */
export const BY_NODE = "byNode";

/**
 * Index of pods by the virtual objects they use (`Kind/ns/name`): virtual pods by their
 * references, twins by their recorded dependencies annotation.
 */
export const BY_DEPENDENCY = "byDependency";

/** Index of twins by their virtual pod's `namespace/name` (from the twin's annotations). */
export const BY_VIRTUAL_POD = "byVirtualPod";

/** The shared state of one syncer. */
export class SyncerContext {
  readonly virtualInformers: InformerFactory;
  readonly physicalInformers: InformerFactory;
  readonly bindings: ResourceClient<ClusterBinding>;
  readonly virtualNodes: ResourceClient<Node>;
  readonly virtualPods: ResourceClient<Pod>;
  readonly physicalNodes: ResourceClient<Node>;
  readonly physicalPods: ResourceClient<Pod>;
  readonly policies: ResourceClient<ResourceLeasingPolicy>;
  readonly virtualCore: CoreV1Api;
  readonly physicalCore: CoreV1Api;
  readonly virtualStorage: StorageK8sIoV1Api;
  readonly physicalStorage: StorageK8sIoV1Api;
  readonly virtualCoordination: CoordinationK8sIoV1Api;

  constructor(
    readonly virtual: KubeClient,
    readonly physical: KubeClient,
    readonly config: SyncerConfig,
    readonly clock: Clock,
    readonly log: Logger,
    readonly recorder: EventRecorder,
    readonly metrics: SyncerMetrics,
    /** The toolkit's queue and reconcile metrics of this syncer's controllers, when exported. */
    readonly runtimeMetrics?: RuntimeMetrics,
  ) {
    // Informers are shared: their errors are logged here, whoever asked for them first.
    const reportFor = (cluster: string) => (error: Error, informer: Informer<KubeObject>) =>
      log.warn("watch error", { cluster, resource: informer.client.descriptor.plural, error });
    this.virtualInformers = new InformerFactory(virtual.transport, { onError: reportFor("computing") });
    this.physicalInformers = new InformerFactory(physical.transport, { onError: reportFor("worker") });
    this.bindings = new KubeoceanIoV1beta1Api(virtual).clusterbindings();
    this.policies = new KubeoceanIoV1beta1Api(physical).resourceleasingpolicies();
    this.virtualCore = new CoreV1Api(virtual);
    this.physicalCore = new CoreV1Api(physical);
    this.virtualStorage = new StorageK8sIoV1Api(virtual);
    this.physicalStorage = new StorageK8sIoV1Api(physical);
    this.virtualCoordination = new CoordinationK8sIoV1Api(virtual);
    this.virtualNodes = this.virtualCore.nodes();
    this.virtualPods = this.virtualCore.pods();
    this.physicalNodes = this.physicalCore.nodes();
    this.physicalPods = this.physicalCore.pods();
  }

  /** Shared informers, one per resource per cluster. */
  informersFor(transport: Transport): InformerFactory {
    if (transport === this.virtual.transport) return this.virtualInformers;
    if (transport === this.physical.transport) return this.physicalInformers;
    throw new Error("unknown cluster");
  }

  /** The binding informer (only this binding, by name). */
  get bindingInformer(): Informer<ClusterBinding> {
    return this.virtualInformers.for(this.bindings, {
      fieldSelector: `metadata.name=${this.config.bindingName}`,
    });
  }

  /** The binding as cached (undefined before the first list, or once it is gone). */
  get binding(): ClusterBinding | undefined {
    return this.bindingInformer.store.get(this.config.bindingName);
  }

  /** Physical pods, indexed by node and by the dependencies recorded on twins. */
  get physicalPodInformer(): Informer<Pod> {
    return this.physicalInformers.for(this.physicalPods, {
      indexers: {
        [BY_NODE]: (p: Pod) => [p.spec?.nodeName ?? ""],
        [BY_DEPENDENCY]: (p: Pod) =>
          (p.metadata?.annotations?.[ANNOTATION_DEPENDENCIES] ?? "").split(",").filter(Boolean),
        [BY_VIRTUAL_POD]: (p: Pod) => {
          const ns = p.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_NAMESPACE];
          const name = p.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_NAME];
          return ns && name ? [`${ns}/${name}`] : [];
        },
      },
    });
  }

  /** Virtual pods, indexed by node and by the objects they reference. */
  get virtualPodInformer(): Informer<Pod> {
    return this.virtualInformers.for(this.virtualPods, {
      indexers: { [BY_NODE]: (p: Pod) => [p.spec?.nodeName ?? ""], [BY_DEPENDENCY]: dependencyKeys },
    });
  }

  /** Stops every informer. */
  async stop(): Promise<void> {
    await Promise.all([this.virtualInformers.stop(), this.physicalInformers.stop()]);
  }
}
