/**
 * What every part of a syncer shares: the two clusters' clients, the binding, the configuration,
 * the clock, the logger, the event recorder, metrics, and the caches both halves read — this
 * binding's virtual nodes, and the pods of each cluster indexed by node. The caches come from the
 * syncer's {@linkcode Manager}, so every controller that asks for the same resource shares one
 * watch. Bottom-up (`bottomup/`), the pod lifecycle (`topdown/`) and the worker provider
 * (`worker/`) meet here and nowhere else.
 *
 * @module
 */

import { CoreV1Api, type Node, type Pod } from "../../apis/core/v1/mod.ts";
import { CoordinationK8sIoV1Api } from "../../apis/coordination.k8s.io/v1/mod.ts";
import {
  type ClusterBinding,
  KubeoceanIoV1beta1Api,
  type ResourceLeasingPolicy,
} from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { StorageK8sIoV1Api } from "../../apis/storage.k8s.io/v1/mod.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import type { ResourceClient } from "../../toolkit/client/resource_client.ts";
import type { Clock } from "../../toolkit/runtime/clock.ts";
import type { EventRecorder } from "../../toolkit/runtime/events.ts";
import type { Informer } from "../../toolkit/runtime/informer.ts";
import type { Logger } from "../../toolkit/runtime/log.ts";
import type { Manager } from "../../toolkit/runtime/manager.ts";
import { ANNOTATION_PHYSICAL_NODE, LABEL_CLUSTER_BINDING } from "../common/names.ts";
import type { SyncerMetrics } from "./metrics.ts";
import { physicalPodTransform, virtualPodTransform } from "./pod_slimming.ts";
import type { ReachabilityState } from "./worker/reachability.ts";

/** What parts of a syncer read about the worker's API server. */
export interface WorkerReachabilityView {
  /** Whether it has been silent for longer than the node lease duration. */
  readonly down: boolean;
  readonly state: ReachabilityState;
}

/** A worker that always answers (until a syncer installs its probe). */
const ALWAYS_ANSWERING: WorkerReachabilityView = { down: false, state: { answering: true, down: false } };

/** Where virtual nodes point the computing cluster for kubelet API calls (the proxier). */
export interface ProxierEndpoint {
  /** A fixed address (the default, and the fallback while no proxier pod is ready). */
  address: string;
  port: number;
  /**
   * Advertise the pod IP of a ready proxier pod of this binding in this namespace of the computing
   * cluster (deployment mode): the API server dials the pod directly, as it dials a kubelet.
   */
  podNamespace?: string;
}

