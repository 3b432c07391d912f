/**
 * Streams of twins through the worker API server's pod subresources (`log`, `exec`, `attach`,
 * `portforward`), with the binding's least-privilege credentials: never `nodes/proxy`, never a
 * worker kubelet directly.
 *
 * The twin a caller names comes from annotations on the virtual pod, which its owner can edit, so
 * every stream first reads the twin from the worker and opens only if it is this binding's twin of
 * exactly that virtual pod (fenced by both UIDs) in the mount namespace.
 *
 * @module
 */

import { CoreV1Api, type Pod } from "../../../apis/core/v1/mod.ts";
import type { KubeClient } from "../../../toolkit/client/client.ts";
import { ignoreNotFound } from "../../../toolkit/client/errors.ts";
import type {
  PodClient,
  PortForwardStream,
  RemoteCommandOptions,
  RemoteCommandSession,
} from "../../../toolkit/client/pod_client.ts";
import type { LogOptions } from "../../../toolkit/client/resource_client.ts";
import {
  ANNOTATION_VIRTUAL_POD_UID,
  LABEL_CLUSTER_BINDING,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
} from "../../common/names.ts";
import { type Twin, type TwinStreams, TwinUnavailableError } from "../provider.ts";

type StreamingPods = PodClient<Pod, "log" | "exec" | "attach" | "portforward">;

/** Opens twin streams in one worker cluster. */
export class WorkerStreams implements TwinStreams {
  readonly #pods: StreamingPods;

  constructor(
    client: KubeClient,
    readonly binding: { name: string; mountNamespace: string },
  ) {
    this.#pods = new CoreV1Api(client).pods();
  }

  /** A container's log as bytes. */
  async containerLogs(
    twin: Twin,
    container: string,
    options: LogOptions,
  ): Promise<ReadableStream<Uint8Array>> {
    await this.verify(twin);
    return await this.#pods.namespace(twin.ref.namespace).logStream(twin.ref.name, { ...options, container });
  }

  /** Runs a command in a container of the twin. */
  async exec(
    twin: Twin,
    request: RemoteCommandOptions & { command: string[] },
    signal?: AbortSignal,
  ): Promise<RemoteCommandSession> {
    await this.verify(twin);
    return await this.#pods.namespace(twin.ref.namespace).openExec(twin.ref.name, { ...request, signal });
  }

  /** Attaches to a container of the twin. */
  async attach(
    twin: Twin,
    request: RemoteCommandOptions,
    signal?: AbortSignal,
  ): Promise<RemoteCommandSession> {
    await this.verify(twin);
    return await this.#pods.namespace(twin.ref.namespace).openAttach(twin.ref.name, { ...request, signal });
  }

  /** A connection to a port of the twin. */
  async portForward(twin: Twin, port: number, signal?: AbortSignal): Promise<PortForwardStream> {
    await this.verify(twin);
    return await this.#pods.namespace(twin.ref.namespace).portForward(twin.ref.name, port, { signal });
  }

  /**
   * Throws {@linkcode TwinUnavailableError} unless `twin` is, in the worker right now, this
   * binding's twin of `twin.owner` (same twin UID, same virtual pod UID) in the mount namespace.
   */
  async verify(twin: Twin): Promise<void> {
    const { ref, owner } = twin;
    const virtual = `${owner.namespace}/${owner.name}`;
    if (ref.namespace !== this.binding.mountNamespace) {
      throw new TwinUnavailableError(
        `pod ${virtual} names a worker pod outside the mount namespace "${this.binding.mountNamespace}"`,
      );
    }
    const pod = await this.#pods.namespace(ref.namespace).get(ref.name).catch(ignoreNotFound);
    if (!pod || pod.metadata?.uid !== ref.uid) {
      throw new TwinUnavailableError(`the worker pod of ${virtual} is gone`);
    }
    const labels = pod.metadata?.labels ?? {};
    if (
      labels[LABEL_MANAGED_BY] !== MANAGED_BY_VALUE || labels[LABEL_CLUSTER_BINDING] !== this.binding.name ||
      pod.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_UID] !== owner.uid
    ) {
      throw new TwinUnavailableError(`worker pod ${ref.namespace}/${ref.name} is not the twin of ${virtual}`);
    }
  }
}
