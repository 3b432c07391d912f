/**
 * Everything a twin needs before it can be created: the ConfigMaps, Secrets, claims (with their
 * volumes) and ServiceAccount token its virtual pod references, mirrored into the mount
 * namespace, and the name maps {@linkcode buildTwin} applies.
 *
 * @module
 */

import type { Pod } from "../../../apis/core/v1/mod.ts";
import type { ClaimMirror } from "./claims.ts";
import type { ObjectMirror } from "./mirror.ts";
import { collectReferences, mountsServiceAccountToken } from "./references.ts";
import type { TokenMirror } from "./tokens.ts";

/** What a pod needs mirrored, and the name maps for its twin. */
export interface PodDependencies {
  /** Virtual name → mirrored name. */
  configMaps: Map<string, string>;
  secrets: Map<string, string>;
  /** Virtual claim name → mirrored claim name. */
  claims: Map<string, string>;
  /** The token Secret of the pod's ServiceAccount, bound to the pod (absent when it mounts none). */
  tokenSecret?: string;
  /** `Kind/namespace/name` keys of everything used, recorded on the twin. */
  keys: string[];
  /** A referenced object that does not exist yet (the pod waits, like a kubelet would). */
  missing?: string;
  /** A claim that is not bound yet (the pod stays Pending until it is). */
  unbound?: string;
  /** A volume the worker will not mount (the pod stays Pending, told why). */
  refused?: string;
}

/** Mirrors a pod's dependencies. */
export class Dependencies {
  constructor(readonly objects: ObjectMirror, readonly claims: ClaimMirror, readonly tokens: TokenMirror) {}

  /** Mirrors everything `pod` references; returns the name maps for its twin and what is missing. */
  async ensureFor(pod: Pod): Promise<PodDependencies> {
    const ns = pod.metadata!.namespace!;
    const refs = collectReferences(pod);
    const result: PodDependencies = {
      configMaps: new Map(),
      secrets: new Map(),
      claims: new Map(),
      keys: [],
    };
    for (const [kind, names] of [["ConfigMap", refs.configMaps], ["Secret", refs.secrets]] as const) {
      for (const name of [...names].sort()) {
        const mirrored = await this.objects.mirror(kind, ns, name);
        if (!mirrored) {
          result.missing ??= `${kind} ${ns}/${name}`;
          continue;
        }
        (kind === "ConfigMap" ? result.configMaps : result.secrets).set(name, mirrored);
        result.keys.push(`${kind}/${ns}/${name}`);
      }
    }
    for (const claimName of [...refs.claims].sort()) {
      const claim = await this.claims.mirror(ns, claimName);
      if ("missing" in claim) result.missing ??= claim.missing;
      else if ("unbound" in claim) result.unbound ??= claim.unbound;
      else if ("refused" in claim) result.refused ??= claim.refused;
      else {
        result.claims.set(claimName, claim.copy);
        result.keys.push(...claim.secretKeys, `PersistentVolumeClaim/${ns}/${claimName}`);
      }
    }
    if (mountsServiceAccountToken(pod)) {
      result.tokenSecret = await this.tokens.ensure({
        namespace: ns,
        pod: pod.metadata!.name!,
        uid: pod.metadata!.uid!,
        serviceAccount: pod.spec?.serviceAccountName || "default",
      });
      result.keys.push(`Token/${ns}/${pod.metadata!.name}`);
    }
    return result;
  }
}
