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

/** What an exec or attach session wires up. */
export interface RemoteCommandOptions {
  container?: string;
  /** Open standard input (default false). */
  stdin?: boolean;
  /** Open standard output (default true). */
  stdout?: boolean;
  /** Open standard error (default true; never with a TTY, which merges it into standard output). */
  stderr?: boolean;
  tty?: boolean;
  /** Closes the session when it aborts. */
  signal?: AbortSignal;
}

/** An open exec or attach session; streams exist for the channels asked for. */
export interface RemoteCommandSession {
  /** The sub-protocol agreed (`v5.channel.k8s.io` can half-close stdin; `v4` cannot). */
  protocol: string;
  stdin?: WritableStream<Uint8Array>;
  stdout?: ReadableStream<Uint8Array>;
  stderr?: ReadableStream<Uint8Array>;
  /** Sends a terminal size (TTY sessions). */
  resize(size: { width: number; height: number }): void;
  /** The command's final Status, once the session ended (exit code in `details.causes`). */
  status: Promise<Status>;
  /** Ends the session. */
  close(): void;
}

const CHANNEL = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const;

/**
 * A resource client for pods with the streaming subresources; like every subresource method,
 * `exec`, `attach` and `portForward` need their subresource in `S`.
 */
export class PodClient<T extends KubeObject, S extends string = never> extends ResourceClient<T, S> {
  override namespace(namespace: string): PodClient<T, S> {
    return new PodClient<T, S>(this.transport, this.descriptor, namespace);
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
  async exec(
    this: PodClient<T, "exec">,
    name: string,
    command: string[],
    options: ExecOptions = {},
  ): Promise<ExecResult> {
    const session = await this.openExec(name, { ...sessionOptions(options), command });
    return await collect(session, `exec in ${name}`, options);
  }

  /** Attaches to a running container's streams and collects output until it ends or `signal` aborts. */
  async attach(this: PodClient<T, "attach">, name: string, options: ExecOptions = {}): Promise<ExecResult> {
    const session = await this.openAttach(name, sessionOptions(options));
    return await collect(session, `attach to ${name}`, options);
  }

  /**
   * Starts a command in a container and hands over its streams (for proxies and interactive
   * use); {@linkcode exec} collects them for you.
   */
  openExec(
    this: PodClient<T, "exec">,
    name: string,
    options: RemoteCommandOptions & { command: string[] },
  ): Promise<RemoteCommandSession> {
    const query = new URLSearchParams();
    for (const arg of options.command) query.append("command", arg);
    return this.#remoteCommand("exec", name, query, options);
  }

  /** Attaches to a container's main process and hands over its streams. */
  openAttach(
    this: PodClient<T, "attach">,
    name: string,
    options: RemoteCommandOptions,
  ): Promise<RemoteCommandSession> {
    return this.#remoteCommand("attach", name, new URLSearchParams(), options);
  }

  async #remoteCommand(
    kind: "exec" | "attach",
    name: string,
    query: URLSearchParams,
    options: RemoteCommandOptions,
  ): Promise<RemoteCommandSession> {
    const tty = options.tty ?? false;
    const wants = {
      stdin: options.stdin ?? false,
      stdout: options.stdout ?? true,
      stderr: (options.stderr ?? true) && !tty,
    };
    if (options.container) query.set("container", options.container);
    query.set("stdin", String(wants.stdin));
    query.set("stdout", String(wants.stdout));
    query.set("stderr", String(wants.stderr));
    query.set("tty", String(tty));
    const path = objectPath(this.descriptor, name, this.boundNamespace, kind);
    const { socket, listen } = await this.#socket(path, query, ["v5.channel.k8s.io", "v4.channel.k8s.io"]);
    const outputs = new Map<number, ReadableStreamDefaultController<Uint8Array>>();
    const output = (channel: number) =>
      new ReadableStream<Uint8Array>({
        start: (controller) => void outputs.set(channel, controller),
        cancel: () => void outputs.delete(channel),
      });
    const stdout = wants.stdout ? output(CHANNEL.stdout) : undefined;
    const stderr = wants.stderr ? output(CHANNEL.stderr) : undefined;
    let statusText = "";
    const status = new Promise<Status>((resolve) => {
      listen((event) => {
        const data = new Uint8Array(event.data as ArrayBuffer);
        if (data.length === 0) return;
        if (data[0] === CHANNEL.error) statusText += new TextDecoder().decode(data.subarray(1));
        else outputs.get(data[0])?.enqueue(data.slice(1));
      });
      socket.onclose = () => {
        for (const controller of outputs.values()) controller.close();
        outputs.clear();
        resolve(statusText ? JSON.parse(statusText) : { status: "Success" });
      };
    });
    const close = () => socket.close();
    options.signal?.addEventListener("abort", close, { once: true });
    void status.then(() => options.signal?.removeEventListener("abort", close));
    const stdin = wants.stdin
      ? new WritableStream<Uint8Array>({
        write: (chunk) => socket.send(frame(CHANNEL.stdin, chunk)),
        // v5 can half-close stdin; v4 cannot, so the command sees end of input only when it ends.
        close: () => {
          if (socket.protocol === "v5.channel.k8s.io") {
            socket.send(new Uint8Array([CHANNEL.close, CHANNEL.stdin]));
          }
        },
      })
      : undefined;
    return {
      protocol: socket.protocol,
      stdin,
      stdout,
      stderr,
      resize: ({ width, height }) =>
        socket.send(
          frame(CHANNEL.resize, new TextEncoder().encode(JSON.stringify({ Width: width, Height: height }))),
        ),
      status,
      close,
    };
  }

  /**
   * Opens a port-forward stream to `port` of the pod. Resolves once the kubelet has announced
   * the port on the data channel, so nothing written early is lost.
   */
  async portForward(
    this: PodClient<T, "portforward">,
    name: string,
    port: number,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
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
    const close = () => socket.close();
    options.signal?.addEventListener("abort", close, { once: true });
    try {
      await announced;
    } finally {
      clearTimeout(timer);
    }
    return { readable, writable, close };
  }
}

function sessionOptions(options: ExecOptions): RemoteCommandOptions {
  return {
    container: options.container,
    stdin: options.stdin !== undefined,
    stdout: true,
    stderr: !options.tty,
    tty: options.tty,
    signal: options.signal,
  };
}

/** Writes the session's stdin, reads its output to the end, and waits for its status. */
async function collect(
  session: RemoteCommandSession,
  what: string,
  options: ExecOptions,
): Promise<ExecResult> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    session.close();
  }, options.timeoutMs ?? 60_000);
  try {
    const text = (stream: ReadableStream<Uint8Array> | undefined) =>
      stream ? new Response(stream).text() : Promise.resolve("");
    const [stdout, stderr] = await Promise.all([
      text(session.stdout),
      text(session.stderr),
      (async () => {
        if (!session.stdin || options.stdin === undefined) return;
        const bytes = typeof options.stdin === "string"
          ? new TextEncoder().encode(options.stdin)
          : options.stdin;
        const writer = session.stdin.getWriter();
        await writer.write(bytes);
        await writer.close();
      })(),
    ]);
    const status = await session.status;
    if (timedOut) throw new Error(`${what} timed out`);
    return { stdout, stderr, exitCode: exitCodeOf(status), status };
  } finally {
    clearTimeout(timer);
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
