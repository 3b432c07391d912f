/** The permissions each subcommand of the entrypoint gives up at start. */

import assert from "node:assert/strict";
import { revocationsFor } from "../../controllers/permissions.ts";

Deno.test("permissions: in a cluster a manager or syncer runs no program, and nothing writes files", () => {
  assert.deepEqual(revocationsFor("manager", ["--syncer-mode=deployment"]), ["write", "ffi", "run"]);
  assert.deepEqual(revocationsFor("syncer", ["--cluster-binding=w"]), ["write", "ffi", "run"]);
  // Programs run only for a kubeconfig the operator gave, or Secrets trusted explicitly.
  assert.deepEqual(revocationsFor("manager", ["--kubeconfig", "/home/me/.kube/config"]), ["write", "ffi"]);
  assert.deepEqual(revocationsFor("syncer", ["--trust-kubeconfig-secrets=true"]), ["write", "ffi"]);
  assert.deepEqual(revocationsFor("syncer", ["--trust-kubeconfig-secrets=false"]), ["write", "ffi", "run"]);
  assert.deepEqual(revocationsFor("bind", []), ["write", "ffi"]);
});
