/**
 * Per-cluster PKI made with the `openssl` command: a CA, the API server's serving certificate,
 * client certificates (the admin is in `system:masters`), a kubelet serving certificate and the
 * service-account signing key pair. Keys are ECDSA P-256, which makes generation fast.
 *
 * @module
 */

import { runCommand, which } from "./command.ts";

/** A certificate and its private key, as PEM text and as files. */
export interface KeyPair {
  certFile: string;
  keyFile: string;
  certPem: string;
  keyPem: string;
}

/** Options of {@linkcode issueCertificate}. */
export interface CertificateRequest {
  /** File name stem inside the PKI directory, e.g. `admin` → `admin.crt` and `admin.key`. */
  name: string;
  commonName: string;
  /** Subject organisations; for client certificates these are the user's groups. */
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: "server" | "client" | "both";
  /** Validity in days (default 365). */
  days?: number;
}

const DAYS = 365;

async function openssl(args: string[], cwd: string): Promise<void> {
  await runCommand("openssl", args, { cwd });
}

/** Fails with a clear message when the `openssl` command is missing. */
export async function requireOpenssl(): Promise<void> {
  if (!await which("openssl")) {
    throw new Error(
      "the openssl command is needed to create the test clusters' certificates; install openssl",
    );
  }
}

function subject(commonName: string, organizations: string[] = []): string {
  const escape = (value: string) => value.replace(/([/=+,\\])/g, "\\$1");
  return organizations.map((o) => `/O=${escape(o)}`).join("") + `/CN=${escape(commonName)}`;
}

async function readPair(dir: string, name: string): Promise<KeyPair> {
  const certFile = `${dir}/${name}.crt`;
  const keyFile = `${dir}/${name}.key`;
  return {
    certFile,
    keyFile,
    certPem: await Deno.readTextFile(certFile),
    keyPem: await Deno.readTextFile(keyFile),
  };
}

/** A random positive 127-bit serial number in hex, so that concurrent signing needs no serial file. */
function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f;
  return "0x" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Creates a self-signed CA `<name>.crt`/`<name>.key` in `dir`. */
export async function createCertificateAuthority(
  dir: string,
  name: string,
  commonName: string,
): Promise<KeyPair> {
  await Deno.mkdir(dir, { recursive: true });
  await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`], dir);
  await openssl([
    "req",
    "-x509",
    "-new",
    "-key",
    `${name}.key`,
    "-out",
    `${name}.crt`,
    "-days",
    String(DAYS * 10),
    "-subj",
    subject(commonName),
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,digitalSignature,keyCertSign,cRLSign",
  ], dir);
  await Deno.chmod(`${dir}/${name}.key`, 0o600);
  return readPair(dir, name);
}

/** Issues a certificate signed by `ca` into the CA's directory. */
export async function issueCertificate(ca: KeyPair, request: CertificateRequest): Promise<KeyPair> {
  const dir = ca.certFile.slice(0, ca.certFile.lastIndexOf("/"));
  const { name } = request;
  const usage = {
    server: "serverAuth",
    client: "clientAuth",
    both: "serverAuth,clientAuth",
  }[request.usage];
  const alt = [
    ...(request.dnsNames ?? []).map((d) => `DNS:${d}`),
    ...(request.ipAddresses ?? []).map((ip) => `IP:${ip}`),
  ];
  const extensions = [
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    `extendedKeyUsage=${usage}`,
    ...(alt.length ? [`subjectAltName=${alt.join(",")}`] : []),
  ];
  await Deno.writeTextFile(`${dir}/${name}.ext`, extensions.join("\n") + "\n");
  await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`], dir);
  await openssl(
    [
      "req",
      "-new",
      "-key",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      subject(request.commonName, request.organizations),
    ],
    dir,
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    ca.certFile,
    "-CAkey",
    ca.keyFile,
    "-set_serial",
    randomSerial(),
    "-days",
    String(request.days ?? DAYS),
    "-extfile",
    `${name}.ext`,
    "-out",
    `${name}.crt`,
  ], dir);
  await Deno.chmod(`${dir}/${name}.key`, 0o600);
  await Deno.remove(`${dir}/${name}.csr`);
  await Deno.remove(`${dir}/${name}.ext`);
  return readPair(dir, name);
}

