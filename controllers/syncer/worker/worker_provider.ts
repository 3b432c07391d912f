/**
 * The {@linkcode PodProvider} of a worker cluster: twins are pods in the binding's mount namespace,
 * created with least privilege through the worker ServiceAccount, named from the virtual pod's
 * namespace, name and UID ({@linkcode twinName}), labelled with the binding and annotated with
 * their virtual pod. Their ConfigMaps, Secrets, claims and ServiceAccount token are mirrored first
 * ({@linkcode Dependencies}); the mirror, token and claim controllers keep those current and
 * release them once unused. Streams go through the worker API server's pod subresources.
 *
 * @module
 */

import type { Event, Namespace, Node, Pod } from "../../../apis/core/v1/mod.ts";
import {
  ignoreNotFound,
  isAlreadyExists,
  isConflict,
  isForbidden,
  isNotFound,
} from "../../../toolkit/client/errors.ts";
import { type ObjectRef, parseObjectKey } from "../../../toolkit/client/resource.ts";
import type {
  PortForwardStream,
  RemoteCommandOptions,
  RemoteCommandSession,
} from "../../../toolkit/client/pod_client.ts";
import type { LogOptions } from "../../../toolkit/client/resource_client.ts";
import type { RequiredCache } from "../../../toolkit/runtime/controller.ts";
import type { Informer } from "../../../toolkit/runtime/informer.ts";
import {
  ANNOTATION_DEPENDENCIES,
  ANNOTATION_VIRTUAL_POD_NAME,
  ANNOTATION_VIRTUAL_POD_NAMESPACE,
  ANNOTATION_VIRTUAL_POD_UID,
  LABEL_CLUSTER_BINDING,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
} from "../../common/names.ts";
import {
  describeViolations,
  POD_SECURITY_ENFORCE_LABEL,
  POD_SECURITY_LEVELS,
  type PodSecurityLevel,
  podSecurityViolations,
} from "../../common/pod_security.ts";
import type { SyncerContext } from "../context.ts";
import type { CreateTwinResult, NodeUsage, PodIdentity, PodProvider, Twin, TwinEvent } from "../provider.ts";
import { claimController } from "./claim_controller.ts";
import { ClaimMirror } from "./claims.ts";
import { Dependencies } from "./dependencies.ts";
import { WorkerGarbage } from "./garbage.ts";
import { ObjectMirror } from "./mirror.ts";
import { mirrorController } from "./mirror_controller.ts";
import { twinName } from "./naming.ts";
import { WorkerStreams } from "./streams.ts";
import { metricsUnavailableEvent, WorkerResourceUsage } from "./resource_usage.ts";
import { tokenController } from "./token_controller.ts";
import { TokenMirror } from "./tokens.ts";
import { allowedAnnotations, buildTwin } from "./twin.ts";
import { BY_VIRTUAL_POD, DependencyUsage, twinInformer, virtualPodKeyOf } from "./usage.ts";

/** How long a pod waits before its dependencies are looked at again. */
const WAIT_RETRY_MS = 5_000;

/** Twins in a worker cluster's mount namespace. */
export class WorkerPodProvider implements PodProvider {
  readonly caches: readonly RequiredCache[];
  readonly location: string;
  readonly objects: ObjectMirror;
  readonly claims: ClaimMirror;
  readonly tokens: TokenMirror;
  readonly usage: DependencyUsage;
  readonly dependencies: Dependencies;
  readonly garbage: WorkerGarbage;
  readonly #twins: Informer<Pod>;
  readonly #nodes: Informer<Node>;
  /** The mount namespace (its Pod Security label). */
  readonly #namespace: Informer<Namespace>;
  /** Streams of twins (the kubelet API proxy's side of the seam). */
  readonly streams: WorkerStreams;
  /** Resource usage of twins, from the worker's metrics API. */
  readonly resourceUsage: WorkerResourceUsage;

