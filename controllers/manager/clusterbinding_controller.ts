/**
 * The manager's ClusterBinding controller: finalizer, validation, the kubeconfig Secret,
 * connectivity and permissions in the worker cluster, the binding's syncer (embedded or rendered),
 * then `status.phase` and the conditions Validated, Connected, Authorized and SyncerReady, with an
 * Event for every condition that changes. Failures are retried with backoff and heal on their
 * own once the cause is fixed (the Secret and the syncer are watched).
 *
 * @module
 */

import { CoreV1Api, type Secret } from "../../apis/core/v1/mod.ts";
import {
  type ClusterBinding,
  type ClusterBindingStatus,
  KubeoceanIoV1beta1Api,
} from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { rfc3339 } from "../../toolkit/apimachinery/time.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { isConflict, isNotFound } from "../../toolkit/client/errors.ts";
import type { ObjectRef } from "../../toolkit/client/resource.ts";
import { Action, type Controller } from "../../toolkit/runtime/controller.ts";
import type { EventRecorder } from "../../toolkit/runtime/events.ts";
import { addFinalizer, hasFinalizer, removeFinalizer } from "../../toolkit/runtime/finalizer.ts";
import type { Manager } from "../../toolkit/runtime/manager.ts";
import type { ReadStore } from "../../toolkit/runtime/store.ts";
import { sha256Hex } from "../../toolkit/util/mod.ts";
import { type ConditionInput, setConditions } from "../common/conditions.ts";
import { FINALIZER_MANAGER, FINALIZER_SYNCER } from "../common/names.ts";
import type { ManagerMetrics } from "./metrics.ts";
import type { SyncerRunner } from "./syncer_runner.ts";
import { checkWorkerAccess, kubeconfigFromSecret, workerClient } from "./worker_access.ts";

/** Dependencies of {@linkcode clusterBindingController}. */
export interface ClusterBindingControllerOptions {
  /** The computing cluster. */
  client: KubeClient;
  runner: SyncerRunner;
  recorder: EventRecorder;
  metrics?: ManagerMetrics;
  /** How often a Ready binding's worker access is re-checked (default 5 min). */
  recheckMs?: number;
  /** The manager's namespace: kubeconfig Secrets must live here (the only Secrets it may read). */
  namespace: string;
  /** Let kubeconfig Secrets run exec plugins and name local files (default false: data only). */
  trustKubeconfigSecrets?: boolean;
}

const ACCESS_CACHE_MS = 60_000;

