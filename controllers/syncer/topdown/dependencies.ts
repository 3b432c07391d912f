/**
 * ConfigMaps, Secrets and ServiceAccount tokens that twins use, mirrored into the mount namespace.
 *
 * A mirrored copy carries `kubeocean.io/virtual-name`/`-namespace`, `kubeocean.io/managed-by` and
 * the binding label; its virtual original is labelled `kubeocean.io/synced-by-<clusterID>` and
 * held by the finalizer `kubeocean.io/finalizer-<clusterID>` while the copy exists. Copies follow
 * changes of the original, and are removed (with label and finalizer) once no twin of the binding
 * uses them. Token Secrets hold a TokenRequest token of the virtual pod's ServiceAccount (with the
 * computing cluster's CA and the namespace) and are renewed at 80 % of their lifetime. Bound
 * PersistentVolumeClaims are mirrored with their PersistentVolume (reclaim policy Retain, pre-bound,
 * empty storage class) and the CSI Secrets it names; an unbound claim keeps the pod Pending.
 *
 * @module
 */

import type {
  ConfigMap,
  PersistentVolumeClaim,
  PersistentVolumeSpec,
  Pod,
  Secret,
} from "../../../apis/core/v1/mod.ts";
import { isAlreadyExists, isNotFound } from "../../../toolkit/client/errors.ts";
import type { KubeObject } from "../../../toolkit/client/resource.ts";
import type {
  JsonPatchOperation,
  ResourceClient,
  TokenRequest,
} from "../../../toolkit/client/resource_client.ts";
import { Action, type Controller, ControllerBuilder } from "../../../toolkit/runtime/controller.ts";
import {
  ANNOTATION_DEPENDENCIES,
  ANNOTATION_VIRTUAL_NAME,
  ANNOTATION_VIRTUAL_NAMESPACE,
  FIELD_MANAGER,
  LABEL_CLUSTER_BINDING,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
  syncedByLabel,
  syncedFinalizer,
} from "../../common/names.ts";
import { BY_DEPENDENCY, type SyncerContext } from "../context.ts";
import { mirroredName, mirroredVolumeName, TOKEN_SECRET_PREFIX, tokenSecretName } from "./naming.ts";
import { collectReferences } from "./transform.ts";

export { ANNOTATION_DEPENDENCIES };
/** Label on token Secrets. */
export const LABEL_SA_TOKEN = "kubeocean.io/service-account-token";
const ANNOTATION_EXPIRES = "kubeocean.io/token-expiration";
/** Annotation on a mirrored volume: the virtual PersistentVolume it copies. */
export const ANNOTATION_VIRTUAL_VOLUME = "kubeocean.io/virtual-volume";
const TOKEN_SECONDS = 3600;

type Kind = "ConfigMap" | "Secret";

/** What a pod needs mirrored, and the name maps for its twin. */
export interface PodDependencies {
  configMaps: Map<string, string>;
  secrets: Map<string, string>;
  tokenSecret?: string;
  /** `Kind/namespace/name` keys, recorded on the twin. */
  keys: string[];
  /** A referenced object that does not exist yet (the pod waits, like a kubelet would). */
  missing?: string;
  /** Virtual claim name → mirrored claim name. */
  claims: Map<string, string>;
  /** A claim that is not bound yet (the pod stays Pending until it is). */
  unbound?: string;
}

/** Mirrors dependencies and keeps them current. */
export class Dependencies {
  readonly controllers: Controller<KubeObject>[];
  /** `Kind/ns/name` → resourceVersion of the original last copied (copies are kept current by the mirror controllers). */
  readonly #copied = new Map<string, string>();
  /** Token Secret name → when it must be renewed (ms since epoch). */
  readonly #tokens = new Map<string, number>();
  /** One mirroring or token request at a time per object: concurrent pods share its result. */
  readonly #inflight = new Map<string, Promise<string | undefined>>();

  constructor(readonly ctx: SyncerContext) {
    this.controllers = [
      this.#mirrorController("ConfigMap"),
      this.#mirrorController("Secret"),
      this.#tokenController(),
      this.#claimController(),
    ];
  }

