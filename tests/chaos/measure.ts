/**
 * Measuring a burst against both clusters: when it has converged (every pod Running with exactly
 * one twin, or lost for good), what an audit finds, and whether deleting it leaves anything behind.
 *
 * @module
 */

import { CoreV1Api, type Pod } from "../../apis/core/v1/mod.ts";
import {
  ANNOTATION_VIRTUAL_POD_UID,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
} from "../../controllers/common/names.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { sleep } from "../../toolkit/util/mod.ts";
import { audit, type AuditResult } from "./audit.ts";
import { Burst, CHAOS_NAMESPACE } from "./burst.ts";
import { firstLine } from "./poll.ts";

/** The clusters a measurement reads. */
export interface MeasureTarget {
  computing: KubeClient;
  worker: KubeClient;
  /** The binding's mount namespace in the worker. */
  mountNamespace: string;
}

/** How a wait for convergence ended. */
export interface Convergence {
  /** Every pod is Running with one twin, or lost for good. */
  settled: boolean;
  /** When it settled (`Date.now()`), or when the wait gave up. */
  at: number;
  /** The burst's state at the end, for failure messages. */
  summary: string;
}

const MANAGED = `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE}`;

/** Kubeocean's pods in the worker's mount namespace. */
export async function listTwins(target: MeasureTarget): Promise<Pod[]> {
  return (await new CoreV1Api(target.worker).pods(target.mountNamespace).list({ labelSelector: MANAGED }))
    .items;
}

/**
 * Waits until every pod of `burst` exists and is either Running (not being deleted) with exactly
 * one twin, or lost for good (missing, Failed, being deleted), or until `timeoutMs`. Read errors
 * (an API server away) count as "not yet".
 */
export async function converge(
  target: MeasureTarget,
  burst: Burst,
  options: { timeoutMs: number; signal: AbortSignal },
): Promise<Convergence> {
  const deadline = Date.now() + options.timeoutMs;
  let summary = "not read yet";
  while (true) {
    options.signal.throwIfAborted();
    try {
      const pods = (await new CoreV1Api(target.computing).pods(CHAOS_NAMESPACE).list({
        labelSelector: burst.selector,
      })).items;
      const twins = await listTwins(target);
      const twinCount = new Map<string, number>();
      for (const t of twins) {
        const uid = t.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_UID] ?? "";
        twinCount.set(uid, (twinCount.get(uid) ?? 0) + 1);
      }
      const mine = pods.filter((p) => burst.expected.get(p.metadata!.name!) === p.metadata!.uid);
      summary = `${burst.created}/${burst.count} created; ${
        Burst.describe(mine, mine.filter((p) => twinCount.has(p.metadata!.uid!)).length)
      }`;
      const pending = mine.filter((p) => {
        if (p.metadata?.deletionTimestamp || p.status?.phase === "Failed") return false; // lost for good
        return p.status?.phase !== "Running" || twinCount.get(p.metadata!.uid!) !== 1;
      });
      const twinOf = new Map(
        twins.map((t) => [t.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_UID] ?? "", t]),
      );
      const examples = pending.slice(0, 3).map((p) => {
        const twin = twinOf.get(p.metadata!.uid!);
        return `${p.metadata!.name} on ${p.spec?.nodeName ?? "no node"}, ${
          p.status?.phase ?? "no phase"
        }, twin ${twin ? `${twin.metadata!.name} ${twin.status?.phase ?? "no phase"}` : "none"}`;
      });
      if (examples.length > 0) summary = `${summary}; e.g. ${examples.join("; ")}`;
      if (burst.created === burst.count && pending.length === 0) {
        return { settled: true, at: Date.now(), summary };
      }
    } catch (err) {
      summary = `${summary} (last read failed: ${firstLine(err)})`;
    }
    if (Date.now() > deadline) return { settled: false, at: Date.now(), summary };
    await sleep(1_000, options.signal);
  }
}

/** Audits both clusters: `expected` pods (name → UID in the chaos namespace) lost, duplicates, orphans. */
export async function auditNow(
  target: MeasureTarget,
  expected: ReadonlyMap<string, string>,
): Promise<AuditResult> {
  const vcore = new CoreV1Api(target.computing);
  const wcore = new CoreV1Api(target.worker);
  const [virtualPods, virtualConfigMaps, virtualSecrets, twins, copiedConfigMaps, copiedSecrets] =
    await Promise
      .all([
        vcore.pods().list(),
        vcore.configmaps().list(),
        vcore.secrets().list(),
        listTwins(target),
        wcore.configmaps(target.mountNamespace).list({ labelSelector: MANAGED }),
        wcore.secrets(target.mountNamespace).list({ labelSelector: MANAGED }),
      ]);
  return audit({
    expected,
    namespace: CHAOS_NAMESPACE,
    virtualPods: virtualPods.items,
    virtualConfigMaps: virtualConfigMaps.items,
    virtualSecrets: virtualSecrets.items,
    twins,
    copiedConfigMaps: copiedConfigMaps.items,
    copiedSecrets: copiedSecrets.items,
  });
}

/**
 * Deletes the pods of `selector` (in the chaos namespace) as a user would, waits until they, their
 * twins and their token copies are gone (at most `timeoutMs`), then audits: whatever is left
 * counts as orphans.
 */
export async function drain(
  target: MeasureTarget,
  selector: string,
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<AuditResult & { settled: boolean }> {
  const pods = new CoreV1Api(target.computing).pods(CHAOS_NAMESPACE);
  const deadline = Date.now() + options.timeoutMs;
  let deleted = false;
  let settled = false;
  const uids = new Set<string>();
  while (true) {
    options.signal?.throwIfAborted();
    try {
      const left = (await pods.list({ labelSelector: selector })).items;
      for (const p of left) uids.add(p.metadata!.uid!);
      if (!deleted || left.some((p) => !p.metadata?.deletionTimestamp)) {
        await pods.deleteCollection({ labelSelector: selector });
        deleted = true;
      }
      // Twins, and the ServiceAccount token copies bound to these pods, must go with them.
      const mine = (o: { metadata?: { annotations?: Record<string, string> } }) =>
        uids.has(o.metadata?.annotations?.[ANNOTATION_VIRTUAL_POD_UID] ?? "");
      const twins = (await listTwins(target)).filter(mine);
      const tokens = (await new CoreV1Api(target.worker).secrets(target.mountNamespace).list({
        labelSelector: MANAGED,
      })).items.filter(mine);
      if (left.length === 0 && twins.length === 0 && tokens.length === 0) {
        settled = true;
        break;
      }
    } catch {
      // an API server away: ask again
    }
    if (Date.now() > deadline) break;
    await sleep(1_000, options.signal);
  }
  return { ...await auditNow(target, new Map()), settled };
}
