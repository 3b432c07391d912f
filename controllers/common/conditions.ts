/**
 * `metav1.Condition` lists: set a condition keeping its transition time when its status did not
 * change, and tell which conditions changed (each change gets an Event).
 *
 * @module
 */

/** A `metav1.Condition`. */
export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** A condition to set (the transition time is filled in). */
export type ConditionInput = Omit<Condition, "lastTransitionTime">;

/**
 * Returns `conditions` with each of `updates` set (added or replaced, in a stable order), and the
 * updates that changed status, reason or message compared with before.
 */
export function setConditions(
  conditions: readonly Condition[] | undefined,
  updates: readonly ConditionInput[],
  now: Date = new Date(),
): { conditions: Condition[]; changed: ConditionInput[] } {
  const result = [...(conditions ?? [])];
  const changed: ConditionInput[] = [];
  for (const update of updates) {
    const index = result.findIndex((c) => c.type === update.type);
    const previous = index >= 0 ? result[index] : undefined;
    const lastTransitionTime = previous && previous.status === update.status
      ? previous.lastTransitionTime
      : now.toISOString().replace(/\.\d{3}Z$/, "Z");
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

/** The condition of `type`, if present. */
export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}
