/**
 * The virtual node of a physical node: its name, its labels, annotations and taints, and a
 * three-way merge that keeps what users added to the virtual node while Kubeocean updates what
 * it owns (the keys it wrote last time are remembered in an annotation).
 *
 * @module
 */

import { VIRTUAL_NODE_LABEL } from "../../common/placement.ts";
import type { Node, Taint } from "../../../apis/core/v1/mod.ts";
import {
  ANNOTATION_EXPECTED_METADATA,
  LABEL_CLUSTER_BINDING,
  LABEL_MANAGED_BY,
  LABEL_PHYSICAL_CLUSTER_ID,
  LABEL_PHYSICAL_NODE_NAME,
  LABEL_PHYSICAL_NODE_UID,
  MANAGED_BY_VALUE,
} from "../../common/names.ts";

const MAX_NAME = 63;

function shortHash(text: string): string {
  // FNV-1a 32-bit: stable, dependency-free, enough to disambiguate truncated names.
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

/**
 * `vnode-<clusterID>-<node>`; names longer than 63 characters (the limit of a hostname label)
 * keep a prefix and end in `-<8 hex digits of a hash>` of the full name, so they stay unique
 * and deterministic.
 */
export function virtualNodeName(clusterID: string, physicalNode: string): string {
  const name = `vnode-${clusterID}-${physicalNode}`;
  if (name.length <= MAX_NAME) return name;
  return `${name.slice(0, MAX_NAME - 9).replace(/[-.]+$/, "")}-${shortHash(name)}`;
}

/** A label value: the text itself when it fits (63 characters), else a hashed prefix. */
function labelValue(text: string): string {
  if (text.length <= MAX_NAME) return text;
  return `${text.slice(0, MAX_NAME - 9).replace(/[-._]+$/, "")}-${shortHash(text)}`;
}

/** What Kubeocean owns on a virtual node. */
export interface OwnedMetadata {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  taints: Taint[];
}

/** Physical labels that describe the physical machine and are not copied (they would mislead). */
const NOT_COPIED = new Set([
  "kubernetes.io/hostname",
  "node.kubernetes.io/instance-type",
  "beta.kubernetes.io/instance-type",
]);

/** Labels of the virtual node: the physical node's labels plus Kubeocean's identification labels. */
export function virtualNodeLabels(
  physical: Node,
  vnodeName: string,
  binding: { name: string; clusterID: string },
): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(physical.metadata?.labels ?? {})) if (!NOT_COPIED.has(k)) labels[k] = v;
  Object.assign(labels, {
    [LABEL_MANAGED_BY]: MANAGED_BY_VALUE,
    [LABEL_CLUSTER_BINDING]: binding.name,
    [LABEL_PHYSICAL_CLUSTER_ID]: binding.clusterID,
    [LABEL_PHYSICAL_NODE_NAME]: labelValue(physical.metadata!.name!),
    [LABEL_PHYSICAL_NODE_UID]: physical.metadata!.uid!,
    [VIRTUAL_NODE_LABEL.key]: VIRTUAL_NODE_LABEL.value,
    "kubernetes.io/hostname": vnodeName,
    "node.kubernetes.io/instance-type": "vnode",
  });
  return labels;
}

function taintKey(t: Taint): string {
  return `${t.key}:${t.effect}`;
}

/**
 * The metadata Kubeocean wrote last on `node`, as its bookkeeping annotation records it (empty
 * when absent or unreadable). A write that changes only some of Kubeocean's keys (e.g. cordoning a
 * draining node) starts from this, so that {@linkcode mergeOwned} keeps the others owned.
 */
export function lastOwned(node: Node | undefined): OwnedMetadata {
  const raw = node?.metadata?.annotations?.[ANNOTATION_EXPECTED_METADATA];
  if (raw) {
    try {
      const parsed = JSON.parse(raw) as OwnedMetadata;
      return {
        labels: parsed.labels ?? {},
        annotations: parsed.annotations ?? {},
        taints: parsed.taints ?? [],
      };
    } catch {
      // fall through
    }
  }
  return { labels: {}, annotations: {}, taints: [] };
}

/**
 * Merges `desired` into the current virtual node's metadata: keys Kubeocean wrote last time and
 * no longer wants are removed, user-added keys are kept, desired keys win. Returns the labels,
 * annotations (including the updated bookkeeping annotation) and taints to write.
 */
export function mergeOwned(current: Node | undefined, desired: OwnedMetadata): OwnedMetadata {
  const previous = lastOwned(current);
  const labels = { ...current?.metadata?.labels };
  for (const key of Object.keys(previous.labels)) if (!(key in desired.labels)) delete labels[key];
  Object.assign(labels, desired.labels);
  const annotations = { ...current?.metadata?.annotations };
  for (const key of Object.keys(previous.annotations)) {
    if (!(key in desired.annotations)) delete annotations[key];
  }
  Object.assign(annotations, desired.annotations);
  annotations[ANNOTATION_EXPECTED_METADATA] = JSON.stringify({
    labels: desired.labels,
    annotations: desired.annotations,
    taints: desired.taints.map((t) => ({ key: t.key, value: t.value, effect: t.effect })),
  });
  const previousTaints = new Set(previous.taints.map(taintKey));
  const desiredByKey = new Map(desired.taints.map((t) => [taintKey(t), t]));
  const taints: Taint[] = [];
  // User taints (not ours now or before) stay; ours are replaced by the desired set.
  for (const t of current?.spec?.taints ?? []) {
    const key = taintKey(t);
    if (desiredByKey.has(key)) {
      const want = desiredByKey.get(key)!;
      // Keep timeAdded of a taint that stays (NoExecute eviction timing depends on it).
      taints.push(want.value === t.value ? { ...want, timeAdded: t.timeAdded ?? want.timeAdded } : want);
      desiredByKey.delete(key);
    } else if (!previousTaints.has(key)) {
      taints.push(t);
    }
  }
  taints.push(...desiredByKey.values());
  return { labels, annotations, taints };
}
