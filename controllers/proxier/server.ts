/**
 * The kubelet API of virtual nodes: one HTTPS listener (`node:https`, which can verify client
 * certificates and hand over upgraded sockets — `Deno.serve` can do neither) serving, for every
 * virtual node of the bindings this process serves, the paths the API server calls:
 *
 * - `GET /containerLogs/{namespace}/{pod}/{container}`
 * - `GET|POST /exec/{namespace}/{pod}/{container}` and `/attach/…` (SPDY/3.1 or WebSocket)
 * - `GET|POST /portForward/{namespace}/{pod}` (SPDY/3.1 or WebSocket)
 * - `GET /metrics/nodes/{node}/metrics/resource` and `/stats/nodes/{node}/summary` (the resource
 *   metrics and the Summary of one virtual node, for metrics-server: `kubectl top`, autoscalers)
 * - `GET /healthz` (unauthenticated: it says only that the listener is up)
 *
 * (the `…/{pod}/{uid}/{container}` variants too). Every other request is authenticated (401),
 * resolved to a virtual pod on a served virtual node (404; 503 while its twin does not exist yet)
 * and authorized like a kubelet authorizes (403), each with a plain message naming the cause.
 *
 * @module
 */

import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { Socket } from "node:net";
import type { KubeClient } from "../../toolkit/client/client.ts";
import type { Runnable } from "../../toolkit/runtime/controller.ts";
import { type Logger, silentLogger } from "../../toolkit/runtime/log.ts";
import { KubeletApiError, kubeletAttributes, KubeletAuth } from "./auth.ts";
import { serveLogs } from "./logs.ts";
import type { ProxierMetrics } from "./metrics.ts";
import { servePortForward } from "./portforward.ts";
import { serveRemoteCommand, type StreamContext } from "./remotecommand.ts";
import { PodResolver, type ServedBindings } from "./resolve.ts";
import { failure } from "./failure.ts";
import { answerClientError } from "./client_error.ts";
import { parseNodePath, renderResourceMetrics, statsSummary } from "./resource_metrics.ts";
import { ANNOTATION_RESOURCE_METRICS_PATH } from "../common/names.ts";

/** The serving certificate and the CA client certificates must chain to. */
export interface ServingTls {
  certPem: string;
  keyPem: string;
  /** The computing cluster's client CA. */
  clientCaPem: string;
}

/** Options of a {@linkcode KubeletApiServer}. */
export interface KubeletApiServerOptions {
  /** The computing cluster (pods, nodes, TokenReviews, SubjectAccessReviews). */
  computing: KubeClient;
  bindings: ServedBindings;
  tls: ServingTls;
  listen: { hostname: string; port: number };
  metrics: ProxierMetrics;
  log?: Logger;
}

/** A parsed pod-scoped kubelet path. */
interface PodPath {
  verb: "containerLogs" | "exec" | "attach" | "portForward";
  namespace: string;
  pod: string;
  container?: string;
}

/** Parses `/{verb}/{ns}/{pod}[/{uid}]/{container}` and `/portForward/{ns}/{pod}[/{uid}]`. */
export function parsePodPath(pathname: string): PodPath | undefined {
  const parts = pathname.split("/").slice(1).map((p) => decodeURIComponent(p));
  const [verb, namespace, pod, ...rest] = parts;
  if (!namespace || !pod) return undefined;
  if (verb === "portForward") return rest.length <= 1 ? { verb, namespace, pod } : undefined;
  if (verb !== "containerLogs" && verb !== "exec" && verb !== "attach") return undefined;
  const container = rest.length === 1 ? rest[0] : rest.length === 2 ? rest[1] : undefined;
  return container ? { verb, namespace, pod, container } : undefined;
}

/** Serves the kubelet API until its signal aborts. */
export class KubeletApiServer implements Runnable {
  readonly name = "kubelet-api";
  readonly auth: KubeletAuth;
  readonly resolver: PodResolver;
  readonly log: Logger;
  #server?: Server;
  #tls: ServingTls;
  readonly #sockets = new Set<Socket | Duplex>();

  constructor(readonly options: KubeletApiServerOptions) {
    this.auth = new KubeletAuth(options.computing);
    this.resolver = new PodResolver(options.computing, options.bindings);
    this.log = (options.log ?? silentLogger).with({ component: "proxier" });
    this.#tls = options.tls;
  }

  /** The address the listener is bound to (once running). */
  get port(): number | undefined {
    const address = this.#server?.address();
    return address && typeof address === "object" ? address.port : undefined;
  }

  /** Serves `certificate` to new connections from now on (a renewed serving certificate). */
  useCertificate(certificate: { certPem: string; keyPem: string }): void {
    const tls = { ...this.options.tls, certPem: certificate.certPem, keyPem: certificate.keyPem };
    this.#tls = tls;
    this.#server?.setSecureContext({ cert: tls.certPem, key: tls.keyPem, ca: tls.clientCaPem });
    this.log.info("serving a renewed certificate");
  }

