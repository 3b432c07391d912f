/**
 * Bursts of virtual pods: created by the test at a steady pace (so that a fault can land inside
 * the burst), placed on Kubeocean's virtual nodes only, each using a ConfigMap and a Secret (so
 * that copies are mirrored too). Bare pods, not a Deployment: nothing replaces a lost pod, so
 * every loss shows.
 *
 * @module
 */

import { CoreV1Api, type Pod } from "../../apis/core/v1/mod.ts";
import { onVirtualNodes } from "../../controllers/common/placement.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { isAlreadyExists } from "../../toolkit/client/errors.ts";
import { sleep } from "../../toolkit/util/mod.ts";
import { firstLine } from "./poll.ts";

/** Namespace of every burst pod in the computing cluster. */
export const CHAOS_NAMESPACE = "chaos";
/** Label naming the burst a pod belongs to. */
export const BURST_LABEL = "chaos.kubeocean.io/burst";
/** Worker node label the world's policy lends (`main`) or leaves to the fuzzer (`spare`). */
export const POOL_LABEL = "chaos.kubeocean.io/pool";
/** The ConfigMap and Secret every burst pod reads (mirrored into the worker). */
export const BURST_CONFIGMAP = "chaos-config";
export const BURST_SECRET = "chaos-secret";

/** Options of a burst. */
export interface BurstOptions {
  /** Pods created per second (default 30). */
  ratePerSecond?: number;
  /** Mount a ServiceAccount token (Kubeocean then requests and mirrors one per pod; default off). */
  serviceAccountToken?: boolean;
}

/** A burst being created, and the pods it expects alive. */
export class Burst {
  /** Pod name → UID, for every pod created so far. */
  readonly expected = new Map<string, string>();
  /** Resolves once every pod exists (creation retries through outages until the signal aborts). */
  readonly done: Promise<void>;
  readonly startedAt = Date.now();

  constructor(
    readonly client: KubeClient,
    readonly name: string,
    readonly count: number,
    signal: AbortSignal,
    readonly options: BurstOptions = {},
  ) {
    this.done = this.#create(signal);
    this.done.catch(() => {}); // observed by whoever awaits it; an abort must not be unhandled
  }

  /** How many pods exist so far. */
  get created(): number {
    return this.expected.size;
  }

  /** The label selector of this burst's pods. */
  get selector(): string {
    return `${BURST_LABEL}=${this.name}`;
  }

  async #create(signal: AbortSignal): Promise<void> {
    const pods = new CoreV1Api(this.client).pods(CHAOS_NAMESPACE);
    const rate = this.options.ratePerSecond ?? 30;
    let next = 0;
    const worker = async () => {
      while (next < this.count) {
        const index = next++;
        const due = this.startedAt + (index * 1000) / rate;
        if (due > Date.now()) await sleep(due - Date.now(), signal);
        const body = burstPod(this.name, index, this.options);
        while (true) {
          signal.throwIfAborted();
          try {
            const pod = await pods.create(body);
            this.expected.set(pod.metadata!.name!, pod.metadata!.uid!);
            break;
          } catch (err) {
            if (isAlreadyExists(err)) {
              // Created, but the answer was lost (e.g. the API server went away meanwhile).
              const pod = await pods.get(body.metadata!.name!).catch(() => undefined);
              if (pod) {
                this.expected.set(pod.metadata!.name!, pod.metadata!.uid!);
                break;
              }
            }
            await sleep(500, signal);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  }

  /** A one-line account of the burst's pods right now. */
  static describe(pods: readonly Pod[], twins: number): string {
    const phases = new Map<string, number>();
    for (const p of pods) {
      const phase = p.metadata?.deletionTimestamp ? "Terminating" : p.status?.phase ?? "none";
      phases.set(phase, (phases.get(phase) ?? 0) + 1);
    }
    const unbound = pods.filter((p) => !p.spec?.nodeName).length;
    return `${
      [...phases].map(([k, v]) => `${v} ${k}`).join(", ") || "no pods"
    }; ${unbound} unscheduled; ${twins} twins`;
  }
}

/** One pod of burst `burst`: virtual nodes of the `main` pool only, spread over them. */
export function burstPod(burst: string, index: number, options: BurstOptions = {}): Pod {
  const placement = onVirtualNodes();
  const terms =
    placement.affinity.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!.nodeSelectorTerms;
  for (const term of terms) {
    term.matchExpressions = [...term.matchExpressions ?? [], {
      key: POOL_LABEL,
      operator: "In",
      values: ["main"],
    }];
  }
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: `${burst}-${index}`, namespace: CHAOS_NAMESPACE, labels: { [BURST_LABEL]: burst } },
    spec: {
      ...placement,
      automountServiceAccountToken: options.serviceAccountToken ?? false,
      topologySpreadConstraints: [{
        maxSkew: 1,
        topologyKey: "kubernetes.io/hostname",
        whenUnsatisfiable: "ScheduleAnyway",
        labelSelector: { matchLabels: { [BURST_LABEL]: burst } },
      }],
      containers: [{
        name: "app",
        image: "registry.example/chaos:1",
        resources: { requests: { cpu: "10m", memory: "16Mi" } },
        env: [
          { name: "MODE", valueFrom: { configMapKeyRef: { name: BURST_CONFIGMAP, key: "mode" } } },
          { name: "TOKEN", valueFrom: { secretKeyRef: { name: BURST_SECRET, key: "token" } } },
        ],
      }],
    },
  };
}

/** Why a burst creation ended, as text ("" when it completed). */
export async function burstProblem(burst: Burst): Promise<string> {
  try {
    await burst.done;
    return "";
  } catch (err) {
    return `burst ${burst.name}: ${burst.created} of ${burst.count} pods created (${firstLine(err)})`;
  }
}
