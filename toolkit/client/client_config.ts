/**
 * What a client needs to talk to one API server — the server, TLS settings, a source of
 * credentials, the default namespace — and the error a bad configuration raises. Loading it (from
 * kubeconfig files, in-cluster files or text) lives in `config.ts` and `kubeconfig.ts`; credential
 * sources in `credentials.ts`.
 *
 * @module
 */

/** Everything needed to talk to one API server. */
export interface ClientConfig {
  /** API server base URL without trailing slash, e.g. `https://127.0.0.1:6443`. */
  server: string;
  tls: {
    /** PEM CA bundle (from certificate-authority or certificate-authority-data). */
    caPem?: string;
    insecureSkipTlsVerify?: boolean;
    /** tls-server-name: the name to verify the server certificate against. */
    serverName?: string;
    /**
     * Trust `caPem` alone: the system's roots are not consulted (Deno's `fetch` adds a CA to them,
     * so such configurations use `node:https`, whose `ca` replaces them). Set for kubeconfigs that
     * are data from someone else (a Secret), where a system-trusted certificate must not pass.
     */
    pinCa?: boolean;
  };
  /** Produces the current credentials (token and/or client certificate). */
  credentials: CredentialSource;
  /** Default namespace (context namespace, in-cluster namespace file, else `default`). */
  namespace: string;
  /** Name of the context used, when loaded from a kubeconfig. */
  contextName?: string;
  /** Human description for error messages, e.g. `kubeconfig /path/a (context "kind-x")` or `in-cluster`. */
  source: string;
  /** Optional proxy-url from the kubeconfig cluster entry. */
  proxyUrl?: string;
}

/** Credentials to present: a bearer token and/or a client certificate. */
export interface Credentials {
  token?: string;
  certPem?: string;
  keyPem?: string;
}

/** A source of credentials that may change over time (token files, exec plugins). */
export interface CredentialSource {
  /** Current credentials; cached, refreshed when a token file changes or an exec result expires. */
  get(): Promise<Credentials>;
  /** Called after a 401: the next `get()` re-runs the exec plugin and re-reads files. */
  invalidate(): void;
}

/** A configuration problem; the message names the file and the missing or malformed field. */
export class ConfigError extends Error {
  override readonly name: string = "ConfigError";
}
