import assert from "node:assert/strict";
import { stringify } from "yaml";
import { KubeClient } from "../../toolkit/client/client.ts";
import { isUnauthorized } from "../../toolkit/client/errors.ts";
import type { KubeObject, ResourceDescriptor } from "../../toolkit/client/resource.ts";
import type { Cluster } from "../../toolkit/envtest/cluster.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";

const SERVICE_ACCOUNTS: ResourceDescriptor = {
  group: "",
  version: "v1",
  kind: "ServiceAccount",
  plural: "serviceaccounts",
  namespaced: true,
};
const NAMESPACES: ResourceDescriptor = {
  group: "",
  version: "v1",
  kind: "Namespace",
  plural: "namespaces",
  namespaced: false,
};
const REVIEWS: ResourceDescriptor = {
  group: "authentication.k8s.io",
  version: "v1",
  kind: "SelfSubjectReview",
  plural: "selfsubjectreviews",
  namespaced: false,
};

async function whoami(client: KubeClient): Promise<string> {
  const review = await client.resource<KubeObject & { status?: { userInfo?: { username?: string } } }>(
    REVIEWS,
  )
    .create({ metadata: {} });
  return review.status?.userInfo?.username ?? "";
}

function b64(text: string): string {
  return btoa(text);
}

async function writeKubeconfig(
  dir: string,
  name: string,
  cluster: Record<string, unknown>,
  user: Record<string, unknown>,
) {
  const path = `${dir}/${name}.yaml`;
  await Deno.writeTextFile(
    path,
    stringify({
      apiVersion: "v1",
      kind: "Config",
      "current-context": "ctx",
      clusters: [{ name: "c", cluster }],
      users: [{ name: "u", user }],
      contexts: [{ name: "ctx", context: { cluster: "c", user: "u" } }],
    }),
  );
  return path;
}

async function tokenFor(admin: KubeClient, name: string): Promise<string> {
  const sas = admin.resource<KubeObject, "token">(SERVICE_ACCOUNTS, "auth");
  await sas.create({ metadata: { name } });
  const request = await sas.createToken(name, { expirationSeconds: 3600 });
  return request.status!.token;
}

envTest("client auth: client certificate, bearer token, token-file rotation, exec plugin, TLS options", {
  clusters: [{ name: "auth" }],
}, async (env, t) => {
  const cluster: Cluster = env.cluster("auth");
  const admin = await connect(cluster);
  const dir = await Deno.makeTempDir({ prefix: "kubeocean-auth-" });
  const caData = b64(cluster.pki.ca.certPem);
  try {
    await admin.resource<KubeObject>(NAMESPACES).create({ metadata: { name: "auth" } });
    const alice = await tokenFor(admin, "alice");
    const bob = await tokenFor(admin, "bob");

    await t.step("client certificate", async () => {
      const { kubeconfig } = await cluster.addUser("carol", ["team-a"]);
      const client = await KubeClient.load({ kubeconfig });
      assert.equal(await whoami(client), "carol");
      client.close();
    });

    await t.step("bearer token", async () => {
      const path = await writeKubeconfig(dir, "token", {
        server: cluster.server,
        "certificate-authority-data": caData,
      }, {
        token: alice,
      });
      const client = await KubeClient.load({ kubeconfig: path });
      assert.equal(await whoami(client), "system:serviceaccount:auth:alice");
      client.close();
    });

    await t.step("token file rotation is picked up without a new client", async () => {
      const tokenFile = `${dir}/token`;
      await Deno.writeTextFile(tokenFile, alice);
      const path = await writeKubeconfig(dir, "tokenfile", {
        server: cluster.server,
        "certificate-authority-data": caData,
      }, {
        tokenFile,
      });
      const client = await KubeClient.load({ kubeconfig: path });
      assert.equal(await whoami(client), "system:serviceaccount:auth:alice");
      await Deno.writeTextFile(tokenFile, bob);
      await eventually(
        "rotated token used",
        async () => await whoami(client) === "system:serviceaccount:auth:bob",
        {
          timeoutMs: 10_000,
        },
      );
      client.close();
    });

    await t.step("exec credential plugin: cached, and re-run after a 401", async () => {
      const tokenSource = `${dir}/exec-token`;
      const counter = `${dir}/exec-count`;
      await Deno.writeTextFile(tokenSource, "not-a-valid-token");
      const script = `${dir}/plugin.sh`;
      await Deno.writeTextFile(
        script,
        `#!/bin/sh
echo run >> "${counter}"
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}' "$(cat "${tokenSource}")"
`,
      );
      await Deno.chmod(script, 0o755);
      const path = await writeKubeconfig(dir, "exec", {
        server: cluster.server,
        "certificate-authority-data": caData,
      }, {
        exec: { apiVersion: "client.authentication.k8s.io/v1", command: script, interactiveMode: "Never" },
      });
      const client = await KubeClient.load({ kubeconfig: path });
      await assert.rejects(
        whoami(client),
        (e) => isUnauthorized(e),
        "an invalid token is a 401 after one refresh",
      );
      const runsAfterFailure = (await Deno.readTextFile(counter)).trim().split("\n").length;
      assert.equal(runsAfterFailure, 2, "the plugin ran again after the 401");
      await Deno.writeTextFile(tokenSource, bob);
      assert.equal(await whoami(client), "system:serviceaccount:auth:bob");
      assert.equal(await whoami(client), "system:serviceaccount:auth:bob");
      const runs = (await Deno.readTextFile(counter)).trim().split("\n").length;
      assert.equal(runs, 3, "one more run after the 401, then cached");
      client.close();
    });

    await t.step("insecure-skip-tls-verify connects without a CA", async () => {
      const path = await writeKubeconfig(dir, "insecure", {
        server: cluster.server,
        "insecure-skip-tls-verify": true,
      }, {
        token: alice,
      });
      const client = await KubeClient.load({ kubeconfig: path });
      assert.equal(await whoami(client), "system:serviceaccount:auth:alice");
      client.close();
      const strict = await writeKubeconfig(dir, "strict", { server: cluster.server }, { token: alice });
      const unverified = await KubeClient.load({ kubeconfig: strict });
      await assert.rejects(whoami(unverified), /certificate|UnknownIssuer|invalid peer/i);
      unverified.close();
    });

    await t.step("tls-server-name verifies the certificate against another name", async () => {
      const port = new URL(cluster.server).port;
      const good = await writeKubeconfig(dir, "sni", {
        server: `https://127.0.0.1:${port}`,
        "certificate-authority-data": caData,
        "tls-server-name": "kubernetes.default.svc",
      }, { token: alice });
      const client = await KubeClient.load({ kubeconfig: good });
      assert.equal(await whoami(client), "system:serviceaccount:auth:alice");
      client.close();
      const bad = await writeKubeconfig(dir, "sni-bad", {
        server: `https://127.0.0.1:${port}`,
        "certificate-authority-data": caData,
        "tls-server-name": "wrong.example",
      }, { token: alice });
      const wrong = await KubeClient.load({ kubeconfig: bad, maxRetries: 0 });
      await assert.rejects(whoami(wrong), /certificate|NotValidForName|invalid peer/i);
      wrong.close();
    });
  } finally {
    admin.close();
    await Deno.remove(dir, { recursive: true });
  }
});
