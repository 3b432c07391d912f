/**
 * How a workload asks for Kubeocean's virtual nodes.
 *
 * @module
 */

import type { PodSpec } from "../../apis/core/v1/mod.ts";
import { TAINT_VNODE } from "./names.ts";

/** Label every virtual node carries (`type=virtual-kubelet`, as virtual-kubelet nodes do). */
export const VIRTUAL_NODE_LABEL = { key: "type", value: "virtual-kubelet" } as const;

/**
 * Pod spec fields that place a pod on virtual nodes only: a toleration of their
 * `kubeocean.io/vnode:NoSchedule` taint and a required node affinity on their `type` label.
 * Spread it into a pod template's spec.
 */
export function onVirtualNodes(): Required<Pick<PodSpec, "tolerations" | "affinity">> {
  return {
    tolerations: [{ key: TAINT_VNODE, operator: "Exists", effect: "NoSchedule" }],
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{
            matchExpressions: [{
              key: VIRTUAL_NODE_LABEL.key,
              operator: "In",
              values: [VIRTUAL_NODE_LABEL.value],
            }],
          }],
        },
      },
    },
  };
}