/** Builds the controller and registers it with `manager` (it runs with `manager.run(signal)`). */
export function clusterBindingController(
  manager: Manager,
  options: ClusterBindingControllerOptions,
): Controller<ClusterBinding> {
  const { client, runner, recorder } = options;
  const log = manager.log;
  const bindings = new KubeoceanIoV1beta1Api(client).clusterbindings();
  const secrets = new CoreV1Api(client).secrets(options.namespace);
  const now = () => manager.clock.now();
  const recheckMs = options.recheckMs ?? 5 * 60_000;
  const accessChecks = new Map<
    string,
    { key: string; at: number; problem?: { condition: string; reason: string; message: string } }
  >();

  const builder = manager.controller(bindings, { name: "clusterbinding", concurrency: 4 })
    // A Secret change reconciles every binding that references it.
    .watches(secrets, (secret, _event, store) => bindingsReferencing(secret, store))
    .watchesStream(runner.changes)
    .requires(...runner.caches);

  function bindingsReferencing(secret: Secret, store: ReadStore<ClusterBinding>): ObjectRef[] {
    return store.list().filter((b) =>
      b.spec?.secretRef.name === secret.metadata?.name &&
      b.spec?.secretRef.namespace === secret.metadata?.namespace
    ).map((b) => ({ name: b.metadata!.name! }));
  }

  const controllerRef: Controller<ClusterBinding> = builder.build(async (ref, ctx) => {
    const started = performance.now();
    try {
      const binding = ctx.object;
      if (!binding) {
        accessChecks.delete(ref.name);
        return Action.done();
      }
      if (binding.metadata?.deletionTimestamp) return await finalize(binding);
      if (!hasFinalizer(binding, FINALIZER_MANAGER)) {
        await addFinalizer(bindings, binding, FINALIZER_MANAGER);
        return Action.done(); // the update brings us back
      }
      return await reconcileLive(binding);
    } catch (err) {
      options.metrics?.syncErrors.inc();
      throw err;
    } finally {
      options.metrics?.syncTotal.inc();
      options.metrics?.syncDuration.observe((performance.now() - started) / 1000);
      options.metrics?.updateBindingGauge(controllerRef.store.list());
    }
  });

  /** Reads the binding's Secret (a watch on Secrets brings changes here). */
  async function readSecret(binding: ClusterBinding): Promise<Secret | undefined> {
    const ref = binding.spec!.secretRef;
    try {
      if (ref.namespace !== options.namespace) return undefined; // refused by validation before
      return await secrets.get(ref.name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async function reconcileLive(binding: ClusterBinding): Promise<Action> {
    const name = binding.metadata!.name!;
    const generation = binding.metadata?.generation;
    const conditions: ConditionInput[] = [];
    const set = (type: string, ok: boolean, reason: string, message: string) =>
      conditions.push({
        type,
        status: ok ? "True" : "False",
        reason,
        message,
        observedGeneration: generation,
      });
    const replace = (type: string, ok: boolean, reason: string, message: string) => {
      const index = conditions.findIndex((c) => c.type === type);
      if (index >= 0) conditions.splice(index, 1);
      set(type, ok, reason, message);
    };

    // Validation beyond the schema: unique clusterID.
    const clusterID = binding.spec!.clusterID;
    // The binding that had the clusterID first keeps it; only a later one is refused.
    const clash = controllerRef.store.list().find((other) =>
      other.metadata?.name !== name && other.spec?.clusterID === clusterID &&
      !other.metadata?.deletionTimestamp && claimedFirst(other, binding)
    );
    if (clash) {
      set(
        "Validated",
        false,
        "DuplicateClusterID",
        `clusterID "${clusterID}" is already used by ClusterBinding ${clash.metadata?.name}`,
      );
      await writeStatus(binding, conditions, "Failed");
      return Action.requeueAfter(60_000);
    }
    const secretNamespace = binding.spec!.secretRef.namespace;
    if (secretNamespace !== options.namespace) {
      set(
        "Validated",
        false,
        "SecretNamespaceNotAllowed",
        `spec.secretRef.namespace: "${secretNamespace}" is not the manager's namespace "${options.namespace}", the only one whose Secrets it reads`,
      );
      await writeStatus(binding, conditions, "Failed");
      return Action.requeueAfter(60_000);
    }
    set("Validated", true, "Valid", "spec is valid");

    // The kubeconfig Secret, connectivity and permissions (cached briefly; re-checked on changes).
    const secret = await readSecret(binding);
    const kubeconfig = kubeconfigFromSecret(binding, secret);
    let problem = typeof kubeconfig === "string" ? undefined : kubeconfig;
    let hash = "";
    if (typeof kubeconfig === "string") {
      hash = await sha256Hex(kubeconfig);
      const key = `${hash}/${generation}`;
      const cached = accessChecks.get(name);
      const maxAge = cached?.problem ? 0 : ACCESS_CACHE_MS;
      if (cached && cached.key === key && now().getTime() - cached.at < maxAge) {
        problem = cached.problem as typeof problem;
      } else {
        const worker = await workerClient(binding, kubeconfig, { trusted: options.trustKubeconfigSecrets });
        if ("condition" in worker) {
          problem = worker;
        } else {
          try {
            problem = await checkWorkerAccess(worker, binding);
          } finally {
            worker.close();
          }
        }
        accessChecks.set(name, { key, at: now().getTime(), problem });
      }
    }
    if (problem?.condition === "Connected") {
      set("Connected", false, problem.reason, problem.message);
      set(
        "Authorized",
        false,
        "NotConnected",
        "permissions cannot be checked until the worker cluster is reachable",
      );
    } else {
      set("Connected", true, "Connected", "the worker API server answers");
      if (problem) set("Authorized", false, problem.reason, problem.message);
      else {set(
          "Authorized",
          true,
          "Authorized",
          "the worker credentials hold every permission the syncer needs",
        );}
    }

    // The syncer runs only with working access.
    if (problem || typeof kubeconfig !== "string") {
      set(
        "SyncerReady",
        false,
        "WaitingForAccess",
        "the syncer starts once the worker cluster is reachable and authorized",
      );
      await writeStatus(binding, conditions, "Failed");
      // Errors retry with the queue's backoff; a Secret change brings us back at once.
      throw new Error(`${name}: ${problem!.message}`);
    }
    let syncer;
    try {
      syncer = await runner.ensure(binding, kubeconfig, hash);
    } catch (err) {
      // E.g. a broken template override: show it on the binding, then retry with backoff.
      set("SyncerReady", false, "SyncerSetupFailed", (err as Error).message);
      await writeStatus(binding, conditions, "Failed");
      throw err;
    }
    if (syncer.workerReachable === false) {
      // The syncer, not this manager, talks to the worker all the time: its word is the fresher.
      replace("Connected", false, "WorkerUnreachable", `the syncer reports: ${syncer.message}`);
    }
    set("SyncerReady", syncer.ready, syncer.reason, syncer.message);
    const ready = conditions.every((c) => c.status === "True");
    await writeStatus(binding, conditions, ready ? "Ready" : "Pending");
    const recheckIn = syncer.recheckAt ? syncer.recheckAt.getTime() - now().getTime() + 1_000 : Infinity;
    return Action.requeueAfter(Math.max(1_000, Math.min(ready ? recheckMs : 5_000, recheckIn)));
  }

  async function writeStatus(
    binding: ClusterBinding,
    updates: ConditionInput[],
    phase: "Pending" | "Ready" | "Failed",
  ): Promise<void> {
    const status = binding.status ?? {};
    const { conditions, changed } = setConditions(status.conditions, updates, now());
    const phaseChanged = status.phase !== phase;
    if (changed.length === 0 && !phaseChanged && status.observedGeneration === binding.metadata?.generation) {
      return;
    }
    const next: ClusterBindingStatus = {
      ...status,
      phase,
      conditions,
      observedGeneration: binding.metadata?.generation,
      ...(phase === "Ready" && phaseChanged ? { lastSyncTime: rfc3339(now()) } : {}),
    };
    try {
      await bindings.replaceStatus({ ...binding, status: next });
    } catch (err) {
      if (isConflict(err)) throw new Error(`status of ${binding.metadata?.name} changed meanwhile; retrying`);
      throw err;
    }
    for (const c of changed) {
      await recorder.publish({
        regarding: binding,
        type: c.status === "True" ? "Normal" : "Warning",
        reason: c.reason,
        action: `Check${c.type}`,
        note: c.message,
      });
    }
    if (phaseChanged) {
      log.info("phase changed", { binding: binding.metadata?.name, from: status.phase ?? "", to: phase });
      await recorder.publish({
        regarding: binding,
        type: phase === "Failed" ? "Warning" : "Normal",
        reason: `Phase${phase}`,
        action: "Reconcile",
        note: `phase ${status.phase ?? "(none)"} → ${phase}`,
      });
    }
  }

  async function finalize(binding: ClusterBinding): Promise<Action> {
    const name = binding.metadata!.name!;
    if (hasFinalizer(binding, FINALIZER_SYNCER)) {
      // The syncer removes its virtual nodes and worker objects first; keep it running to do so.
      const secret = await readSecret(binding);
      const kubeconfig = kubeconfigFromSecret(binding, secret);
      if (typeof kubeconfig === "string") {
        await runner.ensure(binding, kubeconfig, await sha256Hex(kubeconfig));
      }
      await recorder.publish({
        regarding: binding,
        type: "Normal",
        reason: "WaitingForSyncerCleanup",
        action: "Delete",
        note: "waiting for the syncer to remove its virtual nodes and worker objects",
      });
      return Action.requeueAfter(5_000);
    }
    if (!await runner.remove(binding)) return Action.requeueAfter(2_000);
    if (hasFinalizer(binding, FINALIZER_MANAGER)) {
      await removeFinalizer(bindings, binding, FINALIZER_MANAGER);
      await recorder.publish({
        regarding: binding,
        type: "Normal",
        reason: "Deleted",
        action: "Delete",
        note: "cleanup complete",
      });
    }
    accessChecks.delete(name);
    return Action.done();
  }

  return controllerRef;
}

/** Whether `a` was created before `b` (by creation time, then name): it keeps a shared clusterID. */
function claimedFirst(a: ClusterBinding, b: ClusterBinding): boolean {
  const at = a.metadata?.creationTimestamp ?? "";
  const bt = b.metadata?.creationTimestamp ?? "";
  return at !== bt ? at < bt : (a.metadata?.name ?? "") < (b.metadata?.name ?? "");
}
