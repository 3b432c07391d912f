import assert from "node:assert/strict";
import type { KubeObject, ResourceDescriptor } from "../../toolkit/client/resource.ts";
import { connect, envTest, eventually } from "../../toolkit/envtest/testing.ts";

const LEASES: ResourceDescriptor = {
  group: "coordination.k8s.io",
  version: "v1",
  kind: "Lease",
  plural: "leases",
  namespaced: true,
};

class Candidate {
  readonly lines: string[] = [];
  readonly child: Deno.ChildProcess;
  readonly done: Promise<void>;
  constructor(kubeconfig: string, readonly id: string) {
    const script = new URL("../fixtures/leader_candidate.ts", import.meta.url).pathname;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", script, kubeconfig, id],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.child = child;
    this.done = (async () => {
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        this.lines.push(...chunk.split("\n").filter(Boolean));
      }
    })();
  }
  leadingAt(): number | undefined {
    const line = this.lines.find((l) => l.startsWith(`LEADING ${this.id}`));
    return line ? Number(line.split(" ")[2]) : undefined;
  }
}

envTest("leader election: one leader, takeover within the lease duration, release on shutdown", {
  clusters: [{ name: "le" }],
}, async (env, t) => {
  const cluster = env.cluster("le");
  const client = await connect(cluster);
  const leases = client.resource<
    KubeObject & { spec?: { holderIdentity?: string; leaseTransitions?: number } }
  >(
    LEASES,
    "default",
  );
  const a = new Candidate(cluster.kubeconfig, "a");
  const b = new Candidate(cluster.kubeconfig, "b");
  const c = new Candidate(cluster.kubeconfig, "c");
  try {
    await t.step("exactly one of three candidates leads", async () => {
      await eventually("a leader", () => [a, b, c].some((x) => x.leadingAt()), { timeoutMs: 20_000 });
      await new Promise((r) => setTimeout(r, 2_000));
      const leaders = [a, b, c].filter((x) => x.leadingAt());
      assert.equal(leaders.length, 1, `leaders: ${leaders.map((l) => l.id)}`);
      const lease = await leases.get("test-leader");
      assert.equal(lease.spec?.holderIdentity, leaders[0].id);
    });

    let current = [a, b, c].find((x) => x.leadingAt())!;
    await t.step("killing the leader hands over within the lease duration", async () => {
      const killedAt = Date.now();
      current.child.kill("SIGKILL");
      await current.done;
      const others = [a, b, c].filter((x) => x !== current);
      const next = await eventually("a new leader", () => others.find((x) => x.leadingAt()), {
        timeoutMs: 20_000,
      });
      const takeover = next.leadingAt()! - killedAt;
      // Lease 4 s, plus at most one retry period (0.5 s, jittered) to notice.
      assert.ok(takeover <= 4_000 + 1_500, `takeover took ${takeover} ms`);
      assert.equal(others.filter((x) => x.leadingAt()).length, 1);
      current = next;
    });

    await t.step("a graceful shutdown releases the lease at once", async () => {
      const last = [a, b, c].find((x) => x !== current && !x.leadingAt())!;
      const stoppedAt = Date.now();
      current.child.kill("SIGTERM");
      await current.done;
      assert.ok(current.lines.some((l) => l.startsWith(`STOPPED ${current.id}`)));
      await eventually("successor", () => last.leadingAt(), { timeoutMs: 10_000 });
      const takeover = last.leadingAt()! - stoppedAt;
      assert.ok(takeover < 2_000, `takeover after release took ${takeover} ms (lease is 4 s)`);
      const lease = await leases.get("test-leader");
      assert.equal(lease.spec?.holderIdentity, last.id);
      assert.equal(lease.spec?.leaseTransitions, 2);
    });
  } finally {
    for (const x of [a, b, c]) {
      try {
        x.child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await x.done.catch(() => {});
      await x.child.status;
    }
    client.close();
  }
});
