/**
 * From a kubelet API path's `{namespace}/{pod}` to the twin that runs it: the virtual pod (404 when
 * it does not exist), its virtual node (404 unless it is a virtual node of a binding this proxier
 * serves — never another binding's), the container (404 when the pod has none of that name), and
 * the twin the syncer recorded on the virtual pod (503 while it is not created yet).
 *
 * @module
 */

import { CoreV1Api, type Node, type Pod } from "../../apis/core/v1/mod.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { ignoreNotFound } from "../../toolkit/client/errors.ts";
import {
  ANNOTATION_PHYSICAL_POD_NAME,
  ANNOTATION_PHYSICAL_POD_NAMESPACE,
  ANNOTATION_PHYSICAL_POD_UID,
  LABEL_CLUSTER_BINDING,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
} from "../common/names.ts";
import type { Twin, TwinStreams, TwinUsage } from "../syncer/provider.ts";
import { KubeletApiError } from "./auth.ts";

/** The bindings a proxier serves, and what it serves of them. */
export interface ServedBindings {
  /** The streams of `binding`'s worker, or undefined when this proxier does not serve it. */
  streamsFor(binding: string): TwinStreams | undefined;
  /** The resource usage of `binding`'s twins, or undefined when this proxier does not serve it. */
  usageFor(binding: string): TwinUsage | undefined;
}

/** A resolved request target. */
export interface Target {
  pod: Pod;
  /** The virtual node the pod is bound to. */
  node: string;
  binding: string;
  streams: TwinStreams;
}

/** Resolves pods to their virtual nodes and twins through the computing cluster. */
export class PodResolver {
  readonly #core: CoreV1Api;

  constructor(computing: KubeClient, readonly bindings: ServedBindings) {
    this.#core = new CoreV1Api(computing);
  }

  /** The virtual pod and the node it runs on; 404 unless that node is a virtual node served here. */
  async target(namespace: string, name: string): Promise<Target> {
    const pod = await this.#core.pods(namespace).get(name).catch(ignoreNotFound);
    if (!pod) throw new KubeletApiError(404, `pod "${name}" does not exist in namespace "${namespace}"`);
    const nodeName = pod.spec?.nodeName;
    const node = nodeName ? await this.#core.nodes().get(nodeName).catch(ignoreNotFound) : undefined;
    const binding = node?.metadata?.labels?.[LABEL_CLUSTER_BINDING];
    const streams = binding && node?.metadata?.labels?.[LABEL_MANAGED_BY] === MANAGED_BY_VALUE
      ? this.bindings.streamsFor(binding)
      : undefined;
    if (!node || !binding || !streams) {
      throw new KubeletApiError(
        404,
        `pod "${namespace}/${name}" is not on a virtual node this proxier serves${
          nodeName ? ` (node ${nodeName})` : ""
        }`,
      );
    }
    return { pod, node: node.metadata!.name!, binding, streams };
  }

  /**
   * A virtual node this proxier serves and its binding's usage source; 404 (naming the node) for any
   * other node.
   */
  async node(name: string): Promise<{ node: Node; binding: string; usage: TwinUsage }> {
    const node = await this.#core.nodes().get(name).catch(ignoreNotFound);
    const binding = node?.metadata?.labels?.[LABEL_CLUSTER_BINDING];
    const usage = binding && node?.metadata?.labels?.[LABEL_MANAGED_BY] === MANAGED_BY_VALUE
      ? this.bindings.usageFor(binding)
      : undefined;
    if (!node || !binding || !usage) {
      throw new KubeletApiError(404, `node "${name}" is not a virtual node this proxier serves`);
    }
    return { node, binding, usage };
  }

  /** The twin of a resolved pod; 404 for an unknown container, 503 while the twin does not exist. */
  twinOf(target: Target, container?: string): Twin {
    const { pod } = target;
    if (container !== undefined) {
      const names = [
        ...(pod.spec?.containers ?? []),
        ...(pod.spec?.initContainers ?? []),
        ...(pod.spec?.ephemeralContainers ?? []),
      ].map((c) => c.name);
      if (!names.includes(container)) {
        throw new KubeletApiError(404, `container "${container}" not found in pod "${pod.metadata?.name}"`);
      }
    }
    const annotations = pod.metadata?.annotations ?? {};
    const namespace = annotations[ANNOTATION_PHYSICAL_POD_NAMESPACE];
    const name = annotations[ANNOTATION_PHYSICAL_POD_NAME];
    const uid = annotations[ANNOTATION_PHYSICAL_POD_UID];
    if (!namespace || !name || !uid) {
      throw new KubeletApiError(
        503,
        `pod "${pod.metadata?.namespace}/${pod.metadata?.name}" has no worker pod yet; try again in a moment`,
      );
    }
    return {
      ref: { namespace, name, uid },
      owner: { namespace: pod.metadata!.namespace!, name: pod.metadata!.name!, uid: pod.metadata!.uid! },
      deleting: false,
    };
  }
}
