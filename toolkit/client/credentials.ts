/**
 * Credential sources: static token or certificate, a token file re-read when it changes (token
 * rotation), the in-cluster service-account token, and exec credential plugins
 * (`client.authentication.k8s.io/v1` and `v1beta1`).
 *
 * @module
 */

import { ConfigError, type Credentials, type CredentialSource } from "./client_config.ts";

/** Credentials that never change (a token and/or a client certificate). */
export class StaticCredentials implements CredentialSource {
  constructor(readonly credentials: Credentials) {}
  get(): Promise<Credentials> {
    return Promise.resolve(this.credentials);
  }
  invalidate(): void {}
}

/**
 * A bearer token read from a file and re-read when the file changes (checked at most once per
 * `recheckMs`), plus an optional static client certificate.
 */
export class TokenFileCredentials implements CredentialSource {
  #token?: string;
  #checkedAt = 0;
  #mtime?: number;

  constructor(readonly path: string, readonly base: Credentials = {}, readonly recheckMs = 1_000) {}

  async get(): Promise<Credentials> {
    const now = Date.now();
    if (this.#token === undefined || now - this.#checkedAt >= this.recheckMs) {
      this.#checkedAt = now;
      let stat: Deno.FileInfo;
      try {
        stat = await Deno.stat(this.path);
      } catch (err) {
        if (this.#token !== undefined) return { ...this.base, token: this.#token }; // keep the last good token
        throw new ConfigError(`cannot read token file ${this.path}: ${(err as Error).message}`);
      }
      const mtime = stat.mtime?.getTime();
      if (this.#token === undefined || mtime !== this.#mtime) {
        this.#token = (await Deno.readTextFile(this.path)).trim();
        this.#mtime = mtime;
      }
    }
    return { ...this.base, token: this.#token };
  }

  invalidate(): void {
    this.#checkedAt = 0;
    this.#mtime = undefined;
  }
}

/** The in-cluster service-account token (`/var/run/secrets/kubernetes.io/serviceaccount/token`), rotated by the kubelet. */
export class InClusterCredentials extends TokenFileCredentials {}

/** An exec credential plugin entry of a kubeconfig user. */
export interface ExecConfig {
  apiVersion?: string;
  command: string;
  args?: string[];
  env?: { name: string; value: string }[];
  installHint?: string;
  provideClusterInfo?: boolean;
  interactiveMode?: "Never" | "IfAvailable" | "Always";
}

/** Cluster information passed to plugins that ask for it (`provideClusterInfo`). */
export interface ExecClusterInfo {
  server: string;
  "certificate-authority-data"?: string;
  "insecure-skip-tls-verify"?: boolean;
  "tls-server-name"?: string;
}

const EXEC_API_VERSIONS = ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"];

/**
 * Runs an exec credential plugin and caches its result until `expirationTimestamp` (10 s early)
 * or, without one, until {@linkcode invalidate} (after a 401).
 */
export class ExecCredentials implements CredentialSource {
  #cached?: { credentials: Credentials; expiresAt?: number };
  #running?: Promise<Credentials>;

  constructor(
    readonly exec: ExecConfig,
    readonly context: { source: string; cluster?: ExecClusterInfo; base?: Credentials },
  ) {
    const apiVersion = exec.apiVersion ?? "";
    if (!EXEC_API_VERSIONS.includes(apiVersion)) {
      throw new ConfigError(
        `${context.source}: exec.apiVersion "${apiVersion}" is not supported (use ${
          EXEC_API_VERSIONS.join(" or ")
        })`,
      );
    }
    if (exec.interactiveMode === "Always") {
      throw new ConfigError(
        `${context.source}: exec plugin ${exec.command} needs interactiveMode Always, but this client is not interactive`,
      );
    }
  }

  async get(): Promise<Credentials> {
    const cached = this.#cached;
    if (cached && (cached.expiresAt === undefined || Date.now() < cached.expiresAt - 10_000)) {
      return cached.credentials;
    }
    this.#running ??= this.#run().finally(() => this.#running = undefined);
    return await this.#running;
  }

  invalidate(): void {
    this.#cached = undefined;
  }

  async #run(): Promise<Credentials> {
    const { exec, context } = this;
    const apiVersion = exec.apiVersion!;
    const execInfo = {
      apiVersion,
      kind: "ExecCredential",
      spec: {
        interactive: false,
        ...(exec.provideClusterInfo && context.cluster ? { cluster: context.cluster } : {}),
      },
    };
    const env: Record<string, string> = { KUBERNETES_EXEC_INFO: JSON.stringify(execInfo) };
    for (const { name, value } of exec.env ?? []) env[name] = value;
    let output: Deno.CommandOutput;
    try {
      output = await new Deno.Command(exec.command, {
        args: exec.args ?? [],
        env,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      })
        .output();
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new ConfigError(
          `${context.source}: exec plugin "${exec.command}" not found` +
            (exec.installHint ? `\n${exec.installHint.trim()}` : ""),
        );
      }
      throw new ConfigError(
        `${context.source}: cannot run exec plugin "${exec.command}": ${(err as Error).message}`,
      );
    }
    const stderr = new TextDecoder().decode(output.stderr).trim().split("\n").slice(-10).join("\n");
    if (!output.success) {
      throw new ConfigError(
        `${context.source}: exec plugin "${exec.command}" exited with code ${output.code}${
          stderr ? `: ${stderr}` : ""
        }`,
      );
    }
    let result: { apiVersion?: string; kind?: string; status?: Record<string, string> };
    try {
      result = JSON.parse(new TextDecoder().decode(output.stdout));
    } catch {
      throw new ConfigError(
        `${context.source}: exec plugin "${exec.command}" printed no valid ExecCredential JSON`,
      );
    }
    if (result.kind !== "ExecCredential" || result.apiVersion !== apiVersion) {
      throw new ConfigError(
        `${context.source}: exec plugin "${exec.command}" returned ${result.apiVersion ?? "?"}/${
          result.kind ?? "?"
        }, expected ${apiVersion}/ExecCredential`,
      );
    }
    const status = result.status ?? {};
    const credentials: Credentials = { ...context.base };
    if (status.token) credentials.token = status.token;
    if (status.clientCertificateData || status.clientKeyData) {
      if (!status.clientCertificateData || !status.clientKeyData) {
        throw new ConfigError(
          `${context.source}: exec plugin "${exec.command}" returned a client certificate without its key (or a key without a certificate)`,
        );
      }
      credentials.certPem = status.clientCertificateData;
      credentials.keyPem = status.clientKeyData;
    }
    if (!credentials.token && !credentials.certPem) {
      throw new ConfigError(
        `${context.source}: exec plugin "${exec.command}" returned neither a token nor a client certificate`,
      );
    }
    const expiresAt = status.expirationTimestamp ? Date.parse(status.expirationTimestamp) : undefined;
    this.#cached = { credentials, expiresAt: Number.isNaN(expiresAt) ? undefined : expiresAt };
    return credentials;
  }
}
