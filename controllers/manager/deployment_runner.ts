/**
 * `--syncer-mode=deployment` (the in-cluster default): for each binding the manager renders the
 * syncer Deployment and the proxier Deployment and Service from templates — built-in defaults,
 * overridable per key by the ConfigMap `kubeocean-templates` in the manager's namespace — all owned
 * by the ClusterBinding. Syncers run as the ServiceAccount `kubeocean-syncer` that
 * `deploy/manager/rbac.yaml` ships with its bindings: the manager grants no permission at run time. The pod
 * templates carry a hash of the kubeconfig, so rotating the Secret rolls the Deployments. The
 * syncer is ready while its heartbeat Lease is fresh and says so (`common/syncer_heartbeat.ts`):
 * replica counts say nothing about a leader whose work is stuck.
 *
 * Template syntax: `{{ .Field }}` with the fields listed in {@linkcode TemplateData}.
 *
 * @module
 */

import { parse } from "yaml";
import { AppsV1Api, type Deployment } from "../../apis/apps/v1/mod.ts";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import type { ClusterBinding } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { isNotFound } from "../../toolkit/client/errors.ts";
import type { KubeObject, ObjectRef } from "../../toolkit/client/resource.ts";
import { Channel } from "../../toolkit/runtime/channel.ts";
import type { RequiredCache } from "../../toolkit/runtime/controller.ts";
import { Informer } from "../../toolkit/runtime/informer.ts";
import type { Logger } from "../../toolkit/runtime/log.ts";
import { applyObject, deleteObject } from "../common/apply.ts";
import { ANNOTATION_SYNCER_HEALTH, LABEL_CLUSTER_BINDING, LABEL_HEARTBEAT } from "../common/names.ts";
import { heartbeatLeaseName, readHeartbeat } from "../common/syncer_heartbeat.ts";
import { CoordinationK8sIoV1Api, type Lease } from "../../apis/coordination.k8s.io/v1/mod.ts";
import type { SyncerRunner, SyncerStatus } from "./syncer_runner.ts";

/** Fields available to templates. */
export interface TemplateData {
  BindingName: string;
  ClusterID: string;
  Namespace: string;
  Image: string;
  ServiceAccountName: string;
  /** The ServiceAccount rendered proxiers run as. */
  ProxierServiceAccountName: string;
  SyncerName: string;
  ProxierName: string;
  KubeconfigHash: string;
  SecretName: string;
  SecretNamespace: string;
  /** `true` when the manager trusts kubeconfig Secrets to run programs and read files. */
  TrustKubeconfigSecrets: string;
}

/** The ConfigMap whose keys override the built-in templates. */
export const TEMPLATES_CONFIGMAP = "kubeocean-templates";

/** The labels every rendered object carries, indented to sit under a `labels:` key. */
function commonLabels(indent: number): string {
  return [
    "app.kubernetes.io/part-of: kubeocean",
    "app.kubernetes.io/managed-by: kubeocean-manager",
    'app.kubernetes.io/instance: "{{ .BindingName }}"',
    'kubeocean.io/cluster-binding: "{{ .BindingName }}"',
  ].join(`\n${" ".repeat(indent)}`);
}

