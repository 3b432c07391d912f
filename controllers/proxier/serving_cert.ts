/**
 * The serving certificate of the kubelet API proxy (the proxier's HTTPS listener that
 * kube-apiserver calls for logs, exec, attach and port-forward as if it were a kubelet), from one
 * of two sources:
 *
 * - PEM files: {@linkcode loadServingFiles} (`--tls-cert-file` / `--tls-private-key-file`).
 * - A `kubernetes.io/kubelet-serving` CertificateSigningRequest in the computing cluster:
 *   {@linkcode CsrServingCertificate} creates an ECDSA P-256 key and a PKCS#10 request
 *   (CN `system:node:<nodeName>`, O `system:nodes`, the advertised IPs as SANs), approves it
 *   itself, waits for kube-controller-manager's signer to issue it and renews it before it expires.
 *   The certificate then chains to the cluster CA the API server verifies kubelets against
 *   (`--kubelet-certificate-authority`), so nothing has to be distributed by hand.
 *
 * ```ts
 * const csr = new CsrServingCertificate(computing, { nodeName: "kubeocean-proxier-b1", ipAddresses: [podIp] });
 * const first = await csr.obtain();
 * // … serve `first` …
 * await csr.run(signal, (renewed) => server.useCertificate(renewed));
 * ```
 *
 * ## RBAC of the CSR mode (in the computing cluster)
 *
 * | apiGroups | resources | verbs | why |
 * | --- | --- | --- | --- |
 * | `certificates.k8s.io` | `certificatesigningrequests` | `create` | submit the request |
 * | `certificates.k8s.io` | `certificatesigningrequests` | `get`, `watch` | wait until the signer issues it (a watch of the one object by `metadata.name`, and a read each time the watch is opened) |
 * | `certificates.k8s.io` | `certificatesigningrequests` | `delete` | remove requests that a newer certificate superseded or that never produced one (best effort: without it they stay until kube-controller-manager's CSR cleaner removes them) |
 * | `certificates.k8s.io` | `certificatesigningrequests/approval` | `update` | add the `Approved` condition (a PUT of the `approval` subresource, as `kubectl certificate approve` does) |
 * | `certificates.k8s.io` | `signers`, resourceNames `kubernetes.io/kubelet-serving` | `approve` | the `CertificateApproval` admission plugin lets only approvers of the signer approve its requests |
 *
 * `list` is not needed (no request lists CSRs). Self-approval is what makes the mode work without
 * an approver in the cluster — kube-controller-manager never approves `kubelet-serving` requests —
 * and is also why the `signers` rule should name exactly this signer: it lets the proxier obtain
 * a certificate the API server trusts as *any* node's kubelet (for any IP it asks for). Grant it
 * only where that is acceptable, or give the proxier files instead.
 *
 * The cluster must issue the certificates: kube-controller-manager's `csrsigning` controller with
 * `--cluster-signing-cert-file`/`--cluster-signing-key-file` (or the
 * `--cluster-signing-kubelet-serving-*` pair). Managed clusters whose signer does not issue
 * `kubelet-serving` certificates for non-nodes need the file mode.
 *
 * @module
 */

import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import {
  type CertificateSigningRequest,
  CertificateSigningRequestResource,
  CertificatesK8sIoV1Api,
} from "../../apis/certificates.k8s.io/v1/mod.ts";
import type { KubeClient } from "../../toolkit/client/client.ts";
import { ignoreNotFound, isConflict } from "../../toolkit/client/errors.ts";
import { objectPath } from "../../toolkit/client/resource.ts";
import type { ResourceClient } from "../../toolkit/client/resource_client.ts";
import { type Logger, silentLogger } from "../../toolkit/runtime/log.ts";
import { concatBytes, sleep } from "../../toolkit/util/mod.ts";

