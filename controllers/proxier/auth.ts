/**
 * Authentication and authorization of kubelet API requests, as a kubelet does them.
 *
 * - Who: a client certificate the TLS layer verified against the computing cluster's client CA
 *   (only `socket.authorized` counts: a certificate's subject is readable even when it was not
 *   verified), else a bearer token checked with a TokenReview (metrics-server and Prometheus use
 *   tokens). Neither → 401.
 * - May they: a SubjectAccessReview on resource `nodes`, name = the virtual node, subresource by
 *   path (`stats`, `metrics`, `log`, `healthz`, else `proxy`), verb by method — but `create` for
 *   exec, attach and port-forward whatever the method, since a WebSocket upgrade is a GET and `get`
 *   must not grant a shell. Denied → 403.
 *
 * Answers are cached like the kubelet's webhook defaults: tokens 2 minutes, allowed 5 minutes,
 * denied 30 seconds.
 *
 * @module
 */

import type { TLSSocket } from "node:tls";
import type { IncomingMessage } from "node:http";
import { AuthenticationK8sIoV1Api } from "../../apis/authentication.k8s.io/v1/mod.ts";
import { AuthorizationK8sIoV1Api } from "../../apis/authorization.k8s.io/v1/mod.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { sha256Hex } from "../../toolkit/util/mod.ts";

/** An authenticated caller. */
export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

/** What a request asks to do, in a kubelet's authorization terms. */
export interface KubeletAttributes {
  verb: string;
  /** `proxy`, `log`, `stats`, `metrics`, `healthz`, `pods`. */
  subresource: string;
  /** The virtual node the request is for. */
  node: string;
}

/** A refusal with its HTTP status and a plain message. */
export class KubeletApiError extends Error {
  override readonly name = "KubeletApiError";

  /** `headers` go on the answer (e.g. the stream protocols a 403 serves). */
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

const TOKEN_TTL_MS = 2 * 60_000;
const ALLOWED_TTL_MS = 5 * 60_000;
const DENIED_TTL_MS = 30_000;

/** Authenticates and authorizes against the computing cluster, with caches. */
export class KubeletAuth {
  readonly #tokens = new Map<string, { user?: UserInfo; until: number }>();
  readonly #decisions = new Map<string, { allowed: boolean; reason: string; until: number }>();

  constructor(readonly computing: KubeClient, readonly now: () => number = Date.now) {}

  /** The caller of `request`, or a 401 error. */
  async authenticate(request: IncomingMessage): Promise<UserInfo> {
    const socket = request.socket as TLSSocket;
    if (socket.authorized) {
      const subject = socket.getPeerCertificate()?.subject;
      const cn = subject?.CN;
      const username = Array.isArray(cn) ? cn[0] : cn;
      if (username) {
        const o = subject?.O;
        return {
          username,
          groups: [...(o === undefined ? [] : Array.isArray(o) ? o : [o]), "system:authenticated"],
        };
      }
    }
    const header = request.headers.authorization ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) {
      throw new KubeletApiError(
        401,
        "Unauthorized: no client certificate from the cluster's CA and no bearer token",
      );
    }
    const user = await this.#review(match[1]);
    if (!user) {
      throw new KubeletApiError(401, "Unauthorized: the bearer token was not accepted (TokenReview)");
    }
    return user;
  }

  /** Resolves when `user` may do `attributes`; else throws a 403 error naming what was denied. */
  async authorize(user: UserInfo, attributes: KubeletAttributes): Promise<void> {
    const key = JSON.stringify([user.username, user.groups, attributes]);
    let decision = this.#decisions.get(key);
    if (!decision || decision.until <= this.now()) {
      const review = await new AuthorizationK8sIoV1Api(this.computing).subjectaccessreviews().create({
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: {
          user: user.username,
          uid: user.uid,
          groups: user.groups,
          extra: user.extra,
          resourceAttributes: {
            verb: attributes.verb,
            resource: "nodes",
            subresource: attributes.subresource,
            name: attributes.node,
          },
        },
      });
      const allowed = review.status?.allowed === true;
      decision = {
        allowed,
        reason: review.status?.reason ?? review.status?.evaluationError ?? "",
        until: this.now() + (allowed ? ALLOWED_TTL_MS : DENIED_TTL_MS),
      };
      this.#decisions.set(key, decision);
      if (this.#decisions.size > 10_000) this.#decisions.clear();
    }
    if (!decision.allowed) {
      throw new KubeletApiError(
        403,
        `Forbidden: user "${user.username}" may not ${attributes.verb} nodes/${attributes.subresource} of ${attributes.node}${
          decision.reason ? ` (${decision.reason})` : ""
        }`,
      );
    }
  }

  async #review(token: string): Promise<UserInfo | undefined> {
    const key = await sha256Hex(token);
    const cached = this.#tokens.get(key);
    if (cached && cached.until > this.now()) return cached.user;
    const review = await new AuthenticationK8sIoV1Api(this.computing).tokenreviews().create({
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenReview",
      spec: { token },
    });
    const info = review.status?.authenticated ? review.status.user : undefined;
    const user = info?.username
      ? { username: info.username, uid: info.uid, groups: info.groups ?? [], extra: info.extra }
      : undefined;
    this.#tokens.set(key, { user, until: this.now() + TOKEN_TTL_MS });
    if (this.#tokens.size > 10_000) this.#tokens.clear();
    return user;
  }
}

/**
 * The kubelet's mapping of a request to authorization attributes: verb by method (`create` for
 * the streaming endpoints), subresource by path.
 */
export function kubeletAttributes(method: string, path: string, node: string): KubeletAttributes {
  const streaming = /^\/(exec|attach|portForward|run)\//.test(path);
  const verb = streaming ? "create" : VERBS[method] ?? "get";
  const subresource = path.startsWith("/stats/")
    ? "stats"
    : path.startsWith("/metrics/") || path === "/metrics"
    ? "metrics"
    : path.startsWith("/logs/")
    ? "log"
    : path === "/healthz"
    ? "healthz"
    : path === "/pods" || path.startsWith("/runningpods")
    ? "pods"
    : "proxy";
  return { verb, subresource, node };
}

const VERBS: Record<string, string> = {
  GET: "get",
  HEAD: "get",
  POST: "create",
  PUT: "update",
  PATCH: "patch",
  DELETE: "delete",
};
