/**
 * ServiceAccount tokens of the computing cluster for twins that mount one: a TokenRequest token of
 * the virtual pod's ServiceAccount, **bound to the virtual pod** (`boundObjectRef`, so the API
 * server stops accepting it once that pod is deleted, as for a kubelet's projected token), valid one
 * hour, stored with the computing cluster's CA and the namespace as the Secret
 * {@linkcode tokenSecretName} in the mount namespace, and renewed at 80 % of its lifetime.
 *
 * @module
 */

import type { Secret } from "../../../apis/core/v1/mod.ts";
import { ignoreNotFound, isAlreadyExists } from "../../../toolkit/client/errors.ts";
import { SingleFlight } from "../../../toolkit/util/mod.ts";
import {
  ANNOTATION_VIRTUAL_NAME,
  ANNOTATION_VIRTUAL_NAMESPACE,
  ANNOTATION_VIRTUAL_POD_UID,
  FIELD_MANAGER,
  LABEL_CLUSTER_BINDING,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
} from "../../common/names.ts";
import type { SyncerContext } from "../context.ts";
import { tokenSecretName } from "./naming.ts";

/** Label on token Secrets. */
export const LABEL_SA_TOKEN = "kubeocean.io/service-account-token";
/** Annotation on token Secrets: when the token expires (RFC 3339). */
export const ANNOTATION_EXPIRES = "kubeocean.io/token-expiration";
/** Annotation on token Secrets: the ServiceAccount the token is for. */
export const ANNOTATION_SERVICE_ACCOUNT = "kubeocean.io/service-account";
/** Lifetime asked for each token. */
const TOKEN_SECONDS = 3600;
/** Tokens are renewed once this share of their lifetime is left. */
const RENEW_AT_REMAINING = 0.2;

/** The virtual pod a token is for. */
export interface TokenOwner {
  namespace: string;
  pod: string;
  uid: string;
  serviceAccount: string;
}

/** Keeps the token Secrets of virtual pods in the mount namespace. */
export class TokenMirror {
  /** Token Secret name → when it must be renewed (ms since epoch). */
  readonly #renewAt = new Map<string, number>();
  readonly #inflight = new SingleFlight<string>();

  constructor(readonly ctx: SyncerContext) {}

  /** The label selector of this binding's token Secrets. */
  get selector(): string {
    return `${LABEL_SA_TOKEN}=true,${LABEL_CLUSTER_BINDING}=${this.ctx.config.bindingName}`;
  }

  /** When a token expiring at `expiresAt` (ms) is renewed. */
  static renewalTime(expiresAt: number): number {
    return expiresAt - TOKEN_SECONDS * 1000 * RENEW_AT_REMAINING;
  }

  /** The owner a token Secret records (undefined for a Secret that is not a token Secret). */
  static ownerOf(secret: Secret): TokenOwner | undefined {
    const annotations = secret.metadata?.annotations ?? {};
    const namespace = annotations[ANNOTATION_VIRTUAL_NAMESPACE];
    const pod = annotations[ANNOTATION_VIRTUAL_NAME];
    const uid = annotations[ANNOTATION_VIRTUAL_POD_UID];
    const serviceAccount = annotations[ANNOTATION_SERVICE_ACCOUNT];
    return namespace && pod && uid && serviceAccount ? { namespace, pod, uid, serviceAccount } : undefined;
  }

  /** Ensures the token Secret of a virtual pod exists and is fresh; returns its name. */
  async ensure(owner: TokenOwner): Promise<string> {
    const name = await tokenSecretName(this.ctx.config.bindingName, owner.namespace, owner.pod, owner.uid);
    if (this.#now() < (this.#renewAt.get(name) ?? 0)) return name;
    return await this.#inflight.do(`Token/${name}`, () => this.#ensureNow(owner, name));
  }

  /** Forgets the renewal time of a token Secret (it was deleted). */
  forget(name: string): void {
    this.#renewAt.delete(name);
  }

  async #ensureNow(owner: TokenOwner, name: string): Promise<string> {
    const { virtual, physical, config } = this.ctx;
    const secrets = physical.core.secrets(config.mountNamespace);
    const existing = await secrets.get(name).catch(ignoreNotFound);
    const expires = Date.parse(existing?.metadata?.annotations?.[ANNOTATION_EXPIRES] ?? "");
    const renewAt = Number.isNaN(expires) ? 0 : TokenMirror.renewalTime(expires);
    if (existing && this.#now() < renewAt) {
      this.#renewAt.set(name, renewAt);
      return name;
    }
    const request = await virtual.core.serviceaccounts(owner.namespace).createToken(owner.serviceAccount, {
      expirationSeconds: TOKEN_SECONDS,
      boundObjectRef: { apiVersion: "v1", kind: "Pod", name: owner.pod, uid: owner.uid },
    });
    const rootCa = await virtual.core.configmaps(owner.namespace).get("kube-root-ca.crt").catch(
      ignoreNotFound,
    );
    const body: Secret = {
      apiVersion: "v1",
      kind: "Secret",
      type: "Opaque",
      metadata: {
        name,
        namespace: config.mountNamespace,
        labels: {
          [LABEL_MANAGED_BY]: MANAGED_BY_VALUE,
          [LABEL_CLUSTER_BINDING]: config.bindingName,
          [LABEL_SA_TOKEN]: "true",
        },
        annotations: {
          [ANNOTATION_VIRTUAL_NAMESPACE]: owner.namespace,
          [ANNOTATION_VIRTUAL_NAME]: owner.pod,
          [ANNOTATION_VIRTUAL_POD_UID]: owner.uid,
          [ANNOTATION_SERVICE_ACCOUNT]: owner.serviceAccount,
          [ANNOTATION_EXPIRES]: request.status!.expirationTimestamp,
        },
      },
      data: {
        token: base64(request.status!.token),
        "ca.crt": base64(rootCa?.data?.["ca.crt"] ?? ""),
        namespace: base64(owner.namespace),
      },
    };
    try {
      await secrets.apply(body, { fieldManager: FIELD_MANAGER, force: true });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    const expiresAt = Date.parse(request.status!.expirationTimestamp);
    if (!Number.isNaN(expiresAt)) this.#renewAt.set(name, TokenMirror.renewalTime(expiresAt));
    return name;
  }

  #now(): number {
    return this.ctx.clock.now().getTime();
  }
}

function base64(text: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}