/** A serving certificate (PEM, possibly followed by intermediates), its key and validity. */
export interface ServingCertificate {
  certPem: string;
  /** PEM private key (PKCS#8 `PRIVATE KEY` in CSR mode; whatever the file holds in file mode). */
  keyPem: string;
  notBefore: Date;
  notAfter: Date;
}

/** The signer whose certificates kube-apiserver trusts for kubelet connections. */
export const KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving";
/** Reason of the `Approved` condition the proxier sets on its own requests. */
export const SELF_APPROVAL_REASON = "KubeoceanProxierSelfApproved";
/** Labels of every CSR the proxier creates. */
export const CSR_LABELS: Readonly<Record<string, string>> = {
  "app.kubernetes.io/part-of": "kubeocean",
  "app.kubernetes.io/component": "proxier",
};

const DEFAULT_EXPIRATION_SECONDS = 30 * 86_400;
const MIN_EXPIRATION_SECONDS = 600;
const DEFAULT_RENEW_AT_FRACTION = 0.8;
const DEFAULT_ISSUE_TIMEOUT_MS = 60_000;
const DEFAULT_MIN_RENEW_DELAY_MS = 10_000;
const DEFAULT_RETRY_DELAY_MS = 2_000;
const MAX_RETRY_DELAY_MS = 5 * 60_000;

// --- file mode ----------------------------------------------------------------------------------

/**
 * Reads a serving certificate and its private key from PEM files. Fails with an error naming the
 * file when a file is missing or does not parse, and naming both when the key does not belong to
 * the certificate. The certificate file may hold intermediates after the leaf; the validity is
 * the leaf's.
 */
export async function loadServingFiles(certFile: string, keyFile: string): Promise<ServingCertificate> {
  const certPem = await readFile(certFile, "serving certificate");
  const keyPem = await readFile(keyFile, "serving key");
  const certificate = parseCertificate(certPem, `serving certificate file ${certFile}`);
  const key = parsePrivateKey(keyPem, `serving key file ${keyFile}`);
  if (!certificate.checkPrivateKey(key)) {
    throw new Error(`serving key file ${keyFile} does not hold the key of the certificate in ${certFile}`);
  }
  return { certPem, keyPem, notBefore: certificate.validFromDate, notAfter: certificate.validToDate };
}

