/** The Pod Security Standards as the syncer checks them before creating a twin. */

import assert from "node:assert/strict";
import type { PodSpec } from "../../apis/core/v1/mod.ts";
import { describeViolations, podSecurityViolations } from "../../controllers/common/pod_security.ts";

const plain: PodSpec = { containers: [{ name: "app", image: "i" }] };
const fields = (spec: PodSpec, level: "baseline" | "restricted", annotations?: Record<string, string>) =>
  podSecurityViolations(spec, annotations, level).map((v) => v.field);

Deno.test("pod security: privileged allows anything; baseline refuses each escalation, naming the field", () => {
  const risky: PodSpec = {
    hostNetwork: true,
    hostPID: true,
    hostIPC: true,
    securityContext: {
      sysctls: [{ name: "kernel.msgmax", value: "1" }],
      seccompProfile: { type: "Unconfined" },
    },
    volumes: [{ name: "root", hostPath: { path: "/" } }, { name: "scratch", emptyDir: {} }],
    containers: [{
      name: "app",
      image: "i",
      ports: [{ containerPort: 80, hostPort: 8080 }],
      securityContext: {
        privileged: true,
        capabilities: { add: ["SYS_ADMIN", "NET_BIND_SERVICE"] },
        procMount: "Unmasked",
        seLinuxOptions: { type: "spc_t" },
      },
    }],
  };
  assert.deepEqual(podSecurityViolations(risky, {}, "privileged"), []);
  assert.deepEqual(fields(risky, "baseline").sort(), [
    "spec.containers[name=app].ports[containerPort=80].hostPort=8080",
    "spec.containers[name=app].securityContext.capabilities.add=SYS_ADMIN",
    "spec.containers[name=app].securityContext.privileged=true",
    "spec.containers[name=app].securityContext.procMount=Unmasked",
    "spec.containers[name=app].securityContext.seLinuxOptions.type=spc_t",
    "spec.hostIPC=true",
    "spec.hostNetwork=true",
    "spec.hostPID=true",
    "spec.securityContext.seccompProfile.type=Unconfined",
    "spec.securityContext.sysctls[name=kernel.msgmax]",
    "spec.volumes[name=root].hostPath",
  ]);
  assert.deepEqual(fields(plain, "baseline"), []);
  assert.deepEqual(
    fields(plain, "baseline", { "container.apparmor.security.beta.kubernetes.io/app": "unconfined" }),
    ["metadata.annotations[container.apparmor.security.beta.kubernetes.io/app]=unconfined"],
  );
  assert.match(
    describeViolations("baseline", podSecurityViolations(risky, {}, "baseline")),
    /^violates PodSecurity "baseline": host namespaces \(spec\.hostNetwork=true, spec\.hostPID=true, spec\.hostIPC=true\); /,
  );
});

Deno.test("pod security: restricted asks for non-root, no escalation, RuntimeDefault seccomp and dropped capabilities", () => {
  assert.deepEqual(fields(plain, "restricted").sort(), [
    "spec.containers[name=app].securityContext.allowPrivilegeEscalation must be false",
    "spec.containers[name=app].securityContext.capabilities.drop must include ALL",
    "spec.containers[name=app].securityContext.runAsNonRoot must be true",
    "spec.containers[name=app].securityContext.seccompProfile.type must be RuntimeDefault or Localhost",
  ]);
  const hardened: PodSpec = {
    securityContext: { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
    volumes: [{ name: "config", configMap: { name: "c" } }, { name: "token", projected: { sources: [] } }],
    containers: [{
      name: "app",
      image: "i",
      securityContext: {
        allowPrivilegeEscalation: false,
        capabilities: { drop: ["ALL"], add: ["NET_BIND_SERVICE"] },
      },
    }],
  };
  assert.deepEqual(fields(hardened, "restricted"), []);
  const root = structuredClone(hardened);
  root.containers[0].securityContext!.runAsUser = 0;
  root.volumes!.push({ name: "nfs", nfs: { server: "s", path: "/" } });
  root.containers[0].securityContext!.capabilities!.add = ["CHOWN"];
  assert.deepEqual(fields(root, "restricted").sort(), [
    "spec.containers[name=app].securityContext.capabilities.add=CHOWN",
    "spec.containers[name=app].securityContext.runAsUser=0",
    "spec.volumes[name=nfs].nfs",
  ]);
});
