/**
 * The chaos suite's three counts, computed from what both clusters hold right now:
 *
 * - **lost**: a pod we created that is missing (or replaced under its name by another UID),
 *   Failed, or being deleted although nobody but us may delete it;
 * - **duplicates**: a virtual pod with more than one twin in the worker (twins carry the virtual
 *   pod's UID in the annotation `kubeocean.io/virtual-pod-uid`);
 * - **orphans**: a twin whose virtual pod no longer exists; a mirrored ConfigMap or Secret whose
 *   virtual original no longer exists (a ServiceAccount token copy: whose virtual pod no longer
 *   exists); a virtual pod, ConfigMap or Secret stuck Terminating with a `kubeocean.io/` finalizer.
 *
 * @module
 */

import type { ConfigMap, Pod, Secret } from "../../apis/core/v1/mod.ts";
import {
  ANNOTATION_VIRTUAL_NAME,
  ANNOTATION_VIRTUAL_NAMESPACE,
  ANNOTATION_VIRTUAL_POD_UID,
} from "../../controllers/common/names.ts";
import { LABEL_SA_TOKEN } from "../../controllers/syncer/worker/tokens.ts";

/** The counts of one audit, with a few examples of each finding. */
export interface AuditResult {
  lost: number;
  duplicates: number;
  orphans: number;
  /** Up to a few findings per kind, for failure messages. */
  examples: string[];
}

/** Everything one audit looks at. */
export interface AuditInput {
  /** The pods a scenario created and expects alive: name in the chaos namespace → UID. */
  expected: ReadonlyMap<string, string>;
  /** The namespace of `expected`. */
  namespace: string;
  /** Every virtual pod of the computing cluster. */
  virtualPods: readonly Pod[];
  /** The virtual ConfigMaps and Secrets that Kubeocean may mirror (every namespace). */
  virtualConfigMaps: readonly ConfigMap[];
  virtualSecrets: readonly Secret[];
  /** Kubeocean's pods, ConfigMaps and Secrets in the worker's mount namespace. */
  twins: readonly Pod[];
  copiedConfigMaps: readonly ConfigMap[];
  copiedSecrets: readonly Secret[];
}

const MAX_EXAMPLES = 3;

/** Counts lost pods, duplicates and orphans. */
export function audit(input: AuditInput): AuditResult {
  const examples: string[] = [];
  const note = (kind: string, list: string[]) => {
    if (list.length > 0) examples.push(`${kind}: ${list.slice(0, MAX_EXAMPLES).join(", ")}`);
  };
  const byName = new Map(
    input.virtualPods.filter((p) => p.metadata?.namespace === input.namespace).map((
      p,
    ) => [p.metadata!.name!, p]),
  );
  const lost: string[] = [];
  for (const [name, uid] of input.expected) {
    const pod = byName.get(name);
    if (!pod || pod.metadata?.uid !== uid) lost.push(`${name} missing`);
    else if (pod.status?.phase === "Failed") {
      lost.push(`${name} Failed (${pod.status.reason ?? "no reason"})`);
    } else if (pod.metadata?.deletionTimestamp) lost.push(`${name} being deleted`);
  }
  note("lost", lost);

  const twinsByUid = new Map<string, string[]>();
  for (const twin of input.twins) {
    const uid = twin.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_UID] ?? "";
    twinsByUid.set(uid, [...twinsByUid.get(uid) ?? [], twin.metadata!.name!]);
  }
  const duplicates = [...twinsByUid.entries()].filter(([uid, names]) => uid && names.length > 1)
    .map(([uid, names]) => `${uid} → ${names.join(" + ")}`);
  note("duplicates", duplicates);

  const livePods = new Set(input.virtualPods.map((p) => p.metadata!.uid!));
  const exists = (objects: readonly (ConfigMap | Secret)[]) =>
    new Set(objects.map((o) => `${o.metadata?.namespace}/${o.metadata?.name}`));
  const liveConfigMaps = exists(input.virtualConfigMaps);
  const liveSecrets = exists(input.virtualSecrets);
  const orphans: string[] = [];
  for (const twin of input.twins) {
    const uid = twin.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_UID];
    if (!uid || !livePods.has(uid)) orphans.push(`twin ${twin.metadata!.name}`);
  }
  const originalOf = (o: ConfigMap | Secret) =>
    `${o.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAMESPACE]}/${
      o.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAME]
    }`;
  for (const copy of input.copiedConfigMaps) {
    if (!liveConfigMaps.has(originalOf(copy))) orphans.push(`ConfigMap copy ${copy.metadata!.name}`);
  }
  for (const copy of input.copiedSecrets) {
    const token = copy.metadata?.labels?.[LABEL_SA_TOKEN];
    const gone = token
      ? !livePods.has(copy.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_UID] ?? "")
      : !liveSecrets.has(originalOf(copy));
    if (gone) orphans.push(`Secret copy ${copy.metadata!.name}`);
  }
  for (
    const [kind, objects] of [["pod", input.virtualPods], ["ConfigMap", input.virtualConfigMaps], [
      "Secret",
      input.virtualSecrets,
    ]] as const
  ) {
    for (const o of objects) {
      if (
        o.metadata?.deletionTimestamp && o.metadata.finalizers?.some((f) => f.startsWith("kubeocean.io/"))
      ) {
        orphans.push(`${kind} ${o.metadata.namespace}/${o.metadata.name} stuck Terminating`);
      }
    }
  }
  note("orphans", orphans);
  return { lost: lost.length, duplicates: duplicates.length, orphans: orphans.length, examples };
}