  get #clusterID(): string {
    return this.ctx.config.clusterID;
  }

  get #mountNamespace(): string {
    return this.ctx.config.mountNamespace;
  }

  #virtualClient(kind: Kind, namespace: string): ResourceClient<KubeObject> {
    return (kind === "ConfigMap"
      ? this.ctx.virtualCore.configmaps(namespace)
      : this.ctx.virtualCore.secrets(namespace)) as ResourceClient<KubeObject>;
  }

  #physicalClient(kind: Kind): ResourceClient<KubeObject> {
    const ns = this.#mountNamespace;
    return (kind === "ConfigMap"
      ? this.ctx.physicalCore.configmaps(ns)
      : this.ctx.physicalCore.secrets(ns)) as ResourceClient<KubeObject>;
  }

  /** Mirrors everything `pod` references; returns the name maps for its twin. */
  async ensureFor(pod: Pod): Promise<PodDependencies> {
    const ns = pod.metadata!.namespace!;
    const refs = collectReferences(pod);
    const result: PodDependencies = {
      configMaps: new Map(),
      secrets: new Map(),
      claims: new Map(),
      keys: [],
    };
    for (const [kind, names] of [["ConfigMap", refs.configMaps], ["Secret", refs.secrets]] as const) {
      for (const name of [...names].sort()) {
        const mirrored = await this.mirror(kind, ns, name);
        if (!mirrored) {
          result.missing ??= `${kind} ${ns}/${name}`;
          continue;
        }
        (kind === "ConfigMap" ? result.configMaps : result.secrets).set(name, mirrored);
        result.keys.push(`${kind}/${ns}/${name}`);
      }
    }
    for (const claimName of [...refs.claims].sort()) {
      const claim = await this.#mirrorClaim(ns, claimName, result);
      if (!claim) continue;
      result.claims.set(claimName, claim);
      result.keys.push(`PersistentVolumeClaim/${ns}/${claimName}`);
    }
    const mountsToken = pod.spec?.volumes?.some((v) =>
      v.name.startsWith("kube-api-access-") && v.projected?.sources?.some((s) => s.serviceAccountToken)
    );
    if (mountsToken) {
      const sa = pod.spec?.serviceAccountName || "default";
      result.tokenSecret = await this.ensureToken(ns, sa);
      result.keys.push(`Token/${ns}/${sa}`);
    }
    return result;
  }

  /** Runs `work` once for `key` at a time; concurrent callers share the result. */
  #single(key: string, work: () => Promise<string | undefined>): Promise<string | undefined> {
    let running = this.#inflight.get(key);
    if (!running) {
      running = work().finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, running);
    }
    return running;
  }

  /** The cache of originals labelled for this worker (the mirror controller's informer). */
  #labelled(kind: Kind) {
    const client =
      (kind === "ConfigMap"
        ? this.ctx.virtualCore.configmaps()
        : this.ctx.virtualCore.secrets()) as ResourceClient<KubeObject>;
    return this.ctx.virtualInformers.for(client, {
      labelSelector: `${syncedByLabel(this.#clusterID)}=true`,
    }).store;
  }

  /** Copies a virtual ConfigMap or Secret into the mount namespace; undefined when it does not exist. */
  async mirror(kind: Kind, namespace: string, name: string): Promise<string | undefined> {
    const key = `${kind}/${namespace}/${name}`;
    const cached = this.#labelled(kind).get({ namespace, name });
    if (
      cached && !cached.metadata?.deletionTimestamp &&
      cached.metadata?.finalizers?.includes(syncedFinalizer(this.#clusterID)) &&
      this.#copied.get(key) === cached.metadata?.resourceVersion
    ) {
      return await mirroredName(kind, namespace, name); // already copied, and kept current
    }
    return await this.#single(key, () => this.#mirrorNow(kind, namespace, name));
  }

  async #mirrorNow(kind: Kind, namespace: string, name: string): Promise<string | undefined> {
    const virtual = this.#virtualClient(kind, namespace);
    let source: ConfigMap | Secret;
    try {
      source = await virtual.get(name) as ConfigMap | Secret;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    if (source.metadata?.deletionTimestamp) return undefined;
    const label = syncedByLabel(this.#clusterID);
    const finalizer = syncedFinalizer(this.#clusterID);
    if (source.metadata?.labels?.[label] !== "true" || !source.metadata?.finalizers?.includes(finalizer)) {
      source = await virtual.patch(name, [
        { op: "test", path: "/metadata/resourceVersion", value: source.metadata!.resourceVersion },
        ...(source.metadata?.labels ? [] : [{ op: "add" as const, path: "/metadata/labels", value: {} }]),
        { op: "add", path: `/metadata/labels/${label.replaceAll("/", "~1")}`, value: "true" },
        ...(source.metadata?.finalizers?.includes(finalizer)
          ? []
          : source.metadata?.finalizers
          ? [{ op: "add" as const, path: "/metadata/finalizers/-", value: finalizer }]
          : [{ op: "add" as const, path: "/metadata/finalizers", value: [finalizer] }]),
      ], { type: "json" }) as ConfigMap | Secret;
    }
    const mirrored = await mirroredName(kind, namespace, name);
    await this.#writeCopy(kind, source, mirrored);
    return mirrored;
  }

  async #writeCopy(kind: Kind, source: ConfigMap | Secret, mirrored: string): Promise<void> {
    const body: Record<string, unknown> = {
      apiVersion: "v1",
      kind,
      metadata: {
        name: mirrored,
        namespace: this.#mountNamespace,
        labels: {
          [LABEL_MANAGED_BY]: MANAGED_BY_VALUE,
          [LABEL_CLUSTER_BINDING]: this.ctx.config.bindingName,
        },
        annotations: {
          [ANNOTATION_VIRTUAL_NAME]: source.metadata!.name!,
          [ANNOTATION_VIRTUAL_NAMESPACE]: source.metadata!.namespace!,
        },
      },
      data: source.data ?? {},
      ...(kind === "ConfigMap"
        ? { binaryData: (source as ConfigMap).binaryData ?? {} }
        : { type: (source as Secret).type ?? "Opaque" }),
      ...(source.immutable ? { immutable: true } : {}),
    };
    const physical = this.#physicalClient(kind);
    try {
      await physical.apply(body as KubeObject, { fieldManager: FIELD_MANAGER, force: true });
    } catch (err) {
      // An immutable copy (or a changed Secret type) cannot be updated: replace it.
      if ((err as { code?: number }).code === 422) {
        await physical.delete(mirrored).catch(() => {});
        await physical.create(body as KubeObject);
      } else {
        throw err;
      }
    }
    const key = `${kind}/${source.metadata!.namespace}/${source.metadata!.name}`;
    this.#copied.set(key, source.metadata!.resourceVersion ?? "");
  }

  /**
   * Mirrors a bound virtual claim and its volume: the volume (cluster-scoped in the worker) with
   * reclaim policy Retain, so that deleting the copy never touches the storage, pre-bound to the
   * claim's copy in the mount namespace; CSI secrets the volume names are mirrored too. Both copies
   * use the empty storage class, so the worker neither provisions nor re-binds them. Returns the
   * claim copy's name, or records why the pod must wait (`missing`, `unbound`).
   */
  async #mirrorClaim(
    namespace: string,
    claimName: string,
    result: PodDependencies,
  ): Promise<string | undefined> {
    const ctx = this.ctx;
    const claim = await ctx.virtualCore.persistentvolumeclaims(namespace).get(claimName).catch((err) =>
      isNotFound(err) ? undefined : Promise.reject(err)
    );
    if (!claim || claim.metadata?.deletionTimestamp) {
      result.missing ??= `PersistentVolumeClaim ${namespace}/${claimName}`;
      return undefined;
    }
    const volumeName = claim.spec?.volumeName;
    if (claim.status?.phase !== "Bound" || !volumeName) {
      result.unbound ??= `PersistentVolumeClaim ${namespace}/${claimName} is ${
        claim.status?.phase ?? "Pending"
      }, not bound to a volume yet`;
      return undefined;
    }
    const volume = await ctx.virtualCore.persistentvolumes().get(volumeName).catch((err) =>
      isNotFound(err) ? undefined : Promise.reject(err)
    );
    if (!volume) {
      result.missing ??= `PersistentVolume ${volumeName} (of claim ${namespace}/${claimName})`;
      return undefined;
    }
    const claimCopy = await mirroredName("PersistentVolumeClaim", namespace, claimName);
    const volumeCopy = await mirroredVolumeName(this.#mountNamespace, volumeName);
    const spec = structuredClone(volume.spec ?? {}) as PersistentVolumeSpec;
    // CSI secrets: mirrored like any Secret the pod uses, and referenced in the mount namespace.
    if (spec.csi) {
      for (
        const field of [
          "nodePublishSecretRef",
          "nodeStageSecretRef",
          "nodeExpandSecretRef",
          "controllerPublishSecretRef",
          "controllerExpandSecretRef",
        ] as const
      ) {
        const ref = spec.csi[field];
        if (!ref?.name) continue;
        const secretNamespace = ref.namespace ?? namespace;
        const copy = await this.mirror("Secret", secretNamespace, ref.name);
        if (!copy) {
          result.missing ??=
            `Secret ${secretNamespace}/${ref.name} (${field} of PersistentVolume ${volumeName})`;
          return undefined;
        }
        spec.csi[field] = { name: copy, namespace: this.#mountNamespace };
        result.keys.push(`Secret/${secretNamespace}/${ref.name}`);
      }
    }
    // Local volumes pinned to a virtual node are pinned to its physical node in the worker.
    for (const term of spec.nodeAffinity?.required?.nodeSelectorTerms ?? []) {
      for (const expression of term.matchExpressions ?? []) {
        if (expression.key !== "kubernetes.io/hostname") continue;
        const prefix = `vnode-${this.#clusterID}-`;
        expression.values = expression.values?.map((v) => v.startsWith(prefix) ? v.slice(prefix.length) : v);
      }
    }
    const labels = { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE, [LABEL_CLUSTER_BINDING]: ctx.config.bindingName };
    const annotations = { [ANNOTATION_VIRTUAL_NAMESPACE]: namespace, [ANNOTATION_VIRTUAL_NAME]: claimName };
    const volumes = ctx.physicalCore.persistentvolumes();
    if (!(await volumes.get(volumeCopy).catch((err) => isNotFound(err) ? undefined : Promise.reject(err)))) {
      await volumes.create({
        metadata: {
          name: volumeCopy,
          labels,
          annotations: { ...annotations, [ANNOTATION_VIRTUAL_VOLUME]: volumeName },
        },
        spec: {
          ...spec,
          storageClassName: "",
          persistentVolumeReclaimPolicy: "Retain",
          claimRef: {
            apiVersion: "v1",
            kind: "PersistentVolumeClaim",
            namespace: this.#mountNamespace,
            name: claimCopy,
          },
        },
      }).catch((err) => isAlreadyExists(err) ? undefined : Promise.reject(err));
    }
    const claims = ctx.physicalCore.persistentvolumeclaims(this.#mountNamespace);
    if (!(await claims.get(claimCopy).catch((err) => isNotFound(err) ? undefined : Promise.reject(err)))) {
      await claims.create({
        metadata: { name: claimCopy, labels, annotations },
        spec: {
          accessModes: claim.spec?.accessModes ?? volume.spec?.accessModes,
          volumeMode: claim.spec?.volumeMode,
          resources: {
            requests: { storage: volume.spec?.capacity?.storage ?? claim.status?.capacity?.storage ?? "1" },
          },
          storageClassName: "",
          volumeName: volumeCopy,
        },
      }).catch((err) => isAlreadyExists(err) ? undefined : Promise.reject(err));
    }
    return claimCopy;
  }

  /**
   * Deletes a claim copy that no twin or live virtual pod of the binding uses any more, then its
   * volume copy (Retain: the storage itself is never touched).
   */
  async releaseClaim(copy: PersistentVolumeClaim): Promise<void> {
    const claims = this.ctx.physicalCore.persistentvolumeclaims(this.#mountNamespace);
    await claims.delete(copy.metadata!.name!, { preconditions: { uid: copy.metadata!.uid } }).catch((err) =>
      isNotFound(err) ? undefined : Promise.reject(err)
    );
    const volumeCopy = copy.spec?.volumeName;
    if (!volumeCopy) return;
    const volumes = this.ctx.physicalCore.persistentvolumes();
    const volume = await volumes.get(volumeCopy).catch((err) =>
      isNotFound(err) ? undefined : Promise.reject(err)
    );
    // Only ever a volume this binding created.
    if (volume?.metadata?.labels?.[LABEL_CLUSTER_BINDING] !== this.ctx.config.bindingName) return;
    await volumes.delete(volumeCopy, { preconditions: { uid: volume.metadata!.uid } }).catch((err) =>
      isNotFound(err) ? undefined : Promise.reject(err)
    );
  }

  /** Releases claim copies once unused (checked when twins change; young copies get a grace period). */
  #claimController(): Controller<KubeObject> {
    const ctx = this.ctx;
    const client = ctx.physicalCore.persistentvolumeclaims(ctx.config.mountNamespace) as ResourceClient<
      KubeObject
    >;
    const labelSelector =
      `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE},${LABEL_CLUSTER_BINDING}=${ctx.config.bindingName}`;
    const copies = () => ctx.physicalInformers.for(client, { labelSelector }).store;
    return new ControllerBuilder(client, {
      name: `claims/${ctx.config.bindingName}`,
      logger: ctx.log,
      metrics: ctx.runtimeMetrics,
      labelSelector,
      informers: (t) => ctx.informersFor(t),
    })
      // Reconciles read the binding: without it listed they would drop their keys.
      .requires(ctx.bindingInformer)
      // A twin going away may leave a claim unused (claim copies are few).
      .watches(
        ctx.physicalPods,
        (twin) =>
          (twin.spec?.volumes ?? []).some((v) => v.persistentVolumeClaim)
            ? copies().list().map((c) => ({ namespace: c.metadata!.namespace!, name: c.metadata!.name! }))
            : [],
      )
      .build(async (_ref, rc) => {
        const copy = rc.object as PersistentVolumeClaim | undefined;
        if (!copy || copy.metadata?.deletionTimestamp || !ctx.binding) return Action.done();
        const ns = copy.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAMESPACE];
        const name = copy.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAME];
        if (!ns || !name || this.isUsed(`PersistentVolumeClaim/${ns}/${name}`)) return Action.done();
        const age = Date.now() - Date.parse(copy.metadata?.creationTimestamp ?? "");
        if (age < 30_000) return Action.requeueAfter(30_000 - age); // its twin may be on its way
        await this.releaseClaim(copy);
        return Action.done();
      });
  }

  /** Ensures the token Secret of a virtual ServiceAccount exists and is fresh; returns its name. */
  async ensureToken(namespace: string, serviceAccount: string): Promise<string> {
    const name = await tokenSecretName(namespace, serviceAccount);
    if (Date.now() < (this.#tokens.get(name) ?? 0)) return name;
    return (await this.#single(
      `Token/${name}`,
      () => this.#ensureTokenNow(namespace, serviceAccount, name),
    ))!;
  }

  async #ensureTokenNow(namespace: string, serviceAccount: string, name: string): Promise<string> {
    const physical = this.ctx.physicalCore.secrets(this.#mountNamespace);
    let existing: Secret | undefined;
    try {
      existing = await physical.get(name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    const expires = Date.parse(existing?.metadata?.annotations?.[ANNOTATION_EXPIRES] ?? "");
    const issued = Date.parse(existing?.metadata?.creationTimestamp ?? "");
    const renewAt = Number.isNaN(expires) ? 0 : expires - (TOKEN_SECONDS * 1000) * 0.2;
    if (existing && Date.now() < renewAt && !Number.isNaN(issued)) {
      this.#tokens.set(name, renewAt);
      return name;
    }
    const request = await this.ctx.virtualCore.serviceaccounts(namespace).createToken<TokenRequest>(
      serviceAccount,
      {
        expirationSeconds: TOKEN_SECONDS,
      },
    );
    let ca = "";
    try {
      ca = (await this.ctx.virtualCore.configmaps(namespace).get("kube-root-ca.crt")).data?.["ca.crt"] ?? "";
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    const encode = (s: string) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));
    const body: Secret = {
      apiVersion: "v1",
      kind: "Secret",
      type: "Opaque",
      metadata: {
        name,
        namespace: this.#mountNamespace,
        labels: {
          [LABEL_MANAGED_BY]: MANAGED_BY_VALUE,
          [LABEL_CLUSTER_BINDING]: this.ctx.config.bindingName,
          [LABEL_SA_TOKEN]: "true",
        },
        annotations: {
          [ANNOTATION_VIRTUAL_NAMESPACE]: namespace,
          [ANNOTATION_VIRTUAL_NAME]: serviceAccount,
          [ANNOTATION_EXPIRES]: request.status!.expirationTimestamp,
        },
      },
      data: { token: encode(request.status!.token), "ca.crt": encode(ca), namespace: encode(namespace) },
    };
    try {
      await physical.apply(body, { fieldManager: FIELD_MANAGER, force: true });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    const expiresAt = Date.parse(request.status!.expirationTimestamp);
    if (!Number.isNaN(expiresAt)) this.#tokens.set(name, expiresAt - TOKEN_SECONDS * 1000 * 0.2);
    return name;
  }

  /**
   * Whether a virtual object (`Kind/ns/name`) is in use: referenced by a live virtual pod on one
   * of the binding's virtual nodes, or recorded on a twin of the binding that still exists.
   * Answered from the informers' dependency indexes, so it costs the number of users, not pods.
   */
  isUsed(key: string): boolean {
    const bindingName = this.ctx.config.bindingName;
    const twins = this.ctx.physicalPodInformer.store.byIndex(BY_DEPENDENCY, key);
    if (twins.some((twin) => twin.metadata?.labels?.[LABEL_CLUSTER_BINDING] === bindingName)) return true;
    const vnodes = this.ctx.virtualInformers.for(this.ctx.virtualNodes, {
      labelSelector: `${LABEL_CLUSTER_BINDING}=${bindingName}`,
    }).store;
    return this.ctx.virtualPodInformer.store.byIndex(BY_DEPENDENCY, key).some((pod) =>
      !!pod.spec?.nodeName && !!vnodes.get(pod.spec.nodeName) &&
      pod.status?.phase !== "Succeeded" && pod.status?.phase !== "Failed" && !pod.metadata?.deletionTimestamp
    );
  }

  /** Keeps copies of labelled virtual objects current; releases them once unused. */
  #mirrorController(kind: Kind): Controller<KubeObject> {
    const client =
      (kind === "ConfigMap"
        ? this.ctx.virtualCore.configmaps()
        : this.ctx.virtualCore.secrets()) as ResourceClient<KubeObject>;
    const ctx = this.ctx;
    const bindingName = ctx.config.bindingName;
    return new ControllerBuilder(client, {
      name: `${kind.toLowerCase()}s/${bindingName}`,
      logger: ctx.log,
      metrics: ctx.runtimeMetrics,
      labelSelector: `${syncedByLabel(ctx.config.clusterID)}=true`,
      informers: (t) => ctx.informersFor(t),
    })
      // Reconciles read the binding: without it listed they would drop their keys.
      .requires(ctx.bindingInformer)
      // When twins change, their dependencies may have become unused.
      .watches(
        ctx.physicalPods,
        (twin) =>
          (twin.metadata?.annotations?.[ANNOTATION_DEPENDENCIES] ?? "").split(",").filter((k) =>
            k.startsWith(`${kind}/`)
          ).map((k) => {
            const [, namespace, name] = k.split("/");
            return { namespace, name };
          }),
      )
      .build(async (ref, rc) => {
        const binding = ctx.binding;
        if (!binding) return Action.done();
        const source = rc.object;
        const key = `${kind}/${ref.namespace}/${ref.name}`;
        const mirrored = await mirroredName(kind, ref.namespace!, ref.name);
        const used = this.isUsed(key);
        if (source && !source.metadata?.deletionTimestamp && used && !binding.metadata?.deletionTimestamp) {
          await this.#writeCopy(kind, source as ConfigMap | Secret, mirrored);
          return Action.requeueAfter(ctx.config.resyncMs);
        }
        if (used && source && !source.metadata?.deletionTimestamp) return Action.done();
        await this.release(kind, ref.namespace!, ref.name, source);
        return Action.done();
      });
  }

  /** Deletes the copy, then removes label and finalizer from the virtual original. */
  async release(kind: Kind, namespace: string, name: string, source?: KubeObject): Promise<void> {
    const mirrored = await mirroredName(kind, namespace, name);
    this.#copied.delete(`${kind}/${namespace}/${name}`);
    try {
      await this.#physicalClient(kind).delete(mirrored);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    const virtual = this.#virtualClient(kind, namespace);
    const current = source ??
      await virtual.get(name).catch((err) => isNotFound(err) ? undefined : Promise.reject(err));
    if (!current) return;
    const label = syncedByLabel(this.#clusterID);
    const finalizer = syncedFinalizer(this.#clusterID);
    const finalizers = current.metadata?.finalizers ?? [];
    const index = finalizers.indexOf(finalizer);
    const ops: JsonPatchOperation[] = [{
      op: "test",
      path: "/metadata/resourceVersion",
      value: current.metadata!.resourceVersion,
    }];
    if (index >= 0) ops.push({ op: "remove", path: `/metadata/finalizers/${index}` });
    if (current.metadata?.labels?.[label] !== undefined) {
      ops.push({ op: "remove", path: `/metadata/labels/${label.replaceAll("/", "~1")}` });
    }
    if (ops.length > 1) {
      try {
        await virtual.patch(name, ops, { type: "json" });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }

  /** Renews token Secrets before they expire; deletes unused ones. */
  #tokenController(): Controller<KubeObject> {
    const ctx = this.ctx;
    const secrets = ctx.physicalCore.secrets(ctx.config.mountNamespace) as ResourceClient<KubeObject>;
    return new ControllerBuilder(secrets, {
      name: `tokens/${ctx.config.bindingName}`,
      logger: ctx.log,
      metrics: ctx.runtimeMetrics,
      labelSelector: `${LABEL_SA_TOKEN}=true,${LABEL_CLUSTER_BINDING}=${ctx.config.bindingName}`,
      informers: (t) => ctx.informersFor(t),
    })
      // Reconciles read the binding: without it listed they would drop their keys.
      .requires(ctx.bindingInformer)
      // A twin going away may leave its token unused: look at the token Secrets it mounted.
      .watches(ctx.physicalPods, (twin) =>
        (twin.spec?.volumes ?? [])
          .map((v) => v.secret?.secretName)
          .filter((name): name is string => !!name?.startsWith(TOKEN_SECRET_PREFIX))
          .map((name) => ({ namespace: ctx.config.mountNamespace, name })))
      .build(async (ref, rc) => {
        const secret = rc.object;
        if (!secret) this.#tokens.delete(ref.name); // deleted: the next pod that needs it re-creates it
        if (!secret || !ctx.binding) return Action.done();
        const ns = secret.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAMESPACE];
        const sa = secret.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAME];
        if (!ns || !sa) return Action.done();
        if (!this.isUsed(`Token/${ns}/${sa}`)) {
          // Give freshly created twins a moment to appear before deleting their token.
          const age = Date.now() - Date.parse(secret.metadata?.creationTimestamp ?? "");
          if (age < 30_000) return Action.requeueAfter(30_000 - age);
          this.#tokens.delete(secret.metadata!.name!);
          await secrets.delete(secret.metadata!.name!).catch((e) =>
            isNotFound(e) ? undefined : Promise.reject(e)
          );
          return Action.done();
        }
        await this.ensureToken(ns, sa);
        const expires = Date.parse(secret.metadata?.annotations?.[ANNOTATION_EXPIRES] ?? "");
        const renewIn = Number.isNaN(expires) ? 60_000 : expires - TOKEN_SECONDS * 200 - Date.now();
        return Action.requeueAfter(Math.max(10_000, Math.min(renewIn, ctx.config.resyncMs)));
      });
  }
}
