/**
 * Checks a ClusterBinding's access to its worker cluster: the kubeconfig Secret exists, holds a
 * parsable kubeconfig, the API server answers, and the credentials hold every permission in
 * {@linkcode WORKER_PERMISSIONS} (asked with SelfSubjectAccessReviews).
 *
 * @module
 */

import type { Secret } from "../../apis/core/v1/mod.ts";
import type { ClusterBinding } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { KubeClient } from "../../toolkit/client/client.ts";
import { loadKubeconfigText, UntrustedKubeconfigError } from "../../toolkit/client/kubeconfig.ts";
import type { KubeObject } from "../../toolkit/client/resource.ts";
import { KUBECONFIG_KEY } from "../common/names.ts";
import { type Permission, WORKER_PERMISSIONS } from "../common/worker_permissions.ts";

/** Why access failed, as a condition reason and message. */
export interface AccessProblem {
  condition: "Connected" | "Authorized";
  reason: string;
  message: string;
}

/** The kubeconfig text of the binding's Secret, or the problem with it. */
export function kubeconfigFromSecret(
  binding: ClusterBinding,
  secret: Secret | undefined,
): string | AccessProblem {
  const ref = `${binding.spec?.secretRef.namespace}/${binding.spec?.secretRef.name}`;
  if (!secret) {
    return {
      condition: "Connected",
      reason: "SecretNotFound",
      message: `kubeconfig Secret ${ref} not found`,
    };
  }
  const data = secret.data?.[KUBECONFIG_KEY] ??
    (secret.stringData?.[KUBECONFIG_KEY] ? btoa(secret.stringData[KUBECONFIG_KEY]) : undefined);
  if (!data) {
    return {
      condition: "Connected",
      reason: "KubeconfigMissing",
      message: `Secret ${ref} has no "${KUBECONFIG_KEY}" key`,
    };
  }
  try {
    const text = new TextDecoder().decode(Uint8Array.from(atob(data), (c) => c.charCodeAt(0)));
    if (!text.trim()) {
      return {
        condition: "Connected",
        reason: "KubeconfigMissing",
        message: `Secret ${ref}: "${KUBECONFIG_KEY}" is empty`,
      };
    }
    return text;
  } catch {
    return {
      condition: "Connected",
      reason: "KubeconfigInvalid",
      message: `Secret ${ref}: "${KUBECONFIG_KEY}" is not base64`,
    };
  }
}

/**
 * A client for the worker cluster from kubeconfig text, or the problem with it. The text is data:
 * unless `trusted`, a kubeconfig that would run a program or read a local file is refused.
 */
export async function workerClient(
  binding: ClusterBinding,
  kubeconfig: string,
  options: { trusted?: boolean } = {},
): Promise<KubeClient | AccessProblem> {
  const ref = `${binding.spec?.secretRef.namespace}/${binding.spec?.secretRef.name}`;
  try {
    const config = await loadKubeconfigText(kubeconfig, {
      source: `Secret ${ref}`,
      dataOnly: !options.trusted,
    });
    return KubeClient.fromConfig(config, { timeoutMs: 10_000, maxRetries: 1, qps: 100, burst: 200 });
  } catch (err) {
    const reason = err instanceof UntrustedKubeconfigError ? "KubeconfigRefused" : "KubeconfigInvalid";
    return { condition: "Connected", reason, message: (err as Error).message };
  }
}

/** A permission as text: `create pods/exec in namespace kubeocean-worker`. */
function describePermission(p: Permission, verb: string, mountNamespace: string): string {
  const resource = `${p.group ? `${p.resource}.${p.group}` : p.resource}${
    p.subresource ? `/${p.subresource}` : ""
  }`;
  const where = p.scope === "mount-namespace"
    ? ` in namespace ${mountNamespace}`
    : p.scope === "mount-namespace-object"
    ? ` ${mountNamespace}`
    : " (cluster-wide)";
  return `${verb} ${resource}${where}`;
}

interface SelfSubjectAccessReview extends KubeObject {
  spec: { resourceAttributes: Record<string, string> };
  status?: { allowed: boolean; reason?: string };
}

/** Checks connectivity and every required permission; returns the problem, or undefined when all is well. */
export async function checkWorkerAccess(
  client: KubeClient,
  binding: ClusterBinding,
): Promise<AccessProblem | undefined> {
  try {
    await client.version();
  } catch (err) {
    return {
      condition: "Connected",
      reason: "ServerUnreachable",
      message: `worker API server ${client.config.server}: ${(err as Error).message}`,
    };
  }
  const mountNamespace = binding.spec!.mountNamespace;
  const reviews = client.resource<SelfSubjectAccessReview>({
    group: "authorization.k8s.io",
    version: "v1",
    kind: "SelfSubjectAccessReview",
    plural: "selfsubjectaccessreviews",
    namespaced: false,
  });
  const checks = WORKER_PERMISSIONS.flatMap((p) => p.verbs.map((verb) => ({ p, verb })));
  const missing: string[] = [];
  try {
    await Promise.all(checks.map(async ({ p, verb }) => {
      const review = await reviews.create({
        apiVersion: "authorization.k8s.io/v1",
        kind: "SelfSubjectAccessReview",
        spec: {
          resourceAttributes: {
            group: p.group,
            resource: p.resource,
            ...(p.subresource ? { subresource: p.subresource } : {}),
            verb,
            ...(p.scope === "mount-namespace" ? { namespace: mountNamespace } : {}),
            ...(p.scope === "mount-namespace-object" ? { name: mountNamespace } : {}),
          },
        },
      });
      if (!review.status?.allowed) missing.push(describePermission(p, verb, mountNamespace));
    }));
  } catch (err) {
    return {
      condition: "Authorized",
      reason: "AccessReviewFailed",
      message: `cannot check permissions: ${(err as Error).message}`,
    };
  }
  if (missing.length > 0) {
    missing.sort();
    return {
      condition: "Authorized",
      reason: "MissingPermissions",
      message: `the worker credentials lack: ${missing.join("; ")}`,
    };
  }
  return undefined;
}