async function readFile(file: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (err) {
    throw new Error(`${what} file ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** The first `CERTIFICATE` block of `pem`, parsed; errors start with `where`. */
function parseCertificate(pem: string, where: string): X509Certificate {
  const block = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/)?.[0];
  if (!block) throw new Error(`${where}: no PEM "CERTIFICATE" block`);
  try {
    return new X509Certificate(block);
  } catch (err) {
    throw new Error(`${where}: not a valid X.509 certificate (${err instanceof Error ? err.message : err})`);
  }
}

function parsePrivateKey(pem: string, where: string): KeyObject {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) throw new Error(`${where}: no PEM private key block`);
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new Error(`${where}: not a valid private key (${err instanceof Error ? err.message : err})`);
  }
}

// --- CSR mode -----------------------------------------------------------------------------------

/** Options of a {@linkcode CsrServingCertificate}. */
export interface CsrServingCertificateOptions {
  /** CN becomes `system:node:<nodeName>`, O `system:nodes` (what the kubelet-serving signer requires). */
  nodeName: string;
  /** IP SANs: the address virtual nodes advertise (kube-apiserver connects to it). */
  ipAddresses: string[];
  /** DNS SANs. At least one IP or DNS SAN is required. */
  dnsNames?: string[];
  /**
   * Requested lifetime, `spec.expirationSeconds` (default 30 days, minimum 600). The signer may
   * issue a shorter one (its `--cluster-signing-duration`) and backdates `notBefore` by five
   * minutes; renewal follows the certificate actually issued.
   */
  expirationSeconds?: number;
  /** Renew once this fraction of the issued lifetime (notBefore → notAfter) has passed (default 0.8). */
  renewAtFraction?: number;
  /** Never wait less than this before a renewal (default 10 s): a floor against renewal loops. */
  minRenewDelayMs?: number;
  /** How long {@linkcode CsrServingCertificate.obtain} waits for the signer (default 60 s). */
  issueTimeoutMs?: number;
  /** First delay after a failed renewal, doubled per failure up to 5 minutes (default 2 s). */
  retryDelayMs?: number;
  log?: Logger;
}

/** The certificate last obtained and the CSR that produced it. */
interface Issued {
  certificate: ServingCertificate;
  csrName: string;
}

/**
 * A `kubernetes.io/kubelet-serving` certificate obtained through a CertificateSigningRequest the
 * proxier approves itself (see the module documentation for the RBAC this needs), and renewed
 * before it expires.
 *
 * Every {@linkcode obtain} uses a fresh key and a fresh CSR named
 * `<nodeName>-<random>` (so replicas never collide), labelled
 * `app.kubernetes.io/part-of: kubeocean`. CSRs are deleted best effort once they are of no use: a
 * CSR whose certificate was superseded by a newer one from this object, and a CSR that was
 * denied, failed or not issued in time. The CSR of the certificate in use is kept (visible with
 * `kubectl get csr`); kube-controller-manager's CSR cleaner removes it an hour after it was
 * issued, as it does any CSR a deletion here missed (a process restart, a missing `delete` grant).
 */
export class CsrServingCertificate {
  readonly #csrs: ResourceClient<CertificateSigningRequest, "approval" | "status">;
  readonly #nodeName: string;
  readonly #ipAddresses: string[];
  readonly #dnsNames: string[];
  readonly #expirationSeconds: number;
  readonly #renewAtFraction: number;
  readonly #minRenewDelayMs: number;
  readonly #issueTimeoutMs: number;
  readonly #retryDelayMs: number;
  readonly #log: Logger;
  #issued: Issued | undefined;

  /** Validates the options (bad ones throw here, not at the first request). */
  constructor(client: KubeClient, options: CsrServingCertificateOptions) {
    this.#csrs = new CertificatesK8sIoV1Api(client).certificatesigningrequests();
    if (!options.nodeName) throw new Error("kubelet serving certificate: nodeName is required");
    this.#nodeName = options.nodeName;
    this.#ipAddresses = [...options.ipAddresses];
    this.#dnsNames = [...(options.dnsNames ?? [])];
    if (this.#ipAddresses.length === 0 && this.#dnsNames.length === 0) {
      throw new Error("kubelet serving certificate: at least one IP address or DNS name is required");
    }
    for (const ip of this.#ipAddresses) ipAddressBytes(ip);
    this.#expirationSeconds = options.expirationSeconds ?? DEFAULT_EXPIRATION_SECONDS;
    if (!Number.isInteger(this.#expirationSeconds) || this.#expirationSeconds < MIN_EXPIRATION_SECONDS) {
      throw new Error(
        `kubelet serving certificate: expirationSeconds must be an integer >= ${MIN_EXPIRATION_SECONDS}, got ${options.expirationSeconds}`,
      );
    }
    this.#renewAtFraction = options.renewAtFraction ?? DEFAULT_RENEW_AT_FRACTION;
    if (!(this.#renewAtFraction > 0 && this.#renewAtFraction < 1)) {
      throw new Error(
        `kubelet serving certificate: renewAtFraction must be between 0 and 1, got ${options.renewAtFraction}`,
      );
    }
    this.#minRenewDelayMs = Math.max(0, options.minRenewDelayMs ?? DEFAULT_MIN_RENEW_DELAY_MS);
    this.#issueTimeoutMs = options.issueTimeoutMs ?? DEFAULT_ISSUE_TIMEOUT_MS;
    this.#retryDelayMs = Math.max(1, options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS);
    this.#log = (options.log ?? silentLogger).with({ certificate: "kubelet-serving" });
  }

  /** The certificate last obtained, if any. */
  get current(): ServingCertificate | undefined {
    return this.#issued?.certificate;
  }

  /**
   * Creates a key and a CSR, approves it, waits until the signer issues the certificate and
   * returns it. Throws when the CSR is denied or fails, when nothing is issued within
   * `issueTimeoutMs`, and on API errors (a Forbidden names the missing grant in its message).
   * On success the CSR of the previous certificate obtained here is deleted (best effort).
   */
  async obtain(signal?: AbortSignal): Promise<ServingCertificate> {
    signal?.throwIfAborted();
    const keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
      "sign",
      "verify",
    ]);
    const keyPem = pem(
      "PRIVATE KEY",
      new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey)),
    );
    const request = await buildCertificateRequest(keys, {
      commonName: `system:node:${this.#nodeName}`,
      organization: "system:nodes",
      dnsNames: this.#dnsNames,
      ipAddresses: this.#ipAddresses,
    });
    const name = csrName(this.#nodeName);
    const log = this.#log.with({ csr: name });
    const created = await this.#csrs.create({
      metadata: { name, labels: { ...CSR_LABELS } },
      spec: {
        request: btoa(request),
        signerName: KUBELET_SERVING_SIGNER,
        expirationSeconds: this.#expirationSeconds,
        usages: ["digital signature", "server auth"],
      },
    }, { signal });
    log.debug("created a certificate signing request");
    let certificate: ServingCertificate;
    try {
      await this.#approve(created, signal);
      log.debug("approved the certificate signing request");
      const certPem = await this.#waitForCertificate(name, signal);
      const parsed = parseCertificate(certPem, `CertificateSigningRequest ${name}: status.certificate`);
      if (!parsed.checkPrivateKey(createPrivateKey(keyPem))) {
        throw new Error(
          `CertificateSigningRequest ${name}: the issued certificate is not for the requested key`,
        );
      }
      certificate = { certPem, keyPem, notBefore: parsed.validFromDate, notAfter: parsed.validToDate };
    } catch (err) {
      await this.#deleteCsr(name, "it produced no certificate");
      throw err;
    }
    const previous = this.#issued;
    this.#issued = { certificate, csrName: name };
    log.info("obtained a kubelet serving certificate", {
      notBefore: certificate.notBefore.toISOString(),
      notAfter: certificate.notAfter.toISOString(),
    });
    if (previous) await this.#deleteCsr(previous.csrName, "a newer certificate superseded it");
    return certificate;
  }

  /**
   * Keeps a valid certificate until `signal` aborts, then resolves (it never rejects: errors are
   * logged and retried with exponential backoff, the current certificate staying in use).
   *
   * Starts from the certificate the last {@linkcode obtain} returned; without one it obtains one
   * first and passes it to `onCertificate`. Then, each time `renewAtFraction` of the current
   * certificate's lifetime has passed (but no sooner than `minRenewDelayMs`), obtains a new one
   * and passes it to `onCertificate`.
   */
  async run(signal: AbortSignal, onCertificate: (cert: ServingCertificate) => void): Promise<void> {
    try {
      let current = this.#issued?.certificate;
      if (!current) {
        current = await this.#obtainWithRetries(signal);
        this.#deliver(current, onCertificate);
      }
      while (!signal.aborted) {
        const renewAt = this.renewalTime(current);
        const delay = Math.max(this.#minRenewDelayMs, renewAt.getTime() - Date.now());
        this.#log.debug("next renewal", { at: new Date(Date.now() + delay).toISOString() });
        await sleep(delay, signal);
        current = await this.#obtainWithRetries(signal);
        this.#deliver(current, onCertificate);
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }

  /** When {@linkcode run} renews `cert`: `renewAtFraction` of the way from notBefore to notAfter. */
  renewalTime(cert: ServingCertificate): Date {
    const start = cert.notBefore.getTime();
    const lifetime = cert.notAfter.getTime() - start;
    return new Date(start + lifetime * this.#renewAtFraction);
  }

  #deliver(cert: ServingCertificate, onCertificate: (cert: ServingCertificate) => void): void {
    try {
      onCertificate(cert);
    } catch (err) {
      this.#log.error("using the new serving certificate failed", { error: err });
    }
  }

  /** Obtains, retrying with exponential backoff until it succeeds or `signal` aborts. */
  async #obtainWithRetries(signal: AbortSignal): Promise<ServingCertificate> {
    for (let attempt = 0;; attempt++) {
      try {
        return await this.obtain(signal);
      } catch (err) {
        if (signal.aborted) throw err;
        const delay = Math.min(MAX_RETRY_DELAY_MS, this.#retryDelayMs * 2 ** Math.min(attempt, 20));
        this.#log.warn("obtaining a kubelet serving certificate failed; retrying", {
          error: err,
          retryInMs: delay,
          validUntil: this.#issued?.certificate.notAfter.toISOString(),
        });
        await sleep(delay, signal);
      }
    }
  }

  /**
   * Adds the `Approved` condition through the `approval` subresource with a PUT (RBAC verb
   * `update`, as `kubectl certificate approve`). The generated client has no PUT for
   * subresources other than `status`, so this goes through its transport.
   */
  async #approve(csr: CertificateSigningRequest, signal?: AbortSignal): Promise<void> {
    const name = csr.metadata?.name ?? "";
    let current = csr;
    for (let attempt = 0;; attempt++) {
      const conditions = current.status?.conditions ?? [];
      if (conditions.some((c) => c.type === "Approved" && c.status === "True")) return;
      const body: CertificateSigningRequest = {
        ...current,
        status: {
          ...current.status,
          conditions: [...conditions, {
            type: "Approved",
            status: "True",
            reason: SELF_APPROVAL_REASON,
            message:
              `Approved by the Kubeocean proxier for its own kubelet API listener (node name ${this.#nodeName}).`,
            lastUpdateTime: new Date().toISOString(),
          }],
        },
      };
      try {
        await this.#csrs.transport.request<CertificateSigningRequest>({
          method: "PUT",
          path: objectPath(CertificateSigningRequestResource, name, undefined, "approval"),
          body,
          signal,
          idempotent: true,
        });
        return;
      } catch (err) {
        if (!isConflict(err) || attempt >= 4) throw err;
        current = await this.#csrs.get(name, { signal });
      }
    }
  }

  /** Waits (watch, with re-reads) until `name` carries a certificate; throws if denied, failed or late. */
  async #waitForCertificate(name: string, signal?: AbortSignal): Promise<string> {
    const deadline = Date.now() + this.#issueTimeoutMs;
    let lastWatchError: unknown;
    while (true) {
      signal?.throwIfAborted();
      const csr = await this.#csrs.get(name, { signal });
      const issued = certificateOf(csr);
      if (issued) return issued;
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      const timeout = AbortSignal.timeout(remaining);
      const watchSignal = signal ? AbortSignal.any([signal, timeout]) : timeout;
      try {
        for await (
          const event of this.#csrs.watch({
            fieldSelector: `metadata.name=${name}`,
            resourceVersion: csr.metadata?.resourceVersion,
            timeoutSeconds: Math.max(1, Math.ceil(remaining / 1000)),
            allowWatchBookmarks: false,
            signal: watchSignal,
          })
        ) {
          if (event.type === "DELETED") {
            throw new SigningError(
              `CertificateSigningRequest ${name} was deleted before a certificate was issued`,
            );
          }
          const fromEvent = certificateOf(event.object);
          if (fromEvent) return fromEvent;
        }
      } catch (err) {
        signal?.throwIfAborted();
        if (err instanceof SigningError) throw err;
        if (timeout.aborted) break;
        // A broken or expired watch: read the object again and reopen it after a pause.
        lastWatchError = err;
        this.#log.debug("watching the CSR failed; reading it again", { csr: name, error: err });
        await sleep(Math.min(1_000, Math.max(0, deadline - Date.now())), signal);
      }
    }
    throw new Error(
      `CertificateSigningRequest ${name} was approved but no certificate was issued within ` +
        `${this.#issueTimeoutMs} ms: the cluster must sign "${KUBELET_SERVING_SIGNER}" requests ` +
        `(kube-controller-manager's csrsigning controller with --cluster-signing-cert-file/--cluster-signing-key-file ` +
        `or --cluster-signing-kubelet-serving-cert-file/-key-file)` +
        (lastWatchError ? `; last watch error: ${errorText(lastWatchError)}` : ""),
    );
  }

  async #deleteCsr(name: string, why: string): Promise<void> {
    try {
      await this.#csrs.delete(name).catch(ignoreNotFound);
      this.#log.debug("deleted a certificate signing request", { csr: name, why });
    } catch (err) {
      this.#log.warn("could not delete a certificate signing request; the CSR cleaner will", {
        csr: name,
        why,
        error: err,
      });
    }
  }
}

