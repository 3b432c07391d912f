/**
 * `toolkit/streaming/websocket.ts` on loopback: a `node:https` server whose `'upgrade'` handler
 * calls `acceptWebSocket`, and `connectWebSocket` clients with a throwaway PKI made by `openssl`
 * (a CA, a server and a client certificate, and an unrelated CA). Covers subprotocol negotiation,
 * byte-exact echo, receive back-pressure, CA pinning, refused upgrades, close codes, aborts and
 * keep-alive.
 *
 * Needs net (127.0.0.1), write (a temp dir for openssl) and run permissions plus the `openssl`
 * command; without them the tests are ignored (the `test:unit` task grants no net).
 */

import assert from "node:assert/strict";
import { concatBytes } from "../../toolkit/util/mod.ts";
import type { Buffer } from "node:buffer";
import https from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import type { IncomingHttpHeaders } from "node:http";
import {
  acceptWebSocket,
  connectWebSocket,
  WebSocketClosedError,
  type WebSocketConnection,
  WebSocketUpgradeError,
} from "../../toolkit/streaming/websocket.ts";
import { createCertificateAuthority, issueCertificate } from "../../toolkit/envtest/pki.ts";
import { which } from "../../toolkit/envtest/command.ts";
import { WebSocket as WsWebSocket, WebSocketServer as WsWebSocketServer } from "ws";

const SERVER_PROTOCOLS = ["v4.channel.k8s.io", "channel.k8s.io"];
const CLIENT_PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
/** Not an RFC 7230 token (it has a "/"), which `ws` refuses on its own. */
const TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io";

const granted = (descriptor: Deno.PermissionDescriptor) =>
  Deno.permissions.querySync(descriptor).state === "granted";
const runnable = granted({ name: "net", host: "127.0.0.1" }) && granted({ name: "write" }) &&
  granted({ name: "run" }) && granted({ name: "env" }) && await which("openssl") !== undefined;

interface Pki {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  otherCa: string;
}

/** A throwaway PKI, kept in memory (the files are removed at once). */
async function createPki(): Promise<Pki> {
  const dir = await Deno.makeTempDir({ prefix: "kubeocean-websocket-test-" });
  try {
    const ca = await createCertificateAuthority(dir, "ca", "websocket-test-ca");
    const [server, client, other] = await Promise.all([
      issueCertificate(ca, {
        name: "server",
        commonName: "websocket-test-server",
        usage: "server",
        dnsNames: ["localhost"],
        ipAddresses: ["127.0.0.1"],
      }),
      issueCertificate(ca, {
        name: "client",
        commonName: "kube-apiserver-kubelet-client",
        organizations: ["system:masters"],
        usage: "client",
      }),
      createCertificateAuthority(`${dir}/other`, "ca", "unrelated-ca"),
    ]);
    return {
      ca: ca.certPem,
      serverCert: server.certPem,
      serverKey: server.keyPem,
      clientCert: client.certPem,
      clientKey: client.keyPem,
      otherCa: other.certPem,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const pki: Pki | undefined = runnable ? await createPki() : undefined;

/** A queue whose `next()` waits for the next pushed value. */
class Queue<T> {
  #items: T[] = [];
  #waiters: ((item: T) => void)[] = [];
  push(item: T): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(item);
    else this.#items.push(item);
  }
  next(timeoutMs = 3_000): Promise<T> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("timed out waiting for the server side")), timeoutMs);
      this.#waiters.push((value) => {
        clearTimeout(timer);
        resolve(value);
      });
    });
  }
}

interface Accepted {
  connection?: WebSocketConnection;
  error?: unknown;
  headers: IncomingHttpHeaders;
  authorized: boolean;
}

interface TestServer {
  port: number;
  url(path?: string): string;
  accepted: Queue<Accepted>;
  close(): Promise<void>;
}

const FORBIDDEN_STATUS = JSON.stringify({
  kind: "Status",
  apiVersion: "v1",
  status: "Failure",
  message: 'pods "p" is forbidden: User "u" cannot create resource "pods/exec"',
  reason: "Forbidden",
  code: 403,
});

/**
 * An HTTPS server (client certificates requested, verified against the test CA) whose upgrades go
 * to `acceptWebSocket` (`/tunnel` speaks the port-forward tunnel protocol only); `/forbidden`
 * answers a Kubernetes-style 403 and `/hang` never answers.
 */
