/**
 * Kubeconfig files: read and merged in order with first-wins for every named cluster, user and
 * context and for `current-context` (like kubectl); relative paths resolve against the file that
 * defines them; errors name the file and the field.
 *
 * @module
 */

import { parse } from "yaml";
import { type ClientConfig, ConfigError, type Credentials, type CredentialSource } from "./client_config.ts";
import { type ExecConfig, ExecCredentials, StaticCredentials, TokenFileCredentials } from "./credentials.ts";

interface Named<T> {
  name: string;
  value: T;
  file: string;
}

interface KubeconfigCluster {
  server?: string;
  "certificate-authority"?: string;
  "certificate-authority-data"?: string;
  "insecure-skip-tls-verify"?: boolean;
  "tls-server-name"?: string;
  "proxy-url"?: string;
}

interface KubeconfigUser {
  "client-certificate"?: string;
  "client-certificate-data"?: string;
  "client-key"?: string;
  "client-key-data"?: string;
  token?: string;
  tokenFile?: string;
  username?: string;
  password?: string;
  "auth-provider"?: { name?: string };
  exec?: ExecConfig;
}

interface KubeconfigContext {
  cluster?: string;
  user?: string;
  namespace?: string;
}

interface Merged {
  currentContext?: { name: string; file: string };
  clusters: Map<string, Named<KubeconfigCluster>>;
  users: Map<string, Named<KubeconfigUser>>;
  contexts: Map<string, Named<KubeconfigContext>>;
  files: string[];
}

function dirOf(file: string): string {
  const slash = file.lastIndexOf("/");
  return slash < 0 ? "." : file.slice(0, slash) || "/";
}

function resolvePath(path: string, file: string, env: (name: string) => string | undefined): string {
  if (path.startsWith("~/")) return `${env("HOME") ?? ""}/${path.slice(2)}`;
  return path.startsWith("/") ? path : `${dirOf(file)}/${path}`;
}

function decodeBase64(data: string, field: string, where: string): string {
  try {
    const binary = atob(data.replace(/\s+/g, ""));
    return new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
  } catch {
    throw new ConfigError(`${where}: ${field} is not valid base64`);
  }
}

function requirePem(text: string, field: string, where: string): string {
  if (!/-----BEGIN [A-Z ]+-----/.test(text)) throw new ConfigError(`${where}: ${field} is not PEM data`);
  return text;
}

/** How far a kubeconfig is trusted. */
interface Trust {
  env: (name: string) => string | undefined;
  /** Refuse everything that runs a program or reads a local file (kubeconfigs that are data). */
  dataOnly: boolean;
}

/** Thrown for a field a data-only kubeconfig may not use. */
export class UntrustedKubeconfigError extends ConfigError {
  override readonly name: string = "UntrustedKubeconfigError";
}

function refuse(where: string, field: string, why: string): never {
  throw new UntrustedKubeconfigError(
    `${where}: ${field} is not allowed in a kubeconfig from a Secret (${why}); use only inline data (certificate-authority-data, client-certificate-data, client-key-data, token)`,
  );
}

async function readField(
  entry: Record<string, unknown>,
  fileField: string,
  dataField: string,
  where: string,
  file: string,
  trust: Trust,
): Promise<string | undefined> {
  const path = entry[fileField];
  if (trust.dataOnly && typeof path === "string" && path) {
    refuse(where, fileField, "it would read a file of the process that loads it");
  }
  const data = entry[dataField];
  if (typeof data === "string" && data) {
    return requirePem(decodeBase64(data, dataField, where), dataField, where);
  }
  if (typeof path === "string" && path) {
    const env = trust.env;
    const resolved = resolvePath(path, file, env);
    try {
      return requirePem(await Deno.readTextFile(resolved), fileField, where);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`${where}: cannot read ${fileField} ${resolved}: ${(err as Error).message}`);
    }
  }
  return undefined;
}

function namedList<T>(doc: Record<string, unknown>, key: string, inner: string, file: string): Named<T>[] {
  const list = doc[key];
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new ConfigError(`kubeconfig ${file}: "${key}" must be a list`);
  return list.map((item, i) => {
    const name = (item as { name?: unknown })?.name;
    if (typeof name !== "string" || !name) {
      throw new ConfigError(`kubeconfig ${file}: ${key}[${i}] has no name`);
    }
    return { name, value: ((item as Record<string, unknown>)[inner] ?? {}) as T, file };
  });
}

