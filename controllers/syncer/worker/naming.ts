/**
 * Names of objects in the worker's mount namespace.
 *
 * - A pod's twin: `<namespace>-<name>` (cut to 40 characters) + `-` + the first 12 hex digits
 *   of SHA-256(`namespace/name/uid`). The virtual pod's UID is part of the hash, so a pod that is
 *   deleted and re-created under the same name gets a new twin name: an old twin can never be
 *   adopted by, or collide with, the new pod (fencing by UID). Names are deterministic, so a
 *   restarted syncer finds the twins it created.
 * - A mirrored ConfigMap or Secret: `<namespace>-<name>` (cut to 40) + `-` + 12 hex digits of
 *   SHA-256(`binding/kind/namespace/name`), shared by every pod of that namespace that uses it; the
 *   binding is part of the hash, so two bindings never write the same copy.
 * - A ServiceAccount token Secret, one per virtual pod (the token is bound to that pod):
 *   `kubeocean-sa-` + 16 hex digits of SHA-256(`binding/namespace/pod/uid`).
 * - A mirrored PersistentVolumeClaim: like ConfigMaps and Secrets, kind `PersistentVolumeClaim`.
 * - Its PersistentVolume (cluster-scoped in the worker): `kubeocean-pv-` + the volume's name (cut to
 *   40) + `-` + 12 hex digits of SHA-256(`mountNamespace/name`), so bindings of one worker with
 *   different mount namespaces never collide.
 *
 * @module
 */

/** Hashes already computed: names are asked for on every reconcile, and hashing is not free. */
const hashes = new Map<string, string>();
const MAX_CACHED_HASHES = 100_000;

async function hex(text: string, digits: number): Promise<string> {
  let hash = hashes.get(text);
  if (hash === undefined) {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
    hash = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    if (hashes.size >= MAX_CACHED_HASHES) hashes.clear();
    hashes.set(text, hash);
  }
  return hash.slice(0, digits);
}

function prefix(namespace: string, name: string): string {
  return `${namespace}-${name}`.slice(0, 40).replace(/[-.]+$/, "");
}

/** Name of the worker twin of a virtual pod. */
export async function twinName(namespace: string, name: string, uid: string): Promise<string> {
  return `${prefix(namespace, name)}-${await hex(`${namespace}/${name}/${uid}`, 12)}`;
}

/** Name of a binding's worker copy of a virtual ConfigMap, Secret or claim. */
export async function mirroredName(
  binding: string,
  kind: "ConfigMap" | "Secret" | "PersistentVolumeClaim",
  namespace: string,
  name: string,
): Promise<string> {
  return `${prefix(namespace, name)}-${await hex(`${binding}/${kind}/${namespace}/${name}`, 12)}`;
}

/** Prefix of every token Secret name. */
export const TOKEN_SECRET_PREFIX = "kubeocean-sa-";

/** Name of the worker Secret holding the ServiceAccount token bound to one virtual pod. */
export async function tokenSecretName(
  binding: string,
  namespace: string,
  pod: string,
  uid: string,
): Promise<string> {
  return `${TOKEN_SECRET_PREFIX}${await hex(`${binding}/${namespace}/${pod}/${uid}`, 16)}`;
}

/** Name of the worker copy of a virtual PersistentVolume. */
export async function mirroredVolumeName(mountNamespace: string, name: string): Promise<string> {
  return `kubeocean-pv-${name.slice(0, 40).replace(/[-.]+$/, "")}-${await hex(
    `${mountNamespace}/${name}`,
    12,
  )}`;
}
