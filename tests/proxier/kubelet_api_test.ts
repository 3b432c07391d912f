/**
 * The kubelet API of virtual nodes, end to end with an unmodified kubectl against the computing
 * cluster: logs (tail, limit, timestamps, follow), exec (exit codes, stdin, a megabyte of output,
 * over the API server's WebSocket→SPDY translation and over SPDY pass-through), attach,
 * port-forward (WebSocket tunnel and SPDY), the toolkit's own WebSocket clients, routing between
 * bindings, authentication and authorization like a kubelet, and the API server verifying the
 * serving certificate.
 */

import assert from "node:assert/strict";
import { connect as tcpConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { RbacAuthorizationK8sIoV1Api } from "../../apis/rbac.authorization.k8s.io/v1/mod.ts";
import { toCriLog } from "../../toolkit/envtest/cluster.ts";
import { createCertificateAuthority, issueCertificate } from "../../toolkit/envtest/pki.ts";
import { allocatePort } from "../../toolkit/envtest/ports.ts";
import { envTest, eventually } from "../../toolkit/envtest/testing.ts";
import { connectWebSocket, WebSocketUpgradeError } from "../../toolkit/streaming/websocket.ts";
import { spawnEntrypoint } from "../fixtures/entrypoint.ts";
import {
  apiserverMetrics,
  CLUSTERS,
  type KubeletApiScenario,
  managerMetrics,
  NS,
  sample,
  startScenario,
} from "./scenario.ts";

/** A long-running kubectl whose output is read line by line. */
function spawnKubectl(s: KubeletApiScenario, args: string[], env: Record<string, string> = {}) {
  const child = new Deno.Command(s.computingCluster.binaries.kubectl, {
    args: ["--kubeconfig", s.computingCluster.kubeconfig, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const reading = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) output += chunk;
  })();
  let errors = "";
  void (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) errors += chunk;
  })();
  return {
    child,
    output: () => output,
    errors: () => errors,
    async kill() {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await child.status;
      await reading.catch(() => {});
    },
  };
}