/** A CSR that will never be issued (denied, failed or deleted): waiting longer is pointless. */
class SigningError extends Error {
  override readonly name = "SigningError";
}

/** The issued certificate PEM of `csr`, or undefined while pending; throws when denied or failed. */
function certificateOf(csr: CertificateSigningRequest): string | undefined {
  const name = csr.metadata?.name;
  for (const condition of csr.status?.conditions ?? []) {
    if ((condition.type === "Denied" || condition.type === "Failed") && condition.status === "True") {
      throw new SigningError(
        `CertificateSigningRequest ${name} ${condition.type === "Denied" ? "was denied" : "failed"}: ` +
          `${condition.reason ?? "(no reason)"}: ${condition.message ?? "(no message)"}`,
      );
    }
  }
  const encoded = csr.status?.certificate;
  if (!encoded) return undefined;
  return new TextDecoder().decode(Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0)));
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `<nodeName>-<5 random>`, reduced to the characters an object name allows. */
function csrName(nodeName: string): string {
  const stem = nodeName.toLowerCase().replace(/[^a-z0-9.-]+/g, "-").replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "")
    .slice(0, 200);
  const alphabet = "bcdfghjklmnpqrstvwxz2456789";
  const random = Array.from(crypto.getRandomValues(new Uint8Array(5)), (b) => alphabet[b % alphabet.length])
    .join("");
  return `${stem || "kubeocean-proxier"}-${random}`;
}

