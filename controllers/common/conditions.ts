/**
 * `metav1.Condition` lists: set a condition keeping its transition time when its status did not
 * change, and tell which conditions changed (each change gets an Event).
 *
 * @module
 */

import type { Condition } from "../../apis/meta/v1/mod.ts";
import { rfc3339 } from "../../toolkit/apimachinery/time.ts";

export type { Condition };

/** A condition to set (the transition time is filled in). */
export interface ConditionInput extends Omit<Condition, "lastTransitionTime" | "status"> {
  status: "True" | "False" | "Unknown";
}

/** Longest condition message written (the API server refuses more than 32 KiB). */
export const MAX_MESSAGE = 1024;

/**
 * Returns `conditions` with each of `updates` set (added or replaced, in a stable order), and the
 * updates that changed status, reason or message compared with before.
 */
export function setConditions(
  conditions: readonly Condition[] | undefined,
  updates: readonly ConditionInput[],
  now: Date,
): { conditions: Condition[]; changed: ConditionInput[] } {
  const result = [...(conditions ?? [])];
  const changed: ConditionInput[] = [];
  for (const input of updates) {
    // Messages may quote user input: a long one must not make the status write itself invalid.
    const update = input.message.length > MAX_MESSAGE
      ? { ...input, message: `${input.message.slice(0, MAX_MESSAGE - 1)}…` }
      : input;
    const index = result.findIndex((c) => c.type === update.type);
    const previous = index >= 0 ? result[index] : undefined;
    const lastTransitionTime = previous && previous.status === update.status
      ? previous.lastTransitionTime
      : rfc3339(now);
    const next: Condition = { ...update, lastTransitionTime };
    if (
      !previous || previous.status !== update.status || previous.reason !== update.reason ||
      previous.message !== update.message
    ) {
      changed.push(update);
    }
    if (index >= 0) result[index] = next;
    else result.push(next);
  }
  return { conditions: result, changed };
}
