import assert from "node:assert/strict";
import { parse } from "yaml";
import { CoreV1Api, type Node, type Pod } from "../../apis/core/v1/mod.ts";
import { Quantity } from "../../toolkit/apimachinery/quantity.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";
import { FixtureKubeoceanIoV1alpha1Api, type Widget } from "./golden/fixture.kubeocean.io/v1alpha1/mod.ts";

const crdText = await Deno.readTextFile(new URL("./fixtures/crd_fixture.yaml", import.meta.url));

envTest("codegen: generated types and clients against a real API server", {
  clusters: [{ name: "gen", nodes: 1 }],
}, async (env, t) => {
  const cluster = env.cluster("gen");
  const client = await connect(cluster);
  const core = new CoreV1Api(client);
  try {
    await t.step("a Pod and a Node created from generated types read back equal", async () => {
      const node: Node = {
        metadata: { name: "typed-node", labels: { "example.kubeocean.io/typed": "true" } },
        spec: { taints: [{ key: "example.kubeocean.io/typed", effect: "NoSchedule" }] },
      };
      await core.nodes().create(node);
      const readNode = await core.nodes().get("typed-node");
      assert.equal(readNode.metadata?.labels?.["example.kubeocean.io/typed"], "true");
      assert.ok(
        readNode.spec?.taints?.some((t) =>
          t.key === "example.kubeocean.io/typed" && t.effect === "NoSchedule"
        ),
      );
      const pod: Pod = {
        metadata: { name: "typed-pod", namespace: "default" },
        spec: {
          nodeName: "gen-node-1",
          containers: [{
            name: "main",
            image: "example/app:1",
            resources: { requests: { cpu: "0.5", memory: "1.5Gi" } },
          }],
        },
      };
      await core.pods("default").create(pod);
      const read = await core.pods("default").get("typed-pod");
      assert.equal(read.spec?.containers[0].image, "example/app:1");
      // The server canonicalises quantities exactly as our Quantity does.
      assert.equal(read.spec?.containers[0].resources?.requests?.cpu, "500m");
      assert.equal(read.spec?.containers[0].resources?.requests?.memory, "1536Mi");
    });

    await t.step(
      "a custom resource from generated types round-trips; fields the types do not know survive get → replace",
      async () => {
        await cluster.kubectl(["apply", "-f", "-"], { stdin: crdText });
        await cluster.kubectl(["wait", "--for=condition=Established", "crd/widgets.fixture.kubeocean.io"]);
        const widgets = new FixtureKubeoceanIoV1alpha1Api(client).widgets("default");
        const widget: Widget = {
          metadata: { name: "w" },
          spec: { size: 2, colour: "blue", ports: [{ name: "http", number: 80 }] },
        };
        await eventually("widget created", () => widgets.create(widget));
        assert.deepEqual((await widgets.get("w")).spec, widget.spec);

        // A newer schema adds spec.extra, which the generated types do not know.
        const crd = parse(crdText);
        crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.extra = { type: "string" };
        await cluster.kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(crd) });
        await eventually("extra field accepted", async () => {
          // A JSON patch: a merge patch is typed and cannot name a field the types do not know.
          await widgets.patch("w", [{ op: "add", path: "/spec/extra", value: "kept" }], { type: "json" });
          const raw = await widgets.get("w") as unknown as { spec: Record<string, unknown> };
          return raw.spec.extra === "kept";
        });
        const typed = await widgets.get("w");
        typed.spec!.size = 3; // a typed change
        await widgets.replace(typed);
        const after = await widgets.get("w") as unknown as { spec: Record<string, unknown> };
        assert.equal(after.spec.size, 3);
        assert.equal(after.spec.extra, "kept", "the unknown field survived get → replace");
      },
    );

    await t.step("pod exec and port-forward through the generated client", async () => {
      const pods = core.pods("default");
      await eventually("pod running", async () => (await pods.get("typed-pod")).status?.phase === "Running");
      const result = await pods.exec("typed-pod", ["sh", "-c", "echo out; echo err >&2; exit 3"], {
        container: "main",
      });
      assert.equal(result.stdout, "out\n");
      assert.equal(result.stderr, "err\n");
      assert.equal(result.exitCode, 3);
      // kwok never closes the command's stdin (it ignores the close signal), so read a known length.
      const ok = await pods.exec("typed-pod", ["head", "-c", "10"], { stdin: "from stdin" });
      assert.equal(ok.stdout, "from stdin");
      assert.equal(ok.exitCode, 0);

      // kwok's port-forward echoes each connection back (the environment's default).
      const stream = await pods.portForward("typed-pod", 8080);
      const writer = stream.writable.getWriter();
      await writer.write(new TextEncoder().encode("ping\n"));
      const reader = stream.readable.getReader();
      let echoed = "";
      const deadline = setTimeout(() => stream.close(), 10_000);
      while (!echoed.includes("ping\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        echoed += new TextDecoder().decode(value);
      }
      clearTimeout(deadline);
      assert.equal(echoed, "ping\n");
      stream.close();
    });

    await t.step("Quantity's canonical form equals the API server's for every request value", async () => {
      const inputs = [
        "1",
        "1.5",
        ".5",
        "5.",
        "0.1",
        "0.001",
        "0.0001",
        "1n",
        "0.1n",
        "100m",
        "1000m",
        "1500m",
        "1k",
        "1000",
        "1500",
        "1023",
        "1024",
        "2048",
        "12000",
        "1M",
        "1000k",
        "1500M",
        "1000M",
        "1G",
        "0.5G",
        "1e3",
        "1E3",
        "12e6",
        "1.5e3",
        "1e-3",
        "100e-3",
        "1Ki",
        "1.5Ki",
        "0.5Ki",
        "1024Ki",
        "1536Ki",
        "1.5Mi",
        "0.5Gi",
        "1.5Gi",
        "1Gi",
        "8Gi",
        "1024Mi",
        "1025Mi",
        "12Ki",
        "1Ti",
        "100Pi",
        "1Ei",
        "0.1Ki",
        "010",
        "0010.5",
        "+1",
        "1.0",
        "0.50",
        "1.10",
        "1.0E3",
        "7Ei",
        "5Mi",
        "1E",
      ];
      const pod: Pod = {
        metadata: { name: "quantities", namespace: "default" },
        spec: {
          containers: [{ name: "c", image: "x" }],
          volumes: inputs.map((q, i) => ({ name: `v${i}`, emptyDir: { sizeLimit: q } })),
        },
      };
      // A plain Quantity field (resource lists are rounded to millis by defaulting). Dry run: nothing is stored.
      const echoed = await core.pods("default").create(pod, { dryRun: true });
      // (The ServiceAccount admission plugin appends a token volume; keep ours only.)
      const server = echoed.spec!.volumes!.filter((v) => /^v\d+$/.test(v.name)).map((v) =>
        v.emptyDir?.sizeLimit
      );
      const ours = inputs.map((q) => Quantity.parse(q).toString());
      assert.deepEqual(ours, server);
    });
  } finally {
    client.close();
  }
});