// --- PKCS#10 ------------------------------------------------------------------------------------

/** Subject and SANs of a {@linkcode buildCertificateRequest}. */
export interface CertificateRequestSubject {
  commonName: string;
  organization?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
}

/**
 * A PKCS#10 certificate request (PEM `CERTIFICATE REQUEST`) for an ECDSA P-256 key pair, signed
 * with ECDSA-SHA256: subject `O=<organization>, CN=<commonName>` and, when any are given, an
 * extension request with the DNS and IP subject alternative names. Encoded here (a few DER
 * structures) rather than with a library: `@peculiar/x509` needs a global `reflect-metadata`
 * polyfill and some twenty packages for what is this one structure.
 */
export async function buildCertificateRequest(
  keys: CryptoKeyPair,
  subject: CertificateRequestSubject,
): Promise<string> {
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey));
  const rdns: Uint8Array[] = [];
  if (subject.organization !== undefined) {
    rdns.push(set(sequence(oid(OID.organization), utf8String(subject.organization))));
  }
  rdns.push(set(sequence(oid(OID.commonName), utf8String(subject.commonName))));
  const names = [
    ...(subject.dnsNames ?? []).map((dns) => tlv(0x82, ascii(dns))),
    ...(subject.ipAddresses ?? []).map((ip) => tlv(0x87, ipAddressBytes(ip))),
  ];
  const attributes = names.length === 0 ? [] : [
    sequence(
      oid(OID.extensionRequest),
      set(sequence(sequence(oid(OID.subjectAltName), octetString(sequence(...names))))),
    ),
  ];
  const info = sequence(
    integer(new Uint8Array([0])),
    sequence(...rdns),
    spki,
    tlv(0xa0, concat(...attributes)),
  );
  const raw = new Uint8Array(
    await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, keys.privateKey, info),
  );
  const half = raw.length / 2;
  const signature = sequence(integer(raw.slice(0, half)), integer(raw.slice(half)));
  return pem("CERTIFICATE REQUEST", sequence(info, sequence(oid(OID.ecdsaWithSha256)), bitString(signature)));
}

