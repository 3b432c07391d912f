/**
 * Fuzz cases: from a seeded generator, each case is one mutation of a valid base object of a kind
 * (ClusterBinding, ResourceLeasingPolicy or kubeconfig Secret), and says which objects to create
 * (in which cluster) and what to expect of the last one, the subject.
 *
 * @module
 */

import { parse, stringify } from "yaml";
import { SecretResource } from "../../../apis/core/v1/resources.ts";
import {
  ClusterBindingResource,
  ResourceLeasingPolicyResource,
} from "../../../apis/kubeocean.io/v1beta1/resources.ts";
import type { ResourceDescriptor } from "../../../toolkit/client/resource.ts";
import { baseBinding, BINDING_MUTATIONS } from "./binding_mutations.ts";
import { KUBECONFIG_MUTATIONS, mutateKubeconfig } from "./kubeconfig_mutations.ts";
import { type Expectation, isRecord, type WorldFacts } from "./mutation.ts";
import { basePolicy, POLICY_MUTATIONS } from "./policy_mutations.ts";
import type { Prng } from "./prng.ts";

/** Label on every fuzzed object (for clean-up). */
export const FUZZ_LABEL = "chaos.kubeocean.io/fuzz";

/** Which cluster an object goes to. */
export type Side = "computing" | "worker";

/** One object of a case, as JSON. */
export interface FuzzObject {
  side: Side;
  descriptor: ResourceDescriptor;
  body: Record<string, unknown>;
}

/** One fuzz case. */
export interface FuzzCase {
  index: number;
  kind: "ClusterBinding" | "ResourceLeasingPolicy" | "kubeconfig Secret";
  /** What was changed, for failure messages. */
  mutation: string;
  /** Created in order; the last is judged. */
  objects: FuzzObject[];
  expect: Expectation;
}

const KINDS = ["ClusterBinding", "ResourceLeasingPolicy", "kubeconfig Secret"] as const;

/**
 * Cases from a seed. Kinds take turns; within a kind, mutations come in a seeded random order and
 * each is used once before any repeats (so a run of 300 tries every mutation at least twice).
 */
export class CaseGenerator {
  readonly #queues = new Map<string, number[]>();

  constructor(readonly rng: Prng, readonly facts: WorldFacts) {}

  /** Case `index`. */
  next(index: number): FuzzCase {
    const kind = KINDS[index % KINDS.length];
    const count = kind === "ClusterBinding"
      ? BINDING_MUTATIONS.length
      : kind === "ResourceLeasingPolicy"
      ? POLICY_MUTATIONS.length
      : KUBECONFIG_MUTATIONS.length;
    let queue = this.#queues.get(kind) ?? [];
    if (queue.length === 0) queue = shuffle(this.rng, count);
    this.#queues.set(kind, queue);
    return generateCase(this.rng, index, this.facts, kind, queue.pop()!);
  }
}

/** 0 … n-1 in a seeded random order. */
function shuffle(rng: Prng, n: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** Case `index` of `kind` with mutation number `pick` of that kind (a fresh name and clusterID per index). */
export function generateCase(
  rng: Prng,
  index: number,
  facts: WorldFacts,
  kind: FuzzCase["kind"],
  pick: number,
): FuzzCase {
  const labels = { [FUZZ_LABEL]: "true" };
  const clusterID = `fz${index}`;
  if (kind === "ClusterBinding") {
    const mutation = BINDING_MUTATIONS[pick];
    const object = baseBinding(`fz-b${index}`, clusterID, facts, labels);
    const expect = mutation.apply({ rng, index, object, facts });
    return {
      index,
      kind,
      mutation: mutation.name,
      objects: [{ side: "computing", descriptor: ClusterBindingResource, body: object }],
      expect,
    };
  }
  if (kind === "ResourceLeasingPolicy") {
    const mutation = POLICY_MUTATIONS[pick];
    const object = basePolicy(`fz-p${index}`, facts.binding, labels);
    const expect = mutation.apply({ rng, index, object, facts });
    return {
      index,
      kind,
      mutation: mutation.name,
      objects: [{ side: "worker", descriptor: ResourceLeasingPolicyResource, body: object }],
      expect,
    };
  }
  const mutation = KUBECONFIG_MUTATIONS[pick];
  const name = `fz-s${index}`;
  const parsed: unknown = parse(facts.kubeconfigText);
  const doc = isRecord(parsed) ? parsed : {};
  const { data, expect } = mutateKubeconfig(mutation, doc, {
    rng,
    index,
    facts,
    secret: `${facts.namespace}/${name}`,
  }, (d) => stringify(d));
  const secret = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: facts.namespace, labels },
    type: "Opaque",
    data,
  };
  const binding = baseBinding(name, clusterID, { ...facts, secretName: name }, labels);
  return {
    index,
    kind,
    mutation: mutation.name,
    objects: [
      { side: "computing", descriptor: SecretResource, body: secret },
      { side: "computing", descriptor: ClusterBindingResource, body: binding },
    ],
    expect,
  };
}
