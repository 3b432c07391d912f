/**
 * Pod streaming subresources over WebSocket: `exec`, `attach` (remote command protocol
 * `v5.channel.k8s.io`, falling back to `v4`) and `portforward` (`portforward.k8s.io`). The socket
 * carries the same credentials as the transport (client certificate through `Deno.HttpClient`,
 * bearer token through a header).
 *
 * @module
 */

import { HttpTransport } from "./transport.ts";
import type { KubeObject } from "./resource.ts";
import { objectPath } from "./resource.ts";
import { ResourceClient } from "./resource_client.ts";
import type { Status } from "./errors.ts";

/** Options of {@linkcode PodClient.exec}. */
export interface ExecOptions {
  container?: string;
  /** Bytes or text written to the command's standard input, which is then closed. */
  stdin?: Uint8Array | string;
  tty?: boolean;
  signal?: AbortSignal;
  /** Gives up after this many ms (default 60 s). */
  timeoutMs?: number;
}

/** The outcome of a command run with {@linkcode PodClient.exec}. */
export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit code (0 on success; from the error channel's Status otherwise). */
  exitCode: number;
  status: Status;
}

/** A port-forward connection to one pod port. */
export interface PortForwardStream {
  /** Bytes from the pod's port. */
  readable: ReadableStream<Uint8Array>;
  /** Bytes to the pod's port. */
  writable: WritableStream<Uint8Array>;
  close(): void;
}

const CHANNEL = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const;

/** A resource client for pods with the streaming subresources. */
export class PodClient<T extends KubeObject> extends ResourceClient<T> {
  override namespace(namespace: string): PodClient<T> {
    return new PodClient<T>(this.transport, this.descriptor, namespace);
  }

