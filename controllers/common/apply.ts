/**
 * Server-side apply of arbitrary objects by `apiVersion`/`kind`, for the handful of kinds
 * Kubeocean installs (namespaces, RBAC, Secrets, Deployments, CRDs, PriorityClasses…).
 *
 * @module
 */

import * as admission from "../../apis/admissionregistration.k8s.io/v1/mod.ts";
import * as apps from "../../apis/apps/v1/mod.ts";
import * as apiextensions from "../../apis/apiextensions.k8s.io/v1/mod.ts";
import * as core from "../../apis/core/v1/mod.ts";
import * as kubeocean from "../../apis/kubeocean.io/v1beta1/mod.ts";
import * as networking from "../../apis/networking.k8s.io/v1/mod.ts";
import * as rbac from "../../apis/rbac.authorization.k8s.io/v1/mod.ts";
import * as scheduling from "../../apis/scheduling.k8s.io/v1/mod.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { isConflict, isNotFound } from "../../toolkit/client/errors.ts";
import { apiVersionOf, type KubeObject, type ResourceDescriptor } from "../../toolkit/client/resource.ts";
import { FIELD_MANAGER } from "./names.ts";

const DESCRIPTORS: ResourceDescriptor[] = [
  core.NamespaceResource,
  core.ServiceAccountResource,
  core.SecretResource,
  core.ConfigMapResource,
  core.ServiceResource,
  rbac.ClusterRoleResource,
  rbac.ClusterRoleBindingResource,
  rbac.RoleResource,
  rbac.RoleBindingResource,
  apps.DeploymentResource,
  scheduling.PriorityClassResource,
  apiextensions.CustomResourceDefinitionResource,
  kubeocean.ClusterBindingResource,
  kubeocean.ResourceLeasingPolicyResource,
  admission.ValidatingAdmissionPolicyResource,
  admission.ValidatingAdmissionPolicyBindingResource,
  networking.NetworkPolicyResource,
];

/** The descriptor of `object`'s kind; throws for kinds this module does not know. */
function descriptorOf(object: KubeObject): ResourceDescriptor {
  const found = DESCRIPTORS.find((d) => apiVersionOf(d) === object.apiVersion && d.kind === object.kind);
  if (!found) throw new Error(`no descriptor for ${object.apiVersion}/${object.kind}`);
  return found;
}

/** Server-side applies `object` (forcing ownership of the fields it sets). */
export async function applyObject<T extends KubeObject>(
  client: KubeClient,
  object: T,
  fieldManager = FIELD_MANAGER,
): Promise<T> {
  const descriptor = descriptorOf(object);
  const resource = client.resource<T>(
    descriptor,
    descriptor.namespaced ? object.metadata?.namespace : undefined,
  );
  return await resource.apply(object, { fieldManager, force: true });
}

/**
 * Deletes `object` if it exists (and, with `ownedBy`, only while an owner reference names that
 * UID); returns whether it was deleted now.
 */
export async function deleteObject(
  client: KubeClient,
  object: KubeObject,
  options: { ownedBy?: string } = {},
): Promise<boolean> {
  const descriptor = descriptorOf(object);
  const resource = client.resource<KubeObject>(
    descriptor,
    descriptor.namespaced ? object.metadata?.namespace : undefined,
  );
  const name = object.metadata!.name!;
  try {
    let uid: string | undefined;
    if (options.ownedBy) {
      // Same name, another owner (e.g. a binding that reused a clusterID): not ours to delete.
      const current = await resource.get(name);
      if (!current.metadata?.ownerReferences?.some((o) => o.uid === options.ownedBy)) return false;
      uid = current.metadata.uid;
    }
    await resource.delete(name, {
      propagationPolicy: "Background",
      preconditions: uid ? { uid } : undefined,
    });
    return true;
  } catch (err) {
    if (isNotFound(err) || isConflict(err)) return false;
    throw err;
  }
}
