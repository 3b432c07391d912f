/**
 * Pod streaming subresources over WebSocket: `exec`, `attach` (remote command protocol
 * `v5.channel.k8s.io`, falling back to `v4`) and `portforward` (`portforward.k8s.io`). The socket
 * carries the same credentials and TLS settings as the transport (pinned CA, server name, client
 * certificate, bearer token), and every output has back-pressure: a slow reader slows the pod's
 * side down instead of filling memory.
 *
 * @module
 */

import { HttpTransport } from "./transport.ts";
import type { KubeObject } from "./resource.ts";
import { objectPath } from "./resource.ts";
import { ResourceClient } from "./resource_client.ts";
import { ApiError, type Status } from "./errors.ts";
import type { WebSocketConnection } from "../streaming/websocket.ts";

/** `ws` and `node:https` load only for processes that open streams. */
let websocketModule: Promise<typeof import("../streaming/websocket.ts")> | undefined;
const loadWebSocket = () => websocketModule ??= import("../streaming/websocket.ts");

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

  /** Opens the WebSocket of a streaming subresource; a refused upgrade is an {@linkcode ApiError}. */
  async #connect(
    path: string,
    query: URLSearchParams,
    protocols: string[],
    signal?: AbortSignal,
  ): Promise<WebSocketConnection> {
    const transport = this.transport;
    if (!(transport instanceof HttpTransport)) {
      throw new Error("streaming subresources need an HttpTransport");
    }
    const target = await transport.websocketTarget(path, query);
    const { connectWebSocket, WebSocketUpgradeError } = await loadWebSocket();
    try {
      return await connectWebSocket(target.url, {
        protocols,
        headers: target.headers,
        ca: target.ca,
        cert: target.cert,
        key: target.key,
        servername: target.servername,
        rejectUnauthorized: target.rejectUnauthorized,
        signal,
      });
    } catch (err) {
      if (err instanceof WebSocketUpgradeError) {
        throw new ApiError(err.status, statusOf(err.body), `GET ${path}`);
      }
      throw err;
    }
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
    const connection = await this.#connect(
      path,
      query,
      ["v5.channel.k8s.io", "v4.channel.k8s.io"],
      options.signal,
    );
    const channels = new ChannelReader(connection);
    const stdout = wants.stdout ? channels.output(CHANNEL.stdout) : undefined;
    const stderr = wants.stderr ? channels.output(CHANNEL.stderr) : undefined;
    const error = channels.collect(CHANNEL.error);
    const status = channels.done.then(async (clean) => {
      const text = await error;
      if (text) return withExitCode(JSON.parse(text) as Status);
      if (clean) return { status: "Success" } satisfies Status;
      return {
        status: "Failure",
        reason: "InternalError",
        message: `${kind} in ${name}: the connection ended before the command's status arrived`,
      } satisfies Status;
    });
    const close = () => connection.abort(new Error(`${kind} in ${name} was closed`));
    options.signal?.addEventListener("abort", close, { once: true });
    void status.then(() => options.signal?.removeEventListener("abort", close));
    const v5 = connection.protocol === "v5.channel.k8s.io";
    const stdin = wants.stdin
      ? new WritableStream<Uint8Array>({
        write: (chunk) => connection.send(frame(CHANNEL.stdin, chunk)),
        // v5 can half-close stdin; v4 cannot, so the command sees end of input only when it ends.
        close: async () => {
          if (v5) await connection.send(new Uint8Array([CHANNEL.close, CHANNEL.stdin]));
        },
      })
      : undefined;
    return {
      protocol: connection.protocol,
      stdin,
      stdout,
      stderr,
      resize: ({ width, height }) =>
        void connection.send(
          frame(CHANNEL.resize, new TextEncoder().encode(JSON.stringify({ Width: width, Height: height }))),
        ).catch(() => {}),
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
    const connection = await this.#connect(
      path,
      new URLSearchParams({ ports: String(port) }),
      ["v4.channel.k8s.io", "portforward.k8s.io"],
      options.signal,
    );
    // Channel 0 carries data, channel 1 errors; the first frame on each names the port (2 bytes LE).
    const channels = new ChannelReader(connection, 2);
    const readable = channels.output(0);
    const errorText = channels.collect(1);
    const close = () => void connection.close().catch(() => connection.abort());
    options.signal?.addEventListener("abort", close, { once: true });
    const writable = new WritableStream<Uint8Array>({
      write: (chunk) => connection.send(frame(0, chunk)),
      close,
      abort: close,
    });
    const timeoutMs = options.timeoutMs ?? 30_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`port-forward to ${name}:${port}: no answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    const ended = channels.done.then(async () => {
      const text = await errorText;
      throw new Error(`port-forward to ${name}:${port} closed${text ? `: ${text}` : ""}`);
    });
    try {
      await Promise.race([channels.announced(0), ended, timedOut]);
    } catch (err) {
      connection.abort(err);
      throw err;
    } finally {
      clearTimeout(timer);
    }
    void ended.catch(() => {});
    return { readable, writable, close };
  }
}

/**
 * Splits a channel WebSocket's messages (first byte: the channel) into per-channel streams, with
 * back-pressure: while an output's reader does not keep up, no further message is read.
 */
class ChannelReader {
  readonly #outputs = new Map<
    number,
    { controller: ReadableStreamDefaultController<Uint8Array>; pulled: () => void }
  >();
  readonly #collected = new Map<number, string[]>();
  readonly #announced = new Map<number, () => void>();
  readonly #headerSeen = new Set<number>();
  /** Resolves when the connection ended: true after a clean close, false otherwise. */
  readonly done: Promise<boolean>;

  /** `headerBytes`: bytes that open every channel (port-forward's port number), dropped. */
  constructor(readonly connection: WebSocketConnection, readonly headerBytes = 0) {
    this.done = this.#pump();
  }

  /** A stream of the payloads of `channel`. */
  output(channel: number): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      start: (controller) => void this.#outputs.set(channel, { controller, pulled: () => {} }),
      pull: () => this.#outputs.get(channel)?.pulled(),
      cancel: () => {
        this.#outputs.get(channel)?.pulled();
        this.#outputs.delete(channel);
      },
    }, { highWaterMark: 4 });
  }

  /** The text sent on `channel`, once the connection ended. */
  async collect(channel: number): Promise<string> {
    this.#collected.set(channel, []);
    await this.done;
    return this.#collected.get(channel)!.join("");
  }

  /** Resolves when `channel`'s opening header arrived. */
  announced(channel: number): Promise<void> {
    if (this.#headerSeen.has(channel)) return Promise.resolve();
    return new Promise((resolve) => this.#announced.set(channel, resolve));
  }

  async #pump(): Promise<boolean> {
    let clean = true;
    try {
      for await (const message of this.connection.messages) {
        if (message.byteLength === 0) continue;
        const channel = message[0];
        let payload = message.subarray(1);
        if (this.headerBytes && !this.#headerSeen.has(channel)) {
          this.#headerSeen.add(channel);
          payload = payload.subarray(this.headerBytes);
          this.#announced.get(channel)?.();
        }
        if (payload.byteLength === 0) continue;
        const text = this.#collected.get(channel);
        if (text) {
          text.push(new TextDecoder().decode(payload));
          continue;
        }
        const output = this.#outputs.get(channel);
        if (!output) continue;
        output.controller.enqueue(payload.slice());
        if ((output.controller.desiredSize ?? 1) <= 0) {
          await new Promise<void>((resolve) => output.pulled = resolve);
        }
      }
    } catch {
      clean = false;
    } finally {
      for (const { controller } of this.#outputs.values()) {
        try {
          controller.close();
        } catch {
          // already cancelled by its reader
        }
      }
      this.#outputs.clear();
    }
    return clean;
  }
}

/** A Status from an error body (JSON Status, else its text as the message). */
function statusOf(body: string): Status {
  try {
    const parsed = JSON.parse(body) as Status;
    if (parsed && typeof parsed === "object" && parsed.kind === "Status") return parsed;
  } catch {
    // not JSON
  }
  return { status: "Failure", message: body.trim() };
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
  return cause?.message ? Number(cause.message) : 1;
}

/**
 * A remote command's Status as a kubelet writes it: some kubelet implementations (kwok) report a
 * command's non-zero exit only in the message (`… exit status 3`); the exit code is then added as
 * the `ExitCode` cause with reason `NonZeroExitCode`, where every client looks for it.
 */
export function withExitCode(status: Status): Status {
  if (status.status !== "Failure" || status.details?.causes?.some((c) => c.reason === "ExitCode")) {
    return status;
  }
  const inMessage = /exit (?:status|code) (\d+)\s*$/.exec(status.message ?? "");
  if (!inMessage) return status;
  return {
    ...status,
    reason: "NonZeroExitCode",
    message: `command terminated with non-zero exit code: ${status.message}`,
    details: {
      ...status.details,
      causes: [...status.details?.causes ?? [], { reason: "ExitCode", message: inMessage[1] }],
    },
  };
}
