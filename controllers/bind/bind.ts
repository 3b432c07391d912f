/**
 * `deno task run bind` and `unbind`: register a worker cluster in one command, and undo it.
 *
 * `bind` creates the mount namespace (enforcing a Pod Security level, denying egress to the
 * instance metadata address, and recording which binding owns it: a second binding is refused),
 * the worker ServiceAccount with its least-privilege RBAC and the admission policy confining its
 * volume writes, the ResourceLeasingPolicy CRD and the `kubeocean-default` PriorityClass in the
 * worker (using the worker admin's kubeconfig once), mints a kubeconfig for the ServiceAccount,
 * stores it as a Secret in the computing cluster, creates the ClusterBinding, then waits and prints
 * its phase and conditions.
 *
 * Token kind: a `kubernetes.io/service-account-token` Secret in the mount namespace. Its token
 * does not expire, which suits an agent that runs indefinitely without a second credential to
 * renew it; it is bound to that Secret, so deleting the Secret (`unbind` does) revokes it at once.
 * An expiring TokenRequest token would need the manager to renew it before it expires, and a
 * binding would break if the manager were down past expiry.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parse, stringify } from "yaml";
import { CoreV1Api, type Secret } from "../../apis/core/v1/mod.ts";
import { type ClusterBinding, KubeoceanIoV1beta1Api } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { KubeClient } from "../../toolkit/client/client.ts";
import { isNotFound } from "../../toolkit/client/errors.ts";
import type { KubeObject } from "../../toolkit/client/resource.ts";
import { sleep } from "../../toolkit/util/mod.ts";
import { applyObject, deleteObject } from "../common/apply.ts";
import {
  KUBECONFIG_KEY,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
  PLACEHOLDER_NAMESPACE,
  SYSTEM_NAMESPACE,
  WORKER_SERVICE_ACCOUNT,
  WORKER_TOKEN_SECRET,
} from "../common/names.ts";
import { parsePodSecurityLevel, type PodSecurityLevel } from "../common/pod_security.ts";
import { workerRbacObjects } from "../common/worker_permissions.ts";

const CRDS = new URL("../../deploy/crds/", import.meta.url);

/** Reads one of the project's CRD manifests. */
async function readCrd(file: string): Promise<KubeObject> {
  return parse(await Deno.readTextFile(new URL(file, CRDS))) as KubeObject;
}

/** Applies a CRD and waits until it is established. */
export async function installCrd(client: KubeClient, file: string, timeoutMs = 60_000): Promise<void> {
  const crd = await readCrd(file);
  await applyObject(client, crd);
  const crds = client.resource<KubeObject & { status?: { conditions?: { type: string; status: string }[] } }>(
    {
      group: "apiextensions.k8s.io",
      version: "v1",
      kind: "CustomResourceDefinition",
      plural: "customresourcedefinitions",
      namespaced: false,
    },
  );
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const current = await crds.get(crd.metadata!.name!);
    if (current.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) return;
    await sleep(200);
  }
  throw new Error(`CRD ${crd.metadata?.name} did not become established within ${timeoutMs / 1000} s`);
}

/** Options of {@linkcode bind}. */
export interface BindOptions {
  computing: KubeClient;
  worker: KubeClient;
  name: string;
  clusterID: string;
  mountNamespace: string;
  /** API server URL of the worker as the manager reaches it (default: the worker kubeconfig's). */
  workerServer?: string;
  /** Extra ClusterBinding spec fields (nodeSelector, directScheduling, kubernetesEndpoint…). */
  spec?: Partial<ClusterBinding["spec"]>;
  /** How long to wait for the binding to become Ready (0: do not wait). */
  waitMs?: number;
  /** The Pod Security level the mount namespace enforces (default `baseline`). */
  podSecurity?: PodSecurityLevel;
  /** Let pods in the mount namespace reach the instance metadata address (default: denied). */
  allowMetadataEgress?: boolean;
  log?: (line: string) => void;
}