async function readMerged(paths: string[], explicit: boolean, texts?: Map<string, string>): Promise<Merged> {
  const merged: Merged = { clusters: new Map(), users: new Map(), contexts: new Map(), files: [] };
  for (const file of paths) {
    let text: string;
    try {
      text = texts?.get(file) ?? await Deno.readTextFile(file);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound && !explicit) continue; // like kubectl: missing entries of $KUBECONFIG are skipped
      throw new ConfigError(`cannot read kubeconfig ${file}: ${(err as Error).message}`);
    }
    let doc: Record<string, unknown>;
    try {
      doc = (parse(text) ?? {}) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`kubeconfig ${file} is not valid YAML: ${(err as Error).message.split("\n")[0]}`);
    }
    if (typeof doc !== "object" || Array.isArray(doc)) {
      throw new ConfigError(`kubeconfig ${file} is not a YAML mapping`);
    }
    merged.files.push(file);
    const current = doc["current-context"];
    if (!merged.currentContext && typeof current === "string" && current) {
      merged.currentContext = { name: current, file };
    }
    for (const c of namedList<KubeconfigCluster>(doc, "clusters", "cluster", file)) {
      if (!merged.clusters.has(c.name)) merged.clusters.set(c.name, c);
    }
    for (const u of namedList<KubeconfigUser>(doc, "users", "user", file)) {
      if (!merged.users.has(u.name)) merged.users.set(u.name, u);
    }
    for (const c of namedList<KubeconfigContext>(doc, "contexts", "context", file)) {
      if (!merged.contexts.has(c.name)) merged.contexts.set(c.name, c);
    }
  }
  if (merged.files.length === 0) {
    throw new ConfigError(`no kubeconfig file found (looked at ${paths.join(", ")})`);
  }
  return merged;
}

/** Reads and merges `paths`, selects the context, and builds the client configuration. */
export async function loadKubeconfigFiles(
  paths: string[],
  options: {
    context?: string;
    explicit: boolean;
    env: (name: string) => string | undefined;
    /** Contents by path, for kubeconfigs that are not files (e.g. from a Secret). */
    texts?: Map<string, string>;
    /** Refuse exec plugins, auth providers, file paths and proxies (kubeconfigs that are data). */
    dataOnly?: boolean;
  },
): Promise<ClientConfig> {
  const trust: Trust = { env: options.env, dataOnly: options.dataOnly ?? false };
  const merged = await readMerged(paths, options.explicit, options.texts);
  const files = merged.files.join(":");
  const contextName = options.context ?? merged.currentContext?.name;
  if (!contextName) throw new ConfigError(`kubeconfig ${files}: no current-context set and no context given`);
  const context = merged.contexts.get(contextName);
  if (!context) {
    const available = [...merged.contexts.keys()].sort();
    throw new ConfigError(
      `kubeconfig ${files}: context "${contextName}" not found (available: ${
        available.length ? available.join(", ") : "none"
      })`,
    );
  }
  const where = `kubeconfig ${context.file} (context "${contextName}")`;
  const clusterName = context.value.cluster;
  if (!clusterName) throw new ConfigError(`${where}: the context names no cluster`);
  const cluster = merged.clusters.get(clusterName);
  if (!cluster) throw new ConfigError(`${where}: cluster "${clusterName}" not found in ${files}`);
  const clusterWhere = `kubeconfig ${cluster.file} (cluster "${clusterName}")`;
  const server = cluster.value.server;
  if (!server) throw new ConfigError(`${clusterWhere}: server is missing`);
  try {
    new URL(server);
  } catch {
    throw new ConfigError(`${clusterWhere}: server "${server}" is not a URL`);
  }
  const caPem = await readField(
    cluster.value as Record<string, unknown>,
    "certificate-authority",
    "certificate-authority-data",
    clusterWhere,
    cluster.file,
    trust,
  );
  if (trust.dataOnly && cluster.value["proxy-url"]) {
    refuse(clusterWhere, "proxy-url", "it would send the credentials through a proxy the Secret names");
  }
  const userName = context.value.user;
  const user = userName ? merged.users.get(userName) : undefined;
  if (userName && !user) throw new ConfigError(`${where}: user "${userName}" not found in ${files}`);
  const credentials = user
    ? await credentialsFor(user, {
      server,
      "certificate-authority-data": caPem ? btoa(caPem) : undefined,
      "insecure-skip-tls-verify": cluster.value["insecure-skip-tls-verify"],
      "tls-server-name": cluster.value["tls-server-name"],
    }, trust)
    : new StaticCredentials({});
  return {
    server: server.replace(/\/+$/, ""),
    tls: {
      caPem,
      insecureSkipTlsVerify: cluster.value["insecure-skip-tls-verify"] === true,
      serverName: cluster.value["tls-server-name"] || undefined,
      pinCa: trust.dataOnly && !!caPem,
    },
    credentials,
    namespace: context.value.namespace || "default",
    contextName,
    source: where,
    proxyUrl: cluster.value["proxy-url"] || undefined,
  };
}

