/**
 * `worker-gone-during-deletion`: the world's binding is deleted right after its worker's
 * kube-apiserver is stopped for good, with 30 pods running that read a ConfigMap and a Secret.
 * Deletion must always complete: the virtual nodes are cordoned at once, the binding is gone
 * within its `spec.cleanupTimeoutSeconds` (set to 20 s here) plus 40 s, no virtual pod,
 * ConfigMap or Secret keeps a Kubeocean finalizer (each one left counts as an orphan), a
 * `ReleasedWithoutWorker` Event names what may be left in the worker, and the pods' namespace
 * deletes. It destroys the world, so it runs last.
 *
 * @module
 */

import { CoreV1Api } from "../../../apis/core/v1/mod.ts";
import { KubeoceanIoV1beta1Api } from "../../../apis/kubeocean.io/v1beta1/mod.ts";
import { isNotFound } from "../../../toolkit/client/errors.ts";
import { BURST_CONFIGMAP, BURST_SECRET, burstPod, CHAOS_NAMESPACE } from "../burst.ts";
import { firstLine, poll } from "../poll.ts";
import { type ChaosScenario, Failures } from "../scenario.ts";

const NAMESPACE = "chaos-doomed";
const PODS = 30;
const CLEANUP_TIMEOUT_SECONDS = 20;

/** See the module documentation. */
export const workerGoneDuringDeletion: ChaosScenario = {
  name: "worker-gone-during-deletion",
  quick: false,
  timeoutMs: 360_000,
  async run(world, signal) {
    const failures = new Failures();
    const core = new CoreV1Api(world.computing);
    const bindings = new KubeoceanIoV1beta1Api(world.computing).clusterbindings();
    await core.namespaces().create({ metadata: { name: NAMESPACE } });
    // The burst pods read these (mirrored into the worker, so they carry Kubeocean finalizers).
    const config = await core.configmaps(CHAOS_NAMESPACE).get(BURST_CONFIGMAP);
    await core.configmaps(NAMESPACE).create({ metadata: { name: BURST_CONFIGMAP }, data: config.data });
    const secret = await core.secrets(CHAOS_NAMESPACE).get(BURST_SECRET);
    await core.secrets(NAMESPACE).create({ metadata: { name: BURST_SECRET }, data: secret.data });
    for (let i = 0; i < PODS; i++) {
      const pod = burstPod("doomed", i);
      pod.metadata!.namespace = NAMESPACE;
      await core.pods(NAMESPACE).create(pod);
    }
    await poll(`${PODS} doomed pods Running`, async () => {
      const pods = (await core.pods(NAMESPACE).list()).items;
      return pods.length === PODS && pods.every((p) => p.status?.phase === "Running");
    }, { timeoutMs: 120_000, signal });
    await bindings.patch(world.binding, { spec: { cleanupTimeoutSeconds: CLEANUP_TIMEOUT_SECONDS } }, {
      type: "merge",
    });
    await world.workerCluster.stopApiserver();
    const deletedAt = Date.now();
    await bindings.delete(world.binding);
    let convergedMs = 0;
    try {
      await poll("the virtual nodes cordoned", async () => {
        const nodes = await world.virtualNodes();
        return nodes.length === 0 || nodes.every((n) => n.spec?.unschedulable);
      }, { timeoutMs: 15_000, intervalMs: 500, signal });
      await poll("the binding gone", async () => {
        try {
          await bindings.get(world.binding);
          return false;
        } catch (err) {
          return isNotFound(err);
        }
      }, { timeoutMs: CLEANUP_TIMEOUT_SECONDS * 1000 + 40_000, intervalMs: 500, signal });
      convergedMs = Date.now() - deletedAt;
      const events = await core.events("default").list({
        fieldSelector:
          `involvedObject.kind=ClusterBinding,involvedObject.name=${world.binding},reason=ReleasedWithoutWorker`,
      });
      if (events.items.length === 0) failures.add("no ReleasedWithoutWorker Event");
      else world.note(firstLine(events.items[0].message ?? "", 120));
    } catch (err) {
      failures.add(firstLine(err));
    }
    let orphans = 0;
    for (const namespace of [NAMESPACE, CHAOS_NAMESPACE]) {
      const held = [
        ...(await core.pods(namespace).list()).items,
        ...(await core.configmaps(namespace).list()).items,
        ...(await core.secrets(namespace).list()).items,
      ].filter((o) => o.metadata?.finalizers?.some((f) => f.startsWith("kubeocean.io/")));
      orphans += held.length;
      if (held.length > 0) {
        failures.add(
          `${held.length} object(s) keep a Kubeocean finalizer in ${namespace}, e.g. ${
            held[0].metadata?.name
          }`,
        );
      }
    }
    await core.namespaces().delete(NAMESPACE);
    await poll(`namespace ${NAMESPACE} deleted`, async () => {
      try {
        await core.namespaces().get(NAMESPACE);
        return false;
      } catch (err) {
        return isNotFound(err);
      }
    }, { timeoutMs: 150_000, intervalMs: 1_000, signal }).catch((err) => failures.add(firstLine(err)));
    return { lost: 0, duplicates: 0, orphans, convergedMs, failure: failures.text };
  },
};