/** Annotation on a mount namespace: the computing cluster and binding that own it. */
export const ANNOTATION_BOUND_BY = "kubeocean.io/bound-by";

/**
 * Who binds a mount namespace: the computing cluster's identity (the UID of its `kube-system`
 * namespace, which is unique and stable per cluster) and the binding's name.
 */
export async function bindingIdentity(computing: KubeClient, name: string): Promise<string> {
  const kubeSystem = await new CoreV1Api(computing).namespaces().get("kube-system");
  return `${kubeSystem.metadata!.uid}/${name}`;
}

/**
 * Refuses a mount namespace another binding owns: two bindings sharing one would overwrite each
 * other's copies and tokens. Returns the owner text to record.
 */
async function claimMountNamespace(options: BindOptions): Promise<string> {
  const owner = await bindingIdentity(options.computing, options.name);
  const existing = await new CoreV1Api(options.worker).namespaces().get(options.mountNamespace).catch((err) =>
    isNotFound(err) ? undefined : Promise.reject(err)
  );
  const current = existing?.metadata?.annotations?.[ANNOTATION_BOUND_BY];
  if (current && current !== owner) {
    throw new Error(
      `--mount-namespace: namespace ${options.mountNamespace} of the worker is already bound (${ANNOTATION_BOUND_BY}=${current}); choose another mount namespace, or unbind the other binding first`,
    );
  }
  return owner;
}

/** Registers a worker; returns the binding as last seen. */
export async function bind(options: BindOptions): Promise<ClusterBinding> {
  const log = options.log ?? ((line: string) => console.error(line));
  const { computing, worker, name, mountNamespace } = options;
  const owner = await claimMountNamespace(options);
  log(`worker: installing the ResourceLeasingPolicy CRD`);
  await installCrd(worker, "kubeocean.io_resourceleasingpolicies.yaml");
  const level = options.podSecurity ?? "baseline";
  log(
    `worker: namespace ${mountNamespace} (Pod Security ${level}${
      options.allowMetadataEgress ? "" : ", no egress to the metadata address"
    }), ServiceAccount ${WORKER_SERVICE_ACCOUNT} and its RBAC, PriorityClass kubeocean-default`,
  );
  const objects = workerRbacObjects(mountNamespace, {
    podSecurity: level,
    allowMetadataEgress: options.allowMetadataEgress,
  });
  for (const object of objects) {
    if (object.kind === "Namespace") {
      object.metadata!.annotations = { ...object.metadata!.annotations, [ANNOTATION_BOUND_BY]: owner };
    }
    await applyObject(worker, object);
  }
  log(`worker: waiting for the ServiceAccount token`);
  const token = await waitForToken(worker, mountNamespace);
  const kubeconfig = stringify({
    apiVersion: "v1",
    kind: "Config",
    "current-context": "worker",
    clusters: [{
      name: "worker",
      cluster: {
        server: options.workerServer ?? worker.config.server,
        "certificate-authority-data": token.ca,
      },
    }],
    users: [{ name: WORKER_SERVICE_ACCOUNT, user: { token: token.token } }],
    contexts: [{
      name: "worker",
      context: { cluster: "worker", user: WORKER_SERVICE_ACCOUNT, namespace: mountNamespace },
    }],
  });
  log(`computing: Secret ${SYSTEM_NAMESPACE}/${name}-kubeconfig and the ClusterBinding CRD`);
  await applyObject(computing, { apiVersion: "v1", kind: "Namespace", metadata: { name: SYSTEM_NAMESPACE } });
  // Where syncers keep host-port placeholders (as deploy/manager/namespace.yaml ships it): the
  // syncer may create pods there but no namespace anywhere.
  await applyObject(computing, {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: PLACEHOLDER_NAMESPACE, labels: { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE } },
  });
  await applyObject(computing, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: `${name}-kubeconfig`,
      namespace: SYSTEM_NAMESPACE,
      labels: { "app.kubernetes.io/part-of": "kubeocean" },
    },
    type: "Opaque",
    data: { [KUBECONFIG_KEY]: btoa(String.fromCharCode(...new TextEncoder().encode(kubeconfig))) },
  } as KubeObject);
  await installCrd(computing, "kubeocean.io_clusterbindings.yaml");
  log(`computing: ClusterBinding ${name}`);
  await applyObject(computing, {
    apiVersion: "kubeocean.io/v1beta1",
    kind: "ClusterBinding",
    metadata: { name },
    spec: {
      ...options.spec,
      clusterID: options.clusterID,
      mountNamespace,
      secretRef: { name: `${name}-kubeconfig`, namespace: SYSTEM_NAMESPACE },
    },
  } as ClusterBinding);
  return await waitForBinding(computing, name, options.waitMs ?? 120_000, log);
}

