/**
 * Downloads the OpenAPI v3 documents of every built-in group version from a running API server
 * (by default a fresh local cluster of the pinned version) into `codegen/openapi/<version>/`.
 *
 * @module
 */

import { KubeClient } from "../toolkit/client/client.ts";
import { Environment } from "../toolkit/envtest/environment.ts";

/** Group-version documents: `api/v1` and `apis/<group>/<version>` (not the group or discovery roots). */
function isGroupVersion(path: string): boolean {
  return path === "api/v1" || /^apis\/[^/]+\/[^/]+$/.test(path);
}

/** Fetches the documents into `dir` (replacing its JSON files). */
export async function refreshOpenApi(
  dir: string,
  options: { kubeconfig?: string; context?: string } = {},
): Promise<void> {
  let env: Environment | undefined;
  let kubeconfig = options.kubeconfig;
  if (!kubeconfig) {
    env = await Environment.start({
      clusters: [{ name: "openapi" }],
      log: (l) => console.error(`[envtest] ${l}`),
    });
    kubeconfig = env.cluster("openapi").kubeconfig;
  }
  const client = await KubeClient.load({ kubeconfig, context: options.context });
  try {
    const index = await client.getRaw<{ paths: Record<string, { serverRelativeURL: string }> }>(
      "/openapi/v3",
    );
    await Deno.mkdir(dir, { recursive: true });
    for (const entry of Deno.readDirSync(dir)) {
      if (entry.name.endsWith(".json")) await Deno.remove(`${dir}/${entry.name}`);
    }
    const paths = Object.keys(index.paths).filter(isGroupVersion).sort();
    for (const path of paths) {
      const doc = await client.getRaw(`/openapi/v3/${path}`);
      await Deno.writeTextFile(`${dir}/${path.replaceAll("/", "__")}.json`, JSON.stringify(doc) + "\n");
    }
    // Stored pretty-printed, as `deno fmt` keeps them, so that updates diff well.
    const fmt = await new Deno.Command(Deno.execPath(), {
      args: ["fmt", "--no-config", "--line-width", "110", "--quiet", dir],
    }).output();
    if (!fmt.success) throw new Error(`deno fmt failed: ${new TextDecoder().decode(fmt.stderr)}`);
    console.error(`codegen refresh: wrote ${paths.length} documents to ${dir}`);
  } finally {
    client.close();
    await env?.stop();
  }
}