  /**
   * Opens the WebSocket. Messages that arrive before the caller attaches its handler (the kubelet
   * writes right after the upgrade) are buffered and replayed by `listen`.
   */
  async #socket(
    path: string,
    query: URLSearchParams,
    protocols: string[],
  ): Promise<{ socket: WebSocket; listen: (handler: (event: MessageEvent) => void) => void }> {
    const transport = this.transport;
    if (!(transport instanceof HttpTransport)) {
      throw new Error("streaming subresources need an HttpTransport");
    }
    const { url, headers, client } = await transport.websocketTarget(path, query);
    const socket = new WebSocket(url, { protocols, headers, client } as unknown as string[]);
    socket.binaryType = "arraybuffer";
    const early: MessageEvent[] = [];
    socket.onmessage = (event) => early.push(event);
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = (e) =>
        reject(new Error(`WebSocket ${path}: ${(e as ErrorEvent).message ?? "connection failed"}`));
    });
    const listen = (handler: (event: MessageEvent) => void) => {
      socket.onmessage = handler;
      for (const event of early.splice(0)) handler(event);
    };
    return { socket, listen };
  }

  /** Runs `command` in a container and collects its output and exit code. */
  async exec(name: string, command: string[], options: ExecOptions = {}): Promise<ExecResult> {
    const query = new URLSearchParams();
    for (const arg of command) query.append("command", arg);
    return await this.#remoteCommand("exec", name, query, options);
  }

  /** Attaches to a running container's streams and collects output until it ends or `signal` aborts. */
  async attach(name: string, options: ExecOptions = {}): Promise<ExecResult> {
    return await this.#remoteCommand("attach", name, new URLSearchParams(), options);
  }

  async #remoteCommand(
    kind: "exec" | "attach",
    name: string,
    query: URLSearchParams,
    options: ExecOptions,
  ): Promise<ExecResult> {
    if (options.container) query.set("container", options.container);
    query.set("stdout", "true");
    query.set("stderr", options.tty ? "false" : "true");
    query.set("stdin", options.stdin !== undefined ? "true" : "false");
    query.set("tty", options.tty ? "true" : "false");
    const path = objectPath(this.descriptor, name, this.boundNamespace, kind);
    const { socket, listen } = await this.#socket(path, query, ["v5.channel.k8s.io", "v4.channel.k8s.io"]);
    const decoder = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    let stdout = "";
    let stderr = "";
    let statusText = "";
    const finished = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.close();
        reject(new Error(`${kind} in ${name} timed out`));
      }, options.timeoutMs ?? 60_000);
      options.signal?.addEventListener("abort", () => socket.close(), { once: true });
      listen((event) => {
        const data = new Uint8Array(event.data as ArrayBuffer);
        if (data.length === 0) return;
        const payload = data.subarray(1);
        switch (data[0]) {
          case CHANNEL.stdout:
            stdout += decoder.stdout.decode(payload, { stream: true });
            break;
          case CHANNEL.stderr:
            stderr += decoder.stderr.decode(payload, { stream: true });
            break;
          case CHANNEL.error:
            statusText += new TextDecoder().decode(payload);
            break;
        }
      });
      socket.onclose = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    if (options.stdin !== undefined) {
      const bytes = typeof options.stdin === "string"
        ? new TextEncoder().encode(options.stdin)
        : options.stdin;
      socket.send(frame(CHANNEL.stdin, bytes));
      if (socket.protocol === "v5.channel.k8s.io") {
        socket.send(new Uint8Array([CHANNEL.close, CHANNEL.stdin]));
      }
    }
    await finished;
    const status: Status = statusText ? JSON.parse(statusText) : { status: "Success" };
    return { stdout, stderr, exitCode: exitCodeOf(status), status };
  }

  /**
   * Opens a port-forward stream to `port` of the pod. Resolves once the kubelet has announced
   * the port on the data channel, so nothing written early is lost.
   */
  async portForward(
    name: string,
    port: number,
    options: { timeoutMs?: number } = {},
  ): Promise<PortForwardStream> {
    const path = objectPath(this.descriptor, name, this.boundNamespace, "portforward");
    const { socket, listen } = await this.#socket(path, new URLSearchParams({ ports: String(port) }), [
      "v4.channel.k8s.io",
      "portforward.k8s.io",
    ]);
    // Channel 0 carries data, channel 1 errors; the first frame on each names the port (2 bytes LE).
    const seenPortHeader = new Set<number>();
    let errorText = "";
    let announce!: () => void;
    let fail!: (err: Error) => void;
    const announced = new Promise<void>((resolve, reject) => {
      announce = resolve;
      fail = reject;
    });
    const readable = new ReadableStream<Uint8Array>({
      start(controller) {
        listen((event) => {
          const data = new Uint8Array(event.data as ArrayBuffer);
          if (data.length === 0) return;
          const channel = data[0];
          let payload = data.subarray(1);
          if (!seenPortHeader.has(channel)) {
            seenPortHeader.add(channel);
            payload = payload.subarray(2);
            if (channel === 0) announce();
          }
          if (channel === 0 && payload.length) controller.enqueue(payload.slice());
          if (channel === 1 && payload.length) errorText += new TextDecoder().decode(payload);
        });
        socket.onclose = () => {
          const error = new Error(
            `port-forward to ${name}:${port} closed${errorText ? `: ${errorText}` : ""}`,
          );
          fail(error);
          if (errorText) controller.error(error);
          else controller.close();
        };
      },
      cancel() {
        socket.close();
      },
    });
    const writable = new WritableStream<Uint8Array>({
      write(chunk) {
        socket.send(frame(0, chunk));
      },
      close() {
        socket.close();
      },
    });
    const timer = setTimeout(() => {
      fail(new Error(`port-forward to ${name}:${port}: no answer within ${options.timeoutMs ?? 30_000} ms`));
      socket.close();
    }, options.timeoutMs ?? 30_000);
    try {
      await announced;
    } finally {
      clearTimeout(timer);
    }
    return { readable, writable, close: () => socket.close() };
  }
}

function frame(channel: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(payload.length + 1);
  out[0] = channel;
  out.set(payload, 1);
  return out;
}

function exitCodeOf(status: Status): number {
  if (status.status === "Success") return 0;
  const cause = status.details?.causes?.find((c) => c.reason === "ExitCode");
  if (cause?.message) return Number(cause.message);
  // Some kubelet implementations (kwok) only say so in the message.
  const inMessage = /exit (?:status|code) (\d+)/.exec(status.message ?? "");
  return inMessage ? Number(inMessage[1]) : 1;
}