async function credentialsFor(
  user: Named<KubeconfigUser>,
  cluster: {
    server: string;
    "certificate-authority-data"?: string;
    "insecure-skip-tls-verify"?: boolean;
    "tls-server-name"?: string;
  },
  trust: Trust,
): Promise<CredentialSource> {
  const where = `kubeconfig ${user.file} (user "${user.name}")`;
  const u = user.value;
  const env = trust.env;
  if (trust.dataOnly) {
    if (u.exec) refuse(where, "exec", "it would run a program inside Kubeocean");
    if (u["auth-provider"]) refuse(where, "auth-provider", "it would run a provider inside Kubeocean");
    if (u.tokenFile) refuse(where, "tokenFile", "it would read a file of the process that loads it");
  }
  if (u.username || u.password) {
    throw new ConfigError(
      `${where}: username/password (basic auth) is not supported; Kubernetes removed it — use a token, a certificate or an exec plugin`,
    );
  }
  if (u["auth-provider"]) {
    throw new ConfigError(
      `${where}: auth-provider "${
        u["auth-provider"].name ?? "?"
      }" is not supported; use an exec credential plugin instead`,
    );
  }
  const certPem = await readField(
    u as Record<string, unknown>,
    "client-certificate",
    "client-certificate-data",
    where,
    user.file,
    trust,
  );
  const keyPem = await readField(
    u as Record<string, unknown>,
    "client-key",
    "client-key-data",
    where,
    user.file,
    trust,
  );
  if (Boolean(certPem) !== Boolean(keyPem)) {
    throw new ConfigError(
      `${where}: ${
        certPem
          ? "client-key(-data) is missing for the client certificate"
          : "client-certificate(-data) is missing for the client key"
      }`,
    );
  }
  const base: Credentials = certPem ? { certPem, keyPem } : {};
  if (u.exec) {
    if (!u.exec.command) throw new ConfigError(`${where}: exec.command is missing`);
    const exec: ExecConfig = {
      ...u.exec,
      command: u.exec.command.includes("/") ? resolvePath(u.exec.command, user.file, env) : u.exec.command,
    };
    return new ExecCredentials(exec, { source: where, cluster, base });
  }
  if (u.token) return new StaticCredentials({ ...base, token: u.token });
  if (u.tokenFile) return new TokenFileCredentials(resolvePath(u.tokenFile, user.file, env), base);
  return new StaticCredentials(base);
}

/**
 * Builds a client configuration from kubeconfig text that is not a file, e.g. the value of a
 * Secret; `source` names it in error messages (e.g. `secret kubeocean-system/worker1`). With
 * `dataOnly`, a kubeconfig that would run a program (exec, auth-provider), read a local file
 * (tokenFile, certificate or key paths) or use a proxy is refused with an
 * {@linkcode UntrustedKubeconfigError} naming the field: text someone else wrote is data, not code.
 */
export async function loadKubeconfigText(
  text: string,
  options: {
    source: string;
    context?: string;
    env?: (name: string) => string | undefined;
    dataOnly?: boolean;
  },
): Promise<ClientConfig> {
  return await loadKubeconfigFiles([options.source], {
    context: options.context,
    explicit: true,
    env: options.env ?? ((name) => Deno.env.get(name)),
    texts: new Map([[options.source, text]]),
    dataOnly: options.dataOnly,
  });
}
