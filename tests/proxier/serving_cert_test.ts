// The proxier's serving certificate against a real API server and kube-controller-manager: a
// kubelet-serving CSR the proxier approves itself is issued by the cluster CA, serves HTTPS, is
// renewed by run(), and the file mode names the file that is wrong.
import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { createServer } from "node:https";
import { CertificatesK8sIoV1Api } from "../../apis/certificates.k8s.io/v1/mod.ts";
import {
  buildCertificateRequest,
  CSR_LABELS,
  CsrServingCertificate,
  KUBELET_SERVING_SIGNER,
  loadServingFiles,
  SELF_APPROVAL_REASON,
  type ServingCertificate,
} from "../../controllers/proxier/serving_cert.ts";
import { KubeClient } from "../../toolkit/client/client.ts";
import { isNotFound } from "../../toolkit/client/errors.ts";
import type { RequestOptions, Transport } from "../../toolkit/client/transport.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";

const NODE = "kubeocean-proxier-test";

/** `client` as seen when no signer runs: CSRs never show a certificate, and watches fail. */
function withoutSigner(client: KubeClient): KubeClient {
  const inner = client.transport;
  const transport: Transport = {
    config: inner.config,
    async request<T>(options: RequestOptions): Promise<T> {
      const result = await inner.request<T>(options);
      if (options.method === "GET" && options.path.includes("/certificatesigningrequests/")) {
        if (typeof result === "object" && result !== null && "status" in result) {
          const status = result.status;
          if (typeof status === "object" && status !== null && "certificate" in status) {
            delete status.certificate;
          }
        }
      }
      return result;
    },
    stream: () => Promise.reject(new Error("watch refused by the test")),
    close: () => {},
  };
  return new KubeClient(transport);
}

/** `client` with every approval turned into a denial (as if an admin had denied the CSR first). */
function denyingApprovals(client: KubeClient): KubeClient {
  const inner = client.transport;
  const transport: Transport = {
    config: inner.config,
    request<T>(options: RequestOptions): Promise<T> {
      const body = options.body;
      if (
        options.method === "PUT" && options.path.endsWith("/approval") && typeof body === "object" && body
      ) {
        const denied = {
          ...body,
          status: {
            conditions: [{
              type: "Denied",
              status: "True",
              reason: "TestDenied",
              message: "denied by the test",
            }],
          },
        };
        return inner.request<T>({ ...options, body: denied });
      }
      return inner.request<T>(options);
    },
    stream: (options) => inner.stream(options),
    close: () => {},
  };
  return new KubeClient(transport);
}

async function openssl(args: string[], stdin: string): Promise<string> {
  const child = new Deno.Command("openssl", { args, stdin: "piped", stdout: "piped", stderr: "piped" })
    .spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const output = await child.output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, text);
  return text;
}