/** Sends `text` over a new TCP connection to `port` and reads until as many bytes came back. */
async function echo(port: number, text: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = tcpConnect(port, "127.0.0.1");
    let received = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no echo of "${text}" on port ${port} (got "${received}")`));
    }, 15_000);
    socket.on("connect", () => socket.write(text));
    socket.on("data", (chunk) => {
      received += chunk.toString();
      if (received.length >= text.length) {
        clearTimeout(timer);
        socket.end();
        resolve(received);
      }
    });
    socket.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

envTest("proxier: kubectl logs, exec, attach and port-forward through the kubelet API of virtual nodes", {
  clusters: CLUSTERS,
}, async (env, t) => {
  const s = await startScenario(env);
  const kubectl = (
    args: string[],
    options: { stdin?: string; env?: Record<string, string>; check?: boolean } = {},
  ) => s.computingCluster.kubectl(args, { check: false, ...options });
  const pod = s.pods.worker1.metadata!.name!;
  try {
    await t.step("kubectl logs: whole, --tail=1, --limit-bytes=5, --timestamps", async () => {
      const all = await kubectl(["logs", "-n", NS, pod], { check: true });
      assert.match(all.stdout, /kubeocean envtest: container started\n.*serving\n.*ready\n$/s);
      const tail = await kubectl(["logs", "-n", NS, pod, "--tail=1"]);
      assert.equal(tail.stdout, "kubeocean envtest: ready\n");
      const limited = await kubectl(["logs", "-n", NS, pod, "--limit-bytes=5"]);
      assert.equal(limited.stdout, "kubeo");
      const stamped = await kubectl(["logs", "-n", NS, pod, "--timestamps"]);
      for (const line of stamped.stdout.trim().split("\n")) {
        assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z kubeocean envtest: /);
      }
    });

    await t.step(
      "kubectl logs -f shows a line appended later; killing kubectl closes the upstream",
      async () => {
        const follow = spawnKubectl(s, ["logs", "-f", "-n", NS, pod]);
        try {
          await eventually("the log so far", () => follow.output().includes("kubeocean envtest: ready"), {
            timeoutMs: 15_000,
          });
          const open = sample(await managerMetrics(s), "kubeocean_proxier_open_streams");
          assert.equal(open, 1, "one open stream while following");
          const line = `appended at ${Date.now()}`;
          await Deno.writeTextFile(env.cluster("worker1").containerLogFile, toCriLog(line), { append: true });
          await eventually("the appended line", () => follow.output().includes(line), {
            timeoutMs: 5_000,
            intervalMs: 100,
          });
        } finally {
          await follow.kill();
        }
        await eventually("no open stream after kubectl died", async () => {
          return sample(await managerMetrics(s), "kubeocean_proxier_open_streams") === 0;
        }, { timeoutMs: 15_000, intervalMs: 250 });
      },
    );

    for (const mode of ["websocket-translated", "spdy"] as const) {
      await t.step(`kubectl exec (${mode}): exit code, stderr, stdin, 1 MiB of output`, async () => {
        const env: Record<string, string> = mode === "spdy"
          ? { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: "false" }
          : {};
        const translatedBefore = sample(
          await apiserverMetrics(s),
          "apiserver_stream_translator_requests_total",
        );
        const spdyBefore = sample(await managerMetrics(s), "kubeocean_proxier_streams_total", {
          kind: "exec",
          protocol: "spdy",
        });
        const failed = await kubectl([
          "exec",
          "-n",
          NS,
          pod,
          "--",
          "sh",
          "-c",
          "echo out; echo err >&2; exit 3",
        ], {
          env,
        });
        assert.equal(failed.code, 3, failed.stderr);
        assert.equal(failed.stdout, "out\n");
        assert.match(failed.stderr, /^err$/m);
        const input = await kubectl(["exec", "-i", "-n", NS, pod, "--", "head", "-c", "10"], {
          stdin: "0123456789",
          env,
        });
        assert.equal(input.stdout, "0123456789", input.stderr);
        const big = await kubectl(["exec", "-n", NS, pod, "--", "head", "-c", "1048576", "/dev/zero"], {
          env,
        });
        assert.equal(big.code, 0, big.stderr);
        assert.equal(new TextEncoder().encode(big.stdout).byteLength, 1_048_576);
        const translated = sample(await apiserverMetrics(s), "apiserver_stream_translator_requests_total") -
          translatedBefore;
        const spdy = sample(await managerMetrics(s), "kubeocean_proxier_streams_total", {
          kind: "exec",
          protocol: "spdy",
        }) - spdyBefore;
        assert.equal(spdy, 3, "every exec reached the proxier over SPDY");
        if (mode === "spdy") assert.equal(translated, 0, "SPDY passes through the API server");
        else assert.equal(translated, 3, "the API server translated kubectl's WebSocket to SPDY");
      });
    }

    await t.step("kubectl attach shows the container's output", async () => {
      // kwok attaches to the container's log file, from its end: lines written from now on show.
      const attach = spawnKubectl(s, ["attach", "-n", NS, pod]);
      const line = `attach sees ${Date.now()}`;
      try {
        await eventually(`"${line}" attached`, async () => {
          await Deno.writeTextFile(env.cluster("worker1").containerLogFile, toCriLog(line), { append: true });
          return attach.output().includes(line);
        }, { timeoutMs: 15_000, intervalMs: 500 }).catch((err) => {
          throw new Error(`${err.message}; kubectl said: ${attach.errors()}`);
        });
      } finally {
        await attach.kill();
      }
    });

    for (const mode of ["websocket-tunnel", "spdy"] as const) {
      await t.step(
        `kubectl port-forward (${mode}): two concurrent connections, each its own echo`,
        async () => {
          const env: Record<string, string> = mode === "spdy"
            ? { KUBECTL_PORT_FORWARD_WEBSOCKETS: "false" }
            : {};
          const tunnelBefore = sample(await apiserverMetrics(s), "apiserver_stream_tunnel_requests_total");
          const forward = spawnKubectl(s, ["port-forward", "-n", NS, pod, ":8080"], env);
          try {
            const port = await eventually("the local port", () => {
              const match = /Forwarding from 127\.0\.0\.1:(\d+) -> 8080/.exec(forward.output());
              return match ? Number(match[1]) : undefined;
            }, { timeoutMs: 15_000, intervalMs: 100 });
            const [a, b] = await Promise.all([
              echo(port, "first connection"),
              echo(port, "second connection"),
            ]);
            assert.equal(a, "first connection");
            assert.equal(b, "second connection");
          } finally {
            await forward.kill();
          }
          const tunnelled = sample(await apiserverMetrics(s), "apiserver_stream_tunnel_requests_total") -
            tunnelBefore;
          if (mode === "spdy") assert.equal(tunnelled, 0);
          else assert.ok(tunnelled >= 1, "the API server tunnelled kubectl's WebSocket");
        },
      );
    }

    await t.step(
      "the toolkit's PodClient: exec and port-forward (plain WebSocket to the proxier)",
      async () => {
        const pods = new CoreV1Api(s.computing).pods(NS);
        const result = await pods.exec(pod, ["sh", "-c", "echo toolkit $KUBEOCEAN_ENVTEST; exit 4"]);
        assert.equal(result.stdout, "toolkit worker1\n");
        assert.equal(result.exitCode, 4);
        const before = sample(await managerMetrics(s), "kubeocean_proxier_streams_total", {
          kind: "portforward",
          protocol: "websocket",
        });
        const stream = await pods.portForward(pod, 8080);
        const writer = stream.writable.getWriter();
        await writer.write(new TextEncoder().encode("over a websocket"));
        const reader = stream.readable.getReader();
        let echoed = "";
        while (echoed.length < "over a websocket".length) {
          const { value, done } = await reader.read();
          if (done) break;
          echoed += new TextDecoder().decode(value);
        }
        stream.close();
        assert.equal(echoed, "over a websocket");
        const after = sample(await managerMetrics(s), "kubeocean_proxier_streams_total", {
          kind: "portforward",
          protocol: "websocket",
        });
        assert.equal(after - before, 1);
      },
    );

    await t.step(
      "routing: each pod reaches its own worker; a proxier of one binding refuses the other's",
      async () => {
        for (const binding of ["worker1", "worker2"] as const) {
          const name = s.pods[binding].metadata!.name!;
          const out = await kubectl(["exec", "-n", NS, name, "--", "sh", "-c", "echo $KUBEOCEAN_ENVTEST"]);
          assert.equal(out.stdout.trim(), binding, out.stderr);
        }
        // `deno task run proxier` for worker1 alone, as its Deployment runs it.
        const port = allocatePort();
        const { pki } = s.computingCluster;
        const proxier = spawnEntrypoint([
          "proxier",
          "--cluster-binding=worker1",
          `--kubeconfig=${s.computingCluster.kubeconfig}`,
          "--listen-address=127.0.0.1",
          `--listen-port=${port}`,
          `--tls-cert-file=${pki.kubelet.certFile}`,
          `--tls-private-key-file=${pki.kubelet.keyFile}`,
          `--client-ca-file=${pki.ca.certFile}`,
          "--metrics-bind-address=0",
          "--health-probe-bind-address=0",
          "--log-level=error",
        ]);
        const client = Deno.createHttpClient({
          caCerts: [pki.ca.certPem],
          cert: pki.admin.certPem,
          key: pki.admin.keyPem,
        });
        try {
          const get = async (path: string) => {
            const response = await fetch(`https://127.0.0.1:${port}${path}`, { client });
            return { status: response.status, text: await response.text() };
          };
          await eventually("the standalone proxier serves worker1", async () => {
            const r = await get(`/containerLogs/${NS}/${s.pods.worker1.metadata!.name}/app`).catch(() =>
              undefined
            );
            return r?.status === 200 && r.text.includes("kubeocean envtest");
          }, { timeoutMs: 30_000, intervalMs: 250 });
          const other = await get(`/containerLogs/${NS}/${s.pods.worker2.metadata!.name}/app`);
          assert.equal(other.status, 404);
          assert.match(other.text, /not on a virtual node this proxier serves/);
          const unknown = await get(`/containerLogs/${NS}/no-such-pod/app`);
          assert.equal(unknown.status, 404);
          assert.match(unknown.text, /pod "no-such-pod" does not exist/);
          const container = await get(`/containerLogs/${NS}/${s.pods.worker1.metadata!.name}/nope`);
          assert.equal(container.status, 404);
          assert.match(container.text, /container "nope" not found/);
        } finally {
          client.close();
          proxier.kill("SIGTERM");
          await proxier.status;
        }
      },
    );

    await t.step("authentication and authorization like a kubelet", async () => {
      const { pki } = s.computingCluster;
      const base = `https://127.0.0.1:${s.kubeletPort}`;
      const logs = `/containerLogs/${NS}/${pod}/app`;
      const request = async (client: Deno.HttpClient, headers: Record<string, string> = {}) => {
        try {
          const response = await fetch(base + logs, { client, headers });
          return { status: response.status, text: await response.text() };
        } finally {
          client.close();
        }
      };
      const anonymous = await request(Deno.createHttpClient({ caCerts: [pki.ca.certPem] }));
      assert.equal(anonymous.status, 401);
      const worker1 = env.cluster("worker1").pki;
      const foreign = await request(
        Deno.createHttpClient({
          caCerts: [pki.ca.certPem],
          cert: worker1.admin.certPem,
          key: worker1.admin.keyPem,
        }),
      );
      assert.equal(foreign.status, 401, "a certificate from another CA is not an identity");
      const eve = await s.computingCluster.addUser("eve");
      const denied = await request(
        Deno.createHttpClient({
          caCerts: [pki.ca.certPem],
          cert: eve.keyPair.certPem,
          key: eve.keyPair.keyPem,
        }),
      );
      assert.equal(denied.status, 403);
      assert.match(denied.text, /user "eve" may not get nodes\/proxy/);

      // A ServiceAccount token (what metrics-server and Prometheus present) with nodes/proxy.
      const rbac = new RbacAuthorizationK8sIoV1Api(s.computing);
      const core = new CoreV1Api(s.computing);
      const role = (name: string, verbs: string[]) =>
        rbac.clusterroles().create({
          metadata: { name },
          rules: [{ apiGroups: [""], resources: ["nodes/proxy"], verbs }],
        });
      await role("kubelet-api-user", ["get", "create"]);
      await role("kubelet-api-reader", ["get"]);
      await core.serviceaccounts(NS).create({ metadata: { name: "scraper" } });
      await rbac.clusterrolebindings().create({
        metadata: { name: "scraper" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "kubelet-api-user" },
        subjects: [{ kind: "ServiceAccount", name: "scraper", namespace: NS }],
      });
      await rbac.clusterrolebindings().create({
        metadata: { name: "getter" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "kubelet-api-reader" },
        subjects: [{ kind: "User", name: "getter", apiGroup: "rbac.authorization.k8s.io" }],
      });
      const token = await core.serviceaccounts(NS).createToken("scraper", { expirationSeconds: 600 });
      const bearer = { authorization: `Bearer ${token.status!.token}` };
      const withToken = await eventually("the ServiceAccount may read logs", async () => {
        const r = await request(Deno.createHttpClient({ caCerts: [pki.ca.certPem] }), bearer);
        return r.status === 200 ? r : undefined;
      }, { timeoutMs: 40_000, intervalMs: 1_000 });
      assert.match(withToken.text, /kubeocean envtest/);

      // exec over a plain WebSocket, straight at the proxier: create on nodes/proxy is required.
      const execUrl =
        `wss://127.0.0.1:${s.kubeletPort}/exec/${NS}/${pod}/app?command=sh&command=-c&command=echo+ws-$KUBEOCEAN_ENVTEST&output=1&error=1`;
      const session = await connectWebSocket(execUrl, {
        protocols: ["v4.channel.k8s.io"],
        ca: pki.ca.certPem,
        headers: bearer,
      });
      let stdout = "";
      let status = "";
      for await (const message of session.messages) {
        const text = new TextDecoder().decode(message.subarray(1));
        if (message[0] === 1) stdout += text;
        if (message[0] === 3) status += text;
      }
      assert.equal(stdout, "ws-worker1\n");
      assert.equal(JSON.parse(status).status, "Success");
      const getter = await s.computingCluster.addUser("getter");
      await assert.rejects(
        connectWebSocket(execUrl, {
          protocols: ["v4.channel.k8s.io"],
          ca: pki.ca.certPem,
          cert: getter.keyPair.certPem,
          key: getter.keyPair.keyPem,
        }),
        (err: unknown) => err instanceof WebSocketUpgradeError && err.status === 403,
        "get on nodes/proxy must not grant exec",
      );
    });

    await t.step("bad input: garbage SPDY frames and oversized headers hurt only that client", async () => {
      const { pki } = s.computingCluster;
      /** Sends `bytes` on a client-authenticated TLS connection; resolves with all it got back once closed. */
      const exchange = (bytes: Uint8Array | string, afterUpgrade?: Uint8Array) =>
        new Promise<string>((resolve, reject) => {
          const socket = tlsConnect({
            host: "127.0.0.1",
            port: s.kubeletPort,
            ca: pki.ca.certPem,
            cert: pki.admin.certPem,
            key: pki.admin.keyPem,
          });
          let received = "";
          const timer = setTimeout(() => {
            socket.destroy();
            reject(new Error(`the proxier kept a bad connection open; got: ${received.slice(0, 200)}`));
          }, 15_000);
          socket.on("secureConnect", () => socket.write(bytes));
          socket.on("data", (chunk) => {
            received += chunk.toString("latin1");
            if (afterUpgrade && received.startsWith("HTTP/1.1 101") && received.includes("\r\n\r\n")) {
              socket.write(afterUpgrade);
              afterUpgrade = undefined;
            }
          });
          socket.on("error", () => {});
          socket.on("close", () => {
            clearTimeout(timer);
            resolve(received);
          });
        });
      const upgrade =
        `POST /exec/${NS}/${pod}/app?command=cat&input=1&output=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
        "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n";
      // A control frame of SPDY version 9: the session answers GOAWAY and closes this connection only.
      const garbage = new Uint8Array([0x80, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 1, 2, 3, 4]);
      const answered = await exchange(upgrade, garbage);
      assert.match(answered, /^HTTP\/1\.1 101 Switching Protocols/);
      const huge = `GET /containerLogs/${NS}/${pod}/app HTTP/1.1\r\nHost: x\r\nX-Big: ${
        "a".repeat(64 * 1024)
      }\r\n\r\n`;
      assert.match(await exchange(huge), /^HTTP\/1\.1 431/);
      const logs = await kubectl(["logs", "-n", NS, pod]);
      assert.match(logs.stdout, /kubeocean envtest: ready\n/, "the listener keeps serving everyone else");
    });

    await t.step(
      "the API server verifies the serving certificate: a self-signed one fails with x509",
      async () => {
        const dir = await Deno.makeTempDir({ prefix: "kubeocean-selfsigned-" });
        const otherCa = await createCertificateAuthority(dir, "other-ca", "not-the-cluster-ca");
        const selfSigned = await issueCertificate(otherCa, {
          name: "proxier",
          commonName: "proxier",
          ipAddresses: ["127.0.0.1"],
          usage: "server",
        });
        await s.restartManager([
          `--proxier-tls-cert-file=${selfSigned.certFile}`,
          `--proxier-tls-private-key-file=${selfSigned.keyFile}`,
        ]);
        const refused = await eventually("kubectl logs refused", async () => {
          const r = await kubectl(["logs", "-n", NS, pod]);
          return r.code !== 0 && /x509/.test(r.stderr) ? r : undefined;
        }, { timeoutMs: 30_000, intervalMs: 500 });
        assert.match(refused.stderr, /x509: certificate signed by unknown authority/);
        await Deno.remove(dir, { recursive: true });
      },
    );
  } finally {
    await s.stop();
  }
});
