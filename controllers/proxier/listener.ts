/**
 * The flags and assembly of a kubelet API listener, shared by `proxier` (one binding) and the
 * manager in `--syncer-mode=embedded` (every binding it runs): where to listen, the serving
 * certificate (files, else a `kubernetes.io/kubelet-serving` CSR the proxier approves and renews)
 * and the client CA (a file, else the cluster's `kube-system/extension-apiserver-authentication`).
 *
 * @module
 */

import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import type { Logger } from "../../toolkit/runtime/log.ts";
import type { Manager } from "../../toolkit/runtime/manager.ts";
import { ProxierMetrics } from "./metrics.ts";
import type { ServedBindings } from "./resolve.ts";
import { KubeletApiServer } from "./server.ts";
import { CsrServingCertificate, loadServingFiles, type ServingCertificate } from "./serving_cert.ts";

/** Where the cluster publishes the CA that signs client certificates. */
const AUTHENTICATION_CONFIGMAP = { namespace: "kube-system", name: "extension-apiserver-authentication" };

/** Options of a kubelet API listener. */
export interface ListenerOptions {
  /** Interface to listen on (`0.0.0.0` for every one). */
  listenAddress: string;
  listenPort: number;
  /** The address virtual nodes advertise: the serving certificate's IP SAN in CSR mode. */
  advertiseAddress: string;
  /** PEM files of the serving certificate and key; both or neither (then: a CSR). */
  tlsCertFile?: string;
  tlsPrivateKeyFile?: string;
  /** PEM file of the CA client certificates must chain to; else the cluster's. */
  clientCaFile?: string;
  /** Names the CSR's subject (`system:node:<name>`) in CSR mode. */
  csrNodeName: string;
}

/** `parseArgs` options of the listener, with a flag prefix (`""` for the proxier, `proxier-` for the manager). */
export function listenerFlagOptions(prefix: string): Record<string, { type: "string"; default?: string }> {
  return {
    [`${prefix}listen-address`]: { type: "string" as const, default: "0.0.0.0" },
    [`${prefix}tls-cert-file`]: { type: "string" as const },
    [`${prefix}tls-private-key-file`]: { type: "string" as const },
    [`${prefix}client-ca-file`]: { type: "string" as const },
  };
}

/** Reads a listener's flags (see {@linkcode listenerFlagOptions}); bad values name the flag. */
export function parseListenerFlags(
  values: Record<string, unknown>,
  prefix: string,
  rest: { listenPort: string; advertiseAddress: string; csrNodeName: string; portFlag: string },
): ListenerOptions {
  const text = (flag: string) => {
    const value = values[`${prefix}${flag}`];
    return typeof value === "string" && value !== "" ? value : undefined;
  };
  const port = Number(rest.listenPort);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--${rest.portFlag}: "${rest.listenPort}" is not a port number`);
  }
  const tlsCertFile = text("tls-cert-file");
  const tlsPrivateKeyFile = text("tls-private-key-file");
  if (!tlsCertFile !== !tlsPrivateKeyFile) {
    throw new Error(`--${prefix}tls-cert-file and --${prefix}tls-private-key-file go together`);
  }
  return {
    listenAddress: text("listen-address") ?? "0.0.0.0",
    listenPort: port,
    advertiseAddress: rest.advertiseAddress,
    tlsCertFile,
    tlsPrivateKeyFile,
    clientCaFile: text("client-ca-file"),
    csrNodeName: rest.csrNodeName,
  };
}

/**
 * Builds the listener, adds it (and the certificate renewal in CSR mode) to `manager`, and
 * registers its readiness. Resolves once the certificate and the client CA are loaded.
 */
export async function addKubeletApi(
  manager: Manager,
  options: ListenerOptions & { computing: KubeClient; bindings: ServedBindings; log: Logger },
): Promise<KubeletApiServer> {
  const { log } = options;
  const clientCaPem = options.clientCaFile
    ? await readPem(options.clientCaFile, "--client-ca-file")
    : await clusterClientCa(options.computing);
  let certificate: ServingCertificate;
  let renewal: CsrServingCertificate | undefined;
  if (options.tlsCertFile && options.tlsPrivateKeyFile) {
    certificate = await loadServingFiles(options.tlsCertFile, options.tlsPrivateKeyFile);
  } else {
    renewal = new CsrServingCertificate(options.computing, {
      nodeName: options.csrNodeName,
      ipAddresses: [options.advertiseAddress],
      log,
    });
    certificate = await renewal.obtain();
  }
  const server = new KubeletApiServer({
    computing: options.computing,
    bindings: options.bindings,
    tls: { certPem: certificate.certPem, keyPem: certificate.keyPem, clientCaPem },
    listen: { hostname: options.listenAddress, port: options.listenPort },
    metrics: ProxierMetrics.of(manager.metrics.registry),
    log,
  });
  manager.add(server);
  manager.health.addReadyz("kubelet-api", () => server.port !== undefined || "not listening yet");
  if (renewal) {
    const csr = renewal;
    manager.add({
      name: "kubelet-serving-certificate",
      run: (signal: AbortSignal) => csr.run(signal, (renewed) => server.useCertificate(renewed)),
    });
  }
  log.info("kubelet API configured", {
    listen: `${options.listenAddress}:${options.listenPort}`,
    certificate: options.tlsCertFile ?? `CSR (kubernetes.io/kubelet-serving, IP ${options.advertiseAddress})`,
    clientCa: options.clientCaFile ??
      `${AUTHENTICATION_CONFIGMAP.namespace}/${AUTHENTICATION_CONFIGMAP.name}`,
    validUntil: certificate.notAfter.toISOString(),
  });
  return server;
}

async function readPem(file: string, flag: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (err) {
    throw new Error(`${flag} ${file}: ${(err as Error).message}`);
  }
}

/** The client CA the API server publishes for delegated authentication. */
async function clusterClientCa(computing: KubeClient): Promise<string> {
  const { namespace, name } = AUTHENTICATION_CONFIGMAP;
  const configMap = await new CoreV1Api(computing).configmaps(namespace).get(name);
  const pem = configMap.data?.["client-ca-file"];
  if (!pem) {
    throw new Error(
      `ConfigMap ${namespace}/${name} has no client-ca-file: give the CA of client certificates with --client-ca-file`,
    );
  }
  return pem;
}
