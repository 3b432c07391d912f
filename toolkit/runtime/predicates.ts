/**
 * Event predicates: filters deciding whether a change is worth a reconcile, composable with
 * {@linkcode and}, {@linkcode or} and {@linkcode not}.
 *
 * @module
 */

import type { KubeObject } from "../client/resource.ts";

/** The change a predicate judges; `previous` is the cached version before it, when known. */
export interface ChangeEvent<T> {
  type: "Apply" | "InitApply" | "Delete";
  object: T;
  previous?: T;
}

/** Returns true to let an event through. */
export type Predicate<T = KubeObject> = (event: ChangeEvent<T>) => boolean;

/** Passes creates, deletes, and updates that changed `metadata.generation` (spec changes). */
export const generationChanged: Predicate = (e: ChangeEvent<KubeObject>): boolean =>
  e.type === "Delete" || !e.previous || e.previous.metadata?.generation !== e.object.metadata?.generation;

/** Passes events whose `metadata.resourceVersion` differs from the cached one (skips no-op re-lists). */
export const resourceVersionChanged: Predicate = (e: ChangeEvent<KubeObject>): boolean =>
  e.type === "Delete" || !e.previous ||
  e.previous.metadata?.resourceVersion !== e.object.metadata?.resourceVersion;

/** Passes creates, deletes, and updates that changed labels. */
export const labelsChanged: Predicate = (e: ChangeEvent<KubeObject>): boolean =>
  e.type === "Delete" || !e.previous || !sameRecord(e.previous.metadata?.labels, e.object.metadata?.labels);

/** Passes creates, deletes, and updates that changed annotations. */
export const annotationsChanged: Predicate = (e: ChangeEvent<KubeObject>): boolean =>
  e.type === "Delete" || !e.previous ||
  !sameRecord(e.previous.metadata?.annotations, e.object.metadata?.annotations);

/** Passes objects whose labels match every `key: value` of `selector`. */
export function hasLabels(selector: Record<string, string>): Predicate {
  return (e) => Object.entries(selector).every(([k, v]) => e.object.metadata?.labels?.[k] === v);
}

/** Passes events that every predicate passes. */
export function and<T>(...predicates: Predicate<T>[]): Predicate<T> {
  return (e) => predicates.every((p) => p(e));
}

/** Passes events that any predicate passes. */
export function or<T>(...predicates: Predicate<T>[]): Predicate<T> {
  return (e) => predicates.some((p) => p(e));
}

/** Inverts a predicate. */
export function not<T>(predicate: Predicate<T>): Predicate<T> {
  return (e) => !predicate(e);
}

function sameRecord(a: Record<string, string> = {}, b: Record<string, string> = {}): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