/** The built-in templates, by ConfigMap key. */
export const DEFAULT_TEMPLATES: Record<string, string> = {
  "syncer-deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: "{{ .SyncerName }}"
  namespace: "{{ .Namespace }}"
  labels:
    app.kubernetes.io/name: kubeocean-syncer
    app.kubernetes.io/component: syncer
    ${commonLabels(4)}
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: kubeocean-syncer
      app.kubernetes.io/instance: "{{ .BindingName }}"
  template:
    metadata:
      labels:
        app.kubernetes.io/name: kubeocean-syncer
        app.kubernetes.io/component: syncer
        ${commonLabels(8)}
      annotations:
        kubeocean.io/kubeconfig-hash: "{{ .KubeconfigHash }}"
    spec:
      serviceAccountName: "{{ .ServiceAccountName }}"
      terminationGracePeriodSeconds: 30
      containers:
        - name: syncer
          image: "{{ .Image }}"
          args:
            - syncer
            - --cluster-binding={{ .BindingName }}
            - --trust-kubeconfig-secrets={{ .TrustKubeconfigSecrets }}
            - --leader-elect
            - --proxier-pods-namespace={{ .Namespace }}
            - --proxier-port=10250
            - --metrics-bind-address=:8080
            - --health-probe-bind-address=:8081
          env:
            # The leader-election and heartbeat identity.
            - name: POD_NAME
              valueFrom: { fieldRef: { fieldPath: metadata.name } }
            - name: POD_NAMESPACE
              valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
          ports:
            - { name: metrics, containerPort: 8080 }
            - { name: health, containerPort: 8081 }
          livenessProbe: { httpGet: { path: /healthz, port: health }, initialDelaySeconds: 10, periodSeconds: 20 }
          readinessProbe: { httpGet: { path: /readyz, port: health }, periodSeconds: 10 }
          resources:
            requests: { cpu: 100m, memory: 128Mi }
            limits: { memory: 512Mi }
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            capabilities: { drop: [ALL] }
`,
  "proxier-deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: "{{ .ProxierName }}"
  namespace: "{{ .Namespace }}"
  labels:
    app.kubernetes.io/name: kubeocean-proxier
    app.kubernetes.io/component: proxier
    ${commonLabels(4)}
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: kubeocean-proxier
      app.kubernetes.io/instance: "{{ .BindingName }}"
  template:
    metadata:
      labels:
        app.kubernetes.io/name: kubeocean-proxier
        app.kubernetes.io/component: proxier
        ${commonLabels(8)}
      annotations:
        kubeocean.io/kubeconfig-hash: "{{ .KubeconfigHash }}"
    spec:
      serviceAccountName: "{{ .ProxierServiceAccountName }}"
      terminationGracePeriodSeconds: 30
      containers:
        - name: proxier
          image: "{{ .Image }}"
          # Virtual nodes advertise this pod's IP (the syncer picks a ready proxier pod): the API
          # server dials it directly, as it dials a kubelet. Without certificate files the proxier
          # requests a kubernetes.io/kubelet-serving certificate for that IP.
          args:
            - proxier
            - --cluster-binding={{ .BindingName }}
            - --trust-kubeconfig-secrets={{ .TrustKubeconfigSecrets }}
            - --listen-port=10250
            - --advertise-address=$(POD_IP)
            - --metrics-bind-address=:8080
            - --health-probe-bind-address=:8081
            - --log-format=json
          env:
            - name: POD_IP
              valueFrom: { fieldRef: { fieldPath: status.podIP } }
            - name: POD_NAMESPACE
              valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
          ports:
            - { name: kubelet-api, containerPort: 10250 }
            - { name: metrics, containerPort: 8080 }
            - { name: health, containerPort: 8081 }
          livenessProbe: { httpGet: { path: /healthz, port: health }, initialDelaySeconds: 10, periodSeconds: 20 }
          readinessProbe: { httpGet: { path: /readyz, port: health }, periodSeconds: 5 }
          resources:
            requests: { cpu: 50m, memory: 64Mi }
            limits: { memory: 256Mi }
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            capabilities: { drop: [ALL] }
`,
  "proxier-service.yaml": `apiVersion: v1
kind: Service
metadata:
  name: "{{ .ProxierName }}"
  namespace: "{{ .Namespace }}"
  labels:
    app.kubernetes.io/name: kubeocean-proxier
    ${commonLabels(4)}
spec:
  # For in-cluster clients and Prometheus; the API server reaches proxiers by pod IP.
  selector:
    app.kubernetes.io/name: kubeocean-proxier
    app.kubernetes.io/instance: "{{ .BindingName }}"
  ports:
    - { name: kubelet-api, port: 10250, targetPort: kubelet-api }
    - { name: metrics, port: 8080, targetPort: metrics }
`,
};

/** Replaces every `{{ .Field }}`; an unknown field is an error naming the template. */
export function renderTemplate(template: string, data: TemplateData, name: string): string {
  return template.replace(/\{\{\s*\.(\w+)\s*\}\}/g, (_, field: string) => {
    if (!(field in data)) {
      throw new Error(`template ${name}: unknown field .${field} (known: ${Object.keys(data).join(", ")})`);
    }
    return String(data[field as keyof TemplateData]);
  });
}

/** Options of {@linkcode DeploymentRunner}. */
export interface DeploymentRunnerOptions {
  client: KubeClient;
  namespace: string;
  image: string;
  log: Logger;
  /** Let syncers run exec plugins and read files a kubeconfig Secret names (default false). */
  trustKubeconfigSecrets?: boolean;
}

/** The ServiceAccount every rendered syncer runs as (shipped in deploy/manager/rbac.yaml). */
export const SYNCER_SERVICE_ACCOUNT = "kubeocean-syncer";
/** The ServiceAccount every rendered proxier runs as (shipped in deploy/manager/rbac.yaml). */
export const PROXIER_SERVICE_ACCOUNT = "kubeocean-proxier";

/** Renders per-binding Deployments. */
export class DeploymentRunner implements SyncerRunner {
  readonly mode = "deployment";
  readonly #changes = new Channel<ObjectRef>();
  readonly #deployments: Informer<Deployment>;
  readonly #heartbeats: Informer<Lease>;
  readonly #stop = new AbortController();

