/**
 * Mutations of a ClusterBinding whose base is valid: the live binding's kubeconfig Secret, the
 * live mount namespace and a fresh clusterID (so an unchanged copy is accepted and reconciled to
 * Pending: no syncer runs for it).
 *
 * @module
 */

import { either, invalid, type Mutation, REMOVE, set, setWith, VALID } from "./mutation.ts";

/** A valid ClusterBinding for case `index`. */
export function baseBinding(
  name: string,
  clusterID: string,
  facts: { secretName: string; namespace: string; mountNamespace: string },
  labels: Record<string, string>,
): Record<string, unknown> {
  return {
    apiVersion: "kubeocean.io/v1beta1",
    kind: "ClusterBinding",
    metadata: { name, labels: { ...labels } },
    spec: {
      clusterID,
      mountNamespace: facts.mountNamespace,
      secretRef: { name: facts.secretName, namespace: facts.namespace },
    },
  };
}

const term = (expression: Record<string, unknown>) => ({
  nodeSelectorTerms: [{ matchExpressions: [expression] }],
});

/** Every ClusterBinding mutation. */
export const BINDING_MUTATIONS: readonly Mutation[] = [
  set("spec.clusterID", 42, "wrong type", invalid("clusterID")),
  set("spec.clusterID", ["w1"], "wrong type", invalid("clusterID")),
  set("spec.clusterID", "Bad_ID", "bad pattern", invalid("clusterID")),
  set("spec.clusterID", "a".repeat(25), "too long", invalid("clusterID")),
  set("spec.clusterID", "", "empty", invalid("clusterID")),
  set("spec.clusterID", "-lead", "bad pattern", invalid("clusterID")),
  setWith(
    "spec.clusterID",
    ({ rng }) => rng.string(100_000),
    "a 100,000-character string",
    invalid("clusterID"),
  ),
  setWith(
    "spec.clusterID",
    ({ facts }) => facts.clusterID,
    "the live binding's clusterID",
    invalid("clusterID"),
  ),
  set("spec.mountNamespace", 7, "wrong type", invalid("mountNamespace")),
  set("spec.mountNamespace", "Not_A_Namespace", "bad pattern", invalid("mountNamespace")),
  setWith(
    "spec.mountNamespace",
    ({ index }) => `fz-missing-${index}`,
    "a namespace without the syncer's permissions",
    ({ index }) => invalid(`fz-missing-${index}`, "mountNamespace"),
  ),
  set("spec.mountNamespace", REMOVE, "required", invalid("mountNamespace")),
  set("spec.secretRef", "worker-kubeconfig", "wrong type", invalid("secretRef")),
  set("spec.secretRef", REMOVE, "required", invalid("secretRef")),
  setWith(
    "spec.secretRef.name",
    ({ index }) => `fz-no-secret-${index}`,
    "a missing Secret",
    ({ index }) => invalid(`fz-no-secret-${index}`),
  ),
  set("spec.secretRef.namespace", "default", "not the manager's namespace", invalid("secretRef.namespace")),
  set("spec.secretRef.namespace", "", "empty", invalid("secretRef")),
  set("spec.secretRef.name", REMOVE, "required", invalid("secretRef")),
  set(
    "spec.nodeSelector",
    term({ key: "zone", operator: "Like", values: ["a"] }),
    "bad enum",
    invalid("operator"),
  ),
  set("spec.nodeSelector", {}, "nodeSelectorTerms missing", invalid("nodeSelectorTerms")),
  set(
    "spec.nodeSelector",
    term({ key: "cpu", operator: "Gt", values: ["abc"] }),
    "Gt of a non-number",
    either("nodeSelector"),
  ),
  set("spec.nodeSelector", "all", "wrong type", invalid("nodeSelector")),
  set("spec.allowedAnnotations", ["bad annotation!"], "bad pattern", invalid("allowedAnnotations")),
  set(
    "spec.allowedAnnotations",
    Array.from({ length: 65 }, (_, i) => `a${i}`),
    "too many",
    invalid("allowedAnnotations"),
  ),
  set("spec.allowedAnnotations", "*", "wrong type", invalid("allowedAnnotations")),
  set("spec.kubernetesEndpoint", { host: "10.0.0.1", port: 0 }, "out of range", invalid("port")),
  set("spec.kubernetesEndpoint", { host: "10.0.0.1", port: 65536 }, "out of range", invalid("port")),
  set("spec.kubernetesEndpoint", { host: "10.0.0.1", port: "abc" }, "wrong type", invalid("port")),
  set("spec.kubernetesEndpoint", { host: "", port: 443 }, "empty host", invalid("host")),
  set("spec.kubernetesEndpoint", { host: "10.0.0.1" }, "port missing", invalid("port")),
  set("spec.kubernetesEndpoint", { host: "10.0.0.1", port: 6443 }, "valid", VALID),
  set("spec.directScheduling", "yes", "wrong type", invalid("directScheduling")),
  set("spec.disableNodeDefaultTaint", 1, "wrong type", invalid("disableNodeDefaultTaint")),
  set("spec.runningDaemonsetByDefault", "true", "wrong type", invalid("runningDaemonsetByDefault")),
  set("spec.serviceNamespaces", [""], "empty item", invalid("serviceNamespaces")),
  setWith(
    "spec.podPriorityClassName",
    ({ rng }) => rng.string(10_000),
    "a 10,000-character string",
    either("podPriorityClassName"),
  ),
  set("spec.unknownField", { nested: true }, "unknown field, pruned", VALID),
  set("spec", "nope", "wrong type", invalid("spec")),
  set("spec", REMOVE, "required", invalid("spec")),
  set("metadata.name", "Bad_Name", "bad name", invalid("name")),
  setWith(
    "metadata.name",
    ({ rng }) => `fz-${rng.string(260, "abcdefghijklmnopqrstuvwxyz")}`,
    "too long",
    invalid("name"),
  ),
  setWith(
    "metadata.annotations",
    ({ rng }) => ({ "chaos.kubeocean.io/huge": rng.string(300_000) }),
    "300 kB of annotations",
    invalid("annotations", "metadata"),
  ),
  set("metadata.annotations", { "chaos.kubeocean.io/note": "unchanged otherwise" }, "harmless", VALID),
];
