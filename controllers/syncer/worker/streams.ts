/**
 * Streams of twins through the worker API server's pod subresources (`log`, `exec`, `attach`,
 * `portforward`), with the binding's least-privilege credentials: never `nodes/proxy`, never a
 * worker kubelet directly.
 *
 * @module
 */

import { CoreV1Api, type Pod } from "../../../apis/core/v1/mod.ts";
import type { KubeClient } from "../../../toolkit/client/client.ts";
import type {
  PodClient,
  PortForwardStream,
  RemoteCommandOptions,
  RemoteCommandSession,
} from "../../../toolkit/client/pod_client.ts";
import type { LogOptions } from "../../../toolkit/client/resource_client.ts";
import type { PodIdentity } from "../provider.ts";

type StreamingPods = PodClient<Pod, "log" | "exec" | "attach" | "portforward">;

/** Opens twin streams in one worker cluster. */
export class WorkerStreams {
  readonly #pods: StreamingPods;

  constructor(client: KubeClient) {
    this.#pods = new CoreV1Api(client).pods();
  }

  /** A container's log as bytes. */
  containerLogs(
    ref: PodIdentity,
    container: string,
    options: LogOptions,
  ): Promise<ReadableStream<Uint8Array>> {
    return this.#pods.namespace(ref.namespace).logStream(ref.name, { ...options, container });
  }

  /** An exec or attach session. */
  remoteCommand(
    kind: "exec" | "attach",
    ref: PodIdentity,
    request: RemoteCommandOptions & { command?: string[] },
    signal?: AbortSignal,
  ): Promise<RemoteCommandSession> {
    const pods = this.#pods.namespace(ref.namespace);
    return kind === "exec"
      ? pods.openExec(ref.name, { ...request, command: request.command ?? [], signal })
      : pods.openAttach(ref.name, { ...request, signal });
  }

  /** A connection to a port. */
  portForward(ref: PodIdentity, port: number, signal?: AbortSignal): Promise<PortForwardStream> {
    return this.#pods.namespace(ref.namespace).portForward(ref.name, port, { signal });
  }
}