async function startServer(): Promise<TestServer> {
  const { ca, serverCert: cert, serverKey: key } = pki!;
  const server = https.createServer({ cert, key, ca, requestCert: true, rejectUnauthorized: false });
  const accepted = new Queue<Accepted>();
  const hanging: Duplex[] = [];
  server.on("upgrade", (request, socket: Duplex, head: Buffer) => {
    const authorized = (socket as TLSSocket).authorized === true;
    if (request.url === "/forbidden") {
      socket.end(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nConnection: close\r\n" +
          `Content-Length: ${new TextEncoder().encode(FORBIDDEN_STATUS).length}\r\n\r\n${FORBIDDEN_STATUS}`,
      );
      return;
    }
    if (request.url === "/nopong") {
      // A peer that never answers pings.
      new WsWebSocketServer({ noServer: true, autoPong: false }).handleUpgrade(
        request,
        socket,
        head,
        () => {},
      );
      return;
    }
    if (request.url === "/hang") {
      hanging.push(socket);
      return;
    }
    const protocols = request.url === "/tunnel" ? [TUNNEL_PROTOCOL] : SERVER_PROTOCOLS;
    acceptWebSocket(request, socket, head, { protocols }).then(
      (connection) => accepted.push({ connection, headers: request.headers, authorized }),
      (error) => accepted.push({ error, headers: request.headers, authorized }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: (path = "/") => `wss://127.0.0.1:${port}${path}`,
    accepted,
    close: async () => {
      for (const socket of hanging) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A trusted, authenticated client connection and its server side. */
async function connectPair(
  server: TestServer,
): Promise<{ client: WebSocketConnection; serverSide: WebSocketConnection; accepted: Accepted }> {
  const client = await connectWebSocket(server.url(), {
    protocols: CLIENT_PROTOCOLS,
    ca: pki!.ca,
    cert: pki!.clientCert,
    key: pki!.clientKey,
    headers: { authorization: "Bearer test-token" },
  });
  const accepted = await server.accepted.next();
  assert.ok(accepted.connection, `server side failed: ${accepted.error}`);
  return { client, serverSide: accepted.connection, accepted };
}

/** Reads `count` messages. */
async function readMessages(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  count: number,
): Promise<Uint8Array[]> {
  const messages: Uint8Array[] = [];
  while (messages.length < count) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended after ${messages.length} of ${count} messages`);
    messages.push(value);
  }
  return messages;
}

function randomBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65536) {
    crypto.getRandomValues(bytes.subarray(offset, Math.min(size, offset + 65536)));
  }
  return bytes;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function wsTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name: `websocket: ${name}`, ignore: !runnable, fn });
}

wsTest(
  "negotiates the client's first supported subprotocol and echoes 1 MiB byte-exact both ways",
  async () => {
    const server = await startServer();
    try {
      const { client, serverSide, accepted } = await connectPair(server);
      assert.equal(client.protocol, "v4.channel.k8s.io");
      assert.equal(serverSide.protocol, "v4.channel.k8s.io");
      assert.equal(accepted.authorized, true, "the client certificate reaches the server");
      assert.equal(accepted.headers.authorization, "Bearer test-token");
      assert.equal(accepted.headers["sec-websocket-protocol"], CLIENT_PROTOCOLS.join(", "));

      // The server echoes every message back.
      const received: Uint8Array[] = [];
      const echo = (async () => {
        for await (const message of serverSide.messages) {
          received.push(message);
          await serverSide.send(message);
        }
      })();

      const payload = randomBytes(1024 * 1024);
      const chunk = 64 * 1024;
      const reader = client.messages.getReader();
      const sending = (async () => {
        for (let offset = 0; offset < payload.length; offset += chunk) {
          await client.send(payload.subarray(offset, offset + chunk));
        }
      })();
      const echoed = await readMessages(reader, payload.length / chunk);
      await sending;
      assert.ok(echoed.every((m) => m.byteLength === chunk), "message boundaries are kept");
      assert.deepEqual(concatBytes(echoed), payload);
      assert.deepEqual(concatBytes(received), payload);

      assert.equal(
        await Promise.race([client.ping().then(() => "pong"), sleep(2_000).then(() => "timeout")]),
        "pong",
      );

      reader.releaseLock();
      const closed = await client.close();
      await echo;
      assert.deepEqual(closed, { code: 1000, reason: "", wasClean: true });
      assert.deepEqual(await serverSide.closed, { code: 1000, reason: "", wasClean: true });
    } finally {
      await server.close();
    }
  },
);

wsTest("back-pressure: a slow reader holds the sender back, then 64 MiB arrive in order", async () => {
  const server = await startServer();
  try {
    const { client, serverSide } = await connectPair(server);
    const total = 64 * 1024 * 1024;
    const chunk = 64 * 1024;
    const count = total / chunk;
    let sent = 0;
    let received = 0;
    let maxAhead = 0;
    const sending = (async () => {
      for (let i = 0; i < count; i++) {
        const message = new Uint8Array(chunk);
        new DataView(message.buffer).setUint32(0, i);
        message[chunk - 1] = i & 0xff;
        await serverSide.send(message);
        sent += chunk;
      }
      await serverSide.close(1000, "all sent");
    })();

    const reader = client.messages.getReader();
    let next = 0;
    const take = async () => {
      const { value, done } = await reader.read();
      assert.ok(!done, `stream ended before message ${next}`);
      assert.equal(value.byteLength, chunk);
      assert.equal(new DataView(value.buffer, value.byteOffset).getUint32(0), next, "in order");
      assert.equal(value[chunk - 1], next & 0xff);
      next++;
      received += chunk;
      maxAhead = Math.max(maxAhead, sent - received);
    };
    // Slow: one message per millisecond for 150 messages, then no reading at all for 300 ms.
    for (let i = 0; i < 150; i++) {
      await take();
      await sleep(1);
    }
    const sentBeforeStall = sent;
    for (let i = 0; i < 6; i++) {
      await sleep(50);
      maxAhead = Math.max(maxAhead, sent - received);
    }
    const stalledGrowth = sent - sentBeforeStall;
    // Fast: the rest.
    while (next < count) await take();
    await sending;
    assert.equal((await reader.read()).done, true);
    assert.deepEqual(await client.closed, { code: 1000, reason: "all sent", wasClean: true });

    // Socket buffers on loopback hold a few MiB; without back-pressure the whole 64 MiB is "sent"
    // while the reader stalls (measured: 62 MiB ahead before the Deno TLS workaround, ~6 MiB with it).
    const bound = 16 * 1024 * 1024;
    assert.ok(maxAhead <= bound, `sender ran ${maxAhead} bytes ahead of the reader (bound ${bound})`);
    assert.ok(stalledGrowth <= bound, `sender went on by ${stalledGrowth} bytes while the reader stalled`);
    console.log(`back-pressure: at most ${(maxAhead / 2 ** 20).toFixed(1)} MiB in flight of 64 MiB`);
  } finally {
    await server.close();
  }
});

wsTest(
  "a pinned CA is the only trust anchor: another CA, no CA and a wrong server name are refused",
  async () => {
    const server = await startServer();
    try {
      const refused = async (options: { ca?: string; servername?: string }) => {
        const error = await connectWebSocket(server.url(), { protocols: CLIENT_PROTOCOLS, ...options }).then(
          (connection) => {
            connection.abort();
            return undefined;
          },
          (err: unknown) => err,
        );
        assert.ok(error instanceof Error, `connected with ${JSON.stringify(Object.keys(options))}`);
        assert.ok(!(error instanceof WebSocketUpgradeError), "refused by TLS, not by HTTP");
        return error as Error & { code?: string };
      };
      const other = await refused({ ca: pki!.otherCa });
      assert.match(String(other.code ?? other.message), /CERT|VERIFY|certificate/i);
      // The throwaway CA is not in the system store either.
      await refused({});
      // Server-name verification uses `servername` (kubeconfig tls-server-name).
      const name = await refused({ ca: pki!.ca, servername: "not-the-server.example" });
      assert.match(name.message, /not-the-server\.example|altnames|hostname/i);
      // …and a correct one passes while dialling the IP address.
      const ok = await connectWebSocket(server.url(), {
        protocols: CLIENT_PROTOCOLS,
        ca: pki!.ca,
        servername: "localhost",
      });
      const serverSide = (await server.accepted.next()).connection!;
      await ok.close();
      await serverSide.closed;
    } finally {
      await server.close();
    }
  },
);

wsTest(
  "pinning replaces the roots: with the test CA installed as a root, another pinned CA still fails",
  async () => {
    const server = await startServer();
    const dir = await Deno.makeTempDir({ prefix: "kubeocean-websocket-pin-" });
    try {
      await Deno.writeTextFile(`${dir}/ca.crt`, pki!.ca);
      await Deno.writeTextFile(`${dir}/other.crt`, pki!.otherCa);
      const module = new URL("../../toolkit/streaming/websocket.ts", import.meta.url).href;
      await Deno.writeTextFile(
        `${dir}/probe.ts`,
        `import { connectWebSocket } from ${JSON.stringify(module)};
const [url, other] = Deno.args;
const attempt = (ca?: string) =>
  connectWebSocket(url, { protocols: ["v4.channel.k8s.io"], ...(ca ? { ca } : {}) })
    .then(async (c) => { await c.close(); return "open"; }, (e) => "refused: " + e.message);
console.log(JSON.stringify({ roots: await attempt(), pinned: await attempt(Deno.readTextFileSync(other)) }));
`,
      );
      // DENO_CERT adds a CA to the root store of the child process.
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          "--frozen",
          "--config",
          new URL("../../deno.json", import.meta.url).pathname,
          `${dir}/probe.ts`,
          server.url(),
          `${dir}/other.crt`,
        ],
        env: { DENO_CERT: `${dir}/ca.crt`, NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, stderr);
      const result = JSON.parse(new TextDecoder().decode(output.stdout).trim().split("\n").pop()!);
      assert.equal(result.roots, "open", "the root store trusts the test CA");
      assert.match(result.pinned, /^refused/, "a pinned CA replaces the roots");
      // Drain the server side of the one connection that opened.
      const accepted = await server.accepted.next();
      await accepted.connection?.closed;
    } finally {
      await Deno.remove(dir, { recursive: true });
      await server.close();
    }
  },
);

wsTest("no common subprotocol: HTTP 400 naming the supported ones, on both sides", async () => {
  const server = await startServer();
  try {
    const error = await connectWebSocket(server.url(), {
      protocols: ["v5.channel.k8s.io", "SPDY/3.1+portforward.k8s.io"],
      ca: pki!.ca,
    }).then(() => undefined, (err: unknown) => err);
    assert.ok(error instanceof WebSocketUpgradeError, String(error));
    assert.equal(error.status, 400);
    assert.match(error.body, /supported: v4\.channel\.k8s\.io, channel\.k8s\.io/);
    assert.match(error.body, /offered v5\.channel\.k8s\.io, SPDY\/3\.1\+portforward\.k8s\.io/);
    const accepted = await server.accepted.next();
    assert.ok(accepted.error instanceof WebSocketUpgradeError);
    assert.equal(accepted.error.status, 400);
  } finally {
    await server.close();
  }
});

wsTest("subprotocols that are not RFC 7230 tokens (SPDY/3.1+portforward.k8s.io) work both ways", async () => {
  const server = await startServer();
  try {
    const client = await connectWebSocket(server.url("/tunnel"), {
      protocols: ["v4.channel.k8s.io", TUNNEL_PROTOCOL],
      ca: pki!.ca,
    });
    const accepted = await server.accepted.next();
    assert.equal(client.protocol, TUNNEL_PROTOCOL);
    assert.equal(accepted.connection?.protocol, TUNNEL_PROTOCOL);
    assert.equal(accepted.headers["sec-websocket-protocol"], `v4.channel.k8s.io, ${TUNNEL_PROTOCOL}`);
    await client.close();
    await accepted.connection?.closed;
  } finally {
    await server.close();
  }
});

wsTest(
  "text messages arrive as their UTF-8 bytes; keep-alive keeps a live peer and drops a silent one",
  async () => {
    const server = await startServer();
    try {
      // A plain ws client (text frames are not part of this API's send side).
      const raw = new WsWebSocket(server.url(), ["v4.channel.k8s.io"], { ca: pki!.ca });
      await new Promise((resolve, reject) => {
        raw.once("open", resolve);
        raw.once("error", reject);
      });
      const serverSide = (await server.accepted.next()).connection!;
      raw.send("héllo");
      const reader = serverSide.messages.getReader();
      assert.deepEqual((await reader.read()).value, new TextEncoder().encode("héllo"));
      reader.releaseLock();
      raw.close();
      await serverSide.closed;

      const client = await connectWebSocket(server.url(), {
        protocols: CLIENT_PROTOCOLS,
        ca: pki!.ca,
        keepAliveMs: 20,
      });
      const idle = (await server.accepted.next()).connection!;
      await sleep(200);
      await client.send(new Uint8Array([42]));
      const idleReader = idle.messages.getReader();
      assert.deepEqual(
        (await idleReader.read()).value,
        new Uint8Array([42]),
        "still open after 10 keep-alive rounds",
      );
      idleReader.releaseLock();
      await client.close();
      assert.equal((await idle.closed).code, 1000);

      const silent = await connectWebSocket(server.url("/nopong"), {
        protocols: [],
        ca: pki!.ca,
        keepAliveMs: 20,
      });
      assert.equal(silent.protocol, "");
      await assert.rejects(
        silent.messages.getReader().read(),
        (err: unknown) => err instanceof WebSocketClosedError && /keep-alive/.test(err.reason),
      );
      assert.equal((await silent.closed).code, 1006);
    } finally {
      await server.close();
    }
  },
);

wsTest("a refused upgrade carries the status and the Kubernetes Status message", async () => {
  const server = await startServer();
  try {
    const error = await connectWebSocket(server.url("/forbidden"), {
      protocols: CLIENT_PROTOCOLS,
      ca: pki!.ca,
    })
      .then(() => undefined, (err: unknown) => err);
    assert.ok(error instanceof WebSocketUpgradeError, String(error));
    assert.equal(error.status, 403);
    assert.equal(error.body, FORBIDDEN_STATUS);
    assert.match(error.message, /403.*cannot create resource "pods\/exec"/);
  } finally {
    await server.close();
  }
});

wsTest("handshake timeout and abort signal", async () => {
  const server = await startServer();
  try {
    const timedOut = await connectWebSocket(server.url("/hang"), {
      protocols: CLIENT_PROTOCOLS,
      ca: pki!.ca,
      handshakeTimeoutMs: 100,
    }).then(() => undefined, (err: unknown) => err);
    assert.ok(timedOut instanceof DOMException && timedOut.name === "TimeoutError", String(timedOut));

    const controller = new AbortController();
    const pending = connectWebSocket(server.url("/hang"), {
      protocols: CLIENT_PROTOCOLS,
      ca: pki!.ca,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(new Error("stop")), 50);
    await assert.rejects(pending, /stop/);
  } finally {
    await server.close();
  }
});

wsTest("close codes and reasons propagate both ways", async () => {
  const server = await startServer();
  try {
    {
      const { client, serverSide } = await connectPair(server);
      const clientClosed = client.close(4001, "client says bye");
      // The server's stream ends normally after the close frame.
      const reader = serverSide.messages.getReader();
      assert.equal((await reader.read()).done, true);
      assert.deepEqual(await serverSide.closed, { code: 4001, reason: "client says bye", wasClean: true });
      assert.deepEqual(await clientClosed, { code: 4001, reason: "client says bye", wasClean: true });
      await assert.rejects(client.send(new Uint8Array(1)), { name: "InvalidStateError" });
    }
    {
      const { client, serverSide } = await connectPair(server);
      await serverSide.send(new Uint8Array([1, 2, 3]));
      const serverClosed = serverSide.close(1011, "server failed");
      const messages: Uint8Array[] = [];
      for await (const message of client.messages) messages.push(message);
      assert.deepEqual(messages, [new Uint8Array([1, 2, 3])], "data before the close frame is delivered");
      assert.deepEqual(await client.closed, { code: 1011, reason: "server failed", wasClean: true });
      assert.equal((await serverClosed).code, 1011);
    }
    {
      const { client, serverSide } = await connectPair(server);
      assert.throws(() => client.close(1006), TypeError);
      // Cancelling the stream closes the connection with 1000.
      await client.messages.cancel();
      assert.equal((await serverSide.closed).code, 1000);
      assert.equal((await client.closed).code, 1000);
    }
  } finally {
    await server.close();
  }
});

wsTest(
  "abort from either side errors the streams and resolves the other side's closed with 1006",
  async () => {
    const server = await startServer();
    try {
      {
        const { client, serverSide } = await connectPair(server);
        const serverReading = (async () => {
          for await (const _ of serverSide.messages) { /* drain */ }
        })();
        client.abort();
        await assert.rejects(client.messages.getReader().read(), { name: "AbortError" });
        await assert.rejects(
          serverReading,
          (err: unknown) => err instanceof WebSocketClosedError && err.code === 1006,
        );
        assert.deepEqual(await serverSide.closed, { code: 1006, reason: "", wasClean: false });
        assert.equal((await client.closed).code, 1006);
      }
      {
        const { client, serverSide } = await connectPair(server);
        await serverSide.send(new Uint8Array([7]));
        // Wait until the message is on the client side, then cut the connection.
        await sleep(50);
        serverSide.abort(new Error("server gave up"));
        const reader = client.messages.getReader();
        assert.deepEqual((await reader.read()).value, new Uint8Array([7]), "data received before the abort");
        await assert.rejects(
          reader.read(),
          (err: unknown) => err instanceof WebSocketClosedError && err.code === 1006,
        );
        assert.deepEqual(await client.closed, { code: 1006, reason: "", wasClean: false });
        await assert.rejects(serverSide.messages.getReader().read(), /server gave up/);
      }
    } finally {
      await server.close();
    }
  },
);
