/**
 * Renders `deploy/worker/rbac.yaml` from the single source of the worker's permissions
 * (`controllers/common/worker_permissions.ts`, where every rule carries its reason), for users who
 * prefer `kubectl apply` to `deno task run bind`.
 *
 * ```sh
 * deno run --allow-read --allow-write deploy/render_worker_rbac.ts          # write the file
 * deno run --allow-read deploy/render_worker_rbac.ts --check                # exit 1 if it differs
 * ```
 *
 * @module
 */

import { stringify } from "yaml";
import { WORKER_PERMISSIONS, workerRbacObjects } from "../controllers/common/worker_permissions.ts";

/** The default mount namespace of `bind` and of the rendered manifest. */
export const RENDERED_MOUNT_NAMESPACE = "kubeocean-worker";

/** The text of `deploy/worker/rbac.yaml`. */
export function renderWorkerRbac(mountNamespace = RENDERED_MOUNT_NAMESPACE): string {
  const reasons = WORKER_PERMISSIONS.map((p) => {
    const resource = p.subresource ? `${p.resource}/${p.subresource}` : p.resource;
    const where = p.scope === "cluster"
      ? "cluster-wide"
      : p.scope === "mount-namespace-object"
      ? `on namespace ${mountNamespace} only`
      : `in ${mountNamespace}`;
    return `#   ${resource} [${p.verbs.join(", ")}] ${where}: ${p.reason}`;
  });
  const header = [
    "# Kubeocean worker-side RBAC: what a worker cluster grants the syncer (least privilege).",
    "# Rendered by `deno run --allow-read --allow-write deploy/render_worker_rbac.ts` from",
    "# controllers/common/worker_permissions.ts; do not edit by hand. `deno task run bind` applies the",
    "# same objects (and the ServiceAccount token Secret it then reads). Apply with:",
    "#   kubectl apply -f deploy/crds/kubeocean.io_resourceleasingpolicies.yaml -f deploy/worker/rbac.yaml",
    "# Every rule and why it is needed:",
    ...reasons,
    "# The mount namespace enforces Pod Security `baseline` (bind --pod-security chooses), a NetworkPolicy",
    "# keeps pods from the instance metadata address (bind --allow-metadata-egress opts out), and the",
    "# ValidatingAdmissionPolicy kubeocean-syncer-persistentvolumes confines the syncer's volume writes.",
  ].join("\n");
  const docs = workerRbacObjects(mountNamespace).map((o) => stringify(o, { lineWidth: 0 }).trimEnd());
  return `${header}\n---\n${docs.join("\n---\n")}\n`;
}

if (import.meta.main) {
  const file = new URL("./worker/rbac.yaml", import.meta.url);
  const text = renderWorkerRbac();
  if (Deno.args.includes("--check")) {
    const current = await Deno.readTextFile(file).catch(() => "");
    if (current !== text) {
      console.error(
        "deploy/worker/rbac.yaml is out of date: run deno run --allow-read --allow-write deploy/render_worker_rbac.ts",
      );
      Deno.exit(1);
    }
  } else {
    await Deno.writeTextFile(file, text);
    console.log(`wrote ${file.pathname}`);
  }
}
