/**
 * ResourceLeasingPolicy status in the worker cluster: phase (Active, Inactive or Failed),
 * conditions Valid and Active, `activeTimeWindow`, `nextTransitionTime` and `lastAppliedTime`.
 * The controller wakes exactly at the next transition of the policy's schedule (time windows and
 * calendar exceptions).
 *
 * @module
 */

import type { ResourceLeasingPolicy } from "../../../apis/kubeocean.io/v1beta1/mod.ts";
import { rfc3339 } from "../../../toolkit/apimachinery/time.ts";
import { Action, type Controller } from "../../../toolkit/runtime/controller.ts";
import { type ConditionInput, setConditions } from "../../common/conditions.ts";
import type { SyncerContext } from "../context.ts";
import { policyProblem } from "./policy_selection.ts";
import { evaluateSchedule, localTimeText, type WindowState } from "./time_windows.ts";

/** Builds the policy status controller (policies whose `spec.cluster` is this binding). */
export function policyController(ctx: SyncerContext): Controller<ResourceLeasingPolicy> {
  const bindingName = ctx.config.bindingName;
  return ctx.manager.controller(ctx.policies, { name: `policies/${bindingName}` }).build(async (_ref, rc) => {
    const policy = rc.object;
    if (!policy || policy.spec?.cluster !== bindingName || policy.metadata?.deletionTimestamp) {
      return Action.done();
    }
    const now = ctx.clock.now();
    const generation = policy.metadata?.generation;
    const problem = policyProblem(policy);
    const status = { ...policy.status };
    const updates: ConditionInput[] = [];
    let next: Date | undefined;
    if (problem) {
      status.phase = "Failed";
      status.activeTimeWindow = false;
      delete status.nextTransitionTime;
      updates.push({
        type: "Valid",
        status: "False",
        reason: "InvalidSpec",
        message: problem,
        observedGeneration: generation,
      });
      updates.push({
        type: "Active",
        status: "False",
        reason: "Invalid",
        message: "an invalid policy leases nothing",
        observedGeneration: generation,
      });
    } else {
      const timeZone = policy.spec?.timeZone ?? "UTC";
      const windows = evaluateSchedule(policy.spec ?? {}, now);
      next = windows.nextTransition;
      status.phase = windows.active ? "Active" : "Inactive";
      status.activeTimeWindow = windows.active;
      if (next) status.nextTransitionTime = rfc3339(next);
      else delete status.nextTransitionTime;
      updates.push({
        type: "Valid",
        status: "True",
        reason: "Valid",
        message: "the policy is valid",
        observedGeneration: generation,
      });
      // The next change in the policy's own zone too: 09:00 there is what its author wrote.
      const nextText = next ? `${rfc3339(next)}, ${localTimeText(next, timeZone)}` : "";
      updates.push({
        type: "Active",
        status: windows.active ? "True" : "False",
        reason: windows.exception
          ? "CalendarException"
          : windows.active
          ? (policy.spec?.timeWindows?.length ? "InTimeWindow" : "NoTimeWindows")
          : "OutOfTimeWindows",
        message: activeMessage(windows) +
          (next ? `; ${windows.active ? "closes" : "opens"} ${nextText}` : ""),
        observedGeneration: generation,
      });
    }
    const { conditions, changed } = setConditions(policy.status?.conditions, updates, now);
    status.conditions = conditions;
    status.observedGeneration = generation;
    const before = JSON.stringify({ ...policy.status, lastAppliedTime: undefined, conditions: undefined });
    const after = JSON.stringify({ ...status, lastAppliedTime: undefined, conditions: undefined });
    if (changed.length > 0 || before !== after) {
      status.lastAppliedTime = rfc3339(now);
      await ctx.policies.patchStatus(policy.metadata!.name!, { status }, { type: "merge" });
    }
    const wake = next ? Math.max(0, next.getTime() - now.getTime()) : ctx.config.resyncMs;
    return Action.requeueAfter(Math.min(wake, ctx.config.resyncMs));
  });
}

/** Why the policy lends now, or does not. */
function activeMessage(state: WindowState): string {
  if (state.exception) {
    return `calendar exception ${state.exception}: ${state.active ? "lent all day" : "nothing is lent"}`;
  }
  if (state.active) return state.activeWindow ? `inside window ${state.activeWindow}` : "always active";
  return "outside every window";
}