const OID = {
  commonName: "2.5.4.3",
  organization: "2.5.4.10",
  extensionRequest: "1.2.840.113549.1.9.14",
  subjectAltName: "2.5.29.17",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
};

function tlv(tag: number, content: Uint8Array): Uint8Array<ArrayBuffer> {
  const length = content.length;
  let header: number[];
  if (length < 0x80) {
    header = [tag, length];
  } else {
    const bytes: number[] = [];
    for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
    header = [tag, 0x80 | bytes.length, ...bytes];
  }
  return concat(new Uint8Array(header), content);
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  return concatBytes(parts);
}

function sequence(...items: Uint8Array[]): Uint8Array<ArrayBuffer> {
  return tlv(0x30, concat(...items));
}

function set(...items: Uint8Array[]): Uint8Array {
  return tlv(0x31, concat(...items));
}

function octetString(content: Uint8Array): Uint8Array {
  return tlv(0x04, content);
}

function bitString(content: Uint8Array): Uint8Array {
  return tlv(0x03, concat(new Uint8Array([0]), content));
}

function utf8String(text: string): Uint8Array {
  return tlv(0x0c, new TextEncoder().encode(text));
}

function ascii(text: string): Uint8Array {
  if (!/^[\x20-\x7e]*$/.test(text)) throw new Error(`"${text}" is not an ASCII DNS name`);
  return new TextEncoder().encode(text);
}

