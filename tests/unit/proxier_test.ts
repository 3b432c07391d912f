/**
 * The proxier's decisions without a network: kubelet paths, the kubelet's authorization mapping,
 * requested streams, log parameters, error statuses, SPDY protocol negotiation, exit codes of
 * kwok-style statuses, and the address virtual nodes advertise in deployment mode.
 */

import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { Duplex } from "node:stream";
import { CoreV1Api, type Pod } from "../../apis/core/v1/mod.ts";
import { KubeletApiError, kubeletAttributes } from "../../controllers/proxier/auth.ts";
import { failure } from "../../controllers/proxier/failure.ts";
import { logOptionsOf } from "../../controllers/proxier/logs.ts";
import { wantedStreams } from "../../controllers/proxier/remotecommand.ts";
import { parsePodPath, refuseUpgrade } from "../../controllers/proxier/server.ts";
import { acceptSpdy, isSpdyUpgrade, isWebSocketUpgrade } from "../../controllers/proxier/upgrade.ts";
import { TwinUnavailableError } from "../../controllers/syncer/provider.ts";
import { ApiError, type Status } from "../../toolkit/client/errors.ts";
import { withExitCode } from "../../toolkit/client/pod_client.ts";
import { eventually } from "../../toolkit/envtest/testing.ts";
import { memorySyncerContext } from "../fixtures/memory_syncer.ts";

/** A socket that records what is written to it. */
class RecordingSocket extends Duplex {
  written = "";
  override _read(): void {}
  override _write(chunk: Uint8Array | string, _encoding: string, callback: () => void): void {
    this.written += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
    callback();
  }
}

/** An upgrade request with `headers`. */
function upgradeRequest(headers: Record<string, string | string[]>): IncomingMessage {
  return { headers } as unknown as IncomingMessage;
}

Deno.test("proxier: kubelet paths, with and without the pod UID", () => {
  assert.deepEqual(parsePodPath("/containerLogs/ns/p/c"), {
    verb: "containerLogs",
    namespace: "ns",
    pod: "p",
    container: "c",
  });
  assert.deepEqual(parsePodPath("/exec/ns/p/uid-1/c"), {
    verb: "exec",
    namespace: "ns",
    pod: "p",
    container: "c",
  });
  assert.deepEqual(parsePodPath("/portForward/ns/p"), { verb: "portForward", namespace: "ns", pod: "p" });
  assert.deepEqual(parsePodPath("/portForward/ns/p/uid"), { verb: "portForward", namespace: "ns", pod: "p" });
  assert.equal(parsePodPath("/exec/ns/p"), undefined, "exec names a container");
  assert.equal(parsePodPath("/run/ns/p/c"), undefined);
  assert.equal(parsePodPath("/pods"), undefined);
});

Deno.test("proxier: the kubelet's authorization mapping, with create forced for streams", () => {
  assert.deepEqual(kubeletAttributes("GET", "/containerLogs/ns/p/c", "vn"), {
    verb: "get",
    subresource: "proxy",
    node: "vn",
  });
  // A WebSocket upgrade is a GET: it must still need create.
  for (const path of ["/exec/ns/p/c", "/attach/ns/p/c", "/portForward/ns/p"]) {
    assert.equal(kubeletAttributes("GET", path, "vn").verb, "create", path);
    assert.equal(kubeletAttributes("POST", path, "vn").verb, "create", path);
  }
  assert.equal(kubeletAttributes("GET", "/stats/summary", "vn").subresource, "stats");
  assert.equal(kubeletAttributes("GET", "/metrics/resource", "vn").subresource, "metrics");
  assert.equal(kubeletAttributes("GET", "/logs/syslog", "vn").subresource, "log");
  assert.equal(kubeletAttributes("GET", "/healthz", "vn").subresource, "healthz");
  assert.equal(kubeletAttributes("DELETE", "/pods", "vn").verb, "delete");
});

Deno.test("proxier: streams as a kubelet reads them (a TTY has no stderr)", () => {
  assert.deepEqual(wantedStreams(new URLSearchParams("input=1&output=1&error=1")), {
    stdin: true,
    stdout: true,
    stderr: true,
    tty: false,
  });
  assert.deepEqual(wantedStreams(new URLSearchParams("output=1&error=1&tty=1")), {
    stdin: false,
    stdout: true,
    stderr: false,
    tty: true,
  });
  assert.equal(
    wantedStreams(new URLSearchParams("stdin=true")).stdin,
    false,
    "the API server sends input=, not stdin=",
  );
});

Deno.test("proxier: log parameters, and a clear 400 for bad ones", () => {
  assert.deepEqual(
    logOptionsOf(new URLSearchParams("follow=true&tailLines=1&limitBytes=5&timestamps=true&sinceSeconds=9")),
    {
      follow: true,
      previous: undefined,
      timestamps: true,
      sinceSeconds: 9,
      sinceTime: undefined,
      tailLines: 1,
      limitBytes: 5,
    },
  );
  assert.throws(
    () => logOptionsOf(new URLSearchParams("tailLines=-1")),
    (err: unknown) => err instanceof KubeletApiError && err.status === 400 && /tailLines/.test(err.message),
  );
  assert.throws(
    () => logOptionsOf(new URLSearchParams("sinceTime=yesterday")),
    (err: unknown) => err instanceof KubeletApiError && err.status === 400 && /sinceTime/.test(err.message),
  );
});