/** Labels of a binding's proxier pods (the rendered proxier Deployment's). */
export function proxierPodSelector(binding: string): string {
  return `app.kubernetes.io/name=kubeocean-proxier,${LABEL_CLUSTER_BINDING}=${binding}`;
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

/** Index of pods (of either cluster) by `spec.nodeName`. */
export const BY_NODE = "byNode";

/** Typed API clients of one cluster. */
export class ClusterApis {
  readonly core: CoreV1Api;
  readonly storage: StorageK8sIoV1Api;
  readonly coordination: CoordinationK8sIoV1Api;
  readonly kubeocean: KubeoceanIoV1beta1Api;

  constructor(readonly client: KubeClient) {
    this.core = new CoreV1Api(client);
    this.storage = new StorageK8sIoV1Api(client);
    this.coordination = new CoordinationK8sIoV1Api(client);
    this.kubeocean = new KubeoceanIoV1beta1Api(client);
  }
}

/** The shared state of one syncer. */
export class SyncerContext {
  /** The computing cluster (virtual nodes and pods). */
  readonly virtual: ClusterApis;
  /** The worker cluster (physical nodes, twins, policies). */
  readonly physical: ClusterApis;
  /**
   * Whether the worker's API server answers. While it is down the syncer renews no node lease and
   * writes no status it cannot know; nothing is deleted on its account.
   */
  worker: WorkerReachabilityView = ALWAYS_ANSWERING;

  constructor(
    virtual: KubeClient,
    physical: KubeClient,
    readonly config: SyncerConfig,
    /** Owns the caches, the toolkit metrics and the controllers of this syncer. */
    readonly manager: Manager,
    readonly recorder: EventRecorder,
    readonly metrics: SyncerMetrics,
  ) {
    this.virtual = new ClusterApis(virtual);
    this.physical = new ClusterApis(physical);
  }

  get clock(): Clock {
    return this.manager.clock;
  }

  get log(): Logger {
    return this.manager.log;
  }

  /** The binding's ClusterBindings client (computing cluster). */
  get bindings(): ResourceClient<ClusterBinding, "status"> {
    return this.virtual.kubeocean.clusterbindings();
  }

  /** The worker's ResourceLeasingPolicies client. */
  get policies(): ResourceClient<ResourceLeasingPolicy, "status"> {
    return this.physical.kubeocean.resourceleasingpolicies();
  }

  /** The binding informer (only this binding, by name). */
  get bindingInformer(): Informer<ClusterBinding> {
    return this.manager.cache(this.bindings, { fieldSelector: `metadata.name=${this.config.bindingName}` });
  }

  /** The binding as cached (undefined before the first list, or once it is gone). */
  get binding(): ClusterBinding | undefined {
    return this.bindingInformer.store.get(this.config.bindingName);
  }

  /** This binding's proxier pods (only with `proxier.podNamespace`). */
  get proxierPodInformer(): Informer<Pod> | undefined {
    const namespace = this.config.proxier.podNamespace;
    if (!namespace) return undefined;
    return this.manager.cache(this.virtual.core.pods(namespace), {
      labelSelector: proxierPodSelector(this.config.bindingName),
    });
  }

  /**
   * The address virtual nodes advertise: the fixed one, or the IP of the oldest ready proxier pod
   * (a stable choice while it lives; another takes over when it goes).
   */
  proxierAddress(): string {
    const informer = this.proxierPodInformer;
    if (!informer) return this.config.proxier.address;
    const ready = informer.store.list().filter((pod) =>
      pod.status?.podIP && !pod.metadata?.deletionTimestamp &&
      pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True")
    ).sort((a, b) =>
      (a.metadata?.creationTimestamp ?? "").localeCompare(b.metadata?.creationTimestamp ?? "") ||
      a.metadata!.name!.localeCompare(b.metadata!.name!)
    );
    return ready[0]?.status?.podIP ?? this.config.proxier.address;
  }

  /** This binding's virtual nodes. */
  get virtualNodeInformer(): Informer<Node> {
    return this.manager.cache(this.virtual.core.nodes(), {
      labelSelector: `${LABEL_CLUSTER_BINDING}=${this.config.bindingName}`,
    });
  }

  /** The worker's ResourceLeasingPolicies. */
  get policyInformer(): Informer<ResourceLeasingPolicy> {
    return this.manager.cache(this.policies);
  }

  /**
   * Every pod of the computing cluster, indexed by node: this syncer's own whole, the others slim
   * (`pod_slimming.ts`). Every part that watches all computing pods shares this cache.
   */
  get virtualPodInformer(): Informer<Pod> {
    return this.manager.cache(this.virtual.core.pods(), {
      indexers: { [BY_NODE]: nodeNameOf },
      transform: virtualPodTransform(this.config.clusterID),
    });
  }

  /**
   * Every pod of the worker cluster, indexed by node: Kubeocean's twins whole, the others slim.
   * Every part that watches all worker pods shares this cache.
   */
  get physicalPodInformer(): Informer<Pod> {
    return this.manager.cache(this.physical.core.pods(), {
      indexers: { [BY_NODE]: nodeNameOf },
      transform: physicalPodTransform,
    });
  }

  /** The virtual node of this binding called `name`, if it exists. */
  virtualNode(name: string): Node | undefined {
    return this.virtualNodeInformer.store.get(name);
  }

  /** The physical node behind one of this binding's virtual nodes. */
  physicalNodeOf(vnode: Node | string): string | undefined {
    const node = typeof vnode === "string" ? this.virtualNode(vnode) : vnode;
    return node?.metadata?.annotations?.[ANNOTATION_PHYSICAL_NODE];
  }

  /** Whether `pod` is bound to one of this binding's virtual nodes. */
  isOnOurNode(pod: Pod): boolean {
    return !!pod.spec?.nodeName && this.virtualNode(pod.spec.nodeName) !== undefined;
  }
}

/** The `spec.nodeName` index function. */
export function nodeNameOf(pod: Pod): string[] {
  return [pod.spec?.nodeName ?? ""];
}