async function waitForToken(worker: KubeClient, namespace: string): Promise<{ token: string; ca: string }> {
  const secrets = new CoreV1Api(worker).secrets(namespace);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const secret: Secret = await secrets.get(WORKER_TOKEN_SECRET);
    if (secret.data?.token && secret.data["ca.crt"]) {
      return {
        token: new TextDecoder().decode(Uint8Array.from(atob(secret.data.token), (c) => c.charCodeAt(0))),
        ca: secret.data["ca.crt"],
      };
    }
    await sleep(250);
  }
  throw new Error(
    `Secret ${namespace}/${WORKER_TOKEN_SECRET} got no token within 60 s: the worker's kube-controller-manager (token controller) must be running`,
  );
}

/** Prints the binding's phase and conditions as they change until it is Ready (or the time is up). */
async function waitForBinding(
  computing: KubeClient,
  name: string,
  waitMs: number,
  log: (line: string) => void,
): Promise<ClusterBinding> {
  const bindings = new KubeoceanIoV1beta1Api(computing).clusterbindings();
  const deadline = Date.now() + waitMs;
  let last = "";
  let binding = await bindings.get(name);
  while (true) {
    const summary = describeBinding(binding);
    if (summary !== last) {
      log(summary);
      last = summary;
    }
    if (binding.status?.phase === "Ready" || Date.now() > deadline) return binding;
    await sleep(500);
    binding = await bindings.get(name);
  }
}

/** `phase=Ready Validated=True Connected=True …` plus the messages of false conditions. */
function describeBinding(binding: ClusterBinding): string {
  const conditions = binding.status?.conditions ?? [];
  const parts = conditions.map((c) => `${c.type}=${c.status}`);
  const problems = conditions.filter((c) => c.status !== "True").map((c) =>
    `  ${c.type}: ${c.reason}: ${c.message}`
  );
  return [
    `ClusterBinding ${binding.metadata?.name}: phase=${binding.status?.phase ?? "(none)"} ${parts.join(" ")}`,
    ...problems,
  ].join("\n");
}

/** Options of {@linkcode unbind}. */
export interface UnbindOptions {
  computing: KubeClient;
  name: string;
  /** When given, the worker ServiceAccount, its token and RBAC are removed too. */
  worker?: KubeClient;
  waitMs?: number;
  log?: (line: string) => void;
}

