/**
 * The Pod Security Standards (`baseline` and `restricted`, as of Kubernetes 1.36), evaluated on a
 * pod spec the way the worker's Pod Security admission evaluates it: `bind` labels the mount
 * namespace with the level the worker's owner chose, and the syncer checks a twin against the
 * same level before creating it, so a pod that would be refused stays Pending with the field
 * named instead of being retried against the worker's API server.
 *
 * Fields are named by container and volume name (`spec.containers[name=app].securityContext…`),
 * which stay the same between a virtual pod and its twin.
 *
 * @module
 */

import type { Container, PodSpec, SecurityContext } from "../../apis/core/v1/mod.ts";

/** A Pod Security Standards level. */
export type PodSecurityLevel = "privileged" | "baseline" | "restricted";

/** The levels, least strict first. */
export const POD_SECURITY_LEVELS: readonly PodSecurityLevel[] = ["privileged", "baseline", "restricted"];

/** The namespace label Pod Security admission enforces. */
export const POD_SECURITY_ENFORCE_LABEL = "pod-security.kubernetes.io/enforce";
/** The namespace label naming the standards' version. */
export const POD_SECURITY_VERSION_LABEL = "pod-security.kubernetes.io/enforce-version";

/** One violated check. */
export interface PodSecurityViolation {
  /** The check's name in the standards, e.g. `privileged`, `hostPath volumes`. */
  check: string;
  /** The offending field and value, e.g. `spec.containers[name=app].securityContext.privileged=true`. */
  field: string;
}

const BASELINE_CAPABILITIES = new Set([
  "AUDIT_WRITE",
  "CHOWN",
  "DAC_OVERRIDE",
  "FOWNER",
  "FSETID",
  "KILL",
  "MKNOD",
  "NET_BIND_SERVICE",
  "SETFCAP",
  "SETGID",
  "SETPCAP",
  "SETUID",
  "SYS_CHROOT",
]);

const SAFE_SYSCTLS = new Set([
  "kernel.shm_rmid_forced",
  "net.ipv4.ip_local_port_range",
  "net.ipv4.ip_unprivileged_port_start",
  "net.ipv4.tcp_syncookies",
  "net.ipv4.ping_group_range",
  "net.ipv4.ip_local_reserved_ports",
  "net.ipv4.tcp_keepalive_time",
  "net.ipv4.tcp_fin_timeout",
  "net.ipv4.tcp_keepalive_intvl",
  "net.ipv4.tcp_keepalive_probes",
]);

const SELINUX_TYPES = new Set([
  "",
  "container_t",
  "container_init_t",
  "container_kvm_t",
  "container_engine_t",
]);

const RESTRICTED_VOLUME_TYPES = new Set([
  "configMap",
  "csi",
  "downwardAPI",
  "emptyDir",
  "ephemeral",
  "persistentVolumeClaim",
  "projected",
  "secret",
]);

/** Parses a level; throws naming the accepted values. */
export function parsePodSecurityLevel(text: string, field: string): PodSecurityLevel {
  const level = POD_SECURITY_LEVELS.find((l) => l === text);
  if (!level) throw new Error(`${field}: "${text}" is not one of ${POD_SECURITY_LEVELS.join(", ")}`);
  return level;
}

