/**
 * The vocabulary of the fuzzer: what a mutation is, what it expects of Kubeocean and the API
 * server, and helpers to write mutations as "set this path to that value".
 *
 * @module
 */

import type { Prng } from "./prng.ts";

/**
 * What a fuzzed object must lead to:
 * - `invalid`: rejected by the API server (422), or once accepted, Failed (a binding: phase
 *   Failed with a condition False; a policy: `Valid=False`) with a message matching `names` (the
 *   offending field or object);
 * - `valid`: accepted and reconciled without Failed;
 * - `either`: one of the two (inputs whose validity the API does not pin down).
 */
export type Expectation =
  | { verdict: "invalid"; names: RegExp }
  | { verdict: "valid" }
  | { verdict: "either"; names: RegExp };

/** Facts about the world the mutations refer to. */
export interface WorldFacts {
  /** The live binding, its clusterID and mount namespace. */
  binding: string;
  clusterID: string;
  mountNamespace: string;
  /** The manager's namespace (kubeconfig Secrets live there). */
  namespace: string;
  /** The live binding's kubeconfig Secret and its text. */
  secretName: string;
  kubeconfigText: string;
}

/** What a mutation works on. */
export interface MutationContext {
  rng: Prng;
  /** The case's number (unique within a run). */
  index: number;
  /** The object's JSON, changed in place. */
  object: Record<string, unknown>;
  facts: WorldFacts;
}

/** One way to break (or not) an object. */
export interface Mutation {
  /** What it does, e.g. `spec.clusterID = 42 (wrong type)`. */
  name: string;
  /** Changes `ctx.object` and says what to expect. */
  apply(ctx: MutationContext): Expectation;
}

/** Marks a field to delete in {@linkcode setPath}. */
export const REMOVE = Symbol("remove");

/** Sets (or with {@linkcode REMOVE} deletes) the dotted `path` of `root`, creating objects on the way; numeric parts index arrays. */
export function setPath(root: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split(".");
  let node: Record<string, unknown> | unknown[] = root;
  for (const [i, part] of parts.entries()) {
    const last = i === parts.length - 1;
    if (Array.isArray(node)) {
      const index = Number(part);
      if (last) {
        if (value === REMOVE) node.splice(index, 1);
        else node[index] = value;
        return;
      }
      const array: unknown[] = node;
      node = child(array[index], (created) => array[index] = created);
    } else {
      if (last) {
        if (value === REMOVE) delete node[part];
        else node[part] = value;
        return;
      }
      const parent: Record<string, unknown> = node;
      node = child(parent[part], (created) => parent[part] = created);
    }
  }
}

function child(
  value: unknown,
  attach: (created: Record<string, unknown>) => void,
): Record<string, unknown> | unknown[] {
  if (Array.isArray(value)) return value;
  if (isRecord(value)) return value;
  const created: Record<string, unknown> = {};
  attach(created);
  return created;
}

/** Whether `value` is a plain JSON object. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A regular expression matching `text` literally. */
export function literal(text: string): RegExp {
  return new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
}

/** `invalid`, naming any of `names` (literal texts). */
export function invalid(...names: string[]): Expectation {
  return { verdict: "invalid", names: new RegExp(names.map((n) => literal(n).source).join("|")) };
}

/** `either`, naming any of `names` when it fails. */
export function either(...names: string[]): Expectation {
  return { verdict: "either", names: new RegExp(names.map((n) => literal(n).source).join("|")) };
}

/** `valid`. */
export const VALID: Expectation = { verdict: "valid" };

/** A short, printable form of a value for mutation names. */
export function preview(value: unknown): string {
  if (value === REMOVE) return "(removed)";
  const text = typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 30)}…(${text.length} chars)` : text;
}

/**
 * A mutation that sets `path` to `value`, described as `path = value (why)`, expecting `expect`
 * (or what `expect(ctx)` returns, for names that depend on the case).
 */
export function set(
  path: string,
  value: unknown,
  why: string,
  expect: Expectation | ((ctx: MutationContext) => Expectation),
): Mutation {
  return setWith(path, () => value, `${preview(value)} (${why})`, expect);
}

/** Like {@linkcode set}, with the value computed per case (`shown` describes it). */
export function setWith(
  path: string,
  value: (ctx: MutationContext) => unknown,
  shown: string,
  expect: Expectation | ((ctx: MutationContext) => Expectation),
): Mutation {
  return {
    name: `${path} = ${shown}`,
    apply(ctx) {
      setPath(ctx.object, path, value(ctx));
      return typeof expect === "function" ? expect(ctx) : expect;
    },
  };
}