  constructor(readonly ctx: SyncerContext) {
    this.location = `cluster ${ctx.config.clusterID}`;
    this.#twins = twinInformer(ctx);
    this.#nodes = ctx.manager.cache(ctx.physical.core.nodes());
    this.#namespace = ctx.manager.cache(ctx.physical.core.namespaces(), {
      fieldSelector: `metadata.name=${ctx.config.mountNamespace}`,
    });
    this.caches = [this.#twins, this.#namespace];
    this.objects = new ObjectMirror(ctx);
    this.claims = new ClaimMirror(ctx, this.objects);
    this.tokens = new TokenMirror(ctx);
    this.usage = new DependencyUsage(ctx);
    this.dependencies = new Dependencies(this.objects, this.claims, this.tokens);
    this.garbage = new WorkerGarbage(ctx, this.objects, this.claims, this.usage);
    const binding = { name: ctx.config.bindingName, mountNamespace: ctx.config.mountNamespace };
    this.streams = new WorkerStreams(ctx.physical.client, binding);
    this.resourceUsage = new WorkerResourceUsage(ctx.physical.client, binding, {
      onUnavailable: (message) => void warnMetricsUnavailable(ctx, message),
    });
    mirrorController(ctx, "ConfigMap", this.objects, this.usage);
    mirrorController(ctx, "Secret", this.objects, this.usage);
    tokenController(ctx, this.tokens, this.usage);
    claimController(ctx, this.claims, this.usage);
  }

  twinsOf(podKey: string): Twin[] {
    return this.#twins.store.byIndex(BY_VIRTUAL_POD, podKey).filter((p) => this.#ours(p)).map(toTwin);
  }

  listTwins(): Twin[] {
    return this.#twins.store.byIndex("namespace", this.ctx.config.mountNamespace).filter((p) => this.#ours(p))
      .map(toTwin);
  }

  async getTwin(ref: PodIdentity): Promise<Twin | undefined> {
    const pod = await this.ctx.physical.core.pods(ref.namespace).get(ref.name).catch(ignoreNotFound);
    return pod && this.#ours(pod) ? toTwin(pod) : undefined;
  }

  async createTwin(pod: Pod, node: Node): Promise<CreateTwinResult> {
    const { config, metrics } = this.ctx;
    const binding = this.ctx.binding;
    const physicalNode = this.ctx.physicalNodeOf(node);
    if (!physicalNode || !binding?.spec) {
      return {
        kind: "waiting",
        reason: "WaitingForNode",
        note: `virtual node ${node.metadata?.name} does not name its worker node yet`,
        retryAfterMs: 1_000,
      };
    }
    // The worker decides what runs in it: its Pod Security level is checked before anything is
    // copied or created (on the fields the twin keeps, and the annotations that cross).
    const level = this.podSecurityLevel();
    const annotations = allowedAnnotations(pod.metadata?.annotations, binding.spec.allowedAnnotations);
    const violations = podSecurityViolations(pod.spec!, annotations, level);
    if (violations.length > 0) return this.#refused(level, describeViolations(level, violations));
    const dependencies = await this.dependencies.ensureFor(pod);
    if (dependencies.refused) {
      return { kind: "refused", reason: "VolumeNotAllowed", message: dependencies.refused };
    }
    if (dependencies.unbound) {
      return {
        kind: "waiting",
        reason: "WaitingForVolume",
        note: `${dependencies.unbound}; the pod stays Pending until it is`,
        retryAfterMs: WAIT_RETRY_MS,
      };
    }
    if (dependencies.missing) {
      return {
        kind: "waiting",
        reason: "WaitingForDependency",
        note: `${dependencies.missing} does not exist yet`,
        retryAfterMs: WAIT_RETRY_MS,
      };
    }
    const name = await twinName(pod.metadata!.namespace!, pod.metadata!.name!, pod.metadata!.uid!);
    const { pod: body, dropped } = buildTwin(pod, {
      twinName: name,
      mountNamespace: config.mountNamespace,
      bindingName: config.bindingName,
      binding: binding.spec,
      vnodeName: node.metadata!.name!,
      physicalNode,
      configMaps: dependencies.configMaps,
      secrets: dependencies.secrets,
      tokenSecret: dependencies.tokenSecret,
      claims: dependencies.claims,
    });
    body.metadata!.annotations![ANNOTATION_DEPENDENCIES] = dependencies.keys.join(",");
    const pods = this.ctx.physical.core.pods(config.mountNamespace);
    let created: Pod;
    try {
      created = await pods.create(body);
      metrics.createPod.inc({ cluster_binding: config.bindingName });
    } catch (err) {
      // The worker's own admission refused it (a check this syncer does not know yet).
      if (isForbidden(err) && /PodSecurity/.test((err as Error).message)) {
        return this.#refused(level, (err as Error).message);
      }
      if (!isAlreadyExists(err)) throw err;
      created = await pods.get(name);
    }
    return { kind: "created", twin: toTwin(created), dropped };
  }

  /** The Pod Security level the worker enforces on the mount namespace (`privileged` when unlabelled). */
  podSecurityLevel(): PodSecurityLevel {
    const namespace = this.#namespace.store.get(this.ctx.config.mountNamespace);
    const label = namespace?.metadata?.labels?.[POD_SECURITY_ENFORCE_LABEL];
    return POD_SECURITY_LEVELS.find((l) => l === label) ?? (label ? "restricted" : "privileged");
  }

  #refused(level: PodSecurityLevel, detail: string): CreateTwinResult {
    return {
      kind: "refused",
      reason: "PodSecurity",
      message:
        `the worker's mount namespace ${this.ctx.config.mountNamespace} in ${this.location} enforces Pod Security "${level}"; this pod ${detail}`,
    };
  }

  async deleteTwin(twin: Twin, gracePeriodSeconds?: number): Promise<void> {
    const pods = this.ctx.physical.core.pods(twin.ref.namespace);
    const fence = { preconditions: { uid: twin.ref.uid } };
    const ignoreGone = (err: unknown) => isNotFound(err) || isConflict(err) ? undefined : Promise.reject(err);
    if (!twin.deleting) {
      await pods.delete(twin.ref.name, { gracePeriodSeconds, ...fence }).catch(ignoreGone);
      return;
    }
    // No kubelet will ever confirm the deletion of a pod on a node the worker no longer has (the
    // worker's pod GC would, after its quarantine): finish it now.
    const cached = this.#twins.store.get(`${twin.ref.namespace}/${twin.ref.name}`);
    const nodeName = cached?.metadata?.uid === twin.ref.uid ? cached.spec?.nodeName : undefined;
    if (nodeName && this.#nodes.store.isReady && !this.#nodes.store.get(nodeName)) {
      await pods.delete(twin.ref.name, { gracePeriodSeconds: 0, ...fence }).catch(ignoreGone);
    }
  }

  changes(): AsyncIterable<ObjectRef> {
    const twins = this.#twins;
    const ours = (pod: Pod) => this.#ours(pod);
    return {
      [Symbol.asyncIterator](): AsyncIterator<ObjectRef> {
        const stop = new AbortController();
        const events = twins.events(stop.signal)[Symbol.asyncIterator]();
        return {
          async next(): Promise<IteratorResult<ObjectRef>> {
            while (true) {
              const next = await events.next();
              if (next.done) return { done: true, value: undefined };
              const event = next.value;
              if (event.type !== "Apply" && event.type !== "InitApply" && event.type !== "Delete") continue;
              const [key] = ours(event.object) ? virtualPodKeyOf(event.object) : [];
              if (key) return { done: false, value: parseObjectKey(key) };
            }
          },
          return(): Promise<IteratorResult<ObjectRef>> {
            stop.abort();
            return Promise.resolve({ done: true, value: undefined });
          },
        };
      },
    };
  }

  async *events(signal: AbortSignal): AsyncIterable<TwinEvent> {
    const events = this.ctx.manager.cache(this.ctx.physical.core.events(this.ctx.config.mountNamespace));
    const started = this.ctx.clock.now().getTime();
    for await (const change of events.events(signal)) {
      if (change.type !== "Apply" && change.type !== "InitApply") continue;
      const event: Event = change.object;
      if (event.involvedObject?.kind !== "Pod") continue;
      const seen = Date.parse(
        event.lastTimestamp ?? event.eventTime ?? event.metadata?.creationTimestamp ?? "",
      );
      if (change.type === "InitApply" && seen < started) continue; // old news
      const twin = this.#twins.store.get(`${this.ctx.config.mountNamespace}/${event.involvedObject.name}`);
      const owner = twin && this.#ours(twin) ? toTwin(twin).owner : undefined;
      if (!owner?.namespace || !owner.name || !owner.uid) continue;
      yield {
        owner,
        type: event.type === "Warning" ? "Warning" : "Normal",
        reason: event.reason ?? "WorkerEvent",
        message: event.message ?? "",
        fieldPath: event.involvedObject.fieldPath,
      };
    }
  }

  cleanup(): Promise<boolean> {
    return this.garbage.removeAll();
  }

  /** Removes mirrored objects no twin uses any more (the drift audit); returns how many. */
  collectGarbage(): Promise<number> {
    return this.garbage.collect();
  }

  containerLogs(twin: Twin, container: string, options: LogOptions): Promise<ReadableStream<Uint8Array>> {
    return this.streams.containerLogs(twin, container, options);
  }

  exec(
    twin: Twin,
    request: RemoteCommandOptions & { command: string[] },
    signal?: AbortSignal,
  ): Promise<RemoteCommandSession> {
    return this.streams.exec(twin, request, signal);
  }

  attach(twin: Twin, request: RemoteCommandOptions, signal?: AbortSignal): Promise<RemoteCommandSession> {
    return this.streams.attach(twin, request, signal);
  }

  portForward(twin: Twin, port: number, signal?: AbortSignal): Promise<PortForwardStream> {
    return this.streams.portForward(twin, port, signal);
  }

  usageOn(vnode: string): Promise<NodeUsage> {
    return this.resourceUsage.usageOn(vnode);
  }

  /** Twins are the binding's pods in the mount namespace, labelled as Kubeocean's. */
  #ours(pod: Pod): boolean {
    return pod.metadata?.namespace === this.ctx.config.mountNamespace &&
      pod.metadata?.labels?.[LABEL_MANAGED_BY] === MANAGED_BY_VALUE &&
      pod.metadata?.labels?.[LABEL_CLUSTER_BINDING] === this.ctx.config.bindingName;
  }
}

/**
 * The twin a worker pod of the binding is. Its owner comes from its annotations; a pod whose
 * annotations were lost has an empty owner, which no virtual pod matches (the audit removes it).
 */
function toTwin(pod: Pod): Twin {
  const annotations = pod.metadata?.annotations ?? {};
  return {
    ref: { namespace: pod.metadata!.namespace!, name: pod.metadata!.name!, uid: pod.metadata!.uid! },
    owner: {
      namespace: annotations[ANNOTATION_VIRTUAL_POD_NAMESPACE] ?? "",
      name: annotations[ANNOTATION_VIRTUAL_POD_NAME] ?? "",
      uid: annotations[ANNOTATION_VIRTUAL_POD_UID] ?? "",
    },
    status: pod.status,
    deleting: !!pod.metadata?.deletionTimestamp,
  };
}

/** One Warning Event on the binding when the worker's metrics API cannot be read. */
async function warnMetricsUnavailable(ctx: SyncerContext, message: string): Promise<void> {
  const binding = ctx.binding;
  if (!binding) return;
  await ctx.recorder.publish(metricsUnavailableEvent(binding, message)).catch(() => {});
}