/** Every check of `level` that the pod violates (none for `privileged`). */
export function podSecurityViolations(
  spec: PodSpec,
  annotations: Record<string, string> | undefined,
  level: PodSecurityLevel,
): PodSecurityViolation[] {
  if (level === "privileged") return [];
  const found: PodSecurityViolation[] = [];
  const add = (check: string, field: string) => found.push({ check, field });
  const containers = allContainers(spec);
  const pod = spec.securityContext;

  // Baseline.
  if (spec.hostNetwork) add("host namespaces", "spec.hostNetwork=true");
  if (spec.hostPID) add("host namespaces", "spec.hostPID=true");
  if (spec.hostIPC) add("host namespaces", "spec.hostIPC=true");
  if (pod?.windowsOptions?.hostProcess) {
    add("hostProcess", "spec.securityContext.windowsOptions.hostProcess=true");
  }
  for (const v of spec.volumes ?? []) {
    if (v.hostPath) add("hostPath volumes", `spec.volumes[name=${v.name}].hostPath`);
  }
  checkSeLinux(pod?.seLinuxOptions, "spec.securityContext", add);
  if (pod?.seccompProfile?.type === "Unconfined") {
    add("seccompProfile", "spec.securityContext.seccompProfile.type=Unconfined");
  }
  if (pod?.appArmorProfile?.type === "Unconfined") {
    add("appArmorProfile", "spec.securityContext.appArmorProfile.type=Unconfined");
  }
  for (const sysctl of pod?.sysctls ?? []) {
    if (!SAFE_SYSCTLS.has(sysctl.name)) add("sysctls", `spec.securityContext.sysctls[name=${sysctl.name}]`);
  }
  for (const [key, value] of Object.entries(annotations ?? {})) {
    if (key.startsWith("container.apparmor.security.beta.kubernetes.io/") && value === "unconfined") {
      add("appArmorProfile", `metadata.annotations[${key}]=unconfined`);
    }
  }
  for (const { container, path } of containers) {
    const sc = container.securityContext;
    const at = `${path}.securityContext`;
    if (sc?.privileged) add("privileged", `${at}.privileged=true`);
    if (sc?.windowsOptions?.hostProcess) add("hostProcess", `${at}.windowsOptions.hostProcess=true`);
    for (const capability of sc?.capabilities?.add ?? []) {
      if (!BASELINE_CAPABILITIES.has(capability)) add("capabilities", `${at}.capabilities.add=${capability}`);
    }
    for (const port of container.ports ?? []) {
      if (port.hostPort) {
        add("hostPort", `${path}.ports[containerPort=${port.containerPort}].hostPort=${port.hostPort}`);
      }
    }
    checkSeLinux(sc?.seLinuxOptions, at, add);
    if (sc?.procMount && sc.procMount !== "Default") add("procMount", `${at}.procMount=${sc.procMount}`);
    if (sc?.seccompProfile?.type === "Unconfined") {
      add("seccompProfile", `${at}.seccompProfile.type=Unconfined`);
    }
    if (sc?.appArmorProfile?.type === "Unconfined") {
      add("appArmorProfile", `${at}.appArmorProfile.type=Unconfined`);
    }
  }
  if (level === "baseline") return found;

  // Restricted.
  for (const v of spec.volumes ?? []) {
    const type = Object.keys(v).find((k) => k !== "name");
    if (type && !RESTRICTED_VOLUME_TYPES.has(type) && type !== "hostPath") {
      add("volume types", `spec.volumes[name=${v.name}].${type}`);
    }
  }
  const podNonRoot = pod?.runAsNonRoot === true;
  if (pod?.runAsNonRoot === false) add("runAsNonRoot", "spec.securityContext.runAsNonRoot=false");
  if (pod?.runAsUser === 0) add("runAsUser", "spec.securityContext.runAsUser=0");
  const podSeccomp = seccompAllowed(pod?.seccompProfile?.type);
  for (const { container, path } of containers) {
    const sc: SecurityContext | undefined = container.securityContext;
    const at = `${path}.securityContext`;
    if (sc?.allowPrivilegeEscalation !== false) {
      add("allowPrivilegeEscalation", `${at}.allowPrivilegeEscalation must be false`);
    }
    if (sc?.runAsNonRoot === false) add("runAsNonRoot", `${at}.runAsNonRoot=false`);
    else if (!podNonRoot && sc?.runAsNonRoot !== true) add("runAsNonRoot", `${at}.runAsNonRoot must be true`);
    if (sc?.runAsUser === 0) add("runAsUser", `${at}.runAsUser=0`);
    if (!podSeccomp && !seccompAllowed(sc?.seccompProfile?.type)) {
      add("seccompProfile", `${at}.seccompProfile.type must be RuntimeDefault or Localhost`);
    }
    if (!(sc?.capabilities?.drop ?? []).includes("ALL")) {
      add("capabilities", `${at}.capabilities.drop must include ALL`);
    }
    for (const capability of sc?.capabilities?.add ?? []) {
      if (capability !== "NET_BIND_SERVICE" && BASELINE_CAPABILITIES.has(capability)) {
        add("capabilities", `${at}.capabilities.add=${capability}`);
      }
    }
  }
  return found;
}

/** One line naming the level and every violated check with its field. */
export function describeViolations(
  level: PodSecurityLevel,
  violations: readonly PodSecurityViolation[],
): string {
  const checks = new Map<string, string[]>();
  for (const v of violations) checks.set(v.check, [...(checks.get(v.check) ?? []), v.field]);
  return `violates PodSecurity "${level}": ${
    [...checks].map(([check, fields]) => `${check} (${fields.join(", ")})`).join("; ")
  }`;
}

function allContainers(
  spec: PodSpec,
): { container: Pick<Container, "securityContext" | "ports">; path: string }[] {
  return [
    ...(spec.initContainers ?? []).map((c) => ({
      container: c,
      path: `spec.initContainers[name=${c.name}]`,
    })),
    ...(spec.containers ?? []).map((c) => ({ container: c, path: `spec.containers[name=${c.name}]` })),
    ...(spec.ephemeralContainers ?? []).map((c) => ({
      container: c,
      path: `spec.ephemeralContainers[name=${c.name}]`,
    })),
  ];
}

function checkSeLinux(
  options: SecurityContext["seLinuxOptions"],
  at: string,
  add: (check: string, field: string) => void,
): void {
  if (!options) return;
  if (!SELINUX_TYPES.has(options.type ?? "")) {
    add("seLinuxOptions", `${at}.seLinuxOptions.type=${options.type}`);
  }
  if (options.user) add("seLinuxOptions", `${at}.seLinuxOptions.user=${options.user}`);
  if (options.role) add("seLinuxOptions", `${at}.seLinuxOptions.role=${options.role}`);
}

function seccompAllowed(type: string | undefined): boolean {
  return type === "RuntimeDefault" || type === "Localhost";
}