  /** Starts listening; resolves once bound. */
  async listen(): Promise<void> {
    if (this.#server) return;
    const { listen } = this.options;
    const tls = this.#tls;
    const server = createServer({
      cert: tls.certPem,
      key: tls.keyPem,
      ca: tls.clientCaPem,
      requestCert: true,
      // Verified certificates set socket.authorized; unverified ones still connect (bearer tokens).
      rejectUnauthorized: false,
      ALPNProtocols: ["http/1.1"],
    });
    server.on("request", (request: IncomingMessage, response: ServerResponse) => {
      void this.#request(request, response);
    });
    server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Uint8Array) => {
      void this.#upgrade(request, socket, head);
    });
    server.on("secureConnection", (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
    server.on("tlsClientError", (err: Error) => this.log.debug("TLS handshake failed", { error: err }));
    server.on("clientError", (err: Error & { code?: string }, socket: Duplex) => {
      this.log.debug("malformed request refused", { error: err });
      answerClientError(err, socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(listen.port, listen.hostname, () => resolve());
    });
    this.#server = server;
    this.log.info("serving the kubelet API", { address: `${listen.hostname}:${this.port}` });
  }

  /** Serves until `signal` aborts, then closes the listener and every open connection. */
  async run(signal: AbortSignal): Promise<void> {
    await this.listen();
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
    await this.close();
  }

  /** Closes the listener and every open connection. */
  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  async #request(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "https://kubelet");
    const endpoint = url.pathname.split("/")[1] || "/";
    try {
      if (url.pathname === "/healthz") {
        response.writeHead(200, { "content-type": "text/plain" }).end("ok");
        this.options.metrics.requests.inc({ endpoint: "healthz", code: "200" });
        return;
      }
      const nodePath = parseNodePath(url.pathname);
      if (nodePath) {
        await this.#serveUsage(request, response, url.pathname, nodePath);
        this.options.metrics.requests.inc({ endpoint, code: String(response.statusCode) });
        return;
      }
      if (url.pathname === "/metrics/resource" || url.pathname === "/stats/summary") {
        throw new KubeletApiError(
          404,
          `${url.pathname}: this kubelet API serves many virtual nodes; ask for /metrics/nodes/<node>/metrics/resource or /stats/nodes/<node>/summary (each virtual node's ${ANNOTATION_RESOURCE_METRICS_PATH} annotation names its path)`,
        );
      }
      const path = parsePodPath(url.pathname);
      if (!path) {
        throw new KubeletApiError(404, `${url.pathname}: not a kubelet API path this proxier serves`);
      }
      if (path.verb !== "containerLogs") {
        throw new KubeletApiError(400, `${path.verb} needs an upgrade to SPDY/3.1 or WebSocket`);
      }
      const { target, twin } = await this.#admit(request, url.pathname, path);
      await serveLogs(
        response,
        target.streams,
        twin,
        path.container!,
        url.searchParams,
        this.options.metrics,
      );
      this.options.metrics.requests.inc({ endpoint, code: String(response.statusCode) });
    } catch (err) {
      const { status, message } = failure(err);
      if (status >= 500) this.log.warn("kubelet API request failed", { path: url.pathname, error: err });
      this.options.metrics.requests.inc({ endpoint, code: String(status) });
      if (response.headersSent) {
        response.destroy();
        return;
      }
      const headers = err instanceof KubeletApiError ? err.headers : {};
      response.writeHead(status, { ...headers, "content-type": "text/plain; charset=utf-8" }).end(
        `${message}\n`,
      );
    }
  }

  async #upgrade(request: IncomingMessage, socket: Duplex, head: Uint8Array): Promise<void> {
    const url = new URL(request.url ?? "/", "https://kubelet");
    const endpoint = url.pathname.split("/")[1] || "/";
    socket.on("error", (err) => this.log.debug("stream socket error", { error: err }));
    try {
      const path = parsePodPath(url.pathname);
      if (!path || path.verb === "containerLogs") {
        throw new KubeletApiError(404, `${url.pathname}: not a streaming kubelet API path`);
      }
      const { target, twin } = await this.#admit(request, url.pathname, path);
      const context: StreamContext = {
        request,
        socket,
        head,
        query: url.searchParams,
        twin,
        streams: target.streams,
        metrics: this.options.metrics,
        log: this.log,
      };
      if (path.verb === "portForward") await servePortForward(context);
      else await serveRemoteCommand(path.verb, path.container!, context);
      this.options.metrics.requests.inc({ endpoint, code: "101" });
    } catch (err) {
      const { status, message } = failure(err);
      if (status >= 500) this.log.warn("kubelet API stream failed", { path: url.pathname, error: err });
      this.options.metrics.requests.inc({ endpoint, code: String(status) });
      refuseUpgrade(socket, status, message, err instanceof KubeletApiError ? err.headers : {});
    }
  }

  /** `/metrics/nodes/{node}/metrics/resource` and `/stats/nodes/{node}/summary`. */
  async #serveUsage(
    request: IncomingMessage,
    response: ServerResponse,
    pathname: string,
    path: { kind: "resource" | "summary"; node: string },
  ): Promise<void> {
    const user = await this.auth.authenticate(request);
    const target = await this.resolver.node(path.node);
    await this.auth.authorize(user, kubeletAttributes(request.method ?? "GET", pathname, path.node));
    const usage = await target.usage.usageOn(path.node);
    if (path.kind === "resource") {
      response.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
      response.end(renderResourceMetrics(usage));
    } else {
      const started = target.node.metadata?.creationTimestamp;
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify(statsSummary(usage, started ? new Date(started) : undefined)));
    }
  }

  /** Authenticates, resolves and authorizes a pod-scoped request. */
  async #admit(request: IncomingMessage, pathname: string, path: PodPath) {
    const user = await this.auth.authenticate(request);
    const target = await this.resolver.target(path.namespace, path.pod);
    await this.auth.authorize(user, kubeletAttributes(request.method ?? "GET", pathname, target.node));
    const twin = this.resolver.twinOf(target, path.container);
    return { target, twin };
  }
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
};

/** Answers an upgrade request with a plain HTTP error and closes the socket. */
export function refuseUpgrade(
  socket: Duplex,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  if (socket.destroyed) return;
  const body = new TextEncoder().encode(`${message}\n`);
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("");
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\n` +
      extra +
      "Content-Type: text/plain; charset=utf-8\r\n" +
      `Content-Length: ${body.byteLength}\r\n` +
      "Connection: close\r\n\r\n" + `${message}\n`,
  );
}