/** A DER INTEGER of an unsigned big-endian magnitude (minimal, with a 0 byte when the top bit is set). */
function integer(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.slice(start);
  return tlv(0x02, trimmed[0] & 0x80 ? concat(new Uint8Array([0]), trimmed) : trimmed);
}

function oid(dotted: string): Uint8Array {
  const arcs = dotted.split(".").map(Number);
  const bytes = [arcs[0] * 40 + arcs[1]];
  for (const arc of arcs.slice(2)) {
    const base128 = [arc & 0x7f];
    for (let n = Math.floor(arc / 128); n > 0; n = Math.floor(n / 128)) base128.unshift(0x80 | (n & 0x7f));
    bytes.push(...base128);
  }
  return tlv(0x06, new Uint8Array(bytes));
}

function pem(label: string, der: Uint8Array): string {
  const base64 = btoa(Array.from(der, (b) => String.fromCharCode(b)).join(""));
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** The 4 (IPv4) or 16 (IPv6, also with an embedded IPv4 tail) bytes of an address; throws if invalid. */
function ipAddressBytes(address: string): Uint8Array {
  const v4 = parseIpv4(address);
  if (v4) return v4;
  const v6 = parseIpv6(address);
  if (v6) return v6;
  throw new Error(`"${address}" is not an IP address`);
}

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255)) {
    return undefined;
  }
  return new Uint8Array(parts.map(Number));
}

function parseIpv6(text: string): Uint8Array | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    const pieces = part.split(":");
    for (const [i, piece] of pieces.entries()) {
      if (i === pieces.length - 1 && piece.includes(".")) {
        const v4 = parseIpv4(piece);
        if (!v4) return undefined;
        out.push(v4[0] * 256 + v4[1], v4[2] * 256 + v4[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) {
        out.push(parseInt(piece, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  return new Uint8Array(all.flatMap((g) => [g >> 8, g & 0xff]));
}