Deno.test("proxier: errors become the status a client understands", () => {
  assert.deepEqual(failure(new KubeletApiError(503, "later")), { status: 503, message: "later" });
  assert.equal(failure(new TwinUnavailableError("gone")).status, 404);
  const notRunning = new ApiError(400, { status: "Failure", message: "container is waiting" }, "GET log");
  assert.deepEqual(failure(notRunning), { status: 400, message: "container is waiting" });
  const refused = new ApiError(403, { status: "Failure", message: "forbidden" }, "GET log");
  assert.equal(failure(refused).status, 502, "the worker refusing our credentials is not the client's fault");
  assert.equal(failure(new TypeError("connection refused")).status, 502);
  assert.equal(failure(new Error("bug")).status, 500);
});

Deno.test("proxier: SPDY protocol negotiation answers 101 with the client's first served protocol, else 403", () => {
  const request = upgradeRequest({
    upgrade: "SPDY/3.1",
    "x-stream-protocol-version": "v5.channel.k8s.io, v4.channel.k8s.io, v3.channel.k8s.io",
  });
  assert.ok(isSpdyUpgrade(request));
  assert.ok(!isWebSocketUpgrade(request));
  const socket = new RecordingSocket();
  assert.equal(acceptSpdy(request, socket, ["v4.channel.k8s.io", "channel.k8s.io"]), "v4.channel.k8s.io");
  assert.match(socket.written, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.match(socket.written, /\r\nX-Stream-Protocol-Version: v4\.channel\.k8s\.io\r\n/);
  assert.throws(
    () => acceptSpdy(upgradeRequest({ "x-stream-protocol-version": "v9" }), new RecordingSocket(), ["v4"]),
    (err: unknown) =>
      err instanceof KubeletApiError && err.status === 403 &&
      err.headers["x-accepted-stream-protocol-versions"] === "v4",
  );
  assert.equal(
    acceptSpdy(upgradeRequest({}), new RecordingSocket(), ["v4"]),
    "",
    "no offer: the oldest protocol",
  );
  const refused = new RecordingSocket();
  refuseUpgrade(refused, 403, "nope", { "x-accepted-stream-protocol-versions": "v4" });
  assert.match(refused.written, /^HTTP\/1\.1 403 Forbidden\r\nx-accepted-stream-protocol-versions: v4\r\n/);
  assert.match(refused.written, /\r\n\r\nnope\n$/);
});

Deno.test("exec status: an exit code only in the message (kwok) becomes the ExitCode cause", () => {
  const status = withExitCode({
    status: "Failure",
    reason: "InternalError",
    message: "error executing command in container: cmd wait: sh -c exit 3: exit status 3",
  });
  assert.equal(status.reason, "NonZeroExitCode");
  assert.deepEqual(status.details?.causes, [{ reason: "ExitCode", message: "3" }]);
  const kubelet: Status = {
    status: "Failure",
    reason: "NonZeroExitCode",
    details: { causes: [{ reason: "ExitCode", message: "2" }] },
  };
  assert.equal(withExitCode(kubelet), kubelet, "a kubelet's status is left alone");
  assert.deepEqual(withExitCode({ status: "Success" }), { status: "Success" });
});

Deno.test("deployment mode: virtual nodes advertise a ready proxier pod's IP (oldest, then by name) and follow it", async () => {
  const { ctx, virtual } = memorySyncerContext({
    address: "127.0.0.1",
    port: 10250,
    podNamespace: "kubeocean-system",
  });
  const pods = new CoreV1Api(virtual).pods("kubeocean-system");
  // Created within one second: the same creationTimestamp, so the name decides.
  const proxierPod = async (name: string, ip: string, ready: boolean, binding = "w1") => {
    const pod: Pod = await pods.create({
      metadata: {
        name,
        labels: { "app.kubernetes.io/name": "kubeocean-proxier", "kubeocean.io/cluster-binding": binding },
      },
    });
    pod.status = { podIP: ip, conditions: [{ type: "Ready", status: ready ? "True" : "False" }] };
    return await pods.replaceStatus(pod);
  };
  const informer = ctx.proxierPodInformer!.start();
  try {
    assert.equal(ctx.proxierAddress(), "127.0.0.1", "no proxier pod yet: the fixed address");
    await proxierPod("proxier-a", "10.0.0.1", false);
    const chosen = await proxierPod("proxier-b", "10.0.0.2", true);
    await proxierPod("proxier-c", "10.0.0.3", true);
    await proxierPod("another-binding", "10.9.9.9", true, "w2");
    await eventually("the first ready pod's IP", () => ctx.proxierAddress() === "10.0.0.2");
    await pods.delete(chosen.metadata!.name!);
    await eventually("the next ready pod takes over", () => ctx.proxierAddress() === "10.0.0.3");
  } finally {
    await informer.stop();
  }
});