envTest("proxier serving certificate: kubelet-serving CSR and files", {
  clusters: [{ name: "computing", controlPlane: true }],
}, async (env, t) => {
  const cluster = env.cluster("computing");
  const client = await connect(cluster);
  const csrs = new CertificatesK8sIoV1Api(client).certificatesigningrequests();
  const caPem = cluster.pki.ca.certPem;
  const ca = new X509Certificate(caPem);
  const dir = await Deno.makeTempDir({ prefix: "serving-cert-test-" });
  let obtained: ServingCertificate | undefined;

  try {
    await t.step("the PKCS#10 request carries the subject and every SAN (IPv4, IPv6, DNS)", async () => {
      const keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
        "sign",
        "verify",
      ]);
      const request = await buildCertificateRequest(keys, {
        commonName: "system:node:n1",
        organization: "system:nodes",
        dnsNames: ["proxier.example"],
        ipAddresses: ["127.0.0.1", "fd00::a:1", "::ffff:10.1.2.3"],
      });
      const text = await openssl(["req", "-verify", "-noout", "-text"], request);
      assert.match(text, /self-signature verify OK/);
      assert.match(text, /Subject: O ?= ?system:nodes, CN ?= ?system:node:n1/);
      assert.match(text, /DNS:proxier\.example/);
      assert.match(text, /IP Address:127\.0\.0\.1/);
      assert.match(text, /IP Address:FD00:0:0:0:0:0:A:1/);
      assert.match(text, /IP Address:0:0:0:0:0:FFFF:A01:203/);
      assert.match(text, /ecdsa-with-SHA256/);
    });

    await t.step("obtain(): a certificate issued by the cluster CA for the node and its IP", async () => {
      const source = new CsrServingCertificate(client, {
        nodeName: NODE,
        ipAddresses: ["127.0.0.1"],
        dnsNames: ["localhost"],
        expirationSeconds: 3600,
      });
      const cert = await source.obtain();
      obtained = cert;
      const x509 = new X509Certificate(cert.certPem);
      assert.ok(x509.verify(ca.publicKey), "signed by the cluster CA");
      assert.equal(x509.checkIssued(ca), true);
      assert.equal(x509.checkIP("127.0.0.1"), "127.0.0.1");
      assert.equal(x509.checkHost("localhost"), "localhost");
      assert.match(x509.subject, new RegExp(`CN=system:node:${NODE}`));
      assert.match(x509.subject, /O=system:nodes/);
      assert.ok(x509.checkPrivateKey(createPrivateKey(cert.keyPem)), "the key matches the certificate");
      assert.equal(cert.notAfter.getTime(), x509.validToDate.getTime());
      assert.equal(cert.notBefore.getTime(), x509.validFromDate.getTime());
      // The signer honours expirationSeconds (an hour from now; notBefore is backdated).
      const lifetimeFromNow = cert.notAfter.getTime() - Date.now();
      assert.ok(lifetimeFromNow > 3500_000 && lifetimeFromNow <= 3600_000, `${lifetimeFromNow} ms left`);
      assert.equal(source.current, cert);

      const mine = await csrs.list({ labelSelector: "app.kubernetes.io/part-of=kubeocean" });
      assert.equal(mine.items.length, 1);
      const csr = mine.items[0];
      assert.match(csr.metadata?.name ?? "", new RegExp(`^${NODE}-[a-z0-9]{5}$`));
      assert.deepEqual(csr.metadata?.labels, { ...CSR_LABELS });
      assert.equal(csr.spec.signerName, KUBELET_SERVING_SIGNER);
      assert.deepEqual(csr.spec.usages, ["digital signature", "server auth"]);
      const approved = csr.status?.conditions?.find((c) => c.type === "Approved");
      assert.equal(approved?.status, "True");
      assert.equal(approved?.reason, SELF_APPROVAL_REASON);
      assert.match(approved?.message ?? "", /Kubeocean proxier/);
    });

    await t.step("a node:https server with it is trusted by a client that trusts only the CA", async () => {
      const cert = obtained;
      assert.ok(cert);
      const server = createServer({ cert: cert.certPem, key: cert.keyPem }, (_req, res) => {
        res.end("kubelet api");
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const address = server.address();
      assert.ok(address !== null && typeof address === "object");
      const port = address.port;
      const httpClient = Deno.createHttpClient({ caCerts: [caPem] });
      try {
        const response = await fetch(`https://127.0.0.1:${port}/healthz`, { client: httpClient });
        assert.equal(response.status, 200);
        assert.equal(await response.text(), "kubelet api");
        // And a client trusting another CA refuses it (the check above proves something).
        const stranger = Deno.createHttpClient({ caCerts: [cluster.pki.admin.certPem] });
        try {
          await assert.rejects(fetch(`https://127.0.0.1:${port}/healthz`, { client: stranger }));
        } finally {
          stranger.close();
        }
      } finally {
        httpClient.close();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });

    await t.step(
      "run(): renews before expiry, calls back with new serials, deletes superseded CSRs",
      async () => {
        const source = new CsrServingCertificate(client, {
          nodeName: `${NODE}-renew`,
          ipAddresses: ["127.0.0.1"],
          expirationSeconds: 600,
          renewAtFraction: 0.0001,
          minRenewDelayMs: 500,
        });
        const first = await source.obtain();
        const firstSerial = new X509Certificate(first.certPem).serialNumber;
        const renewed: ServingCertificate[] = [];
        const controller = new AbortController();
        const running = source.run(controller.signal, (cert) => renewed.push(cert));
        try {
          await eventually("two renewals", () => renewed.length >= 2, { timeoutMs: 30_000 });
        } finally {
          controller.abort();
        }
        await running; // resolves, not rejects, on abort
        const serials = renewed.map((c) => new X509Certificate(c.certPem).serialNumber);
        assert.notEqual(
          serials[0],
          firstSerial,
          "run() does not hand back the certificate obtain() returned",
        );
        assert.notEqual(serials[1], serials[0]);
        for (const cert of renewed) {
          const x509 = new X509Certificate(cert.certPem);
          assert.ok(x509.verify(ca.publicKey));
          assert.ok(x509.checkPrivateKey(createPrivateKey(cert.keyPem)));
          assert.notEqual(cert.keyPem, first.keyPem, "a fresh key per certificate");
        }
        // The CSRs of superseded certificates are deleted; the one of the certificate in use stays.
        const issuedBy = async () => {
          const list = await csrs.list({ labelSelector: "app.kubernetes.io/part-of=kubeocean" });
          return list.items.filter((c) => c.metadata?.name?.startsWith(`${NODE}-renew-`))
            .map((c) => atob(c.status?.certificate ?? ""));
        };
        const current = source.current?.certPem;
        assert.ok(current);
        await eventually("superseded CSRs deleted", async () => {
          const issued = await issuedBy();
          return !issued.includes(first.certPem) && !issued.includes(renewed[0].certPem);
        });
        assert.ok((await issuedBy()).includes(current), "the CSR of the certificate in use is kept");
      },
    );

    await t.step("run() without a prior obtain() delivers the first certificate too", async () => {
      const source = new CsrServingCertificate(client, {
        nodeName: `${NODE}-fresh`,
        ipAddresses: ["127.0.0.1"],
      });
      const delivered: ServingCertificate[] = [];
      const controller = new AbortController();
      const running = source.run(controller.signal, (cert) => delivered.push(cert));
      try {
        await eventually("the first certificate", () => delivered.length === 1);
      } finally {
        controller.abort();
      }
      await running;
      assert.equal(delivered[0], source.current);
      // Default lifetime: 30 days (the envtest signer allows up to a year).
      const days = (delivered[0].notAfter.getTime() - Date.now()) / 86_400_000;
      assert.ok(days > 29.9 && days <= 30, `${days} days`);
    });

    await t.step(
      "without a signer, obtain() fails naming kube-controller-manager and cleans up",
      async () => {
        const blind = withoutSigner(client);
        const source = new CsrServingCertificate(blind, {
          nodeName: `${NODE}-nosigner`,
          ipAddresses: ["127.0.0.1"],
          issueTimeoutMs: 2_000,
        });
        await assert.rejects(source.obtain(), (err: Error) => {
          assert.match(err.message, /no certificate was issued within 2000 ms/);
          assert.match(err.message, /kube-controller-manager/);
          assert.match(err.message, /kubernetes\.io\/kubelet-serving/);
          return true;
        });
        const list = await csrs.list({ labelSelector: "app.kubernetes.io/part-of=kubeocean" });
        assert.deepEqual(
          list.items.filter((c) => c.metadata?.name?.includes("-nosigner-")).map((c) => c.metadata?.name),
          [],
          "the unissued CSR is deleted",
        );
      },
    );

    await t.step("a denied CSR fails at once with the reason, and is deleted", async () => {
      const source = new CsrServingCertificate(denyingApprovals(client), {
        nodeName: `${NODE}-denied`,
        ipAddresses: ["127.0.0.1"],
      });
      const started = Date.now();
      await assert.rejects(
        source.obtain(),
        /CertificateSigningRequest kubeocean-proxier-.*-denied-\w+ was denied: TestDenied: denied by the test/,
      );
      assert.ok(Date.now() - started < 10_000, "no waiting for the timeout");
      const list = await csrs.list({ labelSelector: "app.kubernetes.io/part-of=kubeocean" });
      assert.deepEqual(list.items.filter((c) => c.metadata?.name?.includes("-denied-")), []);
    });

    await t.step("invalid options are refused by the constructor", () => {
      assert.throws(
        () => new CsrServingCertificate(client, { nodeName: NODE, ipAddresses: ["10.0.0.300"] }),
        /"10\.0\.0\.300" is not an IP address/,
      );
      assert.throws(
        () => new CsrServingCertificate(client, { nodeName: NODE, ipAddresses: [] }),
        /at least one IP address or DNS name/,
      );
      assert.throws(
        () =>
          new CsrServingCertificate(client, {
            nodeName: NODE,
            ipAddresses: ["1.2.3.4"],
            expirationSeconds: 60,
          }),
        /expirationSeconds must be an integer >= 600/,
      );
      assert.throws(
        () =>
          new CsrServingCertificate(client, { nodeName: NODE, ipAddresses: ["1.2.3.4"], renewAtFraction: 1 }),
        /renewAtFraction/,
      );
    });

    await t.step("loadServingFiles: reads good files, names the file that is missing or wrong", async () => {
      const cert = obtained;
      assert.ok(cert);
      const certFile = `${dir}/tls.crt`;
      const keyFile = `${dir}/tls.key`;
      await Deno.writeTextFile(certFile, cert.certPem + caPem); // leaf then an intermediate-like block
      await Deno.writeTextFile(keyFile, cert.keyPem);
      const loaded = await loadServingFiles(certFile, keyFile);
      assert.equal(loaded.notAfter.getTime(), cert.notAfter.getTime());
      assert.equal(loaded.notBefore.getTime(), cert.notBefore.getTime());
      assert.equal(loaded.certPem, cert.certPem + caPem);

      const garbage = `${dir}/garbage.crt`;
      await Deno.writeTextFile(
        garbage,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
      );
      await assert.rejects(loadServingFiles(garbage, keyFile), (err: Error) => {
        assert.match(
          err.message,
          new RegExp(`serving certificate file ${garbage}: not a valid X.509 certificate`),
        );
        return true;
      });
      const notPem = `${dir}/text.crt`;
      await Deno.writeTextFile(notPem, "hello");
      await assert.rejects(
        loadServingFiles(notPem, keyFile),
        new RegExp(`${notPem}: no PEM "CERTIFICATE" block`),
      );
      const missing = `${dir}/missing.crt`;
      await assert.rejects(
        loadServingFiles(missing, keyFile),
        new RegExp(`serving certificate file ${missing}:`),
      );
      const badKey = `${dir}/bad.key`;
      await Deno.writeTextFile(badKey, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
      await assert.rejects(
        loadServingFiles(certFile, badKey),
        new RegExp(`serving key file ${badKey}: not a valid`),
      );
      await assert.rejects(
        loadServingFiles(certFile, `${dir}/nokey`),
        new RegExp(`serving key file ${dir}/nokey:`),
      );
      // Someone else's key: both files named.
      await assert.rejects(
        loadServingFiles(certFile, cluster.pki.admin.keyFile),
        new RegExp(`${cluster.pki.admin.keyFile} does not hold the key of the certificate in ${certFile}`),
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
    // Leave no CSRs behind for other steps' assertions (and tidy the cluster).
    await csrs.deleteCollection({ labelSelector: "app.kubernetes.io/part-of=kubeocean" }).catch((err) => {
      if (!isNotFound(err)) throw err;
    });
    client.close();
  }
});
