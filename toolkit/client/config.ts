/**
 * Client configuration, found the way kubectl finds it: an explicit kubeconfig, else the
 * `$KUBECONFIG` list, else `~/.kube/config`, else the in-cluster service account.
 *
 * @module
 */

import { type ClientConfig, ConfigError } from "./client_config.ts";
import { InClusterCredentials } from "./credentials.ts";
import { loadKubeconfigFiles } from "./kubeconfig.ts";

export { type ClientConfig, ConfigError, type Credentials, type CredentialSource } from "./client_config.ts";

/** Options of {@linkcode loadConfig}. */
export interface LoadConfigOptions {
  /** Explicit kubeconfig path(s) (like `--kubeconfig`); overrides `$KUBECONFIG`. */
  kubeconfig?: string | string[];
  /** Context override (like `--context`). */
  context?: string;
  /** Environment lookup (default `Deno.env.get`). */
  env?: (name: string) => string | undefined;
  /** Root of the in-cluster service-account files (default `/var/run/secrets/kubernetes.io/serviceaccount`). */
  serviceAccountDir?: string;
}

const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

function envOf(options: LoadConfigOptions): (name: string) => string | undefined {
  return options.env ?? ((name) => Deno.env.get(name));
}

/** The kubeconfig files to read: explicit ones, else `$KUBECONFIG`, else `~/.kube/config` (if it exists). */
function kubeconfigPaths(options: LoadConfigOptions): { paths: string[]; explicit: boolean } {
  if (options.kubeconfig) {
    return {
      paths: Array.isArray(options.kubeconfig) ? options.kubeconfig : [options.kubeconfig],
      explicit: true,
    };
  }
  const env = envOf(options);
  const list = env("KUBECONFIG");
  if (list) return { paths: list.split(":").filter(Boolean), explicit: false };
  const home = env("HOME");
  return { paths: home ? [`${home}/.kube/config`] : [], explicit: false };
}

/** Loads a kubeconfig (explicit paths, `$KUBECONFIG`, or `~/.kube/config`). */
export async function loadKubeconfig(options: LoadConfigOptions = {}): Promise<ClientConfig> {
  const { paths, explicit } = kubeconfigPaths(options);
  if (paths.length === 0) {
    throw new ConfigError("no kubeconfig: neither --kubeconfig, $KUBECONFIG nor $HOME is set");
  }
  return await loadKubeconfigFiles(paths, { context: options.context, explicit, env: envOf(options) });
}

/** Loads the in-cluster configuration (service-account token, CA and namespace). */
export async function loadInClusterConfig(options: LoadConfigOptions = {}): Promise<ClientConfig> {
  const env = envOf(options);
  const host = env("KUBERNETES_SERVICE_HOST");
  const port = env("KUBERNETES_SERVICE_PORT");
  if (!host || !port) {
    throw new ConfigError(
      "not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set",
    );
  }
  const dir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  let caPem: string;
  try {
    caPem = await Deno.readTextFile(`${dir}/ca.crt`);
  } catch (err) {
    throw new ConfigError(
      `in-cluster: cannot read the service-account CA ${dir}/ca.crt: ${(err as Error).message}`,
    );
  }
  const credentials = new InClusterCredentials(`${dir}/token`);
  await credentials.get(); // fail now, with the file name, when the token is missing
  const namespace = (await Deno.readTextFile(`${dir}/namespace`).catch(() => "default")).trim() || "default";
  const hostPart = host.includes(":") ? `[${host}]` : host;
  return {
    server: `https://${hostPart}:${port}`,
    tls: { caPem },
    credentials,
    namespace,
    source: "in-cluster",
  };
}

/**
 * Loads configuration like kubectl: explicit kubeconfig → `$KUBECONFIG` → `~/.kube/config` →
 * in-cluster. When nothing works, one {@linkcode ConfigError} lists what was tried.
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<ClientConfig> {
  const { paths, explicit } = kubeconfigPaths(options);
  if (explicit) return await loadKubeconfig(options);
  const tried: string[] = [];
  const existing = [];
  for (const path of paths) {
    if (await Deno.stat(path).then(() => true, () => false)) existing.push(path);
  }
  if (existing.length > 0) return await loadKubeconfig(options);
  tried.push(paths.length ? `kubeconfig ${paths.join(":")}: not found` : "kubeconfig: no path");
  try {
    return await loadInClusterConfig(options);
  } catch (err) {
    tried.push(`in-cluster: ${(err as Error).message}`);
  }
  throw new ConfigError(`no Kubernetes configuration found; tried:\n  ${tried.join("\n  ")}`);
}
