/**
 * Submitting fuzz cases and judging what became of them: refused by the API server, or accepted
 * and then Failed naming the cause (or, for valid inputs, reconciled without Failed).
 *
 * @module
 */

import {
  type ClusterBinding,
  KubeoceanIoV1beta1Api,
  type ResourceLeasingPolicy,
} from "../../../apis/kubeocean.io/v1beta1/mod.ts";
import type { KubeClient } from "../../../toolkit/client/client.ts";
import { ApiError } from "../../../toolkit/client/errors.ts";
import {
  collectionPath,
  type KubeObject,
  type ResourceDescriptor,
} from "../../../toolkit/client/resource.ts";
import { firstLine } from "../poll.ts";
import type { FuzzCase, Side } from "./cases.ts";
import type { Expectation } from "./mutation.ts";

/** The clusters and the live binding the judge needs. */
export interface FuzzTarget {
  computing: KubeClient;
  worker: KubeClient;
  /** The live binding (policies of other bindings are nobody's to judge). */
  binding: string;
}

/** An object a case created. */
export interface CreatedRef {
  side: Side;
  descriptor: ResourceDescriptor;
  name: string;
  namespace?: string;
}

/** A submitted case and what is known of it. */
export interface Submitted {
  fuzz: FuzzCase;
  created: CreatedRef[];
  /** The API server refused an object with this code. */
  rejectedWith?: number;
  /** Decided: passed, or the violation. */
  verdict?: { ok: true } | { ok: false; violation: string };
}

/** Codes that mean "the API server refused this input" (422 schema; 400 undecodable; 413 too large). */
const REFUSALS = new Set([400, 413, 422]);

/** Client of `side`. */
export function clientOf(target: FuzzTarget, side: Side): KubeClient {
  return side === "computing" ? target.computing : target.worker;
}

/** Creates the case's objects in order; stops at the first refusal. */
export async function submit(target: FuzzTarget, fuzz: FuzzCase): Promise<Submitted> {
  const submitted: Submitted = { fuzz, created: [] };
  for (const object of fuzz.objects) {
    const metadata = object.body.metadata;
    const namespace = object.descriptor.namespaced && typeof metadata === "object" && metadata !== null &&
        "namespace" in metadata && typeof metadata.namespace === "string"
      ? metadata.namespace
      : undefined;
    try {
      const created = await clientOf(target, object.side).transport.request<KubeObject>({
        method: "POST",
        path: collectionPath(object.descriptor, namespace),
        body: object.body,
      });
      submitted.created.push({ ...object, name: created.metadata!.name!, namespace });
    } catch (err) {
      if (err instanceof ApiError && REFUSALS.has(err.code)) {
        submitted.rejectedWith = err.code;
        if (fuzz.expect.verdict === "valid") {
          submitted.verdict = { ok: false, violation: `valid input refused: ${firstLine(err)}` };
        } else {
          submitted.verdict = { ok: true };
        }
      } else {
        submitted.verdict = { ok: false, violation: `create failed: ${firstLine(err)}` };
      }
      return submitted;
    }
  }
  return submitted;
}

/** The subject's verdict now, or undefined while undecided. */
export async function judgeOnce(target: FuzzTarget, s: Submitted): Promise<Submitted["verdict"]> {
  if (s.verdict) return s.verdict;
  const subject = s.created.at(-1)!;
  const api = new KubeoceanIoV1beta1Api(target.computing);
  if (subject.descriptor.kind === "ClusterBinding") {
    return judgeBinding(await api.clusterbindings().get(subject.name), s.fuzz.expect);
  }
  const policy = await new KubeoceanIoV1beta1Api(target.worker).resourceleasingpolicies().get(subject.name);
  return judgePolicy(policy, s.fuzz.expect, target.binding);
}

/** A binding is judged once reconciled for its generation. */
export function judgeBinding(binding: ClusterBinding, expect: Expectation): Submitted["verdict"] {
  const status = binding.status;
  if (!status?.phase || status.observedGeneration !== binding.metadata?.generation) return undefined;
  const problems = falseConditions(status.conditions);
  if (status.phase === "Failed") {
    if (expect.verdict === "valid") return { ok: false, violation: `valid input Failed: ${problems}` };
    return expect.names.test(problems) ? { ok: true } : undefined;
  }
  if (expect.verdict === "invalid") {
    return {
      ok: false,
      violation: `accepted and reconciled to ${status.phase} (${problems || "no condition False"})`,
    };
  }
  return { ok: true };
}

/** A policy of the live binding is judged by its Valid condition for its generation. */
export function judgePolicy(
  policy: ResourceLeasingPolicy,
  expect: Expectation,
  binding: string,
): Submitted["verdict"] {
  if (policy.spec?.cluster !== binding) return { ok: true }; // nobody's policy here: accepted, nothing to judge
  const valid = policy.status?.conditions?.find((c) => c.type === "Valid");
  if (!valid || valid.observedGeneration !== policy.metadata?.generation) return undefined;
  if (valid.status === "False") {
    if (expect.verdict === "valid") {
      return { ok: false, violation: `valid input marked invalid: ${valid.message}` };
    }
    return expect.names.test(valid.message ?? "") ? { ok: true } : undefined;
  }
  if (expect.verdict === "invalid") {
    return { ok: false, violation: `accepted as Valid=True (phase ${policy.status?.phase})` };
  }
  return { ok: true };
}

/** What the subject shows now, for a case that stayed undecided. */
export async function describeSubject(target: FuzzTarget, s: Submitted): Promise<string> {
  const subject = s.created.at(-1);
  if (!subject) return "nothing created";
  try {
    if (subject.descriptor.kind === "ClusterBinding") {
      const b = await new KubeoceanIoV1beta1Api(target.computing).clusterbindings().get(subject.name);
      return `phase ${
        b.status?.phase ?? "none"
      }, generation ${b.metadata?.generation} observed ${b.status?.observedGeneration}; ${
        falseConditions(b.status?.conditions) || "no condition False"
      }`;
    }
    const p = await new KubeoceanIoV1beta1Api(target.worker).resourceleasingpolicies().get(subject.name);
    return `phase ${p.status?.phase ?? "none"}; ${
      falseConditions(p.status?.conditions) || "no condition False"
    }`;
  } catch (err) {
    return `unreadable: ${firstLine(err)}`;
  }
}

function falseConditions(
  conditions: { type: string; status: string; reason?: string; message?: string }[] = [],
): string {
  return conditions.filter((c) => c.status === "False").map((c) => `${c.type}: ${c.reason}: ${c.message}`)
    .join("; ");
}