  constructor(readonly options: DeploymentRunnerOptions) {
    const heartbeats = new Informer(new CoordinationK8sIoV1Api(options.client).leases(options.namespace), {
      labelSelector: `${LABEL_HEARTBEAT}=syncer`,
    });
    this.#heartbeats = heartbeats;
    const deployments = new Informer(new AppsV1Api(options.client).deployments(options.namespace), {
      labelSelector: LABEL_CLUSTER_BINDING,
    });
    this.#deployments = deployments;
    const changes = this.#changes;
    const stop = this.#stop.signal;
    (async () => {
      for await (const event of deployments.events(stop)) {
        if (event.type === "Apply" || event.type === "Delete") {
          const binding = event.object.metadata?.labels?.[LABEL_CLUSTER_BINDING];
          if (binding) changes.push({ name: binding });
        }
      }
    })();
    // A heartbeat whose report changed (renewals alone change nothing; staleness is a timer).
    (async () => {
      const reported = new Map<string, string>();
      for await (const event of heartbeats.events(stop)) {
        if (event.type !== "Apply" && event.type !== "Delete") continue;
        const binding = event.object.metadata?.labels?.[LABEL_CLUSTER_BINDING];
        if (!binding) continue;
        const report = event.type === "Delete"
          ? ""
          : `${event.object.spec?.holderIdentity}/${
            event.object.metadata?.annotations?.[ANNOTATION_SYNCER_HEALTH]
          }`;
        if (reported.get(binding) === report) continue;
        reported.set(binding, report);
        changes.push({ name: binding });
      }
    })();
  }

  /** The syncer Deployments `ensure` reads readiness from. */
  get caches(): readonly RequiredCache[] {
    return [this.#deployments, this.#heartbeats];
  }

  get changes(): AsyncIterable<ObjectRef> {
    return this.#changes;
  }

  /** The templates: built-in defaults with the ConfigMap's keys on top. */
  async templates(): Promise<Record<string, string>> {
    try {
      const cm = await new CoreV1Api(this.options.client).configmaps(this.options.namespace).get(
        TEMPLATES_CONFIGMAP,
      );
      return { ...DEFAULT_TEMPLATES, ...cm.data };
    } catch (err) {
      if (isNotFound(err)) return DEFAULT_TEMPLATES;
      throw err;
    }
  }

  /** The objects rendered for `binding`, owned by it. */
  async render(binding: ClusterBinding, kubeconfigHash: string): Promise<KubeObject[]> {
    const clusterID = binding.spec!.clusterID;
    const data: TemplateData = {
      BindingName: binding.metadata!.name!,
      ClusterID: clusterID,
      Namespace: this.options.namespace,
      Image: this.options.image,
      ServiceAccountName: SYNCER_SERVICE_ACCOUNT,
      ProxierServiceAccountName: PROXIER_SERVICE_ACCOUNT,
      SyncerName: `kubeocean-syncer-${clusterID}`,
      ProxierName: `kubeocean-proxier-${clusterID}`,
      KubeconfigHash: kubeconfigHash,
      SecretName: binding.spec!.secretRef.name,
      SecretNamespace: binding.spec!.secretRef.namespace,
      TrustKubeconfigSecrets: String(this.options.trustKubeconfigSecrets ?? false),
    };
    const owner = {
      apiVersion: "kubeocean.io/v1beta1",
      kind: "ClusterBinding",
      name: binding.metadata!.name!,
      uid: binding.metadata!.uid!,
      controller: true,
      blockOwnerDeletion: true,
    };
    const templates = await this.templates();
    return Object.keys(DEFAULT_TEMPLATES).map((key) => {
      let object: KubeObject;
      try {
        object = parse(renderTemplate(templates[key], data, key)) as KubeObject;
      } catch (err) {
        const source = templates[key] === DEFAULT_TEMPLATES[key]
          ? "built-in"
          : `from ConfigMap ${this.options.namespace}/${TEMPLATES_CONFIGMAP}`;
        throw new Error(
          `template ${key} (${source}): ${(err as Error).message}`,
        );
      }
      object.metadata = { ...object.metadata, ownerReferences: [owner] };
      return object;
    });
  }

  async ensure(binding: ClusterBinding, _kubeconfig: string, kubeconfigHash: string): Promise<SyncerStatus> {
    for (const object of await this.render(binding, kubeconfigHash)) {
      await applyObject(this.options.client, object);
    }
    const syncer = this.#deployments.store.get(
      `${this.options.namespace}/kubeocean-syncer-${binding.spec!.clusterID}`,
    );
    if (!syncer) {
      return {
        ready: false,
        reason: "DeploymentMissing",
        message: `Deployment kubeocean-syncer-${binding.spec!.clusterID} is not in the cache yet`,
      };
    }
    const lease = heartbeatLeaseName(binding.metadata!.name!);
    const heartbeat = readHeartbeat(
      this.#heartbeats.store.get(`${this.options.namespace}/${lease}`),
      `${this.options.namespace}/${lease}`,
      new Date(),
    );
    return {
      ready: heartbeat.ready,
      reason: heartbeat.reason,
      message: heartbeat.message,
      workerReachable: heartbeat.workerReachable,
      recheckAt: heartbeat.staleAt,
    };
  }

  async remove(binding: ClusterBinding): Promise<boolean> {
    let remaining = 0;
    // Only what this binding owns: another binding may render the same names (a reused clusterID).
    for (const object of await this.render(binding, "")) {
      if (await deleteObject(this.options.client, object, { ownedBy: binding.metadata!.uid! })) remaining++;
    }
    return remaining === 0;
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await Promise.all([this.#deployments.stop(), this.#heartbeats.stop()]);
    this.#changes.close();
  }
}