/** Creates the service-account signing key `<name>.key` and its public key `<name>.pub`. */
export async function createSigningKey(
  dir: string,
  name: string,
): Promise<{ keyFile: string; publicKeyFile: string }> {
  await Deno.mkdir(dir, { recursive: true });
  await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`], dir);
  await openssl(["ec", "-in", `${name}.key`, "-pubout", "-out", `${name}.pub`], dir);
  await Deno.chmod(`${dir}/${name}.key`, 0o600);
  return { keyFile: `${dir}/${name}.key`, publicKeyFile: `${dir}/${name}.pub` };
}

/** The certificates one test cluster needs. */
export interface ClusterPki {
  dir: string;
  ca: KeyPair;
  apiserver: KeyPair;
  admin: KeyPair;
  kubelet: KeyPair;
  serviceAccount: { keyFile: string; publicKeyFile: string };
  /** The aggregation layer's pairs, only in clusters that run metrics-server ({@linkcode createAggregationPki}). */
  aggregation?: AggregationPki;
}

/** The certificates of the aggregation layer and of metrics-server. */
export interface AggregationPki {
  /** The front-proxy CA: kube-apiserver's `--requestheader-client-ca-file`. */
  frontProxyCa: KeyPair;
  /** kube-apiserver's client certificate towards aggregated API servers (CN `front-proxy-client`). */
  frontProxyClient: KeyPair;
  /** metrics-server's serving certificate, signed by the cluster CA. */
  metricsServer: KeyPair;
}

/** CN of the front-proxy client certificate, i.e. kube-apiserver's `--requestheader-allowed-names`. */
export const FRONT_PROXY_CLIENT_NAME = "front-proxy-client";

/**
 * Creates the aggregation-layer pairs in `pki.dir`: a front-proxy CA (`front-proxy-ca`), its client
 * certificate `front-proxy-client`, and metrics-server's serving certificate `metrics-server` from
 * the cluster CA, valid for `<service>.<namespace>.svc` (the name the aggregator verifies),
 * `localhost` and 127.0.0.1.
 */
export async function createAggregationPki(
  pki: ClusterPki,
  service: { name: string; namespace: string },
): Promise<AggregationPki> {
  const frontProxyCa = await createCertificateAuthority(pki.dir, "front-proxy-ca", "front-proxy-ca");
  const svc = `${service.name}.${service.namespace}.svc`;
  const [frontProxyClient, metricsServer] = await Promise.all([
    issueCertificate(frontProxyCa, {
      name: "front-proxy-client",
      commonName: FRONT_PROXY_CLIENT_NAME,
      usage: "client",
    }),
    issueCertificate(pki.ca, {
      name: "metrics-server",
      commonName: service.name,
      usage: "server",
      dnsNames: [svc, `${svc}.cluster.local`, "localhost"],
      ipAddresses: ["127.0.0.1"],
    }),
  ]);
  return { frontProxyCa, frontProxyClient, metricsServer };
}

/** Creates the full PKI of a cluster named `cluster` in `dir`. */
export async function createClusterPki(dir: string, cluster: string): Promise<ClusterPki> {
  await requireOpenssl();
  const ca = await createCertificateAuthority(dir, "ca", `${cluster}-ca`);
  const [apiserver, admin, kubelet, serviceAccount] = await Promise.all([
    issueCertificate(ca, {
      name: "apiserver",
      commonName: "kube-apiserver",
      usage: "server",
      dnsNames: [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
      ],
      ipAddresses: ["127.0.0.1", "10.0.0.1"],
    }),
    issueCertificate(ca, {
      name: "admin",
      commonName: "kubeocean-envtest-admin",
      organizations: ["system:masters"],
      usage: "client",
    }),
    issueCertificate(ca, {
      name: "kubelet",
      commonName: "kwok-kubelet",
      usage: "both",
      dnsNames: ["localhost"],
      ipAddresses: ["127.0.0.1"],
    }),
    createSigningKey(dir, "sa"),
  ]);
  return { dir, ca, apiserver, admin, kubelet, serviceAccount };
}
