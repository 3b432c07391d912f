/**
 * The README's first command, as a new user runs it: `deno task demo --exit-when-ready` brings up
 * the clusters, binds both workers, gets every sample pod Running through Kubeocean, runs one
 * `kubectl logs` and one `kubectl exec` through the computing cluster, and exits 0, leaving
 * nothing running.
 */

import assert from "node:assert/strict";

Deno.test({
  name: "demo: deno task demo --exit-when-ready reaches every pod Running and exits 0",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const { code, text } = await runDemo([]);
  assert.equal(code, 0, text.slice(-3000));
  assert.match(text, /computing: 12\/12 Running/);
  // The printed kubectl logs and exec commands answered through the kubelet API of virtual nodes.
  assert.match(text, /^kubectl logs hello-\S+: kubeocean envtest: ready$/m);
  assert.match(text, /^kubectl exec hello-\S+: hello from worker[12]$/m);
  assert.match(text, /Done: nothing is left running\./);
});

Deno.test({
  name: "demo: --metrics adds metrics-server everywhere and kubectl top pod lists every sample pod",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const { code, text } = await runDemo(["--metrics"]);
  assert.equal(code, 0, text.slice(-3000));
  const top = text.slice(text.indexOf("kubectl top pod (computing cluster"));
  assert.equal((top.match(/^hello-\S+\s+\d+m\s+\d+Mi\s*$/gm) ?? []).length, 12, top.slice(0, 2000));
  assert.match(text, /Done: nothing is left running\./);
});

/** Runs `deno task demo --exit-when-ready` with `args` in a temporary directory; returns its exit code and output. */
async function runDemo(args: string[]): Promise<{ code: number; text: string }> {
  const dir = await Deno.makeTempDir({ prefix: "kubeocean-demo-test-" });
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["task", "demo", "--exit-when-ready", ...args, "--timeout", "180", "--dir", dir],
      cwd: new URL("../../", import.meta.url).pathname,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    return { code: output.code, text };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