/** Deletes the binding (waiting for the manager and syncer to clean up), its Secret and, with a worker client, the worker RBAC. */
export async function unbind(options: UnbindOptions): Promise<void> {
  const log = options.log ?? ((line: string) => console.error(line));
  const bindings = new KubeoceanIoV1beta1Api(options.computing).clusterbindings();
  let binding: ClusterBinding | undefined;
  try {
    binding = await bindings.get(options.name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  if (binding) {
    log(
      `computing: deleting ClusterBinding ${options.name} (the syncer removes its virtual nodes and worker objects first)`,
    );
    await bindings.delete(options.name);
    const deadline = Date.now() + (options.waitMs ?? 120_000);
    while (true) {
      try {
        await bindings.get(options.name);
      } catch (err) {
        if (isNotFound(err)) break;
        throw err;
      }
      if (Date.now() > deadline) {
        throw new Error(`ClusterBinding ${options.name} is still being deleted; is the manager running?`);
      }
      await sleep(500);
    }
    const ref = binding.spec!.secretRef;
    await new CoreV1Api(options.computing).secrets(ref.namespace).delete(ref.name).catch((e) =>
      isNotFound(e) ? undefined : Promise.reject(e)
    );
  }
  if (options.worker && binding) {
    const mountNamespace = binding.spec!.mountNamespace;
    log(
      `worker: removing the ServiceAccount ${WORKER_SERVICE_ACCOUNT}, its token and RBAC in ${mountNamespace}`,
    );
    const shared = [
      "Namespace",
      "PriorityClass",
      "ValidatingAdmissionPolicy",
      "ValidatingAdmissionPolicyBinding",
    ];
    for (const object of workerRbacObjects(mountNamespace)) {
      if (shared.includes(object.kind!) || object.metadata?.name === "kubeocean:syncer") continue; // shared
      await deleteObject(options.worker, object);
    }
    // The namespace stays (it may hold the worker owner's own objects), free for another binding.
    await new CoreV1Api(options.worker).namespaces().patch(mountNamespace, {
      metadata: { annotations: { [ANNOTATION_BOUND_BY]: null } },
    }, { type: "merge" }).catch((e) => isNotFound(e) ? undefined : Promise.reject(e));
  }
  log(`unbound ${options.name}`);
}

/** `deno task run bind …` */
export async function runBind(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      kubeconfig: { type: "string" },
      context: { type: "string" },
      "worker-kubeconfig": { type: "string" },
      "worker-context": { type: "string" },
      "worker-server": { type: "string" },
      name: { type: "string" },
      "cluster-id": { type: "string" },
      "mount-namespace": { type: "string" },
      "pod-security": { type: "string", default: "baseline" },
      "allow-metadata-egress": { type: "boolean", default: false },
      wait: { type: "string", default: "120" },
    },
  });
  for (const required of ["worker-kubeconfig", "name", "cluster-id", "mount-namespace"] as const) {
    if (!values[required]) throw new Error(`--${required} is required`);
  }
  const podSecurity = parsePodSecurityLevel(values["pod-security"], "--pod-security");
  const computing = await KubeClient.load({ kubeconfig: values.kubeconfig, context: values.context });
  const worker = await KubeClient.load({
    kubeconfig: values["worker-kubeconfig"],
    context: values["worker-context"],
  });
  try {
    const binding = await bind({
      computing,
      worker,
      name: values.name!,
      clusterID: values["cluster-id"]!,
      mountNamespace: values["mount-namespace"]!,
      workerServer: values["worker-server"],
      waitMs: Number(values.wait) * 1000,
      podSecurity,
      allowMetadataEgress: values["allow-metadata-egress"],
    });
    if (binding.status?.phase !== "Ready") {
      throw new Error(
        `ClusterBinding ${values.name} is not Ready yet (phase ${
          binding.status?.phase ?? "none"
        }); see its conditions above`,
      );
    }
  } finally {
    computing.close();
    worker.close();
  }
}

/** `deno task run unbind …` */
export async function runUnbind(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      kubeconfig: { type: "string" },
      context: { type: "string" },
      "worker-kubeconfig": { type: "string" },
      "worker-context": { type: "string" },
      name: { type: "string" },
      wait: { type: "string", default: "120" },
    },
  });
  if (!values.name) throw new Error("--name is required");
  const computing = await KubeClient.load({ kubeconfig: values.kubeconfig, context: values.context });
  const worker = values["worker-kubeconfig"]
    ? await KubeClient.load({ kubeconfig: values["worker-kubeconfig"], context: values["worker-context"] })
    : undefined;
  try {
    await unbind({ computing, worker, name: values.name, waitMs: Number(values.wait) * 1000 });
  } finally {
    computing.close();
    worker?.close();
  }
}
